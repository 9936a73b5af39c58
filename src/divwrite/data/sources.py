"""Sources: reading a data source into canonical per-prompt records (the input of METHOD.md
step 1, `divwrite.data.ingest`).

Canonical record, one per prompt (the schema of `euclaise/WritingPrompts_preferences`):
`post_title` (str), `post_text` (str), `comment_texts` (list of str), `comment_scores`
(list of numbers: Reddit upvotes, or any rating where higher is better).

`load_records` reads records from the built-in corpus generator, a local file (.jsonl,
.json, .parquet, .csv) or the Hugging Face hub (`hf:<dataset id>`). A source may name its
columns differently (`columns`: canonical field -> source column, `post_text: None` = no
body column) and may hold one row per response (`layout="per_response"`) instead of one
record per prompt (`"per_prompt"`), or one row per judged pair and no scores (`"pairs"`:
`prompt`, `chosen`, `rejected`, optional `margin`; read into pair records, `normalise_pair`,
which `divwrite.data.pairs` ingests). Each source kind has a small reader that yields
(location, raw row) (the file readers are in `divwrite.data.readers`, the hub's is here);
one path maps, checks and groups the rows, so that a bad file fails here, naming the
file, line or record, the field (the source's name, and the canonical one when different)
and what was expected, rather than three stages later. Nothing is returned unless the
whole source is good.

Bad input, and what happens:
- malformed JSON (a JSONL line, a .json file, a JSON-array cell of a per_prompt CSV), a
  CSV row with the wrong number of fields, a file that is not Parquet: ValueError.
- a missing field or column: ValueError.
- a wrong type, e.g. a score given as the text "12" in JSON or Parquet: ValueError, no
  coercion. Only per_response CSV scores, text by nature, are parsed with `float()`.
- a NaN or infinite score (JSON `NaN`/`Infinity`, Parquet NaN or null, CSV "nan"):
  ValueError.
- texts and scores of different lengths: ValueError.
- bytes that are not UTF-8 in a JSONL, JSON or CSV file: ValueError with the line and
  byte offset (a leading UTF-8 BOM is dropped). Parquet strings are UTF-8 by construction.
- an empty source (0 bytes, only blank lines, `[]`, a CSV header alone, 0 Parquet rows, an
  empty hub split): ValueError "<source>: no records".
- a path that does not exist, or a directory: FileNotFoundError.
- `hf:<id>` neither in the local Hugging Face cache nor reachable (HF_HUB_OFFLINE set, no
  network, no such dataset): ValueError saying so.
- a record without responses (`comment_texts: []`): kept; it contributes no rows.
  Counted by `source_stats`.
- a prompt with one response, an absurdly long response: kept; the filter stage drops
  prompts with < 2 responses and responses over the token budget.
- several records with the same title and body (reposts): one prompt, their comments
  numbered on (`ingest.records_to_responses`). Counted by `source_stats`.
- all scores equal: `ingest.transform_scores` maps them all to 0.
- `post_text` None -> "", a comment text None -> "" (the filter drops it as empty).

The pairs layout is stricter, since a pair is one judgement: a prompt, chosen or rejected
that is not a string (None included) or is empty (whitespace only), chosen and rejected the
same text, a margin that is not a finite number (text is parsed only in CSV) or is negative:
ValueError naming the file, line and field. The same pair given twice, or both ways
(raters disagree), is kept as given and counted by `source_stats`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from divwrite.core.params import parse_section
from divwrite.core.schema import DataParams
from divwrite.data.readers import READERS, Row, short_error

if TYPE_CHECKING:  # pragma: no cover
    from divwrite.data.corpus.generator import Corpus

SOURCE_FIELDS = ("post_title", "post_text", "comment_texts", "comment_scores")
LOCAL_EXTENSIONS = (".jsonl", ".json", ".parquet", ".csv")

_IDENTITY: dict[str, str | None] = {f: f for f in SOURCE_FIELDS}
# Canonical field -> the source's column (None: the source has no such column).
Columns = Mapping[str, str | None]


def _is_number(value: Any) -> bool:
    return isinstance(value, (Real, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _name(columns: Columns, canonical: str, index: int | None = None) -> str:
    """A field as error messages show it: the source's name, plus the canonical one when different."""
    name = columns[canonical]
    shown = repr(name) + ("" if index is None else f"[{index}]")
    return shown if name == canonical else f"{shown} (mapped to {canonical})"


