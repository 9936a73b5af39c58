"""The training arguments every run shares (METHOD.md, Training): schedule, precision, checkpoints, per-family fields.

Plain dicts of `transformers.TrainingArguments` / TRL config fields, so that the trainers of
`training.runs` (SFT, DPO, ORPO and the deviation-weighted forms) and the reward model
(`evaluation.reward_training`) build their configs from the same choices without importing each
other: `schedule_args` (every trainer: schedule, seeded data order, logging, precision),
`common_args` (every TRL run: plus the sequence cut, activation checkpointing, checkpoints,
length-grouped batches) and `family_args` (what DPO and ORPO runs add). On CPU everything runs
in float32 without gradient checkpointing (notes/trl.md, pitfalls 1-2).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch


def schedule_args(
    output_dir: str | os.PathLike,
    *,
    n_examples: int,
    epochs: float,
    learning_rate: float,
    batch_size: int,
    warmup_ratio: float,
    seed: int,
    report_to: str | list[str],
) -> dict[str, Any]:
    """`transformers.TrainingArguments` fields every trainer here shares (the generators' and the
    reward model's): the schedule, seeded data order, logging, progress bars, no checkpoints; on
    CPU float32 (bf16 on CPU fails or runs ~10x slower, trl.md pitfall 1), on a GPU bf16 mixed
    precision where supported."""
    on_gpu = torch.cuda.is_available()
    steps_per_epoch = math.ceil(n_examples / batch_size)
    return dict(
        output_dir=str(output_dir),
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        per_device_train_batch_size=batch_size,
        warmup_steps=_warmup(warmup_ratio),
        seed=seed,
        data_seed=seed,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        fp16=False,
        use_cpu=not on_gpu,
        report_to=report_to,
        save_strategy="no",
        logging_strategy="steps",
        logging_steps=max(1, min(10, steps_per_epoch)),
        logging_first_step=True,
        disable_tqdm=False,
        dataloader_num_workers=0,
    )


def common_args(
    out_dir: str | os.PathLike,
    *,
    max_length: int,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_steps: int = 0,
    **schedule: Any,
) -> dict[str, Any]:
    """TRL config fields shared by SFT and preference runs: `schedule_args` (keyword arguments as
    there), the sequence cut, activation checkpointing, and checkpoints. With `checkpoint_dir`
    and `checkpoint_steps` > 0, a checkpoint every that many optimizer steps into
    `checkpoint_dir` (the two latest kept; `checkpoints`); else the trainer's scratch folder is
    `out_dir/trainer` and nothing is checkpointed."""
    checkpointing = checkpoint_dir is not None and checkpoint_steps > 0
    args = schedule_args(checkpoint_dir if checkpoint_dir is not None else Path(out_dir) / "trainer", **schedule)
    return args | dict(
        max_length=max_length,
        # TRL's default (on) for GPUs, where memory is what limits a 7-8B model; off on CPU,
        # where it only costs time (~7% on tiny models, trl.md pitfall 2).
        activation_checkpointing=torch.cuda.is_available(),
        save_strategy="steps" if checkpointing else "no",
        save_steps=max(1, checkpoint_steps),
        save_total_limit=2,  # the latest may be cut short by a kill; the one before is complete
        dataset_num_proc=None,
        # Batches of similar lengths (seeded, random mega-batches of up to 50 batches): on the built-in
        # corpus ~23% fewer padded tokens than random batches for SFT, ~15% for pairs.
        train_sampling_strategy="group_by_length",
    )


def family_args(family: str, batch_size: int) -> dict[str, Any]:
    """Config keys of one family on top of `common_args` + beta (every `common_args` key is a
    field of both DPOConfig and ORPOConfig; `activation_checkpointing` also sets
    ORPOConfig's `gradient_checkpointing`, without the deprecation warning that passing
    `gradient_checkpointing` gives).

    DPO: the sigmoid loss (the one DDPO weights) and the reference log-probs precomputed once.
    ORPO has no reference model; its collator needs the raw columns, which TRL would otherwise
    switch on itself with a warning (`remove_unused_columns=False`).
    """
    if family == "dpo":
        return dict(loss_type=["sigmoid"], precompute_ref_log_probs=True, precompute_ref_batch_size=max(batch_size, 32))
    return dict(remove_unused_columns=False)


def _warmup(warmup_ratio: float) -> float:
    """transformers 5 takes the warmup ratio as a float in [0, 1) through `warmup_steps`."""
    if not 0.0 <= warmup_ratio < 1.0:
        raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio}")
    return float(warmup_ratio)
