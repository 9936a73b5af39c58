"""The quality scorer from judged pairs (`data.layout: pairs`): a Bradley-Terry reward model,
`train_pairwise_reward_model`.

With pairs and no scores there is nothing to regress on, so the reward stage fits the same model as
`reward_training.train_reward_model` (`reward.load_regression_model`: one output, the same input
format `<prompt>..</prompt><response>..</response>`, the same params) to the given pairs with TRL's
`RewardTrainer`: loss `-log sigmoid(r(prompt, chosen) - r(prompt, rejected))`, the Bradley-Terry
likelihood of the judgements. The inputs are tokenised here (`chosen_ids` / `rejected_ids`, cut at
`max_length` as the regressor's are), which TRL takes as they are (no end-of-sequence token added:
MiniLM's vocabulary has none, notes/trl.md pitfall 5); TRL pads and batches chosen and rejected
together. As TRL advises for reward models, dropout is off (`RewardConfig.disable_dropout`); the
schedule and precision are the regressor's (`training.arguments.schedule_args`), batches are in
random order (no length grouping: TRL's pairs have no `input_ids` column to group by). A `margin`
column is carried by the pipeline but not used in the loss (TRL would subtract it).

Held out, as for the regressor, `val_fraction` of the PROMPTS (`reward.validation_prompts`) with all
their given pairs; metrics `val_pairwise_accuracy`, `val_n_pairs`, `val_reward_margin`
(`reward.pair_metrics`) on them, and the same as `train_*` on a seeded sample of as many training
prompts. The saved model is the one trained without them, with `"objective": "bradley-terry"`.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import pandas as pd

from divwrite.core.records import PAIR_COLUMNS
from divwrite.evaluation.reward import (
    DEFAULT_MODEL,
    SequenceRewardModel,
    format_reward_input,
    load_regression_model,
    model_source,
    pair_metrics,
    validation_prompts,
)
from divwrite.training.tokenizer import load_tokenizer


def _pair_dataset(pairs: pd.DataFrame, tokenizer, max_length: int):
    """`chosen_ids` / `rejected_ids`: the formatted inputs of both sides, tokenised and cut."""
    from datasets import Dataset

    columns = {}
    for side in ("chosen", "rejected"):
        texts = [format_reward_input(p, r) for p, r in zip(pairs["prompt"], pairs[side])]
        columns[f"{side}_ids"] = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return Dataset.from_dict(columns)


def _predict_pairs(reward: SequenceRewardModel, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(r_chosen, r_rejected) of each pair, each distinct (prompt, response) predicted once."""
    sides = {side: list(zip(pairs["prompt_id"], pairs[f"{side}_id"])) for side in ("chosen", "rejected")}
    text = dict(zip(sides["chosen"], zip(pairs["prompt"], pairs["chosen"])))
    text |= dict(zip(sides["rejected"], zip(pairs["prompt"], pairs["rejected"])))
    keys = list(text)
    pred = reward.predict([text[k][0] for k in keys], [text[k][1] for k in keys])
    score = dict(zip(keys, pred.tolist()))
    return tuple(np.array([score[k] for k in sides[side]], dtype=np.float64) for side in ("chosen", "rejected"))


def train_pairwise_reward_model(
    pairs_df: pd.DataFrame,
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
    """Fit a Bradley-Terry reward model to a table of given pairs (`PAIR_COLUMNS`), holding out
    `val_fraction` of the prompts; the arguments are `train_reward_model`'s (`batch_size` counts
    pairs). Returns the model trained without the held-out prompts and metrics:
    `{val,train}_{pairwise_accuracy,n_pairs,reward_margin}` (no `val_*` when `val_fraction` is 0),
    `train_loss`, `train_runtime`, `steps`, `epochs`, `trainable_params`, `n_pairs`, `n_prompts`,
    `val_prompts`."""
    import torch
    import transformers
    from trl import RewardConfig, RewardTrainer

    from divwrite.training.arguments import schedule_args

    missing = [c for c in PAIR_COLUMNS if c not in pairs_df.columns]
    if missing:
        raise ValueError(f"pairs_df lacks columns {missing}; found {list(pairs_df.columns)}")
    if max_length < 8 or batch_size < 1 or epochs <= 0:
        raise ValueError(f"need max_length >= 8, batch_size >= 1, epochs > 0; got {max_length}, {batch_size}, {epochs}")
    df = pairs_df.reset_index(drop=True)
    pids = df["prompt_id"].astype(str).to_numpy()
    val_ids = validation_prompts(pids, val_fraction, seed)
    is_val = np.isin(pids, sorted(val_ids))
    if is_val.all():
        raise ValueError(f"need pairs of at least 2 prompts to hold some out, got {len(set(pids))}")

    transformers.set_seed(seed)  # the head's initial weights
    tokenizer = load_tokenizer(model_source(model), trust_remote_code=trust_remote_code)
    net = load_regression_model(
        model, tokenizer, lora_r=lora_r, lora_alpha=lora_alpha, freeze_layers=freeze_layers,
        trust_remote_code=trust_remote_code,
    )  # fmt: skip
    dataset = _pair_dataset(df[~is_val], tokenizer, max_length)
    with tempfile.TemporaryDirectory(prefix="divwrite-reward-") as scratch:
        schedule = schedule_args(
            scratch, n_examples=len(dataset), epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
            warmup_ratio=warmup_ratio, seed=seed, report_to=report_to,
        )  # fmt: skip
        args = RewardConfig(
            **schedule,
            lr_scheduler_type="linear",
            eval_strategy="no",
            max_length=None,  # cut above, at max_length, rather than dropped
            activation_checkpointing=torch.cuda.is_available(),  # TRL's default is on; off on CPU as the regressor
        )
        trainer = RewardTrainer(model=net, args=args, train_dataset=dataset, processing_class=tokenizer)
        start = time.perf_counter()
        result = trainer.train()
        runtime = time.perf_counter() - start
        net = trainer.accelerator.unwrap_model(trainer.model)
    net.eval()

    metrics: dict[str, float] = {
        "n_pairs": int(len(df)),
        "n_prompts": int(len(set(pids))),
        "val_prompts": len(val_ids),
        "train_loss": float(result.training_loss),
        "train_runtime": float(runtime),
        "steps": int(result.global_step),
        "epochs": float(trainer.state.epoch or 0.0),
        "trainable_params": int(sum(p.numel() for p in net.parameters() if p.requires_grad)),
    }
    reward = SequenceRewardModel(
        net, tokenizer, base_model=model, max_length=max_length, trust_remote_code=trust_remote_code,
        objective="bradley-terry",
    )  # fmt: skip
    fit_prompts = np.array(sorted(set(pids[~is_val])), dtype=object)
    n_sample = min(len(fit_prompts), max(len(val_ids), 1))
    sampled = np.random.default_rng(seed).choice(fit_prompts, size=n_sample, replace=False)
    evaluated = [("train", np.isin(pids, sampled))] + ([("val", is_val)] if val_ids else [])
    for prefix, mask in evaluated:
        found = pair_metrics(*_predict_pairs(reward, df[mask]))
        metrics.update({f"{prefix}_{k}": v for k, v in found.items()})
    # As for the regressor: the saved config keeps the metrics but not the wall-clock time.
    reward.metrics = {k: v for k, v in metrics.items() if k != "train_runtime"}
    return reward, metrics
