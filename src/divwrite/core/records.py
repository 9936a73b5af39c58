"""Record schemas shared by the stages, stable ids and per-prompt randomness, and atomic table I/O.

Every table between stages is a Parquet file in *long* format (one row per response or
per pair). Writes go to a temporary file in the destination folder and are renamed into
place, so a failed stage never leaves a half-written output behind.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from divwrite.core.files import atomic_path

# One row per response (ingest and filter outputs).
RESPONSE_COLUMNS = [
    "prompt_id",  # str: stable id of the prompt, see `prompt_id()`
    "prompt",  # str: title without its leading tag + "\n" + post text (METHOD.md step 1)
    "response_id",  # str: f"{prompt_id}-{index}" with the response's index in the source record
    "response",  # str
    "upvotes",  # float: the raw source score (Reddit upvotes, or a rating)
    "score",  # float: the transformed score in [-1, 1] (METHOD.md step 1)
]

# One row per preference pair (pair output; deviate adds weight columns).
PAIR_COLUMNS = [
    "pair_id",  # str: f"{prompt_id}-p{k}"
    "prompt_id",
    "prompt",
    "pair_index",  # int: order in which the pair was drawn for its prompt (0, 1, ...)
    "chosen_id",
    "chosen",
    "chosen_upvotes",
    "chosen_score",
    "rejected_id",
    "rejected",
    "rejected_upvotes",
    "rejected_score",
]

# One row per given pair of the pairs layout (`data.pairs`: ingest's data/given_pairs, then pair's
# data/pairs): PAIR_COLUMNS with the ids pointing into the responses table, upvotes and scores
# derived from the given pairs, and the source's margin (float, NaN where the source has none).
GIVEN_PAIR_COLUMNS = [*PAIR_COLUMNS, "margin"]

# One row per generated sample (generate output).
GENERATION_COLUMNS = ["prompt_id", "prompt", "sample_index", "text"]


def prompt_id(post_title: str, post_text: str) -> str:
    """Stable 12-hex-digit id of a source prompt, from its raw title and text."""
    digest = hashlib.sha1(f"{post_title}\x00{post_text}".encode()).hexdigest()
    return digest[:12]


def response_id(pid: str, index: int) -> str:
    """Id of the `index`-th response (0-based, position in the source record) of a prompt."""
    return f"{pid}-{index}"


def prompt_rng(seed: int, pid: str) -> np.random.Generator:
    """Random generator of one prompt, from the global seed and the prompt id, so that a
    prompt's draws do not depend on which other prompts are present or in what order."""
    key = int.from_bytes(hashlib.sha1(pid.encode("utf-8")).digest()[:8], "big")
    return np.random.default_rng([seed, key])


def _position(pid: str, seed: int) -> float:
    """Prompt `pid`'s place in [0, 1): the first 8 bytes of sha256(seed, pid) as a fraction."""
    digest = hashlib.sha256(f"{seed}\x00{pid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_held_out(pid: str, fraction: float, seed: int) -> bool:
    """Whether prompt `pid` is held out: its place (sha256 of the seed and the id, a hash of
    the prompt's text) falls below `fraction`. It depends on nothing but the prompt and the
    seed, so adding or removing other prompts never moves it."""
    return _position(pid, seed) < fraction


def held_out_prompts(prompt_ids: Iterable[str], fraction: float, seed: int, param: str = "fraction") -> set[str]:
    """The held-out prompt ids: each prompt by `is_held_out` (expected share `fraction`), so the
    set depends on neither the row order nor the other prompts present: appending data never
    moves an earlier prompt from one side to the other. Toy data only: with at least two
    prompts, `0 < fraction < 1` and every prompt on one side, the one placed nearest the other
    side crosses over, so each side has one (a new prompt can then take its place, until the
    hash itself puts one on each side). `param` names the setting in the error message."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"{param} must be in [0, 1), got {fraction}")
    prompts = sorted(set(prompt_ids))
    held = {pid for pid in prompts if is_held_out(pid, fraction, seed)}
    if fraction > 0 and len(prompts) >= 2 and len(held) in (0, len(prompts)):
        nearest = (min if not held else max)(prompts, key=lambda pid: _position(pid, seed))
        held ^= {nearest}
    return held


def text_hash(text: str) -> str:
    """Content hash of a text, used as an embedding-cache key."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame to Parquet atomically and deterministically (no index, fixed row order)."""
    with atomic_path(path) as tmp:
        df.reset_index(drop=True).to_parquet(tmp, index=False, engine="pyarrow", compression="zstd")


def read_table(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet table written by `write_table`, checking that the expected columns exist."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (did the upstream stage run? try `dvc repro`)")
    df = pd.read_parquet(path, engine="pyarrow")
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; found {list(df.columns)}")
    return df
