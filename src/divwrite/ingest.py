"""Ingest (METHOD.md step 1): source records -> one row per response, transformed scores,
a train/test split by prompt.

Source schema, one record per prompt (as in `euclaise/WritingPrompts_preferences`):
`post_title` (str), `post_text` (str), `comment_texts` (list of str),
`comment_scores` (list of numbers, Reddit upvotes). Extra fields are ignored.

`load_records` reads them from the built-in corpus generator, a local file or the
Hugging Face hub and checks every record, so that a bad file fails here with its name,
record and field rather than three stages later.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from divwrite.records import RESPONSE_COLUMNS, prompt_id, response_id

if TYPE_CHECKING:  # pragma: no cover
    from divwrite.corpus import Corpus

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


def _is_number(value: Any) -> bool:
    return isinstance(value, (Real, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def normalise_record(record: Any, where: str) -> dict[str, Any]:
    """One source record checked and normalised to plain Python types.

    `where` names the record in error messages (e.g. `"data/x.jsonl, line 7"`).
    `post_text` None (a post without body) becomes "", a comment text None becomes ""
    (the filter then counts it as empty). Raises ValueError on a missing field, a wrong
    type, texts and scores of different lengths, or a score that is not a finite number.
    """
    if not isinstance(record, Mapping):
        raise ValueError(f"{where}: expected a mapping with fields {list(SOURCE_FIELDS)}, got {type(record).__name__}")
    for field in SOURCE_FIELDS:
        if field not in record:
            raise ValueError(f"{where}: missing field {field!r} (fields present: {sorted(record)})")
    title, text = record["post_title"], record["post_text"]
    if text is None:
        text = ""
    if not isinstance(title, str):
        raise ValueError(f"{where}: field 'post_title' must be a string, got {type(title).__name__}")
    if not isinstance(text, str):
        raise ValueError(f"{where}: field 'post_text' must be a string, got {type(text).__name__}")
    texts, scores = record["comment_texts"], record["comment_scores"]
    for field, value in (("comment_texts", texts), ("comment_scores", scores)):
        if not isinstance(value, (list, tuple, np.ndarray)):
            raise ValueError(f"{where}: field {field!r} must be a list, got {type(value).__name__}")
    if len(texts) != len(scores):
        raise ValueError(
            f"{where}: 'comment_texts' has {len(texts)} items but 'comment_scores' has {len(scores)}"
        )
    clean_texts = []
    for j, t in enumerate(texts):
        if t is None:
            t = ""
        if not isinstance(t, str):
            raise ValueError(f"{where}: field 'comment_texts'[{j}] must be a string, got {type(t).__name__}")
        clean_texts.append(t)
    clean_scores = []
    for j, s in enumerate(scores):
        if not _is_number(s) or not math.isfinite(float(s)):
            raise ValueError(f"{where}: field 'comment_scores'[{j}] must be a finite number, got {s!r}")
        clean_scores.append(float(s))
    return {"post_title": title, "post_text": text, "comment_texts": clean_texts, "comment_scores": clean_scores}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {line_no}: malformed JSON ({e.msg} at column {e.colno})") from None
            records.append(normalise_record(obj, f"{path}, line {line_no}"))
    return records


def _read_json(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}, line {e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return [normalise_record(r, f"{path}, record {i}") for i, r in enumerate(data)]


def _read_csv(path: Path) -> list[dict[str, Any]]:
    """CSV with one row per prompt; the two list columns hold JSON arrays."""
    df = pd.read_csv(path, keep_default_na=False, dtype=str)
    records = []
    for i, row in enumerate(df.to_dict("records")):
        where = f"{path}, record {i} (line {i + 2})"
        for field in ("comment_texts", "comment_scores"):
            if field in row:
                try:
                    row[field] = json.loads(row[field])
                except json.JSONDecodeError as e:
                    raise ValueError(f"{where}: field {field!r} is not a JSON array ({e.msg})") from None
        records.append(normalise_record(row, where))
    return records


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    df = pd.read_parquet(path)
    return [normalise_record(r, f"{path}, record {i}") for i, r in enumerate(df.to_dict("records"))]


_READERS = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet}


def _load_hf(dataset_id: str, split: str) -> list[dict[str, Any]]:
    """Records of a Hugging Face dataset (needs the hub or a local HF cache)."""
    import datasets

    ds = datasets.load_dataset(dataset_id, split=split)
    missing = [f for f in SOURCE_FIELDS if f not in ds.column_names]
    if missing:
        raise ValueError(f"hf:{dataset_id} (split {split}): missing fields {missing}; found {ds.column_names}")
    rows = ds.select_columns(list(SOURCE_FIELDS)).to_list()
    return [normalise_record(r, f"hf:{dataset_id} (split {split}), record {i}") for i, r in enumerate(rows)]


def load_records(
    source: str,
    *,
    hf_split: str = "train",
    corpus: dict[str, Any] | None = None,
    seed: int = 42,
) -> tuple[list[dict[str, Any]], Corpus | None]:
    """Source records and, for the built-in corpus, the generator's `Corpus` (else None).

    `source` is `"builtin"` (`divwrite.corpus.generate_corpus(**corpus, seed=seed)`), a
    local file (`.jsonl` one record per line, `.json` a list of records, `.parquet`, or
    `.csv` with the list fields as JSON arrays), or `"hf:<dataset id>"` (loaded with
    `datasets.load_dataset(id, split=hf_split)`). Every record is checked with
    `normalise_record`.
    """
    if source == "builtin":
        from divwrite.corpus import generate_corpus

        generated = generate_corpus(**(corpus or {}), seed=seed)
        records = [normalise_record(r, f"builtin corpus, record {i}") for i, r in enumerate(generated.records)]
        return records, generated
    if source.startswith("hf:"):
        dataset_id = source[len("hf:") :]
        if not dataset_id:
            raise ValueError("source 'hf:' names no dataset; use e.g. 'hf:euclaise/WritingPrompts_preferences'")
        return _load_hf(dataset_id, hf_split), None
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise ValueError(
            f"{source}: unknown source; use 'builtin', 'hf:<dataset id>' or a file ending in "
            f"{', '.join(LOCAL_EXTENSIONS)}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (ingest.source in params.yaml)")
    return _READERS[suffix](path), None


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


def held_out_prompts(prompt_ids: Iterable[str], fraction: float, seed: int, param: str = "fraction") -> set[str]:
    """The held-out prompt ids: a seeded draw of `round(fraction * n_prompts)` from the
    sorted distinct ids, so it depends only on the set of prompts and the seed, not on row
    order. With at least two prompts and `0 < fraction < 1` each side gets at least one.
    `param` names the setting in the error message.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"{param} must be in [0, 1), got {fraction}")
    prompts = np.array(sorted(set(prompt_ids)), dtype=object)
    n = len(prompts)
    n_held = int(round(fraction * n))
    if fraction > 0 and n >= 2:
        n_held = min(max(n_held, 1), n - 1)
    rng = np.random.default_rng(seed)
    return set(prompts[rng.permutation(n)[:n_held]])


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
