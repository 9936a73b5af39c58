"""Metrics of METHOD.md's Evaluation section against hand-computed values."""

from __future__ import annotations

import gzip
import io
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

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
    paired_test,
)

# The example of the `diversity` package's README (Shaib et al.), which prints
# `compression_ratio(data, 'gzip'), homogenization_score(data, 'rougel'),
# ngram_diversity_score(data, 4)` as `1.641 0.222 3.315`.
README_EXAMPLE = [
    "I enjoy walking with my cute dog for the rest of the day, but this time it was hard for me to figure out "
    "what to do with it. When I finally looked at this for a few moments, I immediately thought.",
    "I enjoy walking with my cute dog. The only time I felt like walking was when I was working, so it was "
    "awesome for me. I didn't want to walk for days. I am really curious how she can walk with me",
    "I enjoy walking with my cute dog (Chama-I-I-I-I-I), and I really enjoy running. I play in a little game I "
    "play with my brother in which I take pictures of our houses.",
]


# --- mean pairwise cosine distance -------------------------------------------------------


def test_cosine_distance_orthogonal_is_one() -> None:
    assert mean_pairwise_cosine_distance(np.eye(2)) == pytest.approx(1.0)


def test_cosine_distance_identical_is_zero() -> None:
    assert mean_pairwise_cosine_distance(np.array([[0.6, 0.8], [0.6, 0.8], [0.6, 0.8]])) == pytest.approx(0.0)


def test_cosine_distance_hand_example() -> None:
    # e1 = (1,0), e2 = (0,1), e3 = (1,1)/sqrt2 (given unnormalised: rows are normalised)
    # distances: 1, 1 - 1/sqrt2, 1 - 1/sqrt2 -> mean = (3 - sqrt2) / 3
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 3.0]])
    assert mean_pairwise_cosine_distance(emb) == pytest.approx((3 - math.sqrt(2)) / 3)


