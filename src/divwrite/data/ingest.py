"""Ingest (METHOD.md step 1): source records -> one row per response, transformed scores,
a train/test split by prompt.

The records are canonical per-prompt records as `divwrite.data.sources` reads them
(`load_records`): `post_title`, `post_text`, `comment_texts`, `comment_scores`. Here the
title loses its tag and becomes the prompt with the post text (`build_prompt`), every
comment becomes a row with stable ids (`records_to_responses`; reposts of one prompt are
merged into it), the upvotes are transformed to [-1, 1] (`transform_scores`; all scores
equal -> 0) and the table is split by prompt (`split_by_prompt`). `ingest` does all of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from divwrite.core.records import RESPONSE_COLUMNS, held_out_prompts, prompt_id, response_id
from divwrite.data.sources import normalise_record

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

    The test prompts are `held_out_prompts(prompt ids, test_fraction, seed)`: each prompt's
    side is a hash of its id (of its text) and `seed`, so appending data to a source never
    moves an earlier prompt. Both outputs are sorted by prompt id, responses of a prompt kept
    in their input order, index reset.
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
