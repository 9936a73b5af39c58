"""Per-prompt diversity metrics and over-prompt statistics (METHOD.md, "Evaluation").

Each function computes one quantity of METHOD.md's Evaluation section for the samples of
ONE prompt (`mean_pairwise_cosine_distance`, `compression_ratio`,
`homogenization_rouge_l`, `ngram_diversity`), or one statistic over prompts (`mean_ci`,
`paired_test`). `distinct_classes` and `distinct_by_distance` add NoveltyBench's distinct
outputs (Zhang et al. 2025, "NoveltyBench", distinct_k): the number of equivalence classes
among one prompt's samples.

The three lexical metrics follow Shaib et al.'s `diversity` package
(github.com/cshaib/diversity, files `compression.py`, `homogenization.py`,
`ngram_diversity.py`), re-implemented with the standard library and `rouge-score`
because that package imports spacy and openai at import time. Where the package and
METHOD.md disagree, METHOD.md wins and the docstring says so.
"""

from __future__ import annotations

import gzip
import io
import math
from collections.abc import Hashable, Sequence
from functools import lru_cache
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.sparse.csgraph import connected_components

from divwrite.weighting.deviation import deviation

Values = Sequence[float] | np.ndarray | pd.Series

# Cosine distance below which two samples count as the same output (`distinct_by_distance`),
# measured for all-MiniLM-L6-v2 on the built-in corpus (see there). Another semantic embedder
# spreads its distances differently: re-measure before relying on this value with it.
DISTINCT_THRESHOLD = 0.2


def mean_pairwise_cosine_distance(emb: np.ndarray) -> float:
    """Semantic / style diversity of one prompt's samples (METHOD.md, Evaluation).

    `mean over unordered pairs i < j of (1 - cos(e_i, e_j))`, which is the mean over the
    samples of their deviation (METHOD.md step 4), so it is computed as exactly that.
    Range [0, 2]; two orthogonal rows give 1.0, identical rows 0.0.

    Raises ValueError for fewer than 2 rows (there is no pair to measure).
    """
    x = np.asarray(emb, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need a 2-d array with at least 2 rows, got shape {x.shape}")
    return float(deviation(x).mean())


def _reference_gzip_size(raw: bytes) -> int:
    """Size of the file the `diversity` package writes for gzip: gzip applied twice.

    The package does `gzip.GzipFile(path + 'compressed.gz', 'w+').write(gzip.compress(raw))`:
    the text is compressed with `gzip.compress` (level 9, the default) and the result is
    written through a second `GzipFile` (level 9 as well), whose header stores the file
    name `compressed` (GzipFile drops the `.gz`). The file size it then measures is that
    of the doubly-compressed stream. Reproduced in memory (mtime fixed; it does not
    change the size).
    """
    inner = gzip.compress(raw, compresslevel=9)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="compressed.gz", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(inner)
    return len(buf.getvalue())


def compression_ratio(texts: Sequence[str], *, reference_gzip: bool = True) -> float:
    """Compression ratio of one prompt's samples (METHOD.md, Evaluation; lower = more diverse).

    `bytes of the texts joined by " " (UTF-8) / bytes after gzip`.

    Gzip as Shaib et al.'s `diversity` package calls it (`compression.py`): compression
    level 9 (the default of both `gzip.compress` and `GzipFile`), but applied *twice* -
    the output of `gzip.compress` is written through a second `GzipFile` whose header
    carries the name "compressed", and the size of that file is the denominator (see
    `_reference_gzip_size`). This adds a near-constant ~34 bytes, which lowers the ratio
    noticeably on short texts. With the default `reference_gzip=True` we reproduce the
    package's numbers exactly (its README example gives 1.641, and so does this
    function); `reference_gzip=False` gives the plain single-pass definition,
    `len(raw) / len(gzip.compress(raw, 9))`.

    Raises ValueError when the joined text is empty.
    """
    raw = " ".join(texts).encode("utf-8")
    if not raw:
        raise ValueError("compression ratio of empty text is undefined")
    compressed = _reference_gzip_size(raw) if reference_gzip else len(gzip.compress(raw, compresslevel=9))
    return len(raw) / compressed


@lru_cache(maxsize=2)
def _rouge_l_scorer(use_stemmer: bool):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)