def _check_fields(record: Any, where: str, columns: Columns) -> None:
    if not isinstance(record, Mapping):
        wanted = [n for n in columns.values() if n is not None]
        raise ValueError(f"{where}: expected a mapping with fields {wanted}, got {type(record).__name__}")
    for canonical, name in columns.items():
        if name is not None and name not in record:
            mapped = f"mapped to {canonical}; " if name != canonical else ""
            raise ValueError(f"{where}: missing field {name!r} ({mapped}fields present: {sorted(map(str, record))})")


def _string(
    value: Any, where: str, columns: Columns, canonical: str, index: int | None = None, none_as_empty: bool = False
) -> str:
    """`value` if it is a string ("" for None when `none_as_empty`), else ValueError naming the field."""
    if value is None and none_as_empty:
        return ""
    if not isinstance(value, str):
        name = _name(columns, canonical, index)
        raise ValueError(f"{where}: field {name} must be a string, got {type(value).__name__}")
    return value


def _score(
    value: Any, where: str, columns: Columns, canonical: str, index: int | None = None, parse_text: bool = False
) -> float:
    """A finite score; text is parsed with `float()` only when `parse_text` (CSV cells)."""
    try:
        number = float(value) if parse_text and isinstance(value, str) else value
        finite = _is_number(number) and math.isfinite(float(number))
    except (ValueError, OverflowError):  # text that is no number; an int too large for a float
        finite = False
    if not finite:
        name = _name(columns, canonical, index)
        raise ValueError(f"{where}: field {name} must be a finite number, got {value!r}")
    return float(number)


