"""train: post-train one method (`python stages/train.py <method>`; methods in params `train.methods`).

`loss: sft` trains the base generator on every train response; `loss: dpo` and `loss: orpo`
train from the SFT model on the preference pairs (hyper-parameters from the `dpo:` / `orpo:`
params sections); with `weights: sem|sty|both` they are deviation-weighted (DDPO / DORPO: each
pair weighted by its w_chosen, METHOD.md "Training"). DivPO is `loss: dpo` on the DivPO pairs
(`data: divpo`): plain DPO, no weight columns needed.
"""

import sys

from divwrite.modeling import load_causal_lm
from divwrite.records import PAIR_COLUMNS, RESPONSE_COLUMNS, write_json
from divwrite.stage import read_input, run_stage
from divwrite.tokenizer import load_tokenizer
from divwrite.training import run_preference, run_sft

PREFERENCE_LOSSES = ("dpo", "orpo")  # params section of each: beta, learning_rate, epochs, batch_size


def main(params: dict, method: str) -> dict:
    methods = params["train"]["methods"]
    if method not in methods:
        raise ValueError(f"unknown method {method!r}; params train.methods has {sorted(methods)}")
    spec = methods[method]
    max_length = params["filter"]["max_tokens"]
    if spec["loss"] == "sft":
        cfg = params["sft"]
        train = read_input(f"data/{spec['data']}/train.parquet", RESPONSE_COLUMNS)
        init_dir = f"models/{spec['init']}"
        base = params["model"]["base"]
        # The built-in model's initial weights live in models/base; a hub model loads by id.
        model = load_causal_lm(init_dir) if base == "builtin" else base
        metrics = run_sft(
            model,
            load_tokenizer(init_dir),
            train,
            f"models/{method}",
            epochs=cfg["epochs"],
            learning_rate=cfg["learning_rate"],
            batch_size=cfg["batch_size"],
            warmup_ratio=cfg["warmup_ratio"],
            seed=params["seed"],
            max_length=max_length,
            trust_remote_code=params["model"]["trust_remote_code"],
            report_to="mlflow",
        )
    elif spec["loss"] in PREFERENCE_LOSSES:
        loss = spec["loss"]
        cfg = params[loss]
        pairs = read_input(f"data/{spec['data']}/train.parquet", PAIR_COLUMNS)
        weights = spec.get("weights")
        metrics = run_preference(
            f"d{loss}-{weights}" if weights else loss,  # dpo, ddpo-<w>, orpo, dorpo-<w>
            f"models/{spec['init']}",
            pairs,
            f"models/{method}",
            beta=cfg["beta"],
            learning_rate=cfg["learning_rate"],
            epochs=cfg["epochs"],
            batch_size=cfg["batch_size"],
            seed=params["seed"],
            max_length=max_length,
            trust_remote_code=params["model"]["trust_remote_code"],
            report_to="mlflow",
        )
    else:
        raise ValueError(f"method {method!r}: unknown loss {spec['loss']!r} (expected one of sft, dpo, orpo)")
    write_json(metrics, f"reports/train/{method}.json")
    return metrics


if __name__ == "__main__":
    method = sys.argv[1]
    run_stage(f"train@{method}", lambda p: main(p, method), ["seed", "model", "train", "sft", "dpo", "orpo"])