def homogenization_rouge_l(texts: Sequence[str], *, use_stemmer: bool = False) -> float:
    """Homogenization score of one prompt's samples (METHOD.md, Evaluation; lower = more diverse).

    `mean over ordered pairs i != j of ROUGE-L F(t_i, t_j)` with `rouge-score`'s
    `RougeScorer(["rougeL"], use_stemmer=False)`: no stemming, the `diversity`
    package's default (`homogenization_score(..., use_stemmer=False)`). rouge-score
    lowercases and keeps alphanumeric tokens only. As in the package, two identical
    strings score 1 even when they have no tokens.

    ROUGE-L F1 is symmetric (precision and recall swap), so each unordered pair is
    scored once; the mean over ordered pairs is the same number.

    Note: the package's own aggregation drops the last document's row of scores (its
    README example prints 0.222; the mean over ordered pairs that METHOD.md defines is
    0.318 on the same three texts). We follow METHOD.md.

    Raises ValueError for fewer than 2 texts.
    """
    if len(texts) < 2:
        raise ValueError(f"need at least 2 texts, got {len(texts)}")
    scorer = _rouge_l_scorer(bool(use_stemmer))
    scores = [1.0 if a == b else scorer.score(a, b)["rougeL"].fmeasure for a, b in combinations(texts, 2)]
    return float(np.mean(scores))


def ngram_diversity(texts: Sequence[str], max_n: int = 4) -> float:
    """N-gram diversity score of one prompt's samples (METHOD.md, Evaluation; higher = more diverse).

    `sum over n = 1..max_n of (distinct n-grams / all n-grams)` of the texts joined by
    " " and split on single spaces (`str.split(" ")`, as the `diversity` package does:
    newlines are not separators and repeated spaces give empty tokens). Range
    [0, max_n]. An order n with no n-grams at all (fewer than n tokens) contributes 0
    (the package would divide by zero).
    """
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    words = " ".join(texts).split(" ")
    score = 0.0
    for n in range(1, max_n + 1):
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        if grams:
            score += len(set(grams)) / len(grams)
    return score


def distinct_classes(labels: Sequence[Hashable]) -> int:
    """Distinct outputs of one prompt's samples from one label per sample (NoveltyBench's
    distinct_k): the number of equivalence classes when two samples are equivalent exactly
    when their labels are equal. Range 1..n for n samples: 1 = all alike, n = all differ.

    Every label is a class of its own kind, an "undecidable" label (the corpus detectors'
    "none") included: callers that want unrecognised samples counted otherwise must relabel
    them (`evaluation.scoring` keeps "none" as a label and says why).

    Raises ValueError for no labels.
    """
    if len(labels) == 0:
        raise ValueError("distinct_classes of no labels")
    return len(set(labels))


def distinct_by_distance(emb: np.ndarray, tau: float = DISTINCT_THRESHOLD) -> int:
    """Distinct outputs of one prompt's samples from their embeddings (NoveltyBench's
    distinct_k with a fixed threshold in place of its learned equivalence classifier): samples
    i and j are equivalent when `1 - cos(e_i, e_j) < tau` (strictly below: at exactly `tau`
    they differ), and the classes are the connected components of that graph (single-linkage
    clusters cut at `tau`). Rows are (re)normalised. Range 1..n for n rows.

    Components, not NoveltyBench's greedy partition (each sample joins the first class whose
    first member it matches, in generation order): a thresholded distance is not transitive
    (a ~ b and b ~ c while a !~ c), so the greedy count depends on the order of samples that
    are exchangeable draws (a, b, c gives {a, b}, {c}: 2; b, a, c gives {b, a, c}: 1).
    Components are order-free: they are the classes of the smallest equivalence relation that
    contains the thresholded one (its transitive closure). Each greedy class is connected
    through its first member, so the count is never above greedy's in any order: distinctness
    that a chain of near-duplicates contradicts is not credited.

    `tau` = `DISTINCT_THRESHOLD` = 0.2 (cosine distance, all-MiniLM-L6-v2), measured on the
    built-in corpus, where the truth says which stories are the same output (same prompt,
    plot archetype and style: the same story told with other beat variants; see
    `evaluation.scoring`, `distinct_truth`). Within-prompt pairs of the run of record's
    3,811 train stories (360 prompts, 33,893 pairs), distance median [5th, 95th percentile]:
    same archetype and style 0.149 [0.068, 0.250] (2,455 pairs, max 0.354); same archetype,
    other style 0.245 [0.120, 0.387]; other archetype 0.497 [0.346, 0.667] (25,114 pairs,
    min 0.185). Below 0.2 fall 80% of same-story pairs, 32% of same-plot other-style pairs
    and 1 of the 25,114 other-plot pairs: 0.2 is the largest round threshold at which two
    different plots practically never merge. On whole sets of 4 it is where the count best
    tracks `distinct_truth` (tau 0.15 / 0.2 / 0.25 / 0.3): on 8,730 random 4-sets of those
    stories Spearman 0.552 / 0.591 / 0.565 / 0.497 (mean difference semantic - truth
    +0.03 / -0.27 / -0.52 / -0.71); on the 400 prompt-sets the run of record's ten methods
    generated (detector labels; other-plot pairs: 1 of 2,043 below 0.2) exact agreement
    0.693 / 0.735 / 0.733 / 0.625, mean difference +0.29 / +0.09 / -0.14 / -0.33. MiniLM
    sees plot far better than voice, so this is mostly a count of distinct plots.

    Raises ValueError for no rows or a non-positive or non-finite `tau`.
    """
    x = np.asarray(emb, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"need a 2-d array with at least 1 row, got shape {x.shape}")
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a positive finite cosine distance, got {tau}")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    equivalent = (1.0 - x @ x.T) < tau
    n_classes, _ = connected_components(equivalent, directed=False)
    return int(n_classes)


