"""Per-prompt evaluation, the human row and the summary (METHOD.md, Evaluation)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from divwrite.core.records import RESPONSE_COLUMNS
from divwrite.core.schema import Method
from divwrite.evaluation.metrics import (
    DISTINCT_THRESHOLD,
    compression_ratio,
    distinct_by_distance,
    homogenization_rouge_l,
    mean_ci,
    mean_pairwise_cosine_distance,
    ngram_diversity,
)
from divwrite.evaluation.scoring import (
    ALL_METRICS,
    METRIC_COLUMNS,
    TRUTH_COLUMNS,
    compare_methods,
    comparison_pairs,
    evaluate_samples,
    human_samples,
    label_entropy,
    summarise,
)
from divwrite.weighting.embedders import load_embedder

SAMPLES = {
    "p2": [
        "The lighthouse keeper found a brass key in the storm and opened the sea door.",
        "A child traded a key for a song, and the lighthouse went dark for a hundred years.",
        "Nobody remembered the lighthouse. The key rusted. The keeper waited anyway.",
        "The key was a lie, said the lighthouse, and the keeper believed it.",
    ],
    "p1": [
        "Robots on the moon held an election and the dust voted no.",
        "The colony ran out of coffee and the robots started a revolution.",
        "A robot wrote poems about the moon that nobody on Earth could read.",
    ],
}
PROMPTS = {"p1": "Robots on the moon.", "p2": "A lighthouse and a key."}


class CountingEmbedder:
    """Wraps an embedder and records each call's batch."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.encode(texts, batch_size=batch_size)


