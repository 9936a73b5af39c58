"""Pair (METHOD.md step 3): preference pairs per prompt, sampled without replacement.

Rule, per prompt: among the responses not used yet, pick uniformly at random one pair
whose upvotes differ by at least `gap`; when no such pair is left, pick uniformly among
pairs with different upvotes; stop when none is left. The response with more upvotes
is chosen. Ties are never paired.

`sample_pairs_reference` does this literally (list every valid pair, pick one), which
costs O(n^2) per draw and O(n^3) per prompt. `sample_pairs` gives the same pairs from
the same random stream in O(n log n) per draw: with the unused responses sorted by
upvotes, the valid partners of each response form a suffix of the sorted order, so the
number of valid pairs is a sum of suffix lengths found with `searchsorted`, and the
k-th valid pair is found from the cumulative sum. Both enumerate the valid pairs in the
same order (lower response first, then higher, by sorted position) and draw
`rng.integers(number of valid pairs)` once per pair, hence identical outputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from divwrite.core.records import PAIR_COLUMNS, RESPONSE_COLUMNS, prompt_rng


def _is_valid(lo: float, hi: float, gap: float) -> bool:
    """The gap rule for `hi` >= `lo`: strictly more upvotes and at least `gap` more."""
    return hi > lo and hi >= lo + gap


def sample_pairs_reference(upvotes: np.ndarray, gap: float, rng: np.random.Generator) -> list[tuple[int, int]]:
    """METHOD.md step 3, literally: O(n^3) per prompt. Kept for tests and benchmarks.

    Returns (chosen_index, rejected_index) pairs, indices into `upvotes`, in draw order.
    """
    u = np.asarray(upvotes, dtype=np.float64)
    unused = [int(i) for i in np.argsort(u, kind="stable")]  # ascending upvotes
    pairs: list[tuple[int, int]] = []
    while True:
        candidates = [(a, b) for pos, a in enumerate(unused) for b in unused[pos + 1 :] if _is_valid(u[a], u[b], gap)]
        if not candidates:  # fallback: any pair with different upvotes
            candidates = [(a, b) for pos, a in enumerate(unused) for b in unused[pos + 1 :] if u[b] > u[a]]
        if not candidates:
            return pairs
        lo, hi = candidates[int(rng.integers(len(candidates)))]
        pairs.append((hi, lo))
        unused.remove(lo)
        unused.remove(hi)


# Prompts with fewer responses go through `sample_pairs_reference` (crossover measured at ~15).
SMALL_PROMPT = 14


def _partner_starts(vals: np.ndarray, gap: float | None) -> np.ndarray:
    """For sorted `vals`, the first position each element may be paired with (as the lower one).

    `gap=None` is the fallback rule (any strictly higher value); otherwise the gap rule,
    `hi > lo and hi >= lo + gap`, same arithmetic as `_is_valid`.
    """
    higher = np.searchsorted(vals, vals, side="right")
    if gap is None:
        return higher
    return np.maximum(higher, np.searchsorted(vals, vals + gap, side="left"))


def sample_pairs(upvotes: np.ndarray, gap: float, rng: np.random.Generator) -> list[tuple[int, int]]:
    """METHOD.md step 3: (chosen_index, rejected_index) pairs of one prompt, in draw order.

    Uniform over the valid pairs of the still-unused responses at every draw, exactly as
    `sample_pairs_reference` (same pairs for the same `rng` state), in O(n log n) per draw.
    Below `SMALL_PROMPT` responses the reference itself is faster (no numpy overhead per
    draw: benchmarks/bench_pairing.py) and, giving the same pairs, is used instead.
    """
    u = np.asarray(upvotes, dtype=np.float64)
    if len(u) < SMALL_PROMPT:
        return sample_pairs_reference(u, gap, rng)
    return sample_pairs_counted(u, gap, rng)


def sample_pairs_counted(upvotes: np.ndarray, gap: float, rng: np.random.Generator) -> list[tuple[int, int]]:
    """`sample_pairs` at any size: the draw from cumulative counts of valid partners."""
    u = np.asarray(upvotes, dtype=np.float64)
    alive = np.argsort(u, kind="stable")  # unused responses, ascending upvotes
    vals = u[alive]
    rule: float | None = gap
    pairs: list[tuple[int, int]] = []
    while len(alive) >= 2:
        starts = _partner_starts(vals, rule)
        counts = len(vals) - starts
        total = int(counts.sum())
        if total == 0 and rule is not None:
            rule = None  # no gap pair left; removing responses never creates one again
            starts = _partner_starts(vals, rule)
            counts = len(vals) - starts
            total = int(counts.sum())
        if total == 0:
            break
        k = int(rng.integers(total))
        cum = np.cumsum(counts)
        lo = int(np.searchsorted(cum, k, side="right"))
        hi = int(starts[lo] + (k - (cum[lo] - counts[lo])))
        pairs.append((int(alive[hi]), int(alive[lo])))
        keep = np.ones(len(alive), dtype=bool)
        keep[[lo, hi]] = False
        alive, vals = alive[keep], vals[keep]
    return pairs


def prompt_slices(prompt_ids: np.ndarray) -> list[tuple[int, int]]:
    """`(start, stop)` of each run of equal ids in `prompt_ids` (a table sorted by prompt)."""
    n = len(prompt_ids)
    if n == 0:
        return []
    bounds = np.flatnonzero(prompt_ids[1:] != prompt_ids[:-1]) + 1
    return list(zip(np.r_[0, bounds].tolist(), np.r_[bounds, n].tolist()))


def pair_table(
    responses: pd.DataFrame, chosen_rows: list[int], rejected_rows: list[int], pair_index: list[int]
) -> pd.DataFrame:
    """`PAIR_COLUMNS` frame from row positions in a responses table (`RESPONSE_COLUMNS`)."""
    chosen = responses.iloc[chosen_rows].reset_index(drop=True)
    rejected = responses.iloc[rejected_rows].reset_index(drop=True)
    out = pd.DataFrame(
        {
            "prompt_id": chosen["prompt_id"],
            "prompt": chosen["prompt"],
            "pair_index": np.asarray(pair_index, dtype=np.int64),
            "chosen_id": chosen["response_id"],
            "chosen": chosen["response"],
            "chosen_upvotes": chosen["upvotes"].astype(np.float64),
            "chosen_score": chosen["score"].astype(np.float64),
            "rejected_id": rejected["response_id"],
            "rejected": rejected["response"],
            "rejected_upvotes": rejected["upvotes"].astype(np.float64),
            "rejected_score": rejected["score"].astype(np.float64),
        }
    )
    out.insert(0, "pair_id", out["prompt_id"] + "-p" + out["pair_index"].astype(str))
    return out[PAIR_COLUMNS]


def sorted_responses(df: pd.DataFrame, caller: str) -> pd.DataFrame:
    """Responses table checked for `RESPONSE_COLUMNS` and finite upvotes, sorted by
    prompt id (responses of a prompt kept in table order), index reset."""
    missing = [c for c in RESPONSE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{caller}: responses table lacks columns {missing}")
    if not np.all(np.isfinite(df["upvotes"].to_numpy(dtype=np.float64))):
        raise ValueError(f"{caller}: upvotes contain NaN or infinite values")
    return df.sort_values("prompt_id", kind="stable").reset_index(drop=True)


def make_pairs(df: pd.DataFrame, gap: float, seed: int) -> pd.DataFrame:
    """METHOD.md step 3 for every prompt of a responses table -> `PAIR_COLUMNS` frame.

    Each prompt's responses are taken in table order and paired by `sample_pairs` with
    `prompt_rng(seed, prompt_id)`. Rows are sorted by prompt id, then `pair_index` (the
    draw order); `pair_id` is `f"{prompt_id}-p{pair_index}"`. Prompts that yield no pair
    (fewer than two distinct upvote values) have no rows.
    """
    d = sorted_responses(df, "make_pairs")
    upvotes = d["upvotes"].to_numpy(dtype=np.float64)
    pids = d["prompt_id"].to_numpy()
    chosen_rows: list[int] = []
    rejected_rows: list[int] = []
    pair_index: list[int] = []
    for start, stop in prompt_slices(pids):
        if stop - start < 2:
            continue
        drawn = sample_pairs(upvotes[start:stop], gap, prompt_rng(seed, str(pids[start])))
        for k, (c, r) in enumerate(drawn):
            chosen_rows.append(start + c)
            rejected_rows.append(start + r)
            pair_index.append(k)
    return pair_table(d, chosen_rows, rejected_rows, pair_index)