def mean_ci(values: Values, confidence: float = 0.95) -> dict[str, float]:
    """Mean and Student-t confidence interval over prompts (METHOD.md, Evaluation: "report
    means with 95% confidence intervals over prompts").

    `mean +/- t_{(1+c)/2, n-1} * s / sqrt(n)` with `s` the sample standard deviation
    (ddof=1). With n = 1 there is no spread to estimate, and with zero spread the
    interval has zero width: in both cases `ci_low = ci_high = mean` (not NaN), so the
    result is always three finite floats.

    Raises ValueError for no values or non-finite values.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("mean_ci of no values")
    if not np.all(np.isfinite(x)):
        raise ValueError("mean_ci got non-finite values")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    mean = float(x.mean())
    if x.size == 1:
        return {"mean": mean, "ci_low": mean, "ci_high": mean}
    half = float(stats.t.ppf((1.0 + confidence) / 2.0, df=x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half}


def paired_test(a: Values, b: Values) -> dict[str, float]:
    """Paired t-test over prompts of two methods' per-prompt values (`scipy.stats.ttest_rel`).

    Returns `{"mean_diff": mean(a - b), "t", "p_value" (two-sided), "n"}`. When both
    inputs are pandas Series they are aligned on their index (e.g. prompt_id) and only
    the shared prompts are compared; otherwise they must have equal length and the
    same prompt order.

    Degenerate case: if every difference is the same, the variance is zero; identical
    inputs give t = 0, p = 1, a constant non-zero shift gives t = +/-inf, p = 0 (as
    scipy does). Raises ValueError for fewer than 2 pairs or non-finite values.
    """
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        a, b = a.align(b, join="inner")
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"paired_test needs equal lengths, got {x.size} and {y.size}")
    if x.size < 2:
        raise ValueError(f"paired_test needs at least 2 pairs, got {x.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("paired_test got non-finite values")
    d = x - y
    mean_diff = float(d.mean())
    if np.all(d == d[0]):
        if mean_diff == 0.0:
            t, p = 0.0, 1.0
        else:
            t, p = math.copysign(math.inf, mean_diff), 0.0
    else:
        res = stats.ttest_rel(x, y)
        t, p = float(res.statistic), float(res.pvalue)
    return {"mean_diff": mean_diff, "t": t, "p_value": p, "n": int(x.size)}


def paired_comparison(
    a: pd.Series, b: pd.Series, lower_is_better: bool = False, confidence: float = 0.95
) -> dict[str, Any]:
    """Paired comparison over prompts of method a against method b on one metric (Series
    indexed by prompt id, aligned on the shared prompts): `paired_test`'s mean difference
    a - b, t (None where the difference is a non-zero constant: infinite), p and n, the Student-t interval of the difference (`ci_low`, `ci_high`,
    `mean_ci` of a - b), and `better`: "a" or "b" when the interval excludes 0 (given the
    metric's direction), else "tie"."""
    a, b = a.align(b, join="inner")
    test = paired_test(a, b)
    ci = mean_ci((a - b).to_numpy(dtype=np.float64), confidence)
    better = "tie"
    if ci["ci_low"] > 0 or ci["ci_high"] < 0:
        a_higher = ci["mean"] > 0
        better = "a" if a_higher != lower_is_better else "b"
    if not math.isfinite(test["t"]):  # a constant non-zero difference: t = +/-inf, kept JSON-safe
        test["t"] = None
    return {**test, "ci_low": ci["ci_low"], "ci_high": ci["ci_high"], "better": better}