def test_cosine_distance_opposite_is_two() -> None:
    assert mean_pairwise_cosine_distance(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(2.0)


def test_cosine_distance_needs_two_rows() -> None:
    with pytest.raises(ValueError):
        mean_pairwise_cosine_distance(np.ones((1, 3)))


# --- compression ratio ---------------------------------------------------------------------


def test_compression_ratio_plain_gzip_by_hand() -> None:
    texts = ["the cat sat on the mat", "the cat sat on the mat", "a dog ran"]
    raw = b"the cat sat on the mat the cat sat on the mat a dog ran"
    assert compression_ratio(texts, reference_gzip=False) == pytest.approx(len(raw) / len(gzip.compress(raw, 9)))


def test_compression_ratio_reference_double_gzip_by_hand() -> None:
    texts = ["alpha beta gamma", "alpha beta delta"]
    raw = b"alpha beta gamma alpha beta delta"
    buf = io.BytesIO()
    with gzip.GzipFile(filename="compressed.gz", mode="wb", fileobj=buf, mtime=0) as f:
        f.write(gzip.compress(raw))
    assert compression_ratio(texts) == pytest.approx(len(raw) / len(buf.getvalue()))


def test_compression_ratio_matches_diversity_package_readme() -> None:
    assert round(compression_ratio(README_EXAMPLE), 3) == 1.641


def test_compression_ratio_counts_utf8_bytes() -> None:
    texts = ["héllo wörld"]
    raw = "héllo wörld".encode()
    assert compression_ratio(texts, reference_gzip=False) == pytest.approx(len(raw) / len(gzip.compress(raw, 9)))


def test_compression_ratio_repetition_compresses_more() -> None:
    same = ["once upon a time there was a dragon"] * 4
    varied = ["once upon a time there was a dragon", "the tax office closed early", "seven ships left port", "rain"]
    assert compression_ratio(same) > compression_ratio(varied)


# --- homogenization (ROUGE-L) ----------------------------------------------------------------


def test_homogenization_identical_texts_is_one() -> None:
    assert homogenization_rouge_l(["the same story", "the same story", "the same story"]) == pytest.approx(1.0)


def test_homogenization_disjoint_texts_is_zero() -> None:
    assert homogenization_rouge_l(["red fish", "blue bird", "green frog"]) == pytest.approx(0.0)


def test_homogenization_hand_example() -> None:
    # "a b c d" vs "a b x y": LCS = 2, P = R = 2/4 -> F = 0.5; the third text shares nothing.
    # Ordered pairs: (1,2),(2,1) = 0.5 each, the other four are 0 -> mean = 1/6.
    assert homogenization_rouge_l(["a b c d", "a b x y", "q r s t"]) == pytest.approx(1 / 6)


def test_homogenization_no_stemming_by_default() -> None:
    # With the Porter stemmer "walking" and "walked" both become "walk"; without it they differ.
    assert homogenization_rouge_l(["walking", "walked"]) == pytest.approx(0.0)
    assert homogenization_rouge_l(["walking", "walked"], use_stemmer=True) == pytest.approx(1.0)


def test_homogenization_readme_example_is_mean_over_ordered_pairs() -> None:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    ordered = [
        scorer.score(a, b)["rougeL"].fmeasure
        for i, a in enumerate(README_EXAMPLE)
        for j, b in enumerate(README_EXAMPLE)
        if i != j
    ]
    assert homogenization_rouge_l(README_EXAMPLE) == pytest.approx(np.mean(ordered))


def test_homogenization_needs_two_texts() -> None:
    with pytest.raises(ValueError):
        homogenization_rouge_l(["alone"])


# --- n-gram diversity --------------------------------------------------------------------------


def test_ngram_diversity_a_a_b() -> None:
    # tokens a a b: unigrams 2/3, bigrams {(a,a),(a,b)} 2/2, trigrams 1/1, no 4-grams (0).
    assert ngram_diversity(["a a b"]) == pytest.approx(2 / 3 + 1 + 1)


def test_ngram_diversity_joins_texts_with_space() -> None:
    # "a b" + "a b" -> a b a b: 2/4 + 2/3 + 2/2 + 1/1
    assert ngram_diversity(["a b", "a b"]) == pytest.approx(0.5 + 2 / 3 + 1 + 1)


def test_ngram_diversity_all_distinct_is_max_n() -> None:
    assert ngram_diversity(["one two three four five six"]) == pytest.approx(4.0)
    assert ngram_diversity(["one two three"], max_n=2) == pytest.approx(2.0)


def test_ngram_diversity_splits_on_single_spaces_only() -> None:
    # "a\nb" is one token; "a  a" has an empty token between the spaces: [a, "", a]
    assert ngram_diversity(["a\nb a\nb"], max_n=1) == pytest.approx(1 / 2)
    assert ngram_diversity(["a  a"], max_n=1) == pytest.approx(2 / 3)


def test_ngram_diversity_matches_diversity_package_readme() -> None:
    assert round(ngram_diversity(README_EXAMPLE, 4), 3) == 3.315


# --- distinct outputs (NoveltyBench's distinct_k) ----------------------------------------


@pytest.mark.parametrize(
    "labels, classes",
    [
        (["a", "a", "a", "a"], 1),  # all alike
        (["a", "b", "c", "d"], 4),  # all differ: n
        (["a", "b", "a", "b"], 2),  # two pairs
        (["a", "a", "a", "b"], 2),
        ([("quest", "terse"), ("quest", "lyrical"), ("heist", "terse"), ("quest", "terse")], 3),  # pairs as labels
        ([("none", "terse"), ("none", "terse"), ("none", "lyrical"), ("quest", "none")], 3),  # "none" is a label
        (["only"], 1),
    ],
)
def test_distinct_classes_hand_computed(labels, classes) -> None:
    assert distinct_classes(labels) == classes


def test_distinct_classes_needs_labels() -> None:
    with pytest.raises(ValueError):
        distinct_classes([])


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def test_distinct_by_distance_all_same_and_all_different() -> None:
    same = np.array([[1.0, 2.0, 0.0]] * 4)  # cosine distance 0 between every pair
    assert distinct_by_distance(same, 0.2) == 1
    assert distinct_by_distance(np.eye(4), 0.2) == 4  # orthogonal: distance 1 between every pair
    assert distinct_by_distance(np.eye(4) * [1.0, 3.0, 0.5, 7.0], 0.2) == 4  # rows are renormalised
    assert distinct_by_distance(np.array([[0.3, 0.4]]), 0.2) == 1


def test_distinct_by_distance_two_pairs() -> None:
    # 0 deg ~ 10 deg (distance 1 - cos 10 = 0.0152), 90 deg ~ 100 deg; the pairs are >= 80 deg apart (>= 0.826)
    emb = np.array([_unit(0), _unit(90), _unit(10), _unit(100)])
    assert distinct_by_distance(emb, 0.2) == 2


def test_distinct_by_distance_chain_is_one_component() -> None:
    # a = 0 deg, b = 45 deg, c = 90 deg: d(a, b) = d(b, c) = 1 - cos 45 = 0.2929 < 0.5, d(a, c) = 1 >= 0.5.
    a, b, c = _unit(0), _unit(45), _unit(90)
    assert distinct_by_distance(np.array([a, b, c]), 0.5) == 1
    assert distinct_by_distance(np.array([a, c, b]), 0.5) == 1  # order-free (greedy from a, c would give 2)
    assert distinct_by_distance(np.array([a, c]), 0.5) == 2
    assert distinct_by_distance(np.array([a, b, c]), 0.29) == 3  # below 1 - cos 45: no edge at all


def test_distinct_by_distance_threshold_is_strict() -> None:
    # orthogonal unit rows: cosine distance exactly 1.0 in floating point
    emb = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert distinct_by_distance(emb, 1.0) == 2  # at the threshold: not equivalent
    assert distinct_by_distance(emb, math.nextafter(1.0, 2.0)) == 1  # just above: equivalent
    assert distinct_by_distance(emb, math.nextafter(1.0, 0.0)) == 2


def test_distinct_by_distance_default_threshold_and_bad_input() -> None:
    assert DISTINCT_THRESHOLD == 0.2
    # 1 - cos 35 deg = 0.1808 < 0.2: one output by default; 1 - cos 37 deg = 0.2014: two
    assert distinct_by_distance(np.array([_unit(0), _unit(35)])) == 1
    assert distinct_by_distance(np.array([_unit(0), _unit(37)])) == 2
    for tau in (0.0, -0.1, math.nan, math.inf):
        with pytest.raises(ValueError):
            distinct_by_distance(np.eye(2), tau)
    with pytest.raises(ValueError):
        distinct_by_distance(np.zeros((0, 3)), 0.2)
    with pytest.raises(ValueError):
        distinct_by_distance(np.ones(3), 0.2)


# --- mean and confidence interval ----------------------------------------------------------------


def test_mean_ci_against_t_by_hand() -> None:
    values = [0.2, 0.4, 0.9, 0.5]
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    out = mean_ci(values, 0.95)
    assert out == pytest.approx({"mean": mean, "ci_low": mean - half, "ci_high": mean + half})
    low, high = stats.t.interval(0.95, n - 1, loc=mean, scale=stats.sem(values))
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((low, high))


def test_mean_ci_confidence_widens() -> None:
    values = [1.0, 2.0, 4.0]
    narrow, wide = mean_ci(values, 0.8), mean_ci(values, 0.99)
    assert wide["ci_low"] < narrow["ci_low"] < narrow["mean"] < narrow["ci_high"] < wide["ci_high"]


def test_mean_ci_single_value_and_constant_values_are_finite() -> None:
    assert mean_ci([0.7]) == {"mean": 0.7, "ci_low": 0.7, "ci_high": 0.7}
    out = mean_ci([2.0, 2.0, 2.0])
    assert out == pytest.approx({"mean": 2.0, "ci_low": 2.0, "ci_high": 2.0})
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())


