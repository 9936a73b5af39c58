"""train: post-train one method (`accelerate launch stages/train.py <method>`; methods in params `train.methods`).

`loss: sft` trains the base generator on every train response; `loss: dpo` and `loss: orpo`
train from the SFT model on the preference pairs (hyper-parameters from the `dpo:` / `orpo:`
params sections); with `weights: sem|sty|both|qg` they are deviation-weighted (DDPO / DORPO: each
pair weighted by its w_chosen, METHOD.md "Training"). DivPO is `loss: dpo` on the DivPO pairs
(`data: divpo`): plain DPO, no weight columns needed.

`model.lora.r` > 0 trains LoRA adapters (the SFT adapter is then trained further by the
preference methods, with its frozen copy as the reference, as in the paper). The run
checkpoints every `train.checkpoint_steps` steps into `checkpoints/<method>` and a run that
was killed resumes there (`divwrite.training.checkpoints`). Under several processes every rank trains;
only the main one writes metrics and logs to MLflow.
"""

import os
import sys
from pathlib import Path

from divwrite.core.distributed import is_main_process, use_cpu_cores, world_size
from divwrite.core.files import write_json
from divwrite.core.records import PAIR_COLUMNS, RESPONSE_COLUMNS
from divwrite.core.schema import Params
from divwrite.core.stage import read_input, run_stage
from divwrite.training.checkpoints import fingerprint
from divwrite.training.logprobs import chosen_logp_change
from divwrite.training.modeling import is_adapter, load_causal_lm, lora_config
from divwrite.training.runs import run_preference, run_sft
from divwrite.training.tokenizer import load_tokenizer

# DPO's reference passes, shared by dpo / ddpo-* (same SFT reference, same pairs), outside DVC
# like the embedding cache; in a queued experiment DVC_ROOT is the project it was queued from.
REF_LOGPS_CACHE = Path(os.environ.get("DVC_ROOT") or ".") / ".cache" / "ref_logps"


def main(params: Params, method: str) -> dict:
    methods = params.train.methods
    if method not in methods:
        raise ValueError(f"unknown method {method!r}; params train.methods has {sorted(methods)}")
    spec = methods[method]
    use_cpu_cores()  # accelerate launch leaves a CPU process one thread otherwise
    model_cfg = params.model
    cfg = params.sft if spec.loss == "sft" else params.preference(spec.loss)
    data, init_dir = f"data/{spec.data}/train.parquet", f"models/{spec.init}"
    lora = model_cfg.lora
    peft = None
    if lora.r > 0 and not is_adapter(init_dir):  # an SFT adapter is trained further, not stacked
        peft = lora_config(r=lora.r, alpha=lora.alpha, target_modules=lora.target_modules, dropout=lora.dropout)
    # What the run depends on (as dvc.yaml declares it): a checkpoint of another run is never resumed.
    run_id = fingerprint(
        {
            "seed": params.seed,
            "model": model_cfg.model_dump(),
            "max_tokens": params.filter.max_tokens,
            "method": spec.model_dump(exclude_none=True),
            "hyper": cfg.model_dump(),
            "world_size": world_size(),
        },
        [data, init_dir, params.train.accelerate_config],
    )
    common = dict(
        learning_rate=cfg.learning_rate,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=params.seed,
        max_length=params.filter.max_tokens,
        trust_remote_code=model_cfg.trust_remote_code,
        peft_config=peft,
        report_to="mlflow" if is_main_process() else "none",
        checkpoint_dir=f"checkpoints/{method}",
        checkpoint_steps=params.train.checkpoint_steps,
        fingerprint=run_id,
    )
    if spec.loss == "sft":
        train = read_input(data, RESPONSE_COLUMNS)
        # The built-in model's initial weights live in models/base; a hub model or GGUF file loads from `model.base`.
        base = init_dir if model_cfg.base == "builtin" else model_cfg.base
        model = load_causal_lm(base, trust_remote_code=model_cfg.trust_remote_code)
        metrics = run_sft(
            model, load_tokenizer(init_dir), train, f"models/{method}", warmup_ratio=cfg.warmup_ratio, **common
        )
    else:
        pairs = read_input(data, PAIR_COLUMNS)
        metrics = run_preference(
            spec.trainer_method,  # dpo, ddpo-<weights>, orpo, dorpo-<weights>
            init_dir,
            pairs,
            f"models/{method}",
            beta=cfg.beta,
            ref_logps_cache_dir=REF_LOGPS_CACHE if params.train.ref_logps_cache else None,
            **common,
        )
        if is_main_process():  # premise check P4: how far the chosen stories' likelihood moved
            metrics["chosen_logp_change"] = chosen_logp_change(init_dir, f"models/{method}", pairs)
    if is_main_process():
        write_json(metrics, f"reports/train/{method}.json")
    return metrics


if __name__ == "__main__":
    method = sys.argv[1]
    run_stage(f"train@{method}", lambda p: main(p, method))
