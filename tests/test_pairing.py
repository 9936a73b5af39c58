"""Pair (METHOD.md step 3): the gap rule, its fallback, uniformity, and the pairs table."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chisquare

from divwrite.core.records import PAIR_COLUMNS, RESPONSE_COLUMNS
from divwrite.data.pairing import (
    SMALL_PROMPT,
    make_pairs,
    prompt_rng,
    sample_pairs,
    sample_pairs_counted,
    sample_pairs_reference,
)

SAMPLERS = [sample_pairs, sample_pairs_counted, sample_pairs_reference]


def check_invariants(upvotes: np.ndarray, gap: float, pairs: list[tuple[int, int]]) -> None:
    """Without replacement, chosen above rejected, gap pairs first, and nothing left to pair."""
    used = [i for pair in pairs for i in pair]
    assert len(used) == len(set(used))
    assert all(upvotes[c] > upvotes[r] for c, r in pairs)
    for t, (c, r) in enumerate(pairs):
        if upvotes[c] - upvotes[r] < gap:  # a fallback pair: no gap pair was left at that draw
            unused = [i for i in range(len(upvotes)) if i not in set(used[: 2 * t])]
            assert all(abs(upvotes[i] - upvotes[j]) < gap for i, j in combinations(unused, 2))
    leftover = np.delete(upvotes, used)
    assert len(np.unique(leftover)) <= 1  # stop only when no two different upvotes remain


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_gap_rule_by_hand(sampler) -> None:
    u = np.array([0.0, 1.0, 10.0])  # gap pairs: (10, 0) and (10, 1); then one response is left
    seen = set()
    for seed in range(30):
        pairs = sampler(u, 5, np.random.default_rng(seed))
        assert len(pairs) == 1 and pairs[0][0] == 2
        seen.add(pairs[0])
    assert seen == {(2, 0), (2, 1)}


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_fallback_after_gap_pairs(sampler) -> None:
    u = np.array([0.0, 10.0, 11.0, 12.0])  # one gap pair (x, 0), then a pair of the rest differing by 1 or 2
    for seed in range(20):
        pairs = sampler(u, 5, np.random.default_rng(seed))
        assert len(pairs) == 2
        assert pairs[0][1] == 0 and pairs[0][0] in (1, 2, 3)
        c, r = pairs[1]
        assert {c, r} == {1, 2, 3} - {pairs[0][0]} and u[c] > u[r]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_ties_are_never_paired(sampler) -> None:
    rng = np.random.default_rng(0)
    assert sampler(np.array([3.0, 3.0, 3.0]), 5, rng) == []
    assert sampler(np.array([]), 5, rng) == [] and sampler(np.array([7.0]), 5, rng) == []
    pairs = sampler(np.array([3.0, 5.0, 3.0, 5.0]), 5, rng)  # fallback only, each pair is (5, 3)
    assert len(pairs) == 2 and all((c in (1, 3)) and (r in (0, 2)) for c, r in pairs)
    pairs = sampler(np.array([3.0, 3.0, 3.0, 9.0]), 5, rng)  # one pair; two 3s stay unpaired
    assert len(pairs) == 1 and pairs[0][0] == 3
    pairs = sampler(np.array([1.0, 2.0, 2.0]), 0, rng)  # gap 0 must not pair the tie either
    assert len(pairs) == 1 and pairs[0][1] == 0


def test_invariants_and_same_pairs_as_reference_on_random_inputs() -> None:
    for t in range(200):
        case = np.random.default_rng(t)
        n = int(case.integers(0, 22))
        u = case.integers(0, 15, size=n).astype(float) if t % 2 else np.round(case.random(n) * 10, 2)
        gap = [5, 0, 2.5, -1, 100][t % 5]
        fast = sample_pairs_counted(u, gap, np.random.default_rng(1000 + t))
        ref = sample_pairs_reference(u, gap, np.random.default_rng(1000 + t))
        assert fast == ref  # same enumeration order, same single draw per pair
        assert sample_pairs(u, gap, np.random.default_rng(1000 + t)) == ref  # either side of SMALL_PROMPT
        check_invariants(u, max(gap, 0), fast)
    assert 0 < SMALL_PROMPT < 22  # the random sizes above cover both paths of sample_pairs


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_first_pair_is_uniform_over_valid_pairs(sampler) -> None:
    u = np.array([7.0, 0.0, 12.0, 1.0, 5.0])
    valid = {(c, r) for c, r in ((i, j) for i in range(5) for j in range(5)) if u[c] - u[r] >= 5}
    assert len(valid) == 7  # (12,7) (12,5) (12,1) (12,0) (7,1) (7,0) (5,0)
    rng = np.random.default_rng(12345)
    draws = Counter(sampler(u, 5, rng)[0] for _ in range(3500))
    assert set(draws) == valid
    assert chisquare([draws[p] for p in sorted(valid)]).pvalue > 0.01


def test_fallback_first_pair_is_uniform() -> None:
    u = np.array([0.0, 1.0, 2.0, 3.0])  # no gap pair: all 6 pairs are equally likely
    rng = np.random.default_rng(7)
    draws = Counter(sample_pairs_counted(u, 5, rng)[0] for _ in range(3000))
    assert len(draws) == 6
    assert chisquare(list(draws.values())).pvalue > 0.01


def test_large_prompt_runs() -> None:
    u = np.random.default_rng(0).permutation(500).astype(float)  # distinct upvotes
    pairs = sample_pairs(u, 5, np.random.default_rng(1))
    assert len(pairs) == 250
    check_invariants(u, 5, pairs)


# --------------------------------------------------------------------------- the pairs table


def responses(spec: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for pid, ups in spec.items():
        for i, u in enumerate(ups):
            rows.append((pid, f"prompt {pid}\n", f"{pid}-{i}", f"story {pid}{i}", float(u), u / 100.0))
    return pd.DataFrame(rows, columns=RESPONSE_COLUMNS)


SPEC = {"p1": [0, 3, 20, 8, 9, 1], "p2": [4, 4], "p3": [5], "p0": [1, 50, 2, 60]}


def test_make_pairs_table() -> None:
    df = responses(SPEC)
    pairs = make_pairs(df, gap=5, seed=42)
    assert list(pairs.columns) == PAIR_COLUMNS
    assert pairs["prompt_id"].tolist() == ["p0", "p0", "p1", "p1", "p1"]  # p2 ties, p3 alone: no pairs
    assert pairs["pair_index"].tolist() == [0, 1, 0, 1, 2]
    assert pairs["pair_id"].tolist() == ["p0-p0", "p0-p1", "p1-p0", "p1-p1", "p1-p2"]
    assert (pairs["chosen_upvotes"] > pairs["rejected_upvotes"]).all()
    by_id = df.set_index("response_id")
    for side in ("chosen", "rejected"):
        np.testing.assert_array_equal(pairs[side], by_id.loc[pairs[f"{side}_id"], "response"])
        np.testing.assert_array_equal(pairs[f"{side}_upvotes"], by_id.loc[pairs[f"{side}_id"], "upvotes"])
        np.testing.assert_array_equal(pairs[f"{side}_score"], by_id.loc[pairs[f"{side}_id"], "score"])
    # prompt p1 is exactly sample_pairs on its upvotes with its own generator
    expected = sample_pairs(np.array(SPEC["p1"], dtype=float), 5, prompt_rng(42, "p1"))
    got = pairs[pairs["prompt_id"] == "p1"]
    assert list(zip(got["chosen_id"], got["rejected_id"])) == [(f"p1-{c}", f"p1-{r}") for c, r in expected]


def test_make_pairs_is_deterministic_and_independent_of_prompt_order() -> None:
    df = responses(SPEC)
    a = make_pairs(df, gap=5, seed=42)
    pd.testing.assert_frame_equal(a, make_pairs(df, gap=5, seed=42))
    reordered = pd.concat([df[df["prompt_id"] == p] for p in ["p3", "p1", "p2", "p0"]])
    pd.testing.assert_frame_equal(a, make_pairs(reordered, gap=5, seed=42))
    only_p1 = make_pairs(df[df["prompt_id"] == "p1"], gap=5, seed=42).reset_index(drop=True)
    pd.testing.assert_frame_equal(only_p1, a[a["prompt_id"] == "p1"].reset_index(drop=True))
    many = responses({f"q{i}": list(range(0, 60, 3)) for i in range(5)})
    assert not make_pairs(many, 5, seed=1).equals(make_pairs(many, 5, seed=2))


def test_make_pairs_checks_its_input() -> None:
    with pytest.raises(ValueError, match=r"lacks columns \['score'\]"):
        make_pairs(responses(SPEC).drop(columns="score"), gap=5, seed=0)
    bad = responses(SPEC)
    bad.loc[0, "upvotes"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        make_pairs(bad, gap=5, seed=0)
    empty = make_pairs(responses({}), gap=5, seed=0)
    assert list(empty.columns) == PAIR_COLUMNS and len(empty) == 0