def test_mean_ci_rejects_empty_and_nan() -> None:
    with pytest.raises(ValueError):
        mean_ci([])
    with pytest.raises(ValueError):
        mean_ci([1.0, float("nan")])


# --- paired test -------------------------------------------------------------------------------------


def test_paired_test_by_hand() -> None:
    a = [0.5, 0.7, 0.4, 0.9]
    b = [0.4, 0.5, 0.45, 0.6]
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
    t = mean / (sd / math.sqrt(n))
    p = 2 * stats.t.sf(abs(t), n - 1)
    assert paired_test(a, b) == pytest.approx({"mean_diff": mean, "t": t, "p_value": p, "n": 4})


def test_paired_test_aligns_series_on_index() -> None:
    a = pd.Series([1.0, 2.0, 3.5, 9.0], index=["p1", "p2", "p3", "p4"])
    b = pd.Series([3.0, 1.0, 1.5], index=["p3", "p1", "p2"])  # p4 has no partner
    assert paired_test(a, b) == pytest.approx(paired_test([1.0, 2.0, 3.5], [1.0, 1.5, 3.0]))
    assert paired_test(a, b)["n"] == 3


def test_paired_test_degenerate_cases() -> None:
    assert paired_test([1.0, 2.0], [1.0, 2.0]) == {"mean_diff": 0.0, "t": 0.0, "p_value": 1.0, "n": 2}
    shifted = paired_test([2.0, 3.0], [1.0, 2.0])
    assert shifted["t"] == math.inf and shifted["p_value"] == 0.0
    with pytest.raises(ValueError):
        paired_test([1.0], [2.0])
    with pytest.raises(ValueError):
        paired_test([1.0, 2.0], [1.0, 2.0, 3.0])


def test_paired_comparison_by_hand() -> None:
    # d = a - b = [0.1, 0.2, -0.05, 0.3]: mean 0.1375, sd 0.149303..., t_{0.975,3} = 3.182446
    a = pd.Series([0.5, 0.7, 0.4, 0.9], index=["p1", "p2", "p3", "p4"])
    b = pd.Series([0.6, 0.45, 0.5, 0.4], index=["p4", "p3", "p2", "p1"])  # aligned on prompt id
    res = paired_comparison(a, b)
    d = np.array([0.1, 0.2, -0.05, 0.3])
    half = 3.182446305284263 * d.std(ddof=1) / 2.0
    assert res["mean_diff"] == pytest.approx(0.1375)
    assert res["ci_low"] == pytest.approx(0.1375 - half) and res["ci_high"] == pytest.approx(0.1375 + half)
    assert res["p_value"] == pytest.approx(paired_test(a, b)["p_value"])
    assert res["better"] == "tie"  # the interval [-0.100, 0.375] contains 0
    up = paired_comparison(a + 1.0, b)  # a far ahead: "a" on a higher-is-better metric ...
    assert up["better"] == "a" and up["ci_low"] > 0
    assert paired_comparison(a + 1.0, b, lower_is_better=True)["better"] == "b"  # ... "b" on a lower-is-better one
    exact = pd.Series([0.5, 0.25, 0.75, 1.0], index=a.index)
    shifted = paired_comparison(exact + 0.5, exact)  # constant difference: p = 0, t infinite -> None (JSON)
    assert shifted["t"] is None and shifted["p_value"] == 0.0 and shifted["better"] == "a"