class LengthReward:
    """Stand-in reward model: score = words / 10; records each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[str]]] = []

    def predict(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        self.calls.append((list(prompts), list(responses)))
        return np.array([len(r.split()) / 10 for r in responses], dtype=np.float64)


@pytest.fixture(scope="module")
def minilm():
    return load_embedder("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def small_corpus():
    """A few prompts of the built-in corpus: real stories with known archetype and style."""
    from divwrite.data.corpus.generator import generate_corpus

    return generate_corpus(n_prompts=4, seed=0, mean_responses=8.0, junk_rate=0.0)


def test_evaluate_samples_rows_and_values(minilm) -> None:
    sem, sty, reward = CountingEmbedder(minilm), CountingEmbedder(load_embedder("stylometric")), LengthReward()
    df = evaluate_samples(SAMPLES, PROMPTS, reward_model=reward, semantic=sem, style=sty)
    assert list(df["prompt_id"]) == ["p1", "p2"]
    assert list(df.columns) == ["prompt_id", "n_samples", *METRIC_COLUMNS]
    assert list(df["n_samples"]) == [3, 4]
    # one batched call per model, every text of every prompt, prompts paired with their own samples
    all_texts = SAMPLES["p1"] + SAMPLES["p2"]
    assert sem.calls == [all_texts] and sty.calls == [all_texts]
    assert reward.calls == [(["Robots on the moon."] * 3 + ["A lighthouse and a key."] * 4, all_texts)]
    for pid in ("p1", "p2"):
        row = df.set_index("prompt_id").loc[pid]
        texts = SAMPLES[pid]
        assert row["quality"] == pytest.approx(np.mean([len(t.split()) / 10 for t in texts]))
        assert row["semantic_diversity"] == pytest.approx(mean_pairwise_cosine_distance(minilm.encode(texts)), abs=1e-5)
        style_emb = load_embedder("stylometric").encode(texts)
        assert row["style_diversity"] == pytest.approx(mean_pairwise_cosine_distance(style_emb), abs=1e-6)
        assert row["compression_ratio"] == pytest.approx(compression_ratio(texts))
        assert row["homogenization"] == pytest.approx(homogenization_rouge_l(texts))
        assert row["ngram_diversity"] == pytest.approx(ngram_diversity(texts))
        assert row["distinct_semantic"] == distinct_by_distance(minilm.encode(texts), DISTINCT_THRESHOLD)
        assert 1 <= row["distinct_semantic"] <= len(texts)
    assert df[list(METRIC_COLUMNS)].notna().all().all()


class TableEmbedder:
    """Stand-in embedder: a fixed vector per text."""

    name = fingerprint = "table"

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def encode(self, texts: list[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def _plane(deg: float) -> list[float]:
    return [float(np.cos(np.radians(deg))), float(np.sin(np.radians(deg))), 0.0, 0.0]


def test_evaluate_samples_distinct_semantic_column_by_hand() -> None:
    vectors = {
        **{f"same {i}": _plane(0) for i in range(4)},  # one output
        **{f"apart {i}": list(np.eye(4)[i]) for i in range(4)},  # orthogonal: four outputs
        "pair a1": _plane(0), "pair a2": _plane(10), "pair b1": _plane(90), "pair b2": _plane(100),  # two
        "chain a": _plane(0), "chain b": _plane(45), "chain c": _plane(90), "chain far": [0.0, 0.0, 1.0, 0.0],
    }  # fmt: skip
    samples = {
        "same": [f"same {i}" for i in range(4)],
        "apart": [f"apart {i}" for i in range(4)],
        "pairs": ["pair a1", "pair b1", "pair a2", "pair b2"],
        "chain": ["chain a", "chain b", "chain c", "chain far"],
    }
    prompts = {pid: pid for pid in samples}
    kwargs = dict(reward_model=LengthReward(), semantic=TableEmbedder(vectors), style="stylometric")
    df = evaluate_samples(samples, prompts, **kwargs).set_index("prompt_id")
    # default threshold 0.2: the chain's links (1 - cos 45 = 0.293) are too long, each sample its own output
    assert df["distinct_semantic"].to_dict() == {"apart": 4.0, "chain": 4.0, "pairs": 2.0, "same": 1.0}
    # at 0.5: a ~ b ~ c (a !~ c) is one output, "chain far" (distance 1) another
    wide = evaluate_samples(samples, prompts, distinct_threshold=0.5, **kwargs).set_index("prompt_id")
    assert wide["distinct_semantic"].to_dict() == {"apart": 4.0, "chain": 2.0, "pairs": 2.0, "same": 1.0}
    pd.testing.assert_frame_equal(wide.drop(columns="distinct_semantic"), df.drop(columns="distinct_semantic"))


def test_evaluate_samples_ground_truth(minilm, small_corpus) -> None:
    from divwrite.data.corpus import detectors as corpus

    truth = small_corpus.truth_responses
    samples, prompts = {}, {}
    for record, pid in zip(small_corpus.records, small_corpus.truth_prompts["prompt_id"]):
        samples[pid] = record["comment_texts"][:4]
        prompts[pid] = record["post_title"]
    # one off-topic sample: a story of another prompt (its elements are not this prompt's)
    first, second = list(samples)[:2]
    samples[first] = samples[first][:3] + [samples[second][0]]
    df = evaluate_samples(
        samples,
        prompts,
        reward_model=LengthReward(),
        semantic=minilm,
        style="stylometric",
        truth_prompts=small_corpus.truth_prompts,  # the corpus's table (prompt_id, elements)
    )
    assert list(df.columns) == ["prompt_id", "n_samples", *METRIC_COLUMNS, *TRUTH_COLUMNS]
    elements = dict(zip(small_corpus.truth_prompts["prompt_id"], small_corpus.truth_prompts["elements"]))
    for pid, row in df.set_index("prompt_id").iterrows():
        texts, els = samples[pid], list(elements[pid])
        assert row["archetype_coverage"] == len({corpus.detect_archetype(t) for t in texts} - {"none"})
        assert row["style_coverage"] == len({corpus.detect_style(t) for t in texts} - {"none"})
        assert row["archetype_entropy"] == label_entropy([corpus.detect_archetype(t) for t in texts])
        assert row["style_entropy"] == label_entropy([corpus.detect_style(t) for t in texts])
        pairs = {(corpus.detect_archetype(t), corpus.detect_style(t)) for t in texts}
        assert row["distinct_truth"] == len(pairs)
        assert row["true_quality"] == pytest.approx(np.mean([corpus.true_quality(t, els) for t in texts]))
        assert row["on_topic"] == pytest.approx(np.mean([corpus.on_topic(t, els) for t in texts]))
        if pid != first:
            # the generator's own stories: detectors recover the known truth, all on topic
            known = truth[truth.prompt_id == pid].sort_values("response_index").head(4)
            assert row["archetype_coverage"] == known["archetype"].nunique()
            assert row["style_coverage"] == known["style"].nunique()
            shares = known["archetype"].value_counts(normalize=True).to_numpy()
            assert row["archetype_entropy"] == pytest.approx(-(shares * np.log2(shares)).sum())
            assert row["distinct_truth"] == len(set(zip(known["archetype"], known["style"])))
            assert row["on_topic"] == 1.0
    assert df.set_index("prompt_id").loc[first, "on_topic"] == pytest.approx(3 / 4)


def test_distinct_truth_counts_none_as_a_label(minilm, small_corpus) -> None:
    from divwrite.data.corpus import detectors as corpus

    table = small_corpus.truth_prompts
    pid = table["prompt_id"].iloc[
        2
    ]  # its first four stories: (quest, classic) twice, (romance, dialogue), (revenge, dialogue)
    stories = small_corpus.records[2]["comment_texts"][:4]
    junk = ["Lorem ipsum dolor.", "Dolor sit amet, consectetur."]  # both (none, none)
    assert {(corpus.detect_archetype(t), corpus.detect_style(t)) for t in junk} == {("none", "none")}
    samples = {"stories": stories, "mixed": stories[:2] + junk, "junk": junk * 2}
    elements = list(table["elements"].iloc[2])
    df = evaluate_samples(
        samples,
        {p: "prompt" for p in samples},
        reward_model=LengthReward(),
        semantic=minilm,
        style="stylometric",
        truth_prompts={p: elements for p in samples},
    ).set_index("prompt_id")
    assert pid == small_corpus.truth_responses["prompt_id"].drop_duplicates().iloc[2]
    assert df.loc["stories", "distinct_truth"] == 3.0  # two stories share (quest, classic)
    assert df.loc["mixed", "distinct_truth"] == 3.0  # two different stories + the unrecognised pair as one
    assert df.loc["mixed", "archetype_coverage"] == 2.0  # "none" not counted there
    assert df.loc["junk", "distinct_truth"] == 1.0  # four unrecognised samples: one output, not four


def test_evaluate_samples_truth_as_dict_or_table(minilm, small_corpus) -> None:
    table = small_corpus.truth_prompts
    pid = table["prompt_id"].iloc[0]
    samples = {pid: small_corpus.records[0]["comment_texts"][:3]}
    prompts = {pid: small_corpus.records[0]["post_title"]}
    kwargs = dict(reward_model=LengthReward(), semantic=minilm, style="stylometric")
    by_table = evaluate_samples(samples, prompts, truth_prompts=table, **kwargs)
    by_dict = evaluate_samples(samples, prompts, truth_prompts={pid: list(table["elements"].iloc[0])}, **kwargs)
    pd.testing.assert_frame_equal(by_dict, by_table)
    with pytest.raises(KeyError):
        evaluate_samples(samples, prompts, truth_prompts={"other": ["x"]}, **kwargs)


def test_evaluate_samples_rejects_single_sample(minilm) -> None:
    with pytest.raises(ValueError):
        evaluate_samples({"p1": ["alone"]}, PROMPTS, reward_model=LengthReward(), semantic=minilm, style="stylometric")


def _test_table() -> pd.DataFrame:
    rows = []
    for p, n in (("a", 6), ("b", 4), ("c", 3), ("d", 10)):
        for i in range(n):
            rows.append((p, f"prompt {p}", f"{p}-{i}", f"story {i} for {p}", float(i), 0.0))
    return pd.DataFrame(rows, columns=RESPONSE_COLUMNS)


def test_human_samples_filters_and_draws() -> None:
    df = _test_table()
    out = human_samples(df, n_samples=4, min_responses=4, seed=7)
    assert list(out) == ["a", "b", "d"]  # "c" has only 3 responses
    for pid, texts in out.items():
        pool = set(df.loc[df.prompt_id == pid, "response"])
        assert len(texts) == 4 and len(set(texts)) == 4 and set(texts) <= pool
    assert set(out["b"]) == set(df.loc[df.prompt_id == "b", "response"])


def test_human_samples_is_seeded_and_order_free() -> None:
    df = _test_table()
    a = human_samples(df, seed=7)
    assert human_samples(df.sample(frac=1.0, random_state=1), seed=7) == a
    assert human_samples(df[df.prompt_id != "a"], seed=7)["d"] == a["d"]  # per-prompt draws
    draws = {tuple(human_samples(df, seed=s)["d"]) for s in range(6)}
    assert len(draws) > 1
    with pytest.raises(ValueError):
        human_samples(df, n_samples=5, min_responses=4)


def test_summarise_fixed_shape() -> None:
    per_prompt = pd.DataFrame(
        {
            "prompt_id": ["p1", "p2", "p3"],
            "n_samples": [4, 4, 4],
            **{m: [0.1, 0.5, 0.3] for m in METRIC_COLUMNS},
            "on_topic": [1.0, 0.5, 0.75],
        }
    )
    row = summarise("ddpo-both", per_prompt, confidence=0.95)
    assert list(row) == ["method", "n_prompts", *METRIC_COLUMNS, "on_topic"]
    assert row["method"] == "ddpo-both" and row["n_prompts"] == 3 and isinstance(row["n_prompts"], int)
    for m in [*METRIC_COLUMNS, "on_topic"]:
        assert set(row[m]) == {"mean", "ci_low", "ci_high"}
        assert all(isinstance(v, float) and np.isfinite(v) for v in row[m].values())
    assert row["quality"] == pytest.approx(mean_ci([0.1, 0.5, 0.3], 0.95))
    assert set(ALL_METRICS) >= set(row) - {"method", "n_prompts"}


@pytest.mark.parametrize(
    "labels, bits",
    [
        (["a", "a", "a", "a"], 0.0),
        (["a", "a", "b", "b"], 1.0),
        (["a", "b", "c", "d"], 2.0),
        (["a", "a", "a", "b"], 0.8112781244591328),  # -(3/4 log2 3/4 + 1/4 log2 1/4)
        (["none", "a", "a", "b"], 0.9182958340544896),  # "none" left out: -(2/3 log2 2/3 + 1/3 log2 1/3)
        (["none", "none", "none", "none"], 0.0),
        ([], 0.0),
    ],
)
def test_label_entropy_hand_computed(labels, bits) -> None:
    assert label_entropy(labels) == pytest.approx(bits, abs=1e-15)
    assert label_entropy(labels) >= 0.0 and str(label_entropy(labels)) != "-0.0"


PARAMS_METHODS = {
    "sft": Method(init="base", loss="sft", data="filtered"),
    "dpo": Method(init="sft", loss="dpo", data="selected"),
    "ddpo-both": Method(init="sft", loss="dpo", data="weighted", weights="both"),
    "orpo": Method(init="sft", loss="orpo", data="selected"),
    "dorpo-sem": Method(init="sft", loss="orpo", data="weighted", weights="sem"),
    "divpo": Method(init="sft", loss="dpo", data="divpo"),
}


def test_comparison_pairs_follow_the_methods_table() -> None:
    assert comparison_pairs(PARAMS_METHODS) == [
        ("dpo", "sft"),
        ("ddpo-both", "sft"), ("ddpo-both", "dpo"),
        ("orpo", "sft"),
        ("dorpo-sem", "sft"), ("dorpo-sem", "orpo"),
        ("divpo", "sft"), ("divpo", "dpo"),
    ]  # fmt: skip


def test_compare_methods_pairs_prompts_by_id() -> None:
    table = pd.DataFrame(
        {
            "method": ["dpo"] * 3 + ["ddpo-both"] * 3,
            "prompt_id": ["p1", "p2", "p3", "p3", "p2", "p1"],
            "quality": [1.0, 2.0, 3.0, 2.0, 2.5, 1.5],  # ddpo - dpo by prompt: 0.5, 0.5, -1.0
            "homogenization": [0.5, 0.5, 0.5, 0.1, 0.2, 0.3],  # -0.2, -0.3, -0.4: lower is better
        }
    )
    out = compare_methods(table, [("ddpo-both", "dpo"), ("ddpo-both", "missing")])
    assert [(c["a"], c["b"], c["metric"]) for c in out] == [
        ("ddpo-both", "dpo", "quality"), ("ddpo-both", "dpo", "homogenization"),
    ]  # fmt: skip
    quality, homog = out
    assert quality["mean_diff"] == pytest.approx(0.0) and quality["better"] == "tie" and quality["n"] == 3
    assert homog["mean_diff"] == pytest.approx(-0.3)
    assert homog["ci_high"] == pytest.approx(-0.3 + 4.302652729911275 * 0.1 / np.sqrt(3))
    assert homog["better"] == "a"  # lower homogenization = more diverse
