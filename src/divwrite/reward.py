"""The "reddit-reward" stand-in: ridge regression on a sentence embedding (METHOD.md, Training).

The paper's reward model is gemma-2-2b with LoRA, trained as a sequence regressor on
(prompt, response) -> transformed upvote score (METHOD.md step 1), with the input
formatted as `<prompt>{prompt}</prompt><response>{response}</response>`. The stand-in
here keeps the input format and the target and replaces the network by the simplest
honest model: a frozen sentence embedding of that formatted text (all-MiniLM-L6-v2 by
default) and a closed-form ridge regression with an unpenalised intercept.

Limits: MiniLM reads at most 256 word pieces, so the formatted text is truncated there
(fine for the built-in corpus's short stories, not for 500-word Reddit responses).
Predictions are not clipped to [-1, 1]: quality is a mean of scores, and clipping would
only lose order.

Saved as `reward_model.safetensors` (coefficients and intercept, float64) plus
`reward_config.json` (embedder name, ridge strength, input format); nothing is pickled.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from divwrite.embedders import Embedder, load_embedder
from divwrite.ingest import held_out_prompts
from divwrite.records import RESPONSE_COLUMNS, atomic_path, read_json, write_json

INPUT_FORMAT = "<prompt>{prompt}</prompt><response>{response}</response>"
WEIGHTS_FILE = "reward_model.safetensors"
CONFIG_FILE = "reward_config.json"
MODEL_TYPE = "ridge-embedding"


def format_reward_input(prompt: str, response: str) -> str:
    """The reward model's input text, exactly as METHOD.md (Training, "Reward model") gives it."""
    return INPUT_FORMAT.format(prompt=prompt, response=response)


def ridge_fit(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, float]:
    """Closed-form ridge regression with an unpenalised intercept.

    Centre features and target, solve `(Xc^T Xc + ridge * I) w = Xc^T yc`, then
    `b = mean(y) - mean(X) . w`; minimises `||y - Xw - b||^2 + ridge * ||w||^2`.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"bad shapes for ridge: X {x.shape}, y {y.shape}")
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    x_mean = x.mean(axis=0)
    y_mean = float(y.mean())
    xc = x - x_mean
    gram = xc.T @ xc + ridge * np.eye(x.shape[1])
    rhs = xc.T @ (y - y_mean)
    # ridge = 0 (plain least squares) may leave the system singular: least-squares solve then
    coef = np.linalg.solve(gram, rhs) if ridge > 0 else np.linalg.lstsq(gram, rhs, rcond=None)[0]
    return coef, y_mean - float(x_mean @ coef)


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


class RidgeRewardModel:
    """Ridge regression from the embedding of `<prompt>..</prompt><response>..</response>`
    to the transformed upvote score in [-1, 1] (METHOD.md step 1 and Training).

    `embedder` is a name for `load_embedder` (default all-MiniLM-L6-v2) or an embedder
    object (its `.name` is what `save` records).
    """

    def __init__(self, embedder: str | Embedder = "all-MiniLM-L6-v2", ridge: float = 1.0, batch_size: int = 64):
        self._embedder = embedder if not isinstance(embedder, str) else None
        self.embedder_name: str = embedder if isinstance(embedder, str) else embedder.name
        self.ridge = float(ridge)
        self.batch_size = int(batch_size)
        self.coef_: np.ndarray | None = None
        self.intercept_: float = 0.0
        self.n_train_: int = 0

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.embedder_name)
        return self._embedder

    def features(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """Embeddings of the formatted inputs, one batched call; shape (n, dim)."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        texts = [format_reward_input(p, r) for p, r in zip(prompts, responses)]
        return self.embedder.encode(texts, batch_size=self.batch_size)

    def fit_features(self, x: np.ndarray, scores: Sequence[float] | np.ndarray) -> RidgeRewardModel:
        """Fit on precomputed features (see `features`)."""
        self.coef_, self.intercept_ = ridge_fit(x, np.asarray(scores, dtype=np.float64), self.ridge)
        self.n_train_ = int(np.asarray(x).shape[0])
        return self

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        if self.coef_ is None:
            raise RuntimeError("reward model is not fitted")
        return np.asarray(x, dtype=np.float64) @ self.coef_ + self.intercept_

    def fit(
        self, prompts: Sequence[str], responses: Sequence[str], scores: Sequence[float] | np.ndarray
    ) -> RidgeRewardModel:
        """Fit on (prompt, response) -> transformed score."""
        return self.fit_features(self.features(prompts, responses), scores)

    def predict(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """Predicted scores, float64, shape (n,)."""
        if len(prompts) == 0:
            return np.zeros(0, dtype=np.float64)
        return self.predict_features(self.features(prompts, responses))

    def evaluate(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        scores: Sequence[float] | np.ndarray,
        prompt_ids: Sequence[str],
    ) -> dict[str, float]:
        """`{"spearman", "pairwise_accuracy", "n", "n_pairs"}` on these rows (see `ranking_metrics`)."""
        return ranking_metrics(self.predict(prompts, responses), np.asarray(scores), prompt_ids)

    def config(self) -> dict[str, Any]:
        return {
            "type": MODEL_TYPE,
            "embedder": self.embedder_name,
            "ridge": self.ridge,
            "input_format": INPUT_FORMAT,
            "dim": None if self.coef_ is None else int(self.coef_.shape[0]),
            "n_train": self.n_train_,
        }

    def save(self, directory: str | os.PathLike) -> Path:
        """Write `reward_model.safetensors` and `reward_config.json` into `directory`."""
        from safetensors.numpy import save_file

        if self.coef_ is None:
            raise RuntimeError("reward model is not fitted")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {"coef": np.ascontiguousarray(self.coef_), "intercept": np.array([self.intercept_], dtype=np.float64)}
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            save_file(tensors, str(tmp))
        write_json(self.config(), directory / CONFIG_FILE)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, embedder: Embedder | None = None) -> RidgeRewardModel:
        """Load a model written by `save`; `embedder` overrides loading the named one."""
        from safetensors.numpy import load_file

        directory = Path(directory)
        config = read_json(directory / CONFIG_FILE)
        if config.get("type") != MODEL_TYPE or config.get("input_format") != INPUT_FORMAT:
            raise ValueError(f"{directory}: not a {MODEL_TYPE} reward model with input {INPUT_FORMAT!r}: {config}")
        model = cls(embedder if embedder is not None else config["embedder"], ridge=config["ridge"])
        model.embedder_name = config["embedder"]
        tensors = load_file(str(directory / WEIGHTS_FILE))
        model.coef_ = tensors["coef"].astype(np.float64)
        model.intercept_ = float(tensors["intercept"][0])
        model.n_train_ = int(config.get("n_train", 0))
        return model


