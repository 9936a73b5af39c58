"""Per-prompt evaluation of a method's samples and its summary (METHOD.md, "Evaluation").

For each test prompt, a method contributes a few samples (4 in the paper). Per prompt:
quality = mean reward, semantic and style diversity = mean pairwise cosine distance of
the embeddings, the three lexical metrics of Shaib et al. (see `divwrite.evaluation.metrics`)
and the distinct outputs among the samples (NoveltyBench's distinct_k, by semantic distance).
On the built-in corpus, whose generator knows the truth, ground-truth columns are added
(see `TRUTH_COLUMNS`). `summarise` turns the per-prompt table into means with
Student-t confidence intervals over prompts. The human responses of the test split are
evaluated the same way (`human_samples`, the "gold" row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from divwrite.core.records import prompt_rng
from divwrite.core.schema import Method
from divwrite.evaluation.metrics import (
    DISTINCT_THRESHOLD,
    compression_ratio,
    distinct_by_distance,
    distinct_classes,
    homogenization_rouge_l,
    mean_ci,
    mean_pairwise_cosine_distance,
    ngram_diversity,
    paired_comparison,
)
from divwrite.weighting.embedders import Embedder, load_embedder

# Per-prompt metric columns, in report order, with a one-line reading of each.
METRIC_COLUMNS: dict[str, str] = {
    "quality": "mean reward-model score of the samples (higher = better)",
    "semantic_diversity": "mean pairwise cosine distance, semantic embedder (higher = more diverse)",
    "style_diversity": "mean pairwise cosine distance, style embedder (higher = more diverse)",
    "compression_ratio": "gzip compression ratio of the joined samples (lower = more diverse)",
    "homogenization": "mean ROUGE-L F over pairs of samples (lower = more diverse)",
    "ngram_diversity": "sum over n=1..4 of distinct/all n-grams (higher = more diverse)",
    "distinct_semantic": (
        "distinct outputs (1..n): groups of samples linked by semantic cosine distance below "
        f"the threshold, {DISTINCT_THRESHOLD:g} by default (higher = more diverse)"
    ),
}
# Ground-truth columns, built-in corpus only (its generator's detectors, `divwrite.data.corpus`).
TRUTH_COLUMNS: dict[str, str] = {
    "archetype_coverage": "distinct plot archetypes among the samples (higher = more diverse)",
    "archetype_entropy": "Shannon entropy (bits) of the samples' plot archetypes (higher = more diverse)",
    "style_coverage": "distinct writing styles among the samples (higher = more diverse)",
    "style_entropy": "Shannon entropy (bits) of the samples' writing styles (higher = more diverse)",
    "distinct_truth": "distinct outputs (1..n): distinct (archetype, style) pairs among the samples (higher = more diverse)",
    "true_quality": "mean latent quality of the samples (higher = better)",
    "on_topic": "share of samples that mention every element of the prompt (higher = better)",
}
ALL_METRICS: list[str] = [*METRIC_COLUMNS, *TRUTH_COLUMNS]
# Metrics where the lower value is the better (more diverse) one; for every other: higher.
LOWER_IS_BETTER: frozenset[str] = frozenset({"compression_ratio", "homogenization"})


class RewardModel(Protocol):
    def predict(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray: ...


def human_samples(
    test_df: pd.DataFrame, n_samples: int = 4, min_responses: int = 4, seed: int = 42
) -> dict[str, list[str]]:
    """The human ("gold") samples (METHOD.md, Evaluation): for every test prompt with at least
    `min_responses` human responses, `n_samples` of them drawn at random without replacement.

    The draw for a prompt depends only on `seed` and its prompt id (responses ordered by
    response_id first), not on the table's row order or on other prompts. Keys are in
    sorted prompt-id order.
    """
    if n_samples < 1 or min_responses < n_samples:
        raise ValueError(f"need 1 <= n_samples <= min_responses, got {n_samples}, {min_responses}")
    out: dict[str, list[str]] = {}
    df = test_df.sort_values(["prompt_id", "response_id"], kind="stable")
    for pid, group in df.groupby("prompt_id", sort=True):
        texts = group["response"].tolist()
        if len(texts) < min_responses:
            continue
        rng = prompt_rng(seed, str(pid))
        picks = rng.choice(len(texts), size=n_samples, replace=False)
        out[str(pid)] = [texts[i] for i in picks]
    return out


def label_entropy(labels: Sequence[str], ignore: str = "none") -> float:
    """Shannon entropy in bits of the distribution of `labels` (those equal to `ignore`, the
    detectors' "undecidable", left out): `-sum_c p_c log2 p_c`. 0.0 when fewer than two
    labels remain or all are alike; log2(k) when k labels all differ."""
    kept = [x for x in labels if x != ignore]
    if not kept:
        return 0.0
    _, counts = np.unique(np.asarray(kept, dtype=object).astype(str), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0: no -0.0 for a single label


def _resolve(embedder: str | Embedder) -> Embedder:
    return load_embedder(embedder) if isinstance(embedder, str) else embedder


def _truth_table(truth_prompts: Mapping[str, Sequence[str]] | pd.DataFrame) -> dict[str, list[str]]:
    if isinstance(truth_prompts, pd.DataFrame):
        return {str(p): list(e) for p, e in zip(truth_prompts["prompt_id"], truth_prompts["elements"])}
    return {str(p): list(e) for p, e in truth_prompts.items()}


def evaluate_samples(
    samples: Mapping[str, Sequence[str]],
    prompts: Mapping[str, str],
    *,
    reward_model: RewardModel,
    semantic: str | Embedder,
    style: str | Embedder,
    truth_prompts: Mapping[str, Sequence[str]] | pd.DataFrame | None = None,
    batch_size: int = 64,
    distinct_threshold: float = DISTINCT_THRESHOLD,
) -> pd.DataFrame:
    """One row per prompt (sorted by prompt_id): `prompt_id`, `n_samples` and every metric
    of `METRIC_COLUMNS`, `distinct_semantic` being `metrics.distinct_by_distance` of the
    semantic embeddings at `distinct_threshold`; with `truth_prompts` (prompt_id -> elements,
    or the corpus's truth_prompts table) also `TRUTH_COLUMNS`:

    - archetype_coverage: number of distinct `corpus.detect_archetype` labels among the
      samples, "none" (undecidable) not counted;
    - archetype_entropy: Shannon entropy in bits of those labels' distribution among the
      samples, "none" left out (`label_entropy`; 4 samples: 0 = all alike, 2 = all differ);
    - style_coverage, style_entropy: the same with `corpus.detect_style`;
    - distinct_truth: distinct outputs (`metrics.distinct_classes`), two samples being the
      same output when they have the same (archetype, style) pair; "none" (undecidable) is a
      label like any other: two samples with the same pair are one output even when it holds
      "none" (e.g. no recognisable plot, same style), not one each. Distinct outputs count
      samples the truth can tell apart: two samples with no recognisable plot give no
      evidence of being different plots, and counting each unrecognised sample as new
      would score unrecognisable text as maximally diverse (4 of them: 4). Rare in practice:
      the detectors give "none" to 0.5% (archetype) and 3.3% (style) of the run of record's
      1,600 generated samples, and the other choice gives the same count on all of its 400
      prompt-sets;
    - true_quality: mean `corpus.true_quality(text, elements)`;
    - on_topic: share of samples with `corpus.on_topic(text, elements)`.

    The reward model, the semantic and the style embedder each see all texts of all
    prompts in ONE batched call. Every prompt needs at least 2 samples.
    """
    pids = sorted(str(p) for p in samples)
    for pid in pids:
        if len(samples[pid]) < 2:
            raise ValueError(f"prompt {pid}: need at least 2 samples to measure diversity, got {len(samples[pid])}")
        if pid not in prompts:
            raise KeyError(f"prompt {pid}: no prompt text given")
    truth = None
    if truth_prompts is not None:
        from divwrite.data.corpus import detectors  # built-in corpus only; imported lazily

        elements = _truth_table(truth_prompts)
        missing = [p for p in pids if p not in elements]
        if missing:
            raise KeyError(f"truth_prompts lacks {len(missing)} evaluated prompts, e.g. {missing[:3]}")
        truth = detectors

    texts = [t for pid in pids for t in samples[pid]]
    owners = [pid for pid in pids for _ in samples[pid]]
    bounds = np.cumsum([0] + [len(samples[pid]) for pid in pids])

    rewards = np.asarray(reward_model.predict([prompts[p] for p in owners], texts), dtype=np.float64)
    sem = _resolve(semantic).encode(texts, batch_size=batch_size)
    sty = _resolve(style).encode(texts, batch_size=batch_size)

    rows: list[dict[str, Any]] = []
    for k, pid in enumerate(pids):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        group = texts[lo:hi]
        row: dict[str, Any] = {
            "prompt_id": pid,
            "n_samples": hi - lo,
            "quality": float(rewards[lo:hi].mean()),
            "semantic_diversity": mean_pairwise_cosine_distance(sem[lo:hi]),
            "style_diversity": mean_pairwise_cosine_distance(sty[lo:hi]),
            "compression_ratio": compression_ratio(group),
            "homogenization": homogenization_rouge_l(group),
            "ngram_diversity": ngram_diversity(group),
            "distinct_semantic": float(distinct_by_distance(sem[lo:hi], distinct_threshold)),
        }
        if truth is not None:
            els = elements[pid]
            archetypes = [truth.detect_archetype(t) for t in group]
            styles = [truth.detect_style(t) for t in group]
            row["archetype_coverage"] = float(len(set(archetypes) - {"none"}))
            row["archetype_entropy"] = label_entropy(archetypes)
            row["style_coverage"] = float(len(set(styles) - {"none"}))
            row["style_entropy"] = label_entropy(styles)
            row["distinct_truth"] = float(distinct_classes(list(zip(archetypes, styles))))
            row["true_quality"] = float(np.mean([truth.true_quality(t, els) for t in group]))
            row["on_topic"] = float(np.mean([bool(truth.on_topic(t, els)) for t in group]))
        rows.append(row)
    columns = ["prompt_id", "n_samples", *METRIC_COLUMNS, *(TRUTH_COLUMNS if truth is not None else [])]
    return pd.DataFrame(rows, columns=columns)


def summarise(method: str, per_prompt_df: pd.DataFrame, confidence: float = 0.95) -> dict[str, Any]:
    """A method's row of the results: `{"method", "n_prompts", "<metric>": {"mean", "ci_low",
    "ci_high"}, ...}` for every metric column present (`ALL_METRICS` order), means and
    Student-t intervals over prompts (METHOD.md, Evaluation; see `metrics.mean_ci`)."""
    if len(per_prompt_df) == 0:
        raise ValueError(f"{method}: no prompts to summarise")
    row: dict[str, Any] = {"method": str(method), "n_prompts": int(len(per_prompt_df))}
    for name in ALL_METRICS:
        if name in per_prompt_df.columns:
            row[name] = mean_ci(per_prompt_df[name].to_numpy(dtype=np.float64), confidence)
    return row


def comparison_pairs(methods: Mapping[str, Method]) -> list[tuple[str, str]]:
    """The comparisons the paper makes, derived from `train.methods`: every method trained
    from another (`init`) against it (e.g. dpo vs sft), and every method with deviation
    `weights` or its own pairs (`data` other than `selected`, e.g. ddpo-both, divpo) against
    the plain method of the same loss trained on `selected` (e.g. dpo). Pairs (a, b): a is
    compared with b; in params order, no duplicates."""
    pairs: list[tuple[str, str]] = []
    plain = {
        cfg.loss: name for name, cfg in reversed(list(methods.items())) if cfg.data == "selected" and not cfg.weights
    }
    for name, cfg in methods.items():
        if cfg.init in methods:
            pairs.append((name, cfg.init))
        base = plain.get(cfg.loss)
        if base is not None and base != name and (cfg.weights or cfg.data != "selected"):
            pairs.append((name, base))
    return list(dict.fromkeys(pairs))


def compare_methods(
    per_prompt: pd.DataFrame, pairs: Sequence[tuple[str, str]], confidence: float = 0.95
) -> list[dict[str, Any]]:
    """Paired comparisons over prompts (`metrics.paired_comparison`) of each pair (a, b) on
    every metric of the per-prompt table (columns `method`, `prompt_id`, the metrics): one
    `{"a", "b", "metric", "mean_diff", "ci_low", "ci_high", "t", "p_value", "n", "better"}`
    per pair and metric. Pairs whose methods are not both in the table are skipped."""
    present = set(per_prompt["method"])
    metrics = [m for m in ALL_METRICS if m in per_prompt.columns]
    series = {
        (m, metric): pd.Series(g[metric].to_numpy(dtype=np.float64), index=g["prompt_id"].astype(str))
        for m, g in per_prompt.groupby("method", sort=False)
        for metric in metrics
    }
    out = []
    for a, b in pairs:
        if a not in present or b not in present:
            continue
        for metric in metrics:
            res = paired_comparison(series[a, metric], series[b, metric], metric in LOWER_IS_BETTER, confidence)
            out.append({"a": a, "b": b, "metric": metric, **res})
    return out
