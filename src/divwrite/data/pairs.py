"""The pairs layout (`data.layout: pairs`): judged pairs instead of scored responses.

A pairwise source (UltraFeedback-, LitBench-style data, human A/B judgements) holds one row per
judgement: a prompt, the preferred response (`chosen`), the other one (`rejected`) and maybe a
`margin`; no scores. `divwrite.data.sources` reads and checks the rows (`normalise_pair`); here
they become the two tables the pipeline works from, split by prompt:

- the responses table (`RESPONSE_COLUMNS`): each prompt's distinct response texts once, in order
  of first appearance (chosen before rejected within a row), so `response_id = f"{prompt_id}-{k}"`
  for the k-th distinct text never moves when rows are appended. The prompt is built as the
  per_prompt layout builds a post without body (`build_prompt(prompt, "")`: the title tag
  stripped, then "\\n"), so a prompt keeps its id and its side of the split across layouts.
  `upvotes` is the response's smoothed win share among its given comparisons (`win_shares`:
  (wins + 1) / (comparisons + 2), in (0, 1)), `score = 2 * upvotes - 1` in (-1, 1): derived
  from the pairs, not invented, and read where a quality order is needed (deviate's
  quality-gated variant and `high_quality_first`, DivPO's high and low sets, the filter's
  report). METHOD.md's score transform (step 1) is for heavy-tailed upvotes and does not apply.
- the given pairs (`GIVEN_PAIR_COLUMNS`): every row of the source, as given (the same pair twice
  or both ways round included), ids pointing into the responses table, `pair_index` its order
  among the prompt's rows, the derived upvotes and scores of both sides, and the margin (NaN
  without a margin column). The `pair` stage trains on them as they are: those whose two
  responses survived the filter (`given_pairs.through_filter`) pass the pair gate as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from divwrite.core.records import GIVEN_PAIR_COLUMNS, RESPONSE_COLUMNS, prompt_id, response_id
from divwrite.data.ingest import build_prompt, split_by_prompt
from divwrite.data.pairing import pair_table


def win_shares(chosen: Sequence[int], rejected: Sequence[int], n: int) -> np.ndarray:
    """Smoothed win share of each of `n` responses from its given comparisons (`chosen[i]` beat
    `rejected[i]`, indices in [0, n)): `(wins + 1) / (wins + losses + 2)`, Laplace's rule, so a
    response that only won once is not above one that won 9 of 10 (2/3 < 10/12), and one never
    compared is 1/2."""
    wins = np.bincount(np.asarray(chosen, dtype=np.int64), minlength=n)
    losses = np.bincount(np.asarray(rejected, dtype=np.int64), minlength=n)
    return (wins + 1.0) / (wins + losses + 2.0)


def empty_given_pairs() -> pd.DataFrame:
    """A given-pairs table without rows (what ingest writes for the score layouts)."""
    text, number = pd.Series(dtype=object), pd.Series(dtype=np.float64)
    columns = {c: number if c.endswith(("upvotes", "score")) or c == "margin" else text for c in GIVEN_PAIR_COLUMNS}
    columns["pair_index"] = pd.Series(dtype=np.int64)
    return pd.DataFrame(columns)[GIVEN_PAIR_COLUMNS]


def pairs_to_tables(pairs: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(responses, given pairs) of pair records (`sources.normalise_pair`), as the module
    docstring says; both sorted by prompt id (responses by first appearance, pairs by
    `pair_index` within a prompt)."""
    if not pairs:
        raise ValueError("no pairs")
    index: dict[str, dict[str, int]] = {}  # prompt id -> text -> k
    prompts: dict[str, str] = {}
    sides: dict[str, list[tuple[int, int]]] = {}  # prompt id -> (chosen k, rejected k) in row order
    margins: dict[str, list[float]] = {}
    for pair in pairs:
        pid = prompt_id(pair["prompt"], "")
        prompts.setdefault(pid, build_prompt(pair["prompt"], ""))
        texts = index.setdefault(pid, {})
        c = texts.setdefault(pair["chosen"], len(texts))
        r = texts.setdefault(pair["rejected"], len(texts))
        sides.setdefault(pid, []).append((c, r))
        margins.setdefault(pid, []).append(np.nan if pair["margin"] is None else float(pair["margin"]))
    rows: dict[str, list[Any]] = {c: [] for c in RESPONSE_COLUMNS}
    chosen_rows, rejected_rows, pair_index, margin = [], [], [], []
    for pid in sorted(index):
        start, texts = len(rows["prompt_id"]), list(index[pid])
        chosen, rejected = zip(*sides[pid])
        share = win_shares(chosen, rejected, len(texts))
        rows["prompt_id"] += [pid] * len(texts)
        rows["prompt"] += [prompts[pid]] * len(texts)
        rows["response_id"] += [response_id(pid, k) for k in range(len(texts))]
        rows["response"] += texts
        rows["upvotes"] += share.tolist()
        rows["score"] += (2.0 * share - 1.0).tolist()
        chosen_rows += [start + k for k in chosen]
        rejected_rows += [start + k for k in rejected]
        pair_index += list(range(len(chosen)))
        margin += margins[pid]
    responses = pd.DataFrame(rows).astype({"upvotes": np.float64, "score": np.float64})
    given = pair_table(responses, chosen_rows, rejected_rows, pair_index)
    given["margin"] = np.asarray(margin, dtype=np.float64)
    return responses[RESPONSE_COLUMNS], given[GIVEN_PAIR_COLUMNS]


def ingest_pairs(
    pairs: Sequence[Mapping[str, Any]], test_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    """Ingest for the pairs layout: (train responses, test responses, {"train": given pairs,
    "test": given pairs}), split by prompt as `ingest.split_by_prompt` splits (a hash of the
    prompt id and `seed`), so each given pair lies on its prompt's side."""
    responses, given = pairs_to_tables(pairs)
    train, test = split_by_prompt(responses, test_fraction, seed)
    is_test = given["prompt_id"].isin(set(test["prompt_id"]))
    split = {"train": given[~is_test].reset_index(drop=True), "test": given[is_test].reset_index(drop=True)}
    return train, test, split