def train_reward_model(
    train_df: pd.DataFrame,
    *,
    embedder: str | Embedder = "all-MiniLM-L6-v2",
    ridge: float = 1.0,
    val_fraction: float = 0.1,
    seed: int = 42,
    batch_size: int = 64,
) -> tuple[RidgeRewardModel, dict[str, float]]:
    """Train the reward model on a RESPONSE_COLUMNS table; report held-out metrics.

    Holds out `val_fraction` of the PROMPTS (never single responses), fits on the rest,
    measures Spearman and same-prompt pairwise accuracy on the held-out prompts
    (`val_*`) and on the fitting rows (`train_*`), then refits on every row. Embeds every
    row once. With no held-out prompts the `val_*` keys are absent.
    """
    missing = [c for c in RESPONSE_COLUMNS if c not in train_df.columns]
    if missing:
        raise ValueError(f"train_df lacks columns {missing}")
    if len(train_df) < 2:
        raise ValueError(f"need at least 2 responses to fit a reward model, got {len(train_df)}")
    df = train_df.reset_index(drop=True)
    model = RidgeRewardModel(embedder, ridge=ridge, batch_size=batch_size)
    x = model.features(df["prompt"].tolist(), df["response"].tolist())
    y = df["score"].to_numpy(dtype=np.float64)
    pids = df["prompt_id"].astype(str).to_numpy()
    val_ids = held_out_prompts(pids, val_fraction, seed, param="val_fraction")
    metrics: dict[str, float] = {"n_rows": int(len(df)), "n_prompts": int(len(set(pids)))}
    if val_ids:
        is_val = np.isin(pids, sorted(val_ids))
        model.fit_features(x[~is_val], y[~is_val])
        for prefix, mask in (("train", ~is_val), ("val", is_val)):
            m = ranking_metrics(model.predict_features(x[mask]), y[mask], pids[mask])
            metrics.update({f"{prefix}_{k}": v for k, v in m.items()})
        metrics["val_prompts"] = len(val_ids)
    model.fit_features(x, y)
    return model, metrics
