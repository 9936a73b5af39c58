"""The given pairs of the pairs layout (`divwrite.data.pairs`) after ingest: which survive the
filter (`through_filter`, the pair stage), what a table of them holds (`given_pair_stats`: ingest,
pair), how many of DivPO's pairs are among them (`given_share`). Pandas only, so the stages that
read given pairs do not depend on the source readers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def through_filter(given: pd.DataFrame, responses: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The given pairs whose chosen and rejected both survived the filter (their ids are in
    `responses`, the filtered table), in their order, and why the others went: `{"given",
    "chosen_removed", "rejected_removed", "both_removed", "kept"}` (each dropped pair counted
    once)."""
    kept_ids = set(responses["response_id"])
    has_chosen = given["chosen_id"].isin(kept_ids).to_numpy()
    has_rejected = given["rejected_id"].isin(kept_ids).to_numpy()
    counts = {
        "given": len(given),
        "chosen_removed": int((~has_chosen & has_rejected).sum()),
        "rejected_removed": int((has_chosen & ~has_rejected).sum()),
        "both_removed": int((~has_chosen & ~has_rejected).sum()),
        "kept": int((has_chosen & has_rejected).sum()),
    }
    return given[has_chosen & has_rejected].reset_index(drop=True), counts


def given_pair_stats(pairs: pd.DataFrame) -> dict[str, Any]:
    """What a table of given pairs holds: `pairs`, `prompts_with_pairs`, `responses_in_pairs`
    (distinct), `pairs_per_prompt` (min, median, mean, max), `pairs_with_margin` and
    `margin_mean` (over the pairs with one; 0.0 without any)."""
    per_prompt = pairs.groupby("prompt_id").size().to_numpy()
    ids = pd.concat([pairs["chosen_id"], pairs["rejected_id"]])
    margin = pairs["margin"].dropna() if "margin" in pairs.columns else pd.Series(dtype=np.float64)
    spread = (
        {"min": int(per_prompt.min()), "median": float(np.median(per_prompt)),
         "mean": round(float(per_prompt.mean()), 3), "max": int(per_prompt.max())}
        if per_prompt.size else {"min": 0, "median": 0.0, "mean": 0.0, "max": 0}
    )  # fmt: skip
    return {
        "pairs": len(pairs),
        "prompts_with_pairs": int(per_prompt.size),
        "responses_in_pairs": int(ids.nunique()),
        "pairs_per_prompt": spread,
        "pairs_with_margin": int(margin.size),
        "margin_mean": float(margin.mean()) if margin.size else 0.0,
    }


def given_share(pairs: pd.DataFrame, given: pd.DataFrame) -> dict[str, int]:
    """How many rows of `pairs` (e.g. DivPO's, built from derived scores) are given pairs:
    `{"given": same chosen and rejected as a given pair, "reversed": given the other way
    round, "unjudged": compared by no given pair}` (by response id)."""
    forward = set(zip(given["chosen_id"], given["rejected_id"]))
    keys = list(zip(pairs["chosen_id"], pairs["rejected_id"]))
    n_given = sum(k in forward for k in keys)
    n_reversed = sum((r, c) in forward and (c, r) not in forward for c, r in keys)
    return {"given": n_given, "reversed": n_reversed, "unjudged": len(keys) - n_given - n_reversed}