def normalise_record(record: Any, where: str, columns: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """One per-prompt source record checked and normalised to the canonical fields and
    plain Python types.

    `where` names the record in error messages (e.g. `"data/x.jsonl, line 7"`); `columns`
    is a full canonical -> source map as in `DataParams.columns` (None: the identity).
    `post_text` None or unmapped (a post without body) becomes "", a comment text None
    becomes "" (the filter then counts it as empty). Raises ValueError on a missing field,
    a wrong type, texts and scores of different lengths, or a score that is not a finite
    number.
    """
    cols = _IDENTITY if columns is None else columns
    _check_fields(record, where, cols)
    title = _string(record[cols["post_title"]], where, cols, "post_title")
    body_col = cols["post_text"]
    text = "" if body_col is None else _string(record[body_col], where, cols, "post_text", none_as_empty=True)
    texts, scores = record[cols["comment_texts"]], record[cols["comment_scores"]]
    for canonical, value in (("comment_texts", texts), ("comment_scores", scores)):
        if not isinstance(value, (list, tuple, np.ndarray)):
            raise ValueError(f"{where}: field {_name(cols, canonical)} must be a list, got {type(value).__name__}")
    if len(texts) != len(scores):
        raise ValueError(
            f"{where}: {_name(cols, 'comment_texts')} has {len(texts)} items "
            f"but {_name(cols, 'comment_scores')} has {len(scores)}"
        )
    return {
        "post_title": title,
        "post_text": text,
        "comment_texts": [_string(t, where, cols, "comment_texts", j, none_as_empty=True) for j, t in enumerate(texts)],
        "comment_scores": [_score(s, where, cols, "comment_scores", j) for j, s in enumerate(scores)],
    }


def normalise_pair(row: Any, where: str, columns: Columns, parse_text: bool = False) -> dict[str, Any]:
    """One row of the pairs layout, checked: `{"prompt", "chosen", "rejected": str, "margin": float
    or None (no margin column)}`. `columns` maps `prompt`, `chosen`, `rejected`, `margin` to the
    source's columns (`margin` None: none); `parse_text` parses a text margin (CSV cells). Raises
    ValueError as the module docstring says (pairs layout)."""
    _check_fields(row, where, columns)
    pair: dict[str, Any] = {}
    for canonical in ("prompt", "chosen", "rejected"):
        pair[canonical] = _string(row[columns[canonical]], where, columns, canonical)
        if not pair[canonical].strip():
            raise ValueError(f"{where}: field {_name(columns, canonical)} is empty")
    if pair["chosen"] == pair["rejected"]:
        raise ValueError(
            f"{where}: fields {_name(columns, 'chosen')} and {_name(columns, 'rejected')} hold the same text; "
            "a pair must compare two different responses"
        )
    pair["margin"] = None
    if columns.get("margin") is not None:
        pair["margin"] = _score(row[columns["margin"]], where, columns, "margin", parse_text=parse_text)
        if pair["margin"] < 0:
            raise ValueError(f"{where}: field {_name(columns, 'margin')} must be >= 0 (chosen is the better one)")
    return pair


def _response_row(row: Any, where: str, columns: Columns, text_cells: bool) -> tuple[str, str, str, float]:
    """(title, body, text, score) of one per-response row."""
    _check_fields(row, where, columns)
    title = _string(row[columns["post_title"]], where, columns, "post_title")
    body_col = columns["post_text"]
    body = "" if body_col is None else _string(row[body_col], where, columns, "post_text", none_as_empty=True)
    text = _string(row[columns["comment_texts"]], where, columns, "comment_texts", none_as_empty=True)
    score = _score(row[columns["comment_scores"]], where, columns, "comment_scores", parse_text=text_cells)
    return title, body, text, score


def _json_cells(row: dict[str, str], where: str, columns: Columns) -> dict[str, Any]:
    """A per-prompt CSV row with its two list columns decoded from JSON arrays."""
    row = dict(row)
    for canonical in ("comment_texts", "comment_scores"):
        name = columns[canonical]
        if name in row:
            try:
                row[name] = json.loads(row[name])
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: field {_name(columns, canonical)} must be a JSON array ({e.msg})") from None
    return row


def _records_from_rows(
    rows: Iterable[Row], label: str, layout: str, columns: Columns, text_cells: bool
) -> list[dict[str, Any]]:
    """Canonical per-prompt records from raw rows: the one normalisation path of every source.

    `text_cells` (CSV): every cell is text, so per_prompt list fields hold JSON arrays
    and per_response scores are parsed with `float()`. per_response rows are grouped by
    (title, body) in order of first appearance, responses in row order.
    """
    if layout == "pairs":
        records = [normalise_pair(row, where, columns, parse_text=text_cells) for where, row in rows]
    elif layout == "per_prompt":
        records = [
            normalise_record(_json_cells(row, where, columns) if text_cells else row, where, columns)
            for where, row in rows
        ]
    else:
        grouped: dict[tuple[str, str], dict[str, Any]] = {}
        for where, row in rows:
            title, body, text, score = _response_row(row, where, columns, text_cells)
            rec = grouped.setdefault(
                (title, body), {"post_title": title, "post_text": body, "comment_texts": [], "comment_scores": []}
            )
            rec["comment_texts"].append(text)
            rec["comment_scores"].append(score)
        records = list(grouped.values())
    if not records:
        raise ValueError(f"{label}: no records")
    return records


def _hf_rows(dataset_id: str, split: str, columns: Columns) -> list[Row]:
    """Rows of a Hugging Face dataset split (needs the hub or the local HF cache)."""
    import datasets

    label = f"hf:{dataset_id} (split {split})"
    try:
        ds = datasets.load_dataset(dataset_id, split=split)
    except OSError as e:  # ConnectionError (offline, no network), FileNotFoundError (no such dataset)
        offline = any(
            os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
            for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
        )
        why = "HF_HUB_OFFLINE is set" if offline else "the hub is unreachable or has no such dataset"
        raise ValueError(
            f"hf:{dataset_id}: the dataset is not in the local Hugging Face cache and {why} ({short_error(e)})"
        ) from None
    except ValueError as e:  # e.g. an unknown split
        raise ValueError(f"{label}: {short_error(e)}") from None
    missing = [_name(columns, c) for c, n in columns.items() if n is not None and n not in ds.column_names]
    if missing:
        raise ValueError(f"{label}: missing fields {', '.join(missing)}; found {ds.column_names}")
    rows = ds.select_columns([n for n in columns.values() if n is not None]).to_list()
    return [(f"{label}, record {i}", r) for i, r in enumerate(rows)]


def load_records_from_spec(
    spec: DataParams, *, corpus: dict[str, Any] | None = None, seed: int = 42
) -> tuple[list[dict[str, Any]], Corpus | None]:
    """Canonical per-prompt records of the source `spec` describes (params.yaml `data:`), pair records
    for the pairs layout (`normalise_pair`), and, for the built-in corpus, the generator's `Corpus`
    (else None).

    `"builtin"`: `divwrite.data.corpus.generator.generate_corpus(**corpus, seed=seed)`
    (layout and columns do not apply). A local file: `.jsonl` one row a line, `.json` a
    list of rows, `.parquet`, or `.csv` (per_prompt: the list fields as JSON arrays).
    `"hf:<id>"`: `datasets.load_dataset(id, split=spec.hf_split)`. Rows are mapped,
    checked and, for the per_response layout, grouped as the module docstring says.
    """
    columns = spec.columns.of_layout(spec.layout)
    if spec.source == "builtin":
        from divwrite.data.corpus.generator import generate_corpus

        generated = generate_corpus(**(corpus or {}), seed=seed)
        records = [normalise_record(r, f"builtin corpus, record {i}") for i, r in enumerate(generated.records)]
        return records, generated
    if spec.source.startswith("hf:"):
        dataset_id = spec.source[len("hf:") :]
        if not dataset_id:
            raise ValueError("source 'hf:' names no dataset; use e.g. 'hf:euclaise/WritingPrompts_preferences'")
        rows = _hf_rows(dataset_id, spec.hf_split, columns)
        label, text_cells = f"hf:{dataset_id} (split {spec.hf_split})", False
    else:
        path = Path(spec.source)
        suffix = path.suffix.lower()
        if path.is_dir():
            raise FileNotFoundError(f"{path}: is a directory, not a file ending in {', '.join(LOCAL_EXTENSIONS)}")
        if suffix not in READERS:
            raise ValueError(
                f"{spec.source}: unknown source; use 'builtin', 'hf:<dataset id>' or a file ending in "
                f"{', '.join(LOCAL_EXTENSIONS)}"
            )
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (the data source in params.yaml)")
        if path.stat().st_size == 0:
            raise ValueError(f"{path}: no records (empty file)")
        rows = READERS[suffix](path)
        label, text_cells = str(path), suffix == ".csv"
    return _records_from_rows(rows, label, spec.layout, columns, text_cells), None


def load_records(
    source: str,
    *,
    hf_split: str = "train",
    layout: str = "per_prompt",
    columns: Mapping[str, str | None] | None = None,
    corpus: dict[str, Any] | None = None,
    seed: int = 42,
) -> tuple[list[dict[str, Any]], Corpus | None]:
    """`load_records_from_spec` of the `DataParams` these arguments make (checked as params.yaml's
    `data:` would be: `ParamsError`, a ValueError, names a bad field).

    `layout`: `"per_prompt"` (one record per prompt, list fields), `"per_response"` (one
    row per response: `comment_texts` a text column, `comment_scores` a number column) or
    `"pairs"` (one row per judged pair: pair records, `normalise_pair`).
    `columns`: canonical field -> source column, missing keys the identity, `post_text:
    None` for a source without body column; unknown fields -> ValueError. The records
    returned always carry the canonical field names.
    """
    raw = {"source": source, "hf_split": hf_split, "layout": layout, "columns": dict(columns or {})}
    spec = parse_section(DataParams, raw, label="data")
    return load_records_from_spec(spec, corpus=corpus, seed=seed)


def source_stats(records: list[Mapping[str, Any]]) -> dict[str, int]:
    """Counts of loaded records for the ingest metrics (pair records: `pair_source_stats`): `records`,
    `records_without_responses` (empty `comment_texts`), `duplicate_prompt_records`
    (records whose (title, body) repeats an earlier record's; merged into that prompt by
    `records_to_responses`) and `responses` (all comments)."""
    if records and "chosen" in records[0]:
        return pair_source_stats(records)
    seen: set[tuple[str, str]] = set()
    duplicates = empty = responses = 0
    for rec in records:
        key = (rec["post_title"], rec["post_text"] or "")
        duplicates += key in seen
        seen.add(key)
        n = len(rec["comment_texts"])
        empty += n == 0
        responses += n
    return {
        "records": len(records),
        "records_without_responses": empty,
        "duplicate_prompt_records": duplicates,
        "responses": responses,
    }


def pair_source_stats(pairs: list[Mapping[str, Any]]) -> dict[str, int]:
    """Counts of loaded pair records (the pairs layout): `records` (given pairs), `prompts`,
    `responses` (distinct texts per prompt), `duplicate_pairs` (a (prompt, chosen, rejected)
    given again), `reversed_pairs` (a pair also given the other way round: raters disagree)
    and `pairs_with_margin`. Duplicates and reversals are kept as given."""
    seen: set[tuple[str, str, str]] = set()
    duplicates = 0
    for p in pairs:
        key = (p["prompt"], p["chosen"], p["rejected"])
        duplicates += key in seen
        seen.add(key)
    return {
        "records": len(pairs),
        "prompts": len({p["prompt"] for p in pairs}),
        "responses": len({(p["prompt"], p[side]) for p in pairs for side in ("chosen", "rejected")}),
        "duplicate_pairs": duplicates,
        "reversed_pairs": sum((p["prompt"], p["rejected"], p["chosen"]) in seen for p in pairs),
        "pairs_with_margin": sum(p["margin"] is not None for p in pairs),
    }
