"""Bad source data at the library level: every case gives a clear error naming the file,
line or record, the field and what was expected, or a documented handling (see the
docstring of `divwrite.data.sources`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from divwrite.core.records import prompt_id
from divwrite.data.ingest import ingest, records_to_responses
from divwrite.data.sources import load_records, source_stats


def record(title: str, text: str, texts: list, scores: list) -> dict:
    return {"post_title": title, "post_text": text, "comment_texts": texts, "comment_scores": scores}


GOOD = record("[WP] A dragon", "", ["Once.", "Twice."], [3, 1])
PER_RESPONSE = {"post_title": "prompt", "post_text": None, "comment_texts": "story", "comment_scores": "rating"}


def write_jsonl(path: Path, objs: list) -> Path:
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs), encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --------------------------------------------------------------------------- malformed files


def test_malformed_json(tmp_path: Path) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [GOOD, GOOD, '{"post_title": "x", '])
    with pytest.raises(
        ValueError, match=r"bad.jsonl, line 3: malformed JSON \(.* at the end of the line, after column 19\)"
    ):
        load_records(str(bad))
    (tmp_path / "bad.json").write_text("[\n" + json.dumps(GOOD) + ",\n{oops}\n]", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.json, line 3: malformed JSON"):
        load_records(str(tmp_path / "bad.json"))
    (tmp_path / "obj.json").write_text(json.dumps(GOOD), encoding="utf-8")
    with pytest.raises(ValueError, match=r"obj.json: expected a JSON list of records, got dict"):
        load_records(str(tmp_path / "obj.json"))
    not_object = write_jsonl(tmp_path / "list.jsonl", [GOOD, [1, 2]])
    with pytest.raises(ValueError, match=r"list.jsonl, line 2: expected a mapping with fields .*, got list"):
        load_records(str(not_object))


def test_truncated_jsonl_line_is_named_truncated(tmp_path: Path) -> None:
    """A line cut off inside a string reads as an unterminated string (not as an "invalid
    control character" at its newline, nor "at at column"); a mid-line error does not."""
    line = json.dumps(GOOD)  # 112 characters
    cut = line[:72]  # ... "comment_texts": ["Once
    bad = write_jsonl(tmp_path / "cut.jsonl", [GOOD, cut, GOOD])
    with pytest.raises(ValueError) as err:
        load_records(str(bad))
    assert str(err.value) == (
        f"{bad}, line 2: malformed JSON (unterminated string starting at column 68 of 72): "
        "the line looks truncated (cut off before its end)"
    )
    assert " at at " not in str(err.value) and "control character" not in str(err.value)
    # the last line, without a newline: a download or copy that stopped early
    (tmp_path / "eof.jsonl").write_text(line + "\n" + line[:-1], encoding="utf-8")
    with pytest.raises(ValueError, match=r"eof.jsonl, line 2: malformed JSON \(expecting ',' delimiter at the end of "
                       r"the line, after column 111\): the line looks truncated \(cut off before its end; the file "
                       r"ends there, without a final newline\)"):  # fmt: skip
        load_records(str(tmp_path / "eof.jsonl"))
    (tmp_path / "lit.jsonl").write_text('{"post_title": "x", "post_text": nul\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"expecting value at column 34 of 36\): the line looks truncated"):
        load_records(str(tmp_path / "lit.jsonl"))
    # a real mid-line mistake, e.g. a tab inside a string or a trailing comma: not truncated
    tab = write_jsonl(tmp_path / "tab.jsonl", [line.replace("Once.", "On\tce.")])
    with pytest.raises(ValueError) as err:
        load_records(str(tab))
    assert str(err.value) == f"{tab}, line 1: malformed JSON (invalid control character at column 71 of 113)"
    comma = write_jsonl(tmp_path / "comma.jsonl", ['{"post_title": "x",}'])
    with pytest.raises(ValueError, match=r"double quotes at column 20 of 20\)$"):
        load_records(str(comma))
    # a .json file cut off: the file looks truncated
    (tmp_path / "cut.json").write_text("[\n" + line + ",\n" + cut, encoding="utf-8")
    with pytest.raises(ValueError, match=r"cut.json, line 3: malformed JSON \(unterminated string starting at "
                       r"column 68 of 72\): the file looks truncated \(cut off before its end\)$"):  # fmt: skip
        load_records(str(tmp_path / "cut.json"))


def test_malformed_csv(tmp_path: Path) -> None:
    header = ["post_title", "post_text", "comment_texts", "comment_scores"]
    cell = write_csv(tmp_path / "cell.csv", header, [["t", "", '["a"]', "[1"]])
    with pytest.raises(ValueError, match=r"cell.csv, line 2: field 'comment_scores' must be a JSON array"):
        load_records(str(cell))
    fields = write_csv(tmp_path / "fields.csv", header, [["t", "", '["a"]', "[1]"], ["t", "", '["a"]']])
    with pytest.raises(ValueError, match=r"fields.csv, line 3: 3 fields, but the header has 4"):
        load_records(str(fields))
    twice = write_csv(tmp_path / "twice.csv", [*header, "post_text"], [["t", "", '["a"]', "[1]", ""]])
    with pytest.raises(ValueError, match=r"twice.csv, line 1: repeated column names \['post_text'\]"):
        load_records(str(twice))


def test_csv_lines_count_multiline_cells(tmp_path: Path) -> None:
    rows = [["p", "one\nstory\nover lines", "3"], ["p", "two", "x"]]
    path = write_csv(tmp_path / "multi.csv", ["prompt", "story", "rating"], rows)
    with pytest.raises(ValueError, match=r"multi.csv, line 5: field 'rating' \(mapped to comment_scores\) must be"):
        load_records(str(path), layout="per_response", columns=PER_RESPONSE)


def test_not_a_parquet_file(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match=r"x.parquet: not a readable Parquet file"):
        load_records(str(tmp_path / "x.parquet"))


# --------------------------------------------------------------------------- fields and types


def test_missing_field_names_source_and_canonical(tmp_path: Path) -> None:
    no_scores = {k: v for k, v in GOOD.items() if k != "comment_scores"}
    path = write_jsonl(tmp_path / "nofield.jsonl", [GOOD, no_scores])
    with pytest.raises(ValueError, match=r"nofield.jsonl, line 2: missing field 'comment_scores' \(fields present: \["):
        load_records(str(path))
    mapped = write_jsonl(tmp_path / "mapped.jsonl", [{"title": "t", "body": "", "texts": ["a"], "upvotes": [1]}])
    columns = {"post_title": "title", "post_text": "body", "comment_texts": "texts", "comment_scores": "score"}
    with pytest.raises(
        ValueError,
        match=r"mapped.jsonl, line 1: missing field 'score' \(mapped to comment_scores; fields present: "
        r"\['body', 'texts', 'title', 'upvotes'\]\)",
    ):
        load_records(str(mapped), columns=columns)
    pd.DataFrame({"prompt": ["p"], "story": ["s"]}).to_parquet(tmp_path / "r.parquet")
    with pytest.raises(ValueError, match=r"r.parquet, record 0: missing field 'rating' \(mapped to comment_scores"):
        load_records(str(tmp_path / "r.parquet"), layout="per_response", columns=PER_RESPONSE)


@pytest.mark.parametrize(
    "bad, message",
    [
        (record("t", "", ["a"], ["12"]), r"field 'comment_scores'\[0\] must be a finite number, got '12'"),
        (record("t", "", ["a", "b"], [1, True]), r"field 'comment_scores'\[1\] must be a finite number, got True"),
        (record("t", "", ["a"], [None]), r"field 'comment_scores'\[0\] must be a finite number, got None"),
        (record("t", "", ["a"], [10**400]), r"field 'comment_scores'\[0\] must be a finite number, got 1000"),
        (record(7, "", ["a"], [1]), r"field 'post_title' must be a string, got int"),
        (record("t", "", "a", [1]), r"field 'comment_texts' must be a list, got str"),
        (record("t", "", ["a", 5], [1, 2]), r"field 'comment_texts'\[1\] must be a string, got int"),
    ],
)
def test_wrong_types_in_json_are_not_coerced(tmp_path: Path, bad: dict, message: str) -> None:
    path = write_jsonl(tmp_path / "types.jsonl", [GOOD, bad])
    with pytest.raises(ValueError, match=r"types.jsonl, line 2: " + message):
        load_records(str(path))


def test_wrong_types_in_parquet_and_mapped_per_response(tmp_path: Path) -> None:
    pd.DataFrame([record("t", "", ["a"], ["12"])]).to_parquet(tmp_path / "str.parquet")
    with pytest.raises(ValueError, match=r"str.parquet, record 0: field 'comment_scores'\[0\] must be a finite number"):
        load_records(str(tmp_path / "str.parquet"))
    rows = [{"prompt": "p", "story": "s", "rating": 2}, {"prompt": "p", "story": "s", "rating": "4"}]
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    with pytest.raises(
        ValueError,
        match=r"rows.jsonl, line 2: field 'rating' \(mapped to comment_scores\) must be a finite number, got '4'",
    ):
        load_records(str(path), layout="per_response", columns=PER_RESPONSE)
    lists = write_jsonl(tmp_path / "lists.jsonl", [{"prompt": "p", "story": ["s"], "rating": [1]}])
    with pytest.raises(
        ValueError, match=r"lists.jsonl, line 1: field 'story' \(mapped to comment_texts\) must be a string, got list"
    ):
        load_records(str(lists), layout="per_response", columns=PER_RESPONSE)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_json_nan_and_infinity_literals(tmp_path: Path, literal: str) -> None:
    line = '{"post_title": "t", "post_text": "", "comment_texts": ["a", "b"], "comment_scores": [1, ' + literal + "]}"
    path = write_jsonl(tmp_path / "nan.jsonl", [GOOD, line])
    with pytest.raises(ValueError, match=r"nan.jsonl, line 2: field 'comment_scores'\[1\] must be a finite number"):
        load_records(str(path))


def test_parquet_nan_and_null_scores(tmp_path: Path) -> None:
    nan = pa.table({k: [v] for k, v in record("t", "", ["a", "b"], [1.0, float("nan")]).items()})
    pq.write_table(nan, tmp_path / "nan.parquet")
    with pytest.raises(ValueError, match=r"nan.parquet, record 0: field 'comment_scores'\[1\] must be .* got nan"):
        load_records(str(tmp_path / "nan.parquet"))
    # pandas writes a NaN inside a list as a null
    pd.DataFrame([GOOD, record("t", "", ["a", "b"], [1.0, np.nan])]).to_parquet(tmp_path / "pandas.parquet")
    with pytest.raises(ValueError, match=r"pandas.parquet, record 1: field 'comment_scores'\[1\] must be a finite"):
        load_records(str(tmp_path / "pandas.parquet"))
    table = pa.table({"prompt": ["p", "p"], "story": ["a", "b"], "rating": pa.array([1.0, None])})
    pq.write_table(table, tmp_path / "null.parquet")
    with pytest.raises(ValueError, match=r"null.parquet, record 1: field 'rating' \(mapped to comment_scores\) must"):
        load_records(str(tmp_path / "null.parquet"), layout="per_response", columns=PER_RESPONSE)


@pytest.mark.parametrize("value", ["abc", "", "nan", "inf", "12 upvotes"])
def test_per_response_csv_scores_must_parse_as_finite_numbers(tmp_path: Path, value: str) -> None:
    path = write_csv(tmp_path / "r.csv", ["prompt", "story", "rating"], [["p", "a", "1.5"], ["p", "b", value]])
    with pytest.raises(
        ValueError,
        match=rf"r.csv, line 3: field 'rating' \(mapped to comment_scores\) must be a finite number, got '{value}'",
    ):
        load_records(str(path), layout="per_response", columns=PER_RESPONSE)


def test_per_response_csv_scores_are_parsed(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", ["prompt", "story", "rating"], [["p", "a", "1.5"], ["p", "b", " 12 "]])
    records, _ = load_records(str(path), layout="per_response", columns=PER_RESPONSE)
    assert records == [record("p", "", ["a", "b"], [1.5, 12.0])]


def test_texts_and_scores_of_different_lengths(tmp_path: Path) -> None:
    (tmp_path / "mismatch.json").write_text(json.dumps([GOOD, record("t", "", ["a", "b"], [1])]), encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"mismatch.json, record 1: 'comment_texts' has 2 items but 'comment_scores' has 1$"
    ):
        load_records(str(tmp_path / "mismatch.json"))


# --------------------------------------------------------------------------- documented handling


def test_empty_response_list_is_kept_and_counted(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [GOOD, record("[WP] nobody wrote", "", [], [])])
    records, _ = load_records(str(path))
    assert len(records) == 2 and records[1]["comment_texts"] == []
    stats = source_stats(records)
    assert stats == {"records": 2, "records_without_responses": 1, "duplicate_prompt_records": 0, "responses": 2}
    train, test = ingest(records, test_fraction=0.0, transform_iterations=100, seed=42)
    assert len(train) == 2 and len(test) == 0
    assert train["prompt_id"].unique().tolist() == [prompt_id("[WP] A dragon", "")]


def test_prompt_with_one_response_is_kept(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [GOOD, record("[WP] lonely", "", ["Only one."], [7])])
    records, _ = load_records(str(path))
    train, _ = ingest(records, test_fraction=0.0, transform_iterations=100, seed=42)
    assert train.loc[train["prompt_id"] == prompt_id("[WP] lonely", ""), "response"].tolist() == ["Only one."]


def test_duplicate_prompts_merge_with_unique_ids_and_are_counted(tmp_path: Path) -> None:
    repost = record("[WP] A dragon", "", ["Thrice."], [9])
    other = record("[WP] A dragon", "with a body", ["Other."], [2])  # same title, other body: another prompt
    path = write_jsonl(tmp_path / "r.jsonl", [GOOD, other, repost])
    records, _ = load_records(str(path))
    assert source_stats(records) == {
        "records": 3,
        "records_without_responses": 0,
        "duplicate_prompt_records": 1,
        "responses": 4,
    }
    train, _ = ingest(records, test_fraction=0.0, transform_iterations=100, seed=42)
    pid = prompt_id("[WP] A dragon", "")
    dragon = train[train["prompt_id"] == pid]
    assert dragon["response"].tolist() == ["Once.", "Twice.", "Thrice."]
    assert dragon["response_id"].tolist() == [f"{pid}-0", f"{pid}-1", f"{pid}-2"]
    assert train["response_id"].is_unique and train["prompt_id"].nunique() == 2


def test_all_scores_equal_map_to_zero(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [record(f"[WP] p{i}", "", ["a", "b"], [5, 5]) for i in range(4)])
    records, _ = load_records(str(path))
    train, test = ingest(records, test_fraction=0.25, transform_iterations=100, seed=42)
    assert pd.concat([train, test])["score"].eq(0.0).all()


def test_none_body_and_none_text_become_empty(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [record("t", None, ["a", None], [1, 2])])
    records, _ = load_records(str(path))
    assert records == [record("t", "", ["a", ""], [1.0, 2.0])]


def test_absurdly_long_response_is_kept_whole(tmp_path: Path) -> None:
    long_text = " ".join(["word"] * 200_000)
    jsonl = write_jsonl(tmp_path / "long.jsonl", [record("[WP] long", "", [long_text, "short"], [1, 2])])
    rows = [["long", long_text, "1"], ["long", "s", "2"]]
    csv_path = write_csv(tmp_path / "long.csv", ["prompt", "story", "rating"], rows)
    records, _ = load_records(str(jsonl))
    by_row, _ = load_records(str(csv_path), layout="per_response", columns=PER_RESPONSE)  # over csv's field limit
    df = records_to_responses(records)
    assert records[0]["comment_texts"][0] == long_text and by_row[0]["comment_texts"][0] == long_text
    assert len(df["response"].iloc[0].split()) == 200_000
    assert csv.field_size_limit() == 131072  # the global limit is restored


# --------------------------------------------------------------------------- encoding


def test_non_utf8_bytes_name_the_line_and_offset(tmp_path: Path) -> None:
    good = json.dumps(GOOD).encode() + b"\n"
    bad = b'{"post_title": "caf\xe9", "post_text": "", "comment_texts": [], "comment_scores": []}\n'
    (tmp_path / "latin.jsonl").write_bytes(good + good + bad)
    offset = 2 * len(good) + bad.index(b"\xe9")
    with pytest.raises(
        ValueError,
        match=rf"latin.jsonl, line 3: byte 0xe9 at byte offset {offset} is not valid UTF-8; the file must be UTF-8",
    ):
        load_records(str(tmp_path / "latin.jsonl"))
    (tmp_path / "latin.json").write_bytes(b"[\n" + good.rstrip() + b",\n" + bad + b"]")
    with pytest.raises(ValueError, match=r"latin.json, line 3: byte 0xe9 .* must be UTF-8"):
        load_records(str(tmp_path / "latin.json"))
    (tmp_path / "latin.csv").write_bytes(b"prompt,story,rating\np,caf\xe9,1\n")
    with pytest.raises(ValueError, match=r"latin.csv, line 2: byte 0xe9 at byte offset 25 .* must be UTF-8"):
        load_records(str(tmp_path / "latin.csv"), layout="per_response", columns=PER_RESPONSE)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    (tmp_path / "bom.csv").write_bytes("\ufeffprompt,story,rating\np,é,1\n".encode())
    assert load_records(str(tmp_path / "bom.jsonl"))[0] == [{**GOOD, "comment_scores": [3.0, 1.0]}]
    rows, _ = load_records(str(tmp_path / "bom.csv"), layout="per_response", columns=PER_RESPONSE)
    assert rows == [record("p", "", ["é"], [1.0])]


# --------------------------------------------------------------------------- empty and missing sources


@pytest.mark.parametrize("name", ["e.jsonl", "e.json", "e.csv", "e.parquet"])
def test_zero_byte_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(ValueError, match=rf"{name}: no records"):
        load_records(str(tmp_path / name))


def test_files_without_records(tmp_path: Path) -> None:
    (tmp_path / "blank.jsonl").write_text("\n  \n\n", encoding="utf-8")
    (tmp_path / "empty.json").write_text("[]", encoding="utf-8")
    write_csv(tmp_path / "header.csv", ["post_title", "post_text", "comment_texts", "comment_scores"], [])
    pd.DataFrame({c: pd.Series([], dtype=object) for c in GOOD}).to_parquet(tmp_path / "rows0.parquet")
    for name in ("blank.jsonl", "empty.json", "header.csv", "rows0.parquet"):
        with pytest.raises(ValueError, match=rf"{name}: no records$"):
            load_records(str(tmp_path / name))
    with pytest.raises(ValueError, match=r"header.csv: no records$"):
        load_records(str(tmp_path / "header.csv"), layout="per_response")


def test_missing_path_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope.jsonl: no such file"):
        load_records(str(tmp_path / "nope.jsonl"))
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(FileNotFoundError, match=r"dir.jsonl: is a directory"):
        load_records(str(tmp_path / "dir.jsonl"))
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path}: is a directory"):
        load_records(str(tmp_path))


def test_bad_settings() -> None:
    """load_records checks its settings as params.yaml's `data:` is checked (core.schema.DataParams)."""
    with pytest.raises(
        ValueError, match=r"data: layout: input should be 'per_prompt', 'per_response' or 'pairs' \(got 'wide'\)"
    ):
        load_records("x.jsonl", layout="wide")
    with pytest.raises(ValueError, match=r"columns.score: unknown key \(got 's'\); columns has: post_title, post_text"):
        load_records("x.jsonl", columns={"title": "t", "post_text": None, "score": "s"})
    with pytest.raises(ValueError, match=r"data: columns.comment_scores: input should be a valid string \(got None\)"):
        load_records("x.jsonl", columns={"comment_scores": None})
    with pytest.raises(ValueError, match=r"several fields map to the same source column\(s\) \['x'\]"):
        load_records("x.jsonl", columns={"comment_texts": "x", "comment_scores": "x"})


# --------------------------------------------------------------------------- Hugging Face hub


def test_hf_dataset_not_cached_while_offline() -> None:
    pytest.importorskip("datasets")
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("needs HF_HUB_OFFLINE=1 (set by conftest unless overridden)")
    with pytest.raises(
        ValueError,
        match=r"^hf:nonexistent-org/nonexistent-dataset: the dataset is not in the local Hugging Face cache "
        r"and HF_HUB_OFFLINE is set \(ConnectionError: .{0,250}\)$",
    ):
        load_records("hf:nonexistent-org/nonexistent-dataset")


def test_hf_missing_column_and_empty_split(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    tables = {"train": {"prompt": ["p"], "story": ["s"]}, "test": {"prompt": [], "story": [], "rating": []}}

    def fake_load_dataset(dataset_id: str, split: str):
        return datasets.Dataset.from_dict(tables[split])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    with pytest.raises(
        ValueError, match=r"hf:me/stories \(split train\): missing fields 'rating' \(mapped to comment_scores\); found"
    ):
        load_records("hf:me/stories", layout="per_response", columns=PER_RESPONSE)
    with pytest.raises(ValueError, match=r"hf:me/stories \(split test\): no records"):
        load_records("hf:me/stories", hf_split="test", layout="per_response", columns=PER_RESPONSE)
