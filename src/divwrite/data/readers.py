"""Readers of local source files: each turns a .jsonl, .json, .csv or .parquet file into raw
rows, (where, row) pairs, for `divwrite.data.sources` to map, check and group.

A reader only decodes the file's format: no column mapping, no type checks (those are the
one normalisation path of `sources`, shared by every source kind). What a reader does
check, it reports naming the file and the line or record: bytes that are not UTF-8 (line
and byte offset; a leading UTF-8 BOM is dropped), malformed JSON (where on the line, and
whether the line looks truncated), a CSV row with the wrong number of fields or a repeated
header name, a file that is not Parquet. `READERS` maps a file suffix to its reader.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Python's csv module refuses fields over 128 KiB by default; a story may be longer.
_CSV_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)

# (where, raw row): "where" names the row in error messages, e.g. "data/x.jsonl, line 7".
Row = tuple[str, Any]

# What is left of a line cut off inside a literal or a number ("tr", "fals", "12.", "3e").
_UNFINISHED = re.compile(r"t(r(ue?)?)?|f(a(l(se?)?)?)?|n(u(ll?)?)?|[-+.eE\d]+")


def _json_error(error: json.JSONDecodeError, text: str, what: str = "line", newline: bool = True) -> str:
    """`malformed JSON (<what went wrong> at column c of n)` for `text` (one line without its
    line break, or a whole file), and `: the <what> looks truncated` when the parse stopped at
    the end of the text: an unterminated string, a value or delimiter expected at the end, or a
    literal or number cut short. `newline=False` (the file's last line has none) says so too."""
    lines = text.split("\n")
    end = len(lines[error.lineno - 1].rstrip()) if error.lineno <= len(lines) else 0
    msg = error.msg.removesuffix(" at")  # "Unterminated string starting at", "Invalid control character at"
    msg = msg[:1].lower() + msg[1:]
    if error.colno <= end:
        where = f"at column {error.colno} of {end}"
    else:
        where = f"at the end of the {what}" + (f", after column {end}" if what == "line" else "")
    rest = text[error.pos : len(text.rstrip())]
    truncated = error.msg.startswith("Unterminated string") or not rest or _UNFINISHED.fullmatch(rest) is not None
    message = f"malformed JSON ({msg} {where})"
    if truncated:
        message += f": the {what} looks truncated (cut off before its end"
        message += "; the file ends there, without a final newline)" if not newline else ")"
    return message


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
            # Parsed without its line break: a line cut off inside a string is then an
            # "unterminated string", not an "invalid control character" (the newline).
            content = line.removesuffix("\n").removesuffix("\r")
            try:
                obj = json.loads(content)
            except json.JSONDecodeError as e:
                message = _json_error(e, content, newline=raw.endswith(b"\n"))
                raise ValueError(f"{path}, line {line_no}: {message}") from None
            yield f"{path}, line {line_no}", obj


def _json_rows(path: Path) -> list[Row]:
    """A JSON list of rows."""
    text = _utf8(path.read_bytes(), path)
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}, line {e.lineno}: {_json_error(e, text, what='file')}") from None
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
        raise ValueError(f"{path}: not a readable Parquet file ({short_error(e)})") from None
    return [(f"{path}, record {i}", r) for i, r in enumerate(rows)]


READERS = {".jsonl": _jsonl_rows, ".json": _json_rows, ".csv": _csv_rows, ".parquet": _parquet_rows}


def short_error(error: BaseException) -> str:
    """`Type: first line of the message`, at most 200 characters of message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__
