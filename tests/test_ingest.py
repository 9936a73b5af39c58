"""Ingest (METHOD.md step 1): title tags, prompts, score transform, loading, split."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from divwrite.core.params import ParamsError, parse_section
from divwrite.core.records import RESPONSE_COLUMNS, held_out_prompts, prompt_id
from divwrite.core.schema import DataParams
from divwrite.data.ingest import (
    build_prompt,
    ingest,
    records_to_responses,
    split_by_prompt,
    strip_title_tag,
    transform_scores,
)
from divwrite.data.sources import load_records, load_records_from_spec, source_stats


def record(title: str, text: str, texts: list[str], scores: list[float]) -> dict:
    return {"post_title": title, "post_text": text, "comment_texts": texts, "comment_scores": scores}


RECORDS = [
    record("[WP] A dragon learns to knit", "", ["Once upon a time.", "The wool was red.", "[deleted]"], [10, 3, 1]),
    record("[EU] The moon is late", "Write it as a letter.", ["Dear Sun,", "It was Tuesday."], [0, 250]),
    record("No tag here", "", ["Only one."], [7]),
]


# --------------------------------------------------------------------------- titles and prompts


@pytest.mark.parametrize(
    "title, expected",
    [
        ("[WP] A dragon", "A dragon"),
        ("[ WP ]x", "x"),
        ("  [WP]   spaced  ", "spaced"),
        ("[WP][EU] two tags", "[EU] two tags"),  # only ONE tag goes
        ("(WP) round brackets stay", "(WP) round brackets stay"),
        ("No tag", "No tag"),
        ("A [WP] inside", "A [WP] inside"),
        ("[WP]", ""),
    ],
)
def test_strip_title_tag(title: str, expected: str) -> None:
    assert strip_title_tag(title) == expected


def test_build_prompt_is_title_newline_text() -> None:
    assert build_prompt("[WP] A dragon", "It knits.") == "A dragon\nIt knits."
    assert build_prompt("[WP] A dragon", "") == "A dragon\n"  # METHOD's formula, literally


# --------------------------------------------------------------------------- score transform


def test_transform_scores_k1_by_hand() -> None:
    # m = 0, x = [1, 2, 4]; one log(x + 1): [ln 2, ln 3, ln 5]; bounds ln 2 and ln 5.
    got = transform_scores([0, 1, 3], iterations=1)
    middle = 2 * (math.log(3) - math.log(2)) / (math.log(5) - math.log(2)) - 1
    np.testing.assert_allclose(got, [-1.0, middle, 1.0], atol=1e-12)
    assert middle == pytest.approx(-0.1149859, abs=1e-7)


def test_transform_scores_k0_is_linear_and_k2_by_hand() -> None:
    np.testing.assert_allclose(transform_scores([0, 1, 3], iterations=0), [-1.0, -1 / 3, 1.0], atol=1e-12)
    # K = 2 on x = [1, 2, 4]: log(log(x + 1) + 1)
    x = [math.log1p(math.log1p(v)) for v in (1, 2, 4)]
    middle = 2 * (x[1] - x[0]) / (x[2] - x[0]) - 1
    np.testing.assert_allclose(transform_scores([5, 6, 8], iterations=2), [-1.0, middle, 1.0], atol=1e-12)
    assert middle == pytest.approx(-0.0073316, abs=1e-7)


def test_transform_scores_properties() -> None:
    s = np.array([3, 0, 12, 12, 1, 5000, 40], dtype=float)
    t = transform_scores(s, iterations=100)
    assert t.min() == -1.0 and t.max() == 1.0
    assert t[np.argmin(s)] == -1.0 and t[np.argmax(s)] == 1.0
    # order kept (ties stay ties), shift-invariant through the "- m + 1"
    assert np.array_equal(np.argsort(t, kind="stable"), np.argsort(s, kind="stable"))
    assert t[2] == t[3]
    np.testing.assert_allclose(transform_scores(s - 7), t, atol=1e-9)
    np.testing.assert_array_equal(transform_scores([4, 4, 4]), [0.0, 0.0, 0.0])
    assert transform_scores([]).shape == (0,)
    with pytest.raises(ValueError, match="NaN"):
        transform_scores([1.0, float("nan")])


# --------------------------------------------------------------------------- loading


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_jsonl_json_csv_parquet_agree(tmp_path: Path) -> None:
    lines = [json.dumps(RECORDS[0]), "", json.dumps(RECORDS[1]), json.dumps(RECORDS[2])]  # a blank line is skipped
    jsonl = write_jsonl(tmp_path / "r.jsonl", lines)
    (tmp_path / "r.json").write_text(json.dumps(RECORDS), encoding="utf-8")
    pd.DataFrame(RECORDS).to_parquet(tmp_path / "r.parquet")
    csv = pd.DataFrame(RECORDS)
    for field in ("comment_texts", "comment_scores"):
        csv[field] = csv[field].map(json.dumps)
    csv.to_csv(tmp_path / "r.csv", index=False)

    expected = [{**r, "comment_scores": [float(s) for s in r["comment_scores"]]} for r in RECORDS]
    for name in ("r.jsonl", "r.json", "r.parquet", "r.csv"):
        records, corpus = load_records(str(tmp_path / name))
        assert corpus is None
        assert records == expected, name
    assert load_records(str(jsonl))[0][1]["post_text"] == "Write it as a letter."


def test_load_records_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_records(str(missing))
    with pytest.raises(ValueError, match="unknown source"):
        load_records(str(tmp_path / "data.txt"))
    with pytest.raises(ValueError, match="names no dataset"):
        load_records("hf:")

    good = json.dumps(RECORDS[0])
    bad = write_jsonl(tmp_path / "bad.jsonl", [good, good, '{"post_title": "x", '])
    with pytest.raises(ValueError, match=r"bad.jsonl, line 3: malformed JSON"):
        load_records(str(bad))

    no_field = {k: v for k, v in RECORDS[1].items() if k != "comment_scores"}
    path = write_jsonl(tmp_path / "nofield.jsonl", [good, json.dumps(no_field)])
    with pytest.raises(ValueError, match=r"line 2: missing field 'comment_scores'"):
        load_records(str(path))

    (tmp_path / "mismatch.json").write_text(json.dumps([RECORDS[0], record("t", "", ["a", "b"], [1])]))
    with pytest.raises(ValueError, match=r"record 1: 'comment_texts' has 2 items but 'comment_scores' has 1"):
        load_records(str(tmp_path / "mismatch.json"))

    nan_line = '{"post_title": "t", "post_text": "", "comment_texts": ["a", "b"], "comment_scores": [1, NaN]}'
    nan = write_jsonl(tmp_path / "nan.jsonl", [nan_line])
    with pytest.raises(ValueError, match=r"line 1: field 'comment_scores'\[1\] must be a finite number, got nan"):
        load_records(str(nan))

    text_score = write_jsonl(tmp_path / "str.jsonl", [json.dumps(record("t", "", ["a"], ["12"]))])
    with pytest.raises(ValueError, match=r"line 1: field 'comment_scores'\[0\] must be a finite number, got '12'"):
        load_records(str(text_score))

    (tmp_path / "obj.json").write_text('{"post_title": "t"}')
    with pytest.raises(ValueError, match="expected a JSON list of records"):
        load_records(str(tmp_path / "obj.json"))


def test_load_records_from_hf(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    rows = [{**r, "comment_times": [0] * len(r["comment_texts"])} for r in RECORDS]  # extra column, as on the hub
    seen = {}

    def fake_load_dataset(dataset_id: str, split: str):
        seen["args"] = (dataset_id, split)
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    records, corpus = load_records("hf:euclaise/WritingPrompts_preferences", hf_split="test")
    assert seen["args"] == ("euclaise/WritingPrompts_preferences", "test")
    assert corpus is None
    assert [r["comment_scores"] for r in records] == [[10.0, 3.0, 1.0], [0.0, 250.0], [7.0]]
    assert set(records[0]) == {"post_title", "post_text", "comment_texts", "comment_scores"}


def test_load_builtin_corpus() -> None:
    pytest.importorskip("divwrite.data.corpus.generator")
    settings = {"n_prompts": 6, "mean_responses": 4.0, "max_responses": 8, "junk_rate": 0.0}
    records, corpus = load_records("builtin", corpus=settings, seed=3)
    assert corpus is not None and len(records) == 6
    assert all(len(r["comment_texts"]) == len(r["comment_scores"]) for r in records)
    # ingest's ids are the generator's ids, so its ground truth joins onto the tables
    df = records_to_responses(records)
    assert sorted(df["response_id"]) == sorted(corpus.truth_responses["response_id"])
    # layout and columns do not apply to the built-in corpus
    ignored = {"layout": "per_response", "columns": {"comment_scores": "x"}}
    assert load_records("builtin", corpus=settings, seed=3, **ignored)[0] == records


# The source under other column names, for the mapping tests.
RENAMED = {"post_title": "title", "post_text": "selftext", "comment_texts": "bodies", "comment_scores": "ups"}


def renamed(rec: dict) -> dict:
    return {RENAMED[k]: v for k, v in rec.items()} | {"extra": 1}


def per_response_rows(records: list[dict]) -> list[dict]:
    """One row per response, interleaving the prompts (the grouping must not need sorted rows)."""
    rows = [
        {"title": r["post_title"], "selftext": r["post_text"], "body": t, "ups": s, "k": k}
        for r in records
        for k, (t, s) in enumerate(zip(r["comment_texts"], r["comment_scores"]))
    ]
    return sorted(rows, key=lambda row: row["k"])


PER_RESPONSE_COLUMNS = {**RENAMED, "comment_texts": "body"}
EXPECTED = [{**r, "comment_scores": [float(s) for s in r["comment_scores"]]} for r in RECORDS]


def write_all_formats(tmp_path: Path, rows: list[dict], json_cells: tuple[str, ...]) -> list[Path]:
    """`rows` as .jsonl, .json, .parquet and .csv (the `json_cells` columns as JSON arrays)."""
    paths = [tmp_path / f"r.{ext}" for ext in ("jsonl", "json", "parquet", "csv")]
    write_jsonl(paths[0], [json.dumps(r) for r in rows])
    paths[1].write_text(json.dumps(rows), encoding="utf-8")
    pd.DataFrame(rows).to_parquet(paths[2])
    csv = pd.DataFrame(rows)
    for column in json_cells:
        csv[column] = csv[column].map(json.dumps)
    csv.to_csv(paths[3], index=False)
    return paths


def test_column_mapping_per_prompt_all_formats(tmp_path: Path) -> None:
    for path in write_all_formats(tmp_path, [renamed(r) for r in RECORDS], ("bodies", "ups")):
        records, _ = load_records(str(path), columns=RENAMED)
        assert records == EXPECTED, path.name
    # missing keys are the identity; post_text None: no body column
    (tmp_path / "nobody.json").write_text(
        json.dumps([{k: v for k, v in r.items() if k != "post_text"} | {"score": r["comment_scores"]} for r in RECORDS])
    )
    no_scores = {k: v for k, v in RECORDS[0].items() if k != "comment_scores"}  # the source column is 'score'
    records, _ = load_records(str(tmp_path / "nobody.json"), columns={"post_text": None, "comment_scores": "score"})
    assert [r["post_text"] for r in records] == ["", "", ""]
    assert records[0] == {**no_scores, "comment_scores": [10.0, 3.0, 1.0]}


def test_per_response_layout_groups_rows_all_formats(tmp_path: Path) -> None:
    rows = per_response_rows(RECORDS)
    assert [r["title"] for r in rows[:3]] == [r["post_title"] for r in RECORDS]  # interleaved
    for path in write_all_formats(tmp_path, rows, ()):
        records, corpus = load_records(str(path), layout="per_response", columns=PER_RESPONSE_COLUMNS)
        assert corpus is None
        assert records == EXPECTED, path.name  # prompts in order of first appearance, responses in row order
    # the same title with another body is another prompt
    more = rows + [{"title": RECORDS[0]["post_title"], "selftext": "a body", "body": "x", "ups": 1, "k": 0}]
    write_jsonl(tmp_path / "more.jsonl", [json.dumps(r) for r in more])
    records, _ = load_records(str(tmp_path / "more.jsonl"), layout="per_response", columns=PER_RESPONSE_COLUMNS)
    assert len(records) == 4 and records[3]["comment_texts"] == ["x"]
    assert source_stats(records)["duplicate_prompt_records"] == 0


def test_per_response_layout_from_hf(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    rows = per_response_rows(RECORDS)
    monkeypatch.setattr(datasets, "load_dataset", lambda dataset_id, split: datasets.Dataset.from_list(rows))
    records, _ = load_records("hf:me/rows", layout="per_response", columns=PER_RESPONSE_COLUMNS)
    assert records == EXPECTED


def test_the_data_section_is_the_source_spec() -> None:
    """params.yaml's `data:` (core.schema.DataParams) is what load_records_from_spec reads;
    columns not given are the identity."""
    spec = parse_section(DataParams, {"source": "data/x.csv"}, label="data")
    assert (spec.source, spec.hf_split, spec.layout) == ("data/x.csv", "train", "per_prompt")
    assert spec.columns.of_layout("per_prompt") == {
        f: f for f in ("post_title", "post_text", "comment_texts", "comment_scores")
    }
    assert spec.columns.of_layout("pairs") == {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected",
                                               "margin": None}  # fmt: skip
    full = parse_section(
        DataParams,
        {
            "source": "hf:me/rows",
            "hf_split": "test",
            "layout": "per_response",
            "columns": {"post_text": None, "comment_scores": "ups"},
        },
        label="data",
    )
    assert (full.hf_split, full.layout) == ("test", "per_response")
    assert full.columns.of_layout(full.layout) == {
        "post_title": "post_title",
        "post_text": None,
        "comment_texts": "comment_texts",
        "comment_scores": "ups",
    }
    with pytest.raises(
        ParamsError,
        match=r"data: \n  colums: unknown key .*\n  test_fraction: unknown key \(got 0.1\); data has: source",
    ):
        parse_section(DataParams, {"source": "builtin", "test_fraction": 0.1, "colums": {}}, label="data")
    with pytest.raises(ParamsError, match=r"data: source: missing"):
        parse_section(DataParams, {"layout": "per_prompt"}, label="data")
    with pytest.raises(
        ParamsError, match=r"data: layout: input should be 'per_prompt', 'per_response' or 'pairs' \(got 'long'\)"
    ):
        parse_section(DataParams, {"source": "builtin", "layout": "long"}, label="data")
    with pytest.raises(ParamsError, match=r"data: hf_split: input should be a valid string \(got None\)"):
        parse_section(DataParams, {"source": "builtin", "hf_split": None}, label="data")
    with pytest.raises(ValidationError, match="frozen"):
        spec.layout = "per_response"


def test_load_records_from_spec_is_load_records(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [json.dumps(r) for r in per_response_rows(RECORDS)])
    raw = {"source": str(path), "layout": "per_response", "columns": PER_RESPONSE_COLUMNS}
    spec = parse_section(DataParams, raw, label="data")
    assert load_records_from_spec(spec) == load_records(str(path), layout="per_response", columns=PER_RESPONSE_COLUMNS)
    assert load_records_from_spec(spec)[0] == EXPECTED


def test_source_stats() -> None:
    records = RECORDS + [record("[WP] A dragon learns to knit", "", ["again"], [1]), record("Empty", "", [], [])]
    assert source_stats(records) == {
        "records": 5,
        "records_without_responses": 1,
        "duplicate_prompt_records": 1,
        "responses": 7,
    }
    assert set(source_stats([]).values()) == {0}


@pytest.fixture
def hanna(shared_data: Path) -> Path:
    path = shared_data / "hanna" / "hanna_per_prompt.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def test_load_real_hanna_records(hanna: Path) -> None:
    records, _ = load_records(str(hanna))
    assert len(records) == 96
    assert source_stats(records) == {
        "records": 96,
        "records_without_responses": 0,
        "duplicate_prompt_records": 0,
        "responses": 1056,
    }
    df = records_to_responses(records)
    assert len(df) == 1056 and df["prompt_id"].nunique() == 96
    assert df["upvotes"].between(1.0, 5.0).all()


def test_real_hanna_as_per_response_csv(hanna: Path, tmp_path: Path) -> None:
    """HANNA written out one row per story, under other column names and without body
    column, loads to the same prompts, texts and scores as the per-prompt file."""
    records, _ = load_records(str(hanna))
    raw = [json.loads(line) for line in hanna.read_text(encoding="utf-8").splitlines()]
    rows = [
        {"prompt": r["post_title"], "model": m, "story": t, "rating": s}
        for r in raw
        for m, t, s in zip(r["comment_models"], r["comment_texts"], r["comment_scores"])
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "hanna.csv", index=False)
    columns = {"post_title": "prompt", "post_text": None, "comment_texts": "story", "comment_scores": "rating"}
    by_response, _ = load_records(str(tmp_path / "hanna.csv"), layout="per_response", columns=columns)
    assert by_response == records
    assert {r["post_text"] for r in by_response} == {""}


# --------------------------------------------------------------------------- tables and split


def test_records_to_responses_ids_and_prompts() -> None:
    df = records_to_responses(RECORDS)
    assert list(df.columns) == [c for c in RESPONSE_COLUMNS if c != "score"]
    assert len(df) == 6
    pid0 = prompt_id("[WP] A dragon learns to knit", "")  # from the RAW title
    first = df[df["prompt_id"] == pid0]
    assert first["response_id"].tolist() == [f"{pid0}-0", f"{pid0}-1", f"{pid0}-2"]
    assert first["prompt"].unique().tolist() == ["A dragon learns to knit\n"]
    assert first["upvotes"].tolist() == [10.0, 3.0, 1.0]
    assert df.loc[df["response"] == "It was Tuesday.", "prompt"].item() == "The moon is late\nWrite it as a letter."


def test_records_to_responses_merges_reposts_with_unique_ids() -> None:
    dup = [record("[WP] same", "", ["a", "b"], [1, 2]), record("[WP] same", "", ["c"], [3])]
    df = records_to_responses(dup)
    pid = prompt_id("[WP] same", "")
    assert df["response_id"].tolist() == [f"{pid}-0", f"{pid}-1", f"{pid}-2"]
    assert df["response"].tolist() == ["a", "b", "c"]


def many_prompts(n: int) -> pd.DataFrame:
    records = [record(f"[WP] prompt {i}", "", [f"r{i}a", f"r{i}b", f"r{i}c"], [i, 2 * i, 1]) for i in range(n)]
    df = records_to_responses(records)
    df["score"] = 0.0
    return df


def test_split_by_prompt_never_splits_a_prompt_and_is_deterministic() -> None:
    df = many_prompts(50)
    train, test = split_by_prompt(df, 0.1, seed=42)
    assert test["prompt_id"].nunique() == len(held_out_prompts(df["prompt_id"], 0.1, 42)) == 4  # sha256: 4 of 50
    assert len(train) + len(test) == len(df)
    assert not set(train["prompt_id"]) & set(test["prompt_id"])
    assert test.groupby("prompt_id").size().eq(3).all()
    # sorted output, same split whatever the row order
    assert train["prompt_id"].is_monotonic_increasing and test["prompt_id"].is_monotonic_increasing
    shuffled = df.sample(frac=1.0, random_state=0)
    train2, test2 = split_by_prompt(shuffled, 0.1, seed=42)
    assert set(test2["prompt_id"]) == set(test["prompt_id"])
    assert sorted(test2["response_id"]) == sorted(test["response_id"])
    _, test_other_seed = split_by_prompt(df, 0.1, seed=7)
    assert set(test_other_seed["prompt_id"]) != set(test["prompt_id"])


def test_split_by_prompt_edge_sizes() -> None:
    df = many_prompts(3)
    train, test = split_by_prompt(df, 0.01, seed=0)  # too few prompts for the hash to hold one out
    assert test["prompt_id"].nunique() == 1 and train["prompt_id"].nunique() == 2  # the nearest crosses over
    train, test = split_by_prompt(df, 0.0, seed=0)
    assert len(test) == 0 and len(train) == 9
    with pytest.raises(ValueError, match="test_fraction"):
        split_by_prompt(df, 1.0, seed=0)


def test_ingest_scores_use_the_global_range_before_the_split() -> None:
    records = [record(f"[WP] p{i}", "", ["a", "b"], [i, 100 + i]) for i in range(20)]
    train, test = ingest(records, test_fraction=0.25, transform_iterations=1, seed=42)
    assert list(train.columns) == RESPONSE_COLUMNS and list(test.columns) == RESPONSE_COLUMNS
    both = pd.concat([train, test])
    assert len(both) == 40 and test["prompt_id"].nunique() == len(held_out_prompts(both["prompt_id"], 0.25, 42))
    # score of upvotes u with m = 0, M = 119, K = 1: 2 (log(u + 2) - log 2) / (log 121 - log 2) - 1
    expected = 2 * (np.log(both["upvotes"] + 2) - np.log(2)) / (np.log(121) - np.log(2)) - 1
    np.testing.assert_allclose(both["score"], expected, atol=1e-12)
    assert both["score"].min() == -1.0 and both["score"].max() == 1.0


def test_held_out_prompts_is_by_prompt_and_seeded() -> None:
    ids = [f"p{i}" for i in range(400) for _ in range(3)]
    val = held_out_prompts(ids, 0.25, seed=3)
    assert val <= set(ids) and 80 <= len(val) <= 120  # each prompt in with probability 0.25
    assert held_out_prompts(list(reversed(ids)), 0.25, seed=3) == val
    assert held_out_prompts(ids, 0.25, seed=4) != val
    assert held_out_prompts(ids, 0.0, seed=3) == set()
    # a prompt's side is sha256(seed, id) read as a number in [0, 1), below the fraction: by hand
    digest = hashlib.sha256(b"3\x00p0").digest()
    assert ("p0" in val) == (int.from_bytes(digest[:8], "big") / 2**64 < 0.25)


def test_appending_data_never_moves_an_earlier_prompt(tmp_path: Path) -> None:
    """Prompts appended to a source file: every earlier prompt keeps its side of the split."""
    path = tmp_path / "source.jsonl"
    lines = [json.dumps(record(f"[WP] prompt {i}", "", ["a story", "another"], [i, i + 7])) for i in range(60)]
    write_jsonl(path, lines)
    before = ingest(load_records(str(path))[0], test_fraction=0.2, transform_iterations=100, seed=42)
    side = {pid: s for s, df in zip(("train", "test"), before) for pid in df["prompt_id"]}
    assert set(side.values()) == {"train", "test"}
    more = [json.dumps(record(f"[WP] appended {i}", "", ["x y", "z w"], [3 * i, 1])) for i in range(40)]
    write_jsonl(path, lines + more)
    after = ingest(load_records(str(path))[0], test_fraction=0.2, transform_iterations=100, seed=42)
    side_after = {pid: s for s, df in zip(("train", "test"), after) for pid in df["prompt_id"]}
    assert len(side_after) == 100
    assert {pid: side_after[pid] for pid in side} == side
