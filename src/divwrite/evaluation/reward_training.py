"""Training the "reddit-reward" quality scorer (METHOD.md, Training, "Reward model"): `train_reward_model`.

Fine-tunes `reward.load_regression_model` (a one-output regression head, MSE loss) with the stock
`transformers.Trainer` on (prompt, response) -> transformed upvote score in [-1, 1] (METHOD.md
step 1), the input formatted by `reward.format_reward_input`. The trainer's arguments are the
generators' (`training.arguments.schedule_args`: seeded, float32 on CPU), so the reward stage
imports none of the generators' trainers. The choices (CPU cost and its levers, held-out
prompts, why the saved model is the one trained without them) are in `evaluation.reward`'s
docstring; the result is a `reward.SequenceRewardModel`.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd

from divwrite.core.records import RESPONSE_COLUMNS
from divwrite.evaluation.reward import (
    DEFAULT_MODEL,
    SequenceRewardModel,
    format_reward_input,
    load_regression_model,
    model_source,
    ranking_metrics,
    validation_prompts,
)
from divwrite.training.tokenizer import load_tokenizer


def _training_dataset(df: pd.DataFrame, tokenizer: Any, max_length: int):
    """Tokenised (unpadded) formatted inputs with float32 `labels` = the transformed score."""
    from datasets import Dataset

    texts = [format_reward_input(p, r) for p, r in zip(df["prompt"], df["response"])]
    columns = dict(tokenizer(texts, truncation=True, max_length=max_length))
    columns["labels"] = df["score"].astype(np.float32).tolist()
    return Dataset.from_dict(columns)


def _training_args(output_dir: str, **schedule: Any):
    """`TrainingArguments` as the generators' trainers use them (`arguments.schedule_args`: seeded,
    no checkpoints, float32 on CPU, bf16 on a GPU that has it), with a linear schedule and
    length-grouped batches."""
    from transformers import TrainingArguments

    from divwrite.training.arguments import schedule_args

    return TrainingArguments(
        **schedule_args(output_dir, **schedule),
        lr_scheduler_type="linear",
        eval_strategy="no",
        train_sampling_strategy="group_by_length",
    )


def train_reward_model(
    train_df: pd.DataFrame,
    *,
    model: str = DEFAULT_MODEL,
    lora_r: int = 0,
    lora_alpha: int = 32,
    freeze_layers: int = 0,
    max_length: int = 256,
    epochs: float = 1.0,
    learning_rate: float = 5e-5,
    batch_size: int = 32,
    warmup_ratio: float = 0.1,
    val_fraction: float = 0.1,
    trust_remote_code: bool = False,
    seed: int = 42,
    report_to: str | list[str] = "none",
) -> tuple[SequenceRewardModel, dict[str, float]]:
    """Fine-tune the reward model on a RESPONSE_COLUMNS table; report held-out ranking metrics.

    Holds out `val_fraction` of the PROMPTS (never single responses), fine-tunes `model` (a name
    for `model_source`) on the rest with `transformers.Trainer` (MSE on `score`, AdamW, linear
    schedule with `warmup_ratio` warm-up, length-grouped batches, seeded), and returns the model
    trained without the held-out prompts (it is not refit on every row: see the module docstring)
    with metrics: `val_{spearman,pairwise_accuracy,n,n_pairs}` on the held-out prompts (absent
    when `val_fraction` is 0), the same as `train_*` on a seeded sample of training prompts (as
    many as are held out, at least one), `train_loss`, `train_runtime`, `steps`, `epochs`,
    `trainable_params`, `n_rows`, `n_prompts`, `val_prompts`. `lora_r` > 0 trains a LoRA adapter
    (peft) instead of every weight; `freeze_layers` freezes the embeddings and that many of the
    lowest layers. Curves go to `report_to` (e.g. "mlflow"); the Trainer's scratch folder is a
    temporary one, deleted afterwards.
    """
    import transformers
    from transformers import DataCollatorWithPadding, Trainer

    missing = [c for c in RESPONSE_COLUMNS if c not in train_df.columns]
    if missing:
        raise ValueError(f"train_df lacks columns {missing}; found {list(train_df.columns)}")
    if len(train_df) < 2:
        raise ValueError(f"need at least 2 responses to train a reward model, got {len(train_df)}")
    if max_length < 8 or batch_size < 1 or epochs <= 0:
        raise ValueError(f"need max_length >= 8, batch_size >= 1, epochs > 0; got {max_length}, {batch_size}, {epochs}")
    df = train_df.reset_index(drop=True)
    pids = df["prompt_id"].astype(str).to_numpy()
    val_ids = validation_prompts(pids, val_fraction, seed)
    is_val = np.isin(pids, sorted(val_ids))
    fit_df = df[~is_val]

    transformers.set_seed(seed)  # the regression head's initial weights
    tokenizer = load_tokenizer(model_source(model), trust_remote_code=trust_remote_code)
    net = load_regression_model(
        model,
        tokenizer,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        freeze_layers=freeze_layers,
        trust_remote_code=trust_remote_code,
    )
    dataset = _training_dataset(fit_df, tokenizer, max_length)
    with tempfile.TemporaryDirectory(prefix="divwrite-reward-") as scratch:
        args = _training_args(
            scratch,
            n_examples=len(dataset),
            epochs=epochs,
            learning_rate=learning_rate,
            batch_size=batch_size,
            warmup_ratio=warmup_ratio,
            seed=seed,
            report_to=report_to,
        )
        trainer = Trainer(
            model=net,
            args=args,
            train_dataset=dataset,
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
        )
        start = time.perf_counter()
        result = trainer.train()
        runtime = time.perf_counter() - start
        net = trainer.accelerator.unwrap_model(trainer.model)
    net.eval()

    metrics: dict[str, float] = {
        "n_rows": int(len(df)),
        "n_prompts": int(len(set(pids))),
        "val_prompts": len(val_ids),
        "train_loss": float(result.training_loss),
        "train_runtime": float(runtime),
        "steps": int(result.global_step),
        "epochs": float(trainer.state.epoch or 0.0),
        "trainable_params": int(sum(p.numel() for p in net.parameters() if p.requires_grad)),
    }
    reward = SequenceRewardModel(
        net, tokenizer, base_model=model, max_length=max_length, trust_remote_code=trust_remote_code
    )
    fit_prompts = np.array(sorted(set(pids[~is_val])), dtype=object)
    n_sample = min(len(fit_prompts), max(len(val_ids), 1))
    sampled = np.random.default_rng(seed).choice(fit_prompts, size=n_sample, replace=False)
    evaluated = [("train", np.isin(pids, sampled))] + ([("val", is_val)] if val_ids else [])
    for prefix, mask in evaluated:
        rows = df[mask]
        pred = reward.predict(rows["prompt"].tolist(), rows["response"].tolist())
        found = ranking_metrics(pred, rows["score"].to_numpy(), pids[mask])
        metrics.update({f"{prefix}_{k}": v for k, v in found.items()})
    # The saved config keeps the metrics but not the wall-clock time: the model's files are then
    # the same bytes on every re-run, so DVC does not re-run `evaluate` for an unchanged model.
    reward.metrics = {k: v for k, v in metrics.items() if k != "train_runtime"}
    return reward, metrics
