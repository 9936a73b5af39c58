"""Post-training runs (METHOD.md, Training): SFT, then DPO, ORPO or their deviation-weighted forms.

- `run_sft`: TRL's `SFTTrainer` on conversational prompt/completion data (prompt as the user
  turn, response as the assistant turn), loss on the completion only.
- `run_preference`, starting from the SFT model: TRL's DPO loss ("dpo",
  `LengthGroupedDPOTrainer`) or `DeviationWeightedDPOTrainer` ("ddpo-sem" / "ddpo-sty" /
  "ddpo-both", and "ddpo-qg": quality-gated weights, docs/weighting.md), with the SFT model as
  the reference policy; TRL's ORPO loss ("orpo", `LengthGroupedORPOTrainer`) or
  `DeviationWeightedORPOTrainer` ("dorpo-sem" / "dorpo-sty" / "dorpo-both" / "dorpo-qg"),
  reference-free. Every trainer batches examples of similar length.
  Weighted methods weight each pair by its `w_chosen_<variant>`. DivPO needs no method of its
  own: it is plain "dpo" on the DivPO pairs.

Both run on CPU in float32 without gradient checkpointing (notes/trl.md, pitfalls 1-2; the
fields every run shares are `training.arguments`), are
seeded (weights, dropout, data order), save model + tokenizer as safetensors to `out_dir`, and
return their final metrics. For a hub model, pass a LoRA config (`modeling.lora_config`): SFT
then trains and saves an adapter, and the preference stage trains on that adapter with a frozen
copy of it as the reference (as in the paper).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import transformers
from datasets import Dataset, load_from_disk
from peft import PeftConfig, PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from trl import DPOConfig, SFTConfig, SFTTrainer
from trl.import_utils import TRLExperimentalWarning

from divwrite.core.distributed import process_state
from divwrite.training import checkpoints
from divwrite.training.arguments import common_args, family_args
from divwrite.training.modeling import load_causal_lm
from divwrite.training.tokenizer import load_tokenizer
from divwrite.training.trainers import LengthGroupedDPOTrainer, LengthGroupedORPOTrainer
from divwrite.training.weighted_dpo import DeviationWeightedDPOConfig, DeviationWeightedDPOTrainer
from divwrite.training.weighted_orpo import DeviationWeightedORPOConfig, DeviationWeightedORPOTrainer

with warnings.catch_warnings():
    # ORPO lives only in `trl.experimental` in TRL 1.16; depending on it is deliberate.
    warnings.simplefilter("ignore", TRLExperimentalWarning)
    from trl.experimental.orpo import ORPOConfig

logger = logging.getLogger(__name__)

# The `w_chosen_<variant>` columns of the `deviate` stage (qg: quality-gated, docs/weighting.md).
WEIGHT_VARIANTS = ("sem", "sty", "both", "qg")
PREFERENCE_METHODS = (
    "dpo",
    *(f"ddpo-{v}" for v in WEIGHT_VARIANTS),
    "orpo",
    *(f"dorpo-{v}" for v in WEIGHT_VARIANTS),
)

# (family, weighted) -> (trainer, config). Weighted configs read the pair weight from "weight".
_PREFERENCE_TRAINERS: dict[
    tuple[str, bool], tuple[type[transformers.Trainer], type[transformers.TrainingArguments]]
] = {
    ("dpo", False): (LengthGroupedDPOTrainer, DPOConfig),
    ("dpo", True): (DeviationWeightedDPOTrainer, DeviationWeightedDPOConfig),
    ("orpo", False): (LengthGroupedORPOTrainer, ORPOConfig),
    ("orpo", True): (DeviationWeightedORPOTrainer, DeviationWeightedORPOConfig),
}

# Metrics returned from the last training log, under TRL's names.
_PREFERENCE_METRICS = (
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
    "nll_loss",  # ORPO / DORPO only, as are the two below
    "log_odds_ratio",
    "log_odds_chosen",
    "weights/mean",  # weighted methods only
)


def sft_dataset(train_df: pd.DataFrame) -> Dataset:
    """Conversational prompt/completion rows from a responses table (columns prompt, response)."""
    missing = [c for c in ("prompt", "response") if c not in train_df.columns]
    if missing:
        raise ValueError(f"train_df lacks columns {missing}; found {list(train_df.columns)}")
    return Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": p}] for p in train_df["prompt"]],
            "completion": [[{"role": "assistant", "content": r}] for r in train_df["response"]],
        }
    )


def build_sft_trainer(
    model: PreTrainedModel | str,
    tokenizer: PreTrainedTokenizerBase,
    train_df: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    epochs: float,
    learning_rate: float,
    batch_size: int,
    warmup_ratio: float,
    seed: int,
    max_length: int,
    report_to: str | list[str] = "none",
    peft_config: PeftConfig | None = None,
    trust_remote_code: bool = False,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_steps: int = 0,
) -> SFTTrainer:
    """The `SFTTrainer` that `run_sft` runs (arguments as there), ready to `train()`."""
    transformers.set_seed(seed)
    dataset = sft_dataset(train_df)
    args = SFTConfig(
        **common_args(
            out_dir,
            n_examples=len(dataset),
            epochs=epochs,
            learning_rate=learning_rate,
            batch_size=batch_size,
            warmup_ratio=warmup_ratio,
            max_length=max_length,
            seed=seed,
            report_to=report_to,
            checkpoint_dir=checkpoint_dir,
            checkpoint_steps=checkpoint_steps,
        ),
        completion_only_loss=True,
        packing=False,
        trust_remote_code=trust_remote_code,  # used only when `model` is a hub id / path
    )
    return SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )


def run_sft(
    model: PreTrainedModel | str,
    tokenizer: PreTrainedTokenizerBase,
    train_df: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    fingerprint: str | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """Supervised fine-tuning on every (prompt, response) of `train_df` (METHOD.md, Training).

    Keyword arguments as `build_sft_trainer`: `model` is a model instance (e.g.
    `modeling.build_builtin_model`) or a hub id / local path (loaded in float32;
    `trust_remote_code` applies only then). Loss on the response tokens only; sequences are
    cut at `max_length` tokens. Saves the model (or the LoRA adapter when `peft_config` is
    given) and the tokenizer to `out_dir`. With `checkpoint_dir` / `checkpoint_steps` the run
    checkpoints and resumes (`fingerprint`, required then, identifies the run: see
    `checkpoints`). Returns `train_loss` (mean over the run), `runtime` (seconds), `tokens`
    (tokens seen, padding excluded), `steps`, `epochs`, `resumed_from_step` (0 for a fresh
    run) and the last logged `mean_token_accuracy` and `entropy`.
    """
    trainer = build_sft_trainer(model, tokenizer, train_df, out_dir, **kwargs)
    return _train_and_save(trainer, Path(out_dir), ("mean_token_accuracy", "entropy"), fingerprint)


def preference_dataset(pairs_df: pd.DataFrame, weight_column: str | None = None) -> Dataset:
    """Conversational preference rows (prompt as the user turn, chosen/rejected as assistant turns),
    with the pair weight copied to a `weight` column when `weight_column` is given."""
    needed = ["prompt", "chosen", "rejected"] + ([weight_column] if weight_column else [])
    missing = [c for c in needed if c not in pairs_df.columns]
    if missing:
        raise ValueError(f"pairs_df lacks columns {missing}; found {list(pairs_df.columns)}")
    rows: dict[str, list] = {
        "prompt": [[{"role": "user", "content": p}] for p in pairs_df["prompt"]],
        "chosen": [[{"role": "assistant", "content": c}] for c in pairs_df["chosen"]],
        "rejected": [[{"role": "assistant", "content": r}] for r in pairs_df["rejected"]],
    }
    if weight_column:
        rows["weight"] = pairs_df[weight_column].astype("float64").tolist()
    return Dataset.from_dict(rows)


def parse_preference_method(method: str) -> tuple[str, str | None]:
    """`(family, weight_column)` of a preference method: family "dpo" (dpo, ddpo-*) or "orpo"
    (orpo, dorpo-*); weight column `w_chosen_<variant>` for a weighted method, else None."""
    if method not in PREFERENCE_METHODS:
        raise ValueError(f"unknown preference method {method!r}; expected one of {PREFERENCE_METHODS}")
    name, _, variant = method.partition("-")
    family = "orpo" if name.endswith("orpo") else "dpo"
    return family, (f"w_chosen_{variant}" if variant else None)


def shared_across_processes(dataset: Dataset, path: Path) -> Dataset:
    """`dataset` itself in one process; under several (`accelerate launch`), a copy saved by the
    main process at `path` and loaded by every rank.

    TRL's `precompute_ref_log_probs` caches the reference log-probs in a file that rank 0 writes
    and every rank reads, named after the dataset's cache directory: for an in-memory dataset that
    is a random per-process temp folder, so the other ranks fail with FileNotFoundError. A
    disk-backed dataset gives every rank the same folder (tests/test_ddp.py).
    """
    state = process_state()
    if state.num_processes == 1:
        return dataset
    with state.main_process_first():
        if state.is_main_process:
            shutil.rmtree(path, ignore_errors=True)
            dataset.save_to_disk(str(path))
    return load_from_disk(str(path))


def build_preference_trainer(
    method: str,
    sft_dir: str | os.PathLike,
    pairs_df: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    beta: float,
    learning_rate: float,
    epochs: float,
    batch_size: int,
    seed: int,
    max_length: int,
    report_to: str | list[str] = "none",
    peft_config: PeftConfig | None = None,
    trust_remote_code: bool = False,
    warmup_ratio: float = 0.0,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_steps: int = 0,
    ref_logps_cache_dir: str | os.PathLike | None = None,
) -> LengthGroupedDPOTrainer | LengthGroupedORPOTrainer:
    """The trainer that `run_preference` runs (arguments as there), ready to `train()`.
    `ref_logps_cache_dir` (DPO family): where reference passes are cached across runs
    (`trainers.LengthGroupedDPOTrainer`)."""
    family, weight_column = parse_preference_method(method)
    transformers.set_seed(seed)
    dataset = shared_across_processes(preference_dataset(pairs_df, weight_column), Path(out_dir) / "trainer" / "pairs")
    tokenizer = load_tokenizer(sft_dir, trust_remote_code=trust_remote_code)
    model = load_causal_lm(sft_dir, trust_remote_code=trust_remote_code, is_trainable=True)

    config_kwargs = dict(
        **common_args(
            out_dir,
            n_examples=len(dataset),
            epochs=epochs,
            learning_rate=learning_rate,
            batch_size=batch_size,
            warmup_ratio=warmup_ratio,
            max_length=max_length,
            seed=seed,
            report_to=report_to,
            checkpoint_dir=checkpoint_dir,
            checkpoint_steps=checkpoint_steps,
        ),
        beta=beta,  # DPO's beta; ORPO's lambda
        trust_remote_code=trust_remote_code,
    )
    config_kwargs.update(family_args(family, batch_size))
    if weight_column is not None:
        config_kwargs["weight_column"] = "weight"  # `preference_dataset` copies the weight there
    trainer_cls, config_cls = _PREFERENCE_TRAINERS[family, weight_column is not None]
    extra = {"ref_logps_cache_dir": ref_logps_cache_dir} if family == "dpo" else {}
    return trainer_cls(
        model=model,
        args=config_cls(**config_kwargs),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        **extra,
    )


def run_preference(
    method: str,
    sft_dir: str | os.PathLike,
    pairs_df: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    fingerprint: str | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """DPO, DDPO, ORPO or DORPO from the SFT model in `sft_dir` (METHOD.md, Training); keyword
    arguments as `build_preference_trainer`, checkpoints and `fingerprint` as `run_sft`.

    `method` (one of `PREFERENCE_METHODS`) is "dpo" (TRL's `DPOTrainer` loss,
    `LengthGroupedDPOTrainer`), "ddpo-sem" / "ddpo-sty" / "ddpo-both" / "ddpo-qg"
    (`DeviationWeightedDPOTrainer`), "orpo" (TRL's ORPO loss, `LengthGroupedORPOTrainer`) or
    "dorpo-sem" / "dorpo-sty" / "dorpo-both" / "dorpo-qg"
    (`DeviationWeightedORPOTrainer`); a weighted method takes each pair's weight from
    `pairs_df["w_chosen_<variant>"]` (a missing column is a `ValueError`). `beta` is DPO's beta
    and ORPO's lambda.

    DPO/DDPO: the SFT model is both the initial policy and the reference: its log-probs are
    precomputed once before training (`precompute_ref_log_probs`), which saves one reference
    forward per step from the second epoch on and keeps no second model in memory. If `sft_dir`
    holds a LoRA adapter, that adapter is trained further and TRL keeps a frozen copy for the
    reference. ORPO/DORPO start from the same SFT model (or adapter) and need no reference.
    `peft_config` instead puts a new adapter on a fully fine-tuned SFT model. Saves model (or
    adapter) and tokenizer to `out_dir`; returns `train_loss`, `runtime`, `tokens` (DPO/DDPO only:
    TRL's ORPO does not count them), `steps`, `epochs`, `resumed_from_step` and the last logged
    `rewards/*`, `logps/*`, for ORPO/DORPO also `nll_loss`, `log_odds_ratio`, `log_odds_chosen`,
    and `weights/mean` for the weighted methods.
    """
    trainer = build_preference_trainer(method, sft_dir, pairs_df, out_dir, **kwargs)
    return _train_and_save(trainer, Path(out_dir), _PREFERENCE_METRICS, fingerprint)


def save_model(trainer: transformers.Trainer, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> None:
    """Save the trained model (safetensors) and tokenizer to `out_dir`, from the main process.

    Every process takes part in gathering the weights (`accelerator.get_state_dict`: needed
    for FSDP and DeepSpeed ZeRO-3, where each holds a shard); the main one writes them. A PEFT
    model saves only its trained adapter ("default"), not the frozen "ref" copy TRL adds.
    `Trainer.save_model` is not used: it also writes `training_args.bin`, a pickle.
    """
    accelerator = trainer.accelerator
    state_dict = accelerator.get_state_dict(trainer.model)
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        model = accelerator.unwrap_model(trainer.model)
        if isinstance(model, PeftModel):
            model.save_pretrained(str(out_dir), selected_adapters=["default"], state_dict=state_dict)
        else:
            model.save_pretrained(str(out_dir), state_dict=state_dict)
        tokenizer.save_pretrained(str(out_dir))
        shutil.rmtree(out_dir / "trainer", ignore_errors=True)  # the trainer's scratch folder, if used
    accelerator.wait_for_everyone()


def _train_and_save(
    trainer: transformers.Trainer, out_dir: Path, metric_keys: tuple[str, ...], fingerprint: str | None
) -> dict[str, float]:
    """Train (resuming from the run's last checkpoint if it has one), save model + tokenizer
    (safetensors) to `out_dir`, drop the checkpoints, return the final metrics."""
    checkpointing = trainer.args.save_strategy != "no"
    if checkpointing and fingerprint is None:
        raise ValueError("checkpointing needs the run's `fingerprint` (see divwrite.training.checkpoints)")
    resume_from = checkpoints.resume_point(trainer.args.output_dir, fingerprint) if checkpointing else None
    if resume_from is not None and trainer.accelerator.is_main_process:
        logger.info("resuming from %s", resume_from)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    runtime = time.perf_counter() - start
    save_model(trainer, trainer.processing_class, out_dir)
    if checkpointing and trainer.accelerator.is_main_process:
        checkpoints.finish(trainer.args.output_dir)

    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    last = logs[-1] if logs else {}
    metrics: dict[str, float] = {
        "train_loss": float(result.training_loss),
        "runtime": float(runtime),
        "steps": float(result.global_step),
        "epochs": float(trainer.state.epoch or 0.0),
        "resumed_from_step": float(checkpoints.checkpoint_step(resume_from) if resume_from else 0),
    }
    if hasattr(trainer, "_total_train_tokens"):  # TRL's running count (padding excluded); ORPO keeps none
        metrics["tokens"] = float(trainer._total_train_tokens)
    for key in metric_keys:
        if key in last:
            metrics[key] = float(last[key])
    return metrics
