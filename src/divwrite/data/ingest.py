"""Ingest (METHOD.md step 1): source records -> one row per response, transformed scores,
a train/test split by prompt.

Canonical record, one per prompt (the schema of `euclaise/WritingPrompts_preferences`):
`post_title` (str), `post_text` (str), `comment_texts` (list of str), `comment_scores`
(list of numbers: Reddit upvotes, or any rating where higher is better).

`load_records` reads records from the built-in corpus generator, a local file (.jsonl,
.json, .parquet, .csv) or the Hugging Face hub (`hf:<dataset id>`). A source may name its
columns differently (`columns`: canonical field -> source column, `post_text: None` = no
body column) and may hold one row per response (`layout="per_response"`) instead of one
record per prompt (`"per_prompt"`). Each source kind has a small reader that yields
(location, raw row); one path maps, checks and groups the rows, so that a bad file fails
here, naming the file, line or record, the field (the source's name, and the canonical
one when different) and what was expected, rather than three stages later. Nothing is
returned unless the whole source is good.

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
  numbered on (`records_to_responses`). Counted by `source_stats`.
- all scores equal: `transform_scores` maps them all to 0.
- `post_text` None -> "", a comment text None -> "" (the filter drops it as empty).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from divwrite.core.records import RESPONSE_COLUMNS, held_out_prompts, prompt_id, response_id

if TYPE_CHECKING:  # pragma: no cover
    from divwrite.data.corpus import Corpus

SOURCE_FIELDS = ("post_title", "post_text", "comment_texts", "comment_scores")
LOCAL_EXTENSIONS = (".jsonl", ".json", ".parquet", ".csv")

# One leading tag in square brackets ("[WP]", "[ EU ]", "[OT]"), then the whitespace after it.
_TITLE_TAG = re.compile(r"^\s*\[[^\]\n]*\]\s*")


def strip_title_tag(title: str) -> str:
    """Title without ONE leading square-bracketed tag and without surrounding whitespace
    (METHOD.md step 1): `"[WP] A dragon"` -> `"A dragon"`, `"[WP][EU] x"` -> `"[EU] x"`.

    Only square brackets count as a tag, as on r/WritingPrompts; `"(WP) x"` is kept as is.
    """
    return _TITLE_TAG.sub("", title, count=1).strip()


def build_prompt(title: str, text: str) -> str:
    """Prompt text (METHOD.md step 1): `strip_title_tag(title) + "\\n" + text`.

    The formula is kept literally, also when the post has no body (most WritingPrompts
    posts): the prompt is then the title followed by a single newline. Dropping the
    newline would make prompts differ from the authors' release for no gain; the
    chat template wraps the prompt either way.
    """
    return strip_title_tag(title) + "\n" + text


def transform_scores(scores: Iterable[float] | np.ndarray, iterations: int = 100) -> np.ndarray:
    """Reward-model target in [-1, 1] from raw upvotes (METHOD.md step 1).

    With the global minimum `m` and maximum `M` of `scores`: `x = s - m + 1`; apply
    `x <- log(x + 1)` `iterations` (K) times to every score and to the two bounds
    (`1` and `M - m + 1`); map the bounds to -1 and 1 linearly. All scores equal -> 0.
    The iterated logarithm compresses the heavy upper tail of Reddit upvotes while
    keeping their order (K = 100 in the paper).
    """
    s = np.asarray(scores, dtype=np.float64)
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if s.size == 0:
        return s.copy()
    if not np.all(np.isfinite(s)):
        raise ValueError("transform_scores: scores contain NaN or infinite values")
    m, big_m = s.min(), s.max()
    if m == big_m:
        return np.zeros_like(s)
    # The two bounds ride along with the scores so that they get the very same arithmetic.
    x = np.concatenate([s - m + 1.0, [1.0, big_m - m + 1.0]])
    for _ in range(iterations):
        x = np.log1p(x)
    lo, hi = x[-2], x[-1]
    return np.clip(2.0 * (x[:-2] - lo) / (hi - lo) - 1.0, -1.0, 1.0)


# --------------------------------------------------------------------------- loading

LAYOUTS = ("per_prompt", "per_response")
_IDENTITY: dict[str, str | None] = {f: f for f in SOURCE_FIELDS}
# Python's csv module refuses fields over 128 KiB by default; a story may be longer.
_CSV_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)

# (where, raw row): "where" names the row in error messages, e.g. "data/x.jsonl, line 7".
Row = tuple[str, Any]
# Canonical field -> the source's column (None: the source has no such column).
Columns = Mapping[str, str | None]


def _resolve_columns(columns: Mapping[str, str | None] | None) -> dict[str, str | None]:
    """Canonical field -> source column for all four fields (missing keys: the identity)."""
    if columns is None:
        return dict(_IDENTITY)
    if not isinstance(columns, Mapping):
        raise ValueError(f"columns must be a mapping of field -> source column, got {type(columns).__name__}")
    unknown = [k for k in columns if k not in SOURCE_FIELDS]
    if unknown:
        raise ValueError(f"columns: unknown fields {unknown}; the fields are {list(SOURCE_FIELDS)}")
    resolved = {f: columns.get(f, f) for f in SOURCE_FIELDS}
    for canonical, name in resolved.items():
        if name is None and canonical == "post_text":
            continue
        if not isinstance(name, str) or not name:
            also = " or None (no body column)" if canonical == "post_text" else ""
            raise ValueError(f"columns.{canonical} must be a column name{also}, got {name!r}")
    names = [n for n in resolved.values() if n is not None]
    shared = sorted({n for n in names if names.count(n) > 1})
    if shared:
        raise ValueError(f"columns: several fields map to the same source column(s) {shared}")
    return resolved


@dataclass(frozen=True)
class SourceSpec:
    """Where the records come from: `source` (`"builtin"`, a local .jsonl/.json/.parquet/.csv
    file or `"hf:<dataset id>"`), the hub split `hf_split`, the `layout` (`"per_prompt"` or
    `"per_response"`) and `columns` (canonical field -> source column; completed with the
    identity on construction, so `spec.columns` always has the four fields).
    Checked on construction; the file itself is checked by `load_records_from_spec`.
    """

    source: str
    hf_split: str = "train"
    layout: str = "per_prompt"
    columns: Mapping[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("source", "hf_split"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {list(LAYOUTS)}, got {self.layout!r}")
        object.__setattr__(self, "columns", _resolve_columns(self.columns))

    @classmethod
    def from_params(cls, data: Mapping[str, Any]) -> SourceSpec:
        """The spec of a params.yaml `data:` section (keys: `source`, required; `hf_split`,
        `layout`, `columns`, optional). Unknown keys -> ValueError listing them."""
        known = ("source", "hf_split", "layout", "columns")
        if not isinstance(data, Mapping):
            raise ValueError(f"data: expected a mapping with keys {list(known)}, got {type(data).__name__}")
        unknown = [k for k in data if k not in known]
        if unknown:
            raise ValueError(f"data: unknown keys {unknown}; the keys are {list(known)}")
        if "source" not in data:
            raise ValueError("data.source is missing: 'builtin', a local file or 'hf:<dataset id>'")
        return cls(**{k: data[k] for k in known if k in data})


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
    is a full canonical -> source map as in `SourceSpec.columns` (None: the identity).
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
    if layout == "per_prompt":
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


def _utf8(raw: bytes, path: Path, line: int = 1, offset: int = 0) -> str:
    """`raw` (starting at `line` and byte `offset` of `path`) decoded; a leading BOM is dropped."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line += raw.count(b"\n", 0, e.start)
        raise ValueError(
            f"{path}, line {line}: byte {raw[e.start]:#04x} at byte offset {offset + e.start} is not valid "
            "UTF-8; the file must be UTF-8 encoded"
        ) from None


def _jsonl_rows(path: Path) -> Iterator[Row]:
    """One JSON object a line; blank lines are skipped. Decoded line by line."""
    offset = 0
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            line = _utf8(raw, path, line_no, offset)
            offset += len(raw)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {line_no}: malformed JSON ({e.msg} at column {e.colno})") from None
            yield f"{path}, line {line_no}", obj


def _json_rows(path: Path) -> list[Row]:
    """A JSON list of rows."""
    text = _utf8(path.read_bytes(), path)
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}, line {e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return [(f"{path}, record {i}", r) for i, r in enumerate(data)]


def _csv_rows(path: Path) -> list[Row]:
    """A header line, then one row a record, every cell text; blank lines are skipped.
    Rows are named by the line they start on (a quoted cell may span lines)."""
    text = _utf8(path.read_bytes(), path)
    header: list[str] | None = None
    rows: list[Row] = []
    old_limit = csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        last_line = 0
        for cells in reader:
            where, last_line = f"{path}, line {last_line + 1}", reader.line_num
            if not cells:
                continue
            if header is None:
                header = cells
                repeated = sorted({c for c in cells if cells.count(c) > 1})
                if repeated:
                    raise ValueError(f"{where}: repeated column names {repeated} in the header")
                continue
            if len(cells) != len(header):
                raise ValueError(f"{where}: {len(cells)} fields, but the header has {len(header)}")
            rows.append((where, dict(zip(header, cells))))
    except csv.Error as e:
        raise ValueError(f"{path}, line {reader.line_num}: malformed CSV ({e})") from None
    finally:
        csv.field_size_limit(old_limit)
    return rows


def _parquet_rows(path: Path) -> list[Row]:
    """Rows as plain Python values (a null is None, a list column a list)."""
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise ValueError(f"{path}: not a readable Parquet file ({_short(e)})") from None
    return [(f"{path}, record {i}", r) for i, r in enumerate(rows)]


_READERS = {".jsonl": _jsonl_rows, ".json": _json_rows, ".csv": _csv_rows, ".parquet": _parquet_rows}


def _short(error: BaseException) -> str:
    """`Type: first line of the message`, at most 200 characters of message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


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
            f"hf:{dataset_id}: the dataset is not in the local Hugging Face cache and {why} ({_short(e)})"
        ) from None
    except ValueError as e:  # e.g. an unknown split
        raise ValueError(f"{label}: {_short(e)}") from None
    missing = [_name(columns, c) for c, n in columns.items() if n is not None and n not in ds.column_names]
    if missing:
        raise ValueError(f"{label}: missing fields {', '.join(missing)}; found {ds.column_names}")
    rows = ds.select_columns([n for n in columns.values() if n is not None]).to_list()
    return [(f"{label}, record {i}", r) for i, r in enumerate(rows)]


def load_records_from_spec(
    spec: SourceSpec, *, corpus: dict[str, Any] | None = None, seed: int = 42
) -> tuple[list[dict[str, Any]], Corpus | None]:
    """Canonical per-prompt records of `spec`'s source and, for the built-in corpus, the
    generator's `Corpus` (else None).

    `"builtin"`: `divwrite.data.corpus.generate_corpus(**corpus, seed=seed)` (layout and
    columns do not apply). A local file: `.jsonl` one row a line, `.json` a list of rows,
    `.parquet`, or `.csv` (per_prompt: the list fields as JSON arrays). `"hf:<id>"`:
    `datasets.load_dataset(id, split=spec.hf_split)`. Rows are mapped, checked and, for
    the per_response layout, grouped as the module docstring says.
    """
    if spec.source == "builtin":
        from divwrite.data.corpus import generate_corpus

        generated = generate_corpus(**(corpus or {}), seed=seed)
        records = [normalise_record(r, f"builtin corpus, record {i}") for i, r in enumerate(generated.records)]
        return records, generated
    if spec.source.startswith("hf:"):
        dataset_id = spec.source[len("hf:") :]
        if not dataset_id:
            raise ValueError("source 'hf:' names no dataset; use e.g. 'hf:euclaise/WritingPrompts_preferences'")
        rows = _hf_rows(dataset_id, spec.hf_split, spec.columns)
        label, text_cells = f"hf:{dataset_id} (split {spec.hf_split})", False
    else:
        path = Path(spec.source)
        suffix = path.suffix.lower()
        if path.is_dir():
            raise FileNotFoundError(f"{path}: is a directory, not a file ending in {', '.join(LOCAL_EXTENSIONS)}")
        if suffix not in _READERS:
            raise ValueError(
                f"{spec.source}: unknown source; use 'builtin', 'hf:<dataset id>' or a file ending in "
                f"{', '.join(LOCAL_EXTENSIONS)}"
            )
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (the data source in params.yaml)")
        if path.stat().st_size == 0:
            raise ValueError(f"{path}: no records (empty file)")
        rows = _READERS[suffix](path)
        label, text_cells = str(path), suffix == ".csv"
    return _records_from_rows(rows, label, spec.layout, spec.columns, text_cells), None


def load_records(
    source: str,
    *,
    hf_split: str = "train",
    layout: str = "per_prompt",
    columns: Mapping[str, str | None] | None = None,
    corpus: dict[str, Any] | None = None,
    seed: int = 42,
) -> tuple[list[dict[str, Any]], Corpus | None]:
    """`load_records_from_spec(SourceSpec(source, hf_split, layout, columns), ...)`.

    `layout`: `"per_prompt"` (one record per prompt, list fields) or `"per_response"` (one
    row per response: `comment_texts` a text column, `comment_scores` a number column).
    `columns`: canonical field -> source column, missing keys the identity, `post_text:
    None` for a source without body column; unknown fields -> ValueError. The records
    returned always carry the canonical field names.
    """
    spec = SourceSpec(source, hf_split, layout, {} if columns is None else columns)
    return load_records_from_spec(spec, corpus=corpus, seed=seed)


def source_stats(records: list[Mapping[str, Any]]) -> dict[str, int]:
    """Counts of loaded records for the ingest metrics: `records`,
    `records_without_responses` (empty `comment_texts`), `duplicate_prompt_records`
    (records whose (title, body) repeats an earlier record's; merged into that prompt by
    `records_to_responses`) and `responses` (all comments)."""
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


# --------------------------------------------------------------------------- tables


def records_to_responses(records: list[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per comment, columns `RESPONSE_COLUMNS` without `score`.

    `prompt_id` hashes the raw title and text; `response_id` uses the comment's index in
    its source record, so ids stay the same whatever is filtered out later. Records with
    the same title and text (reposts) are one prompt: the comments of a later record are
    numbered after those of the earlier ones, so ids stay unique.
    """
    rows: dict[str, list[Any]] = {c: [] for c in RESPONSE_COLUMNS if c != "score"}
    next_index: dict[str, int] = {}
    for i, raw in enumerate(records):
        rec = normalise_record(raw, f"record {i}")
        pid = prompt_id(rec["post_title"], rec["post_text"])
        prompt = build_prompt(rec["post_title"], rec["post_text"])
        start = next_index.get(pid, 0)
        for j, (text, upvotes) in enumerate(zip(rec["comment_texts"], rec["comment_scores"])):
            rows["prompt_id"].append(pid)
            rows["prompt"].append(prompt)
            rows["response_id"].append(response_id(pid, start + j))
            rows["response"].append(text)
            rows["upvotes"].append(upvotes)
        next_index[pid] = start + len(rec["comment_texts"])
    df = pd.DataFrame(rows)
    df["upvotes"] = df["upvotes"].astype(np.float64)
    return df


def split_by_prompt(df: pd.DataFrame, test_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train/test split by prompt, never by response (METHOD.md step 1).

    The test prompts are `held_out_prompts(prompt ids, test_fraction, seed)`. Both outputs
    are sorted by prompt id, responses of a prompt kept in their input order, index reset.
    """
    test_ids = held_out_prompts(df["prompt_id"], test_fraction, seed, param="test_fraction")
    ordered = df.sort_values("prompt_id", kind="stable")
    is_test = ordered["prompt_id"].isin(test_ids)
    return ordered[~is_test].reset_index(drop=True), ordered[is_test].reset_index(drop=True)


def ingest(
    records: list[Mapping[str, Any]],
    test_fraction: float,
    transform_iterations: int,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """METHOD.md step 1: responses table with transformed scores, split by prompt.

    The score transform uses the global minimum and maximum over ALL responses, before
    the split, so train and test scores are on one scale.
    """
    df = records_to_responses(records)
    df["score"] = transform_scores(df["upvotes"].to_numpy(), iterations=transform_iterations)
    train, test = split_by_prompt(df[RESPONSE_COLUMNS], test_fraction, seed)
    return train, test
