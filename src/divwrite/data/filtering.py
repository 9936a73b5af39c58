"""Filter (METHOD.md step 2): drop responses that are not stories, or too long to train on,
then prompts left with too few responses.

Each rule is a small predicate; `removal_reasons` applies them in order and names, for
every row, the first rule that removes it, so that the counts add up and a report can
show which rows went and why. A filter that removes many responses, or the better-scored
ones, changes what "good" means: `removal_stats` reports per rule the share removed and
the mean score of the removed against the kept, and `removals_table` turns that into the
rows the filter gate warns on (`divwrite.data.gates`, gates.max_removed_share).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# The r/WritingPrompts bot's comments (METHOD.md step 2).
MODERATION_MARKERS = ("**Welcome to the Prompt!**", "**Off-Topic Discussion**")
REMOVAL_SENTENCE = "this submission has been removed"  # matched case-insensitively
DELETED_BODIES = frozenset({"[deleted]", "[removed]"})

# Rule names in the order they are applied; a response is counted under the first that fires.
# "duplicate" is not in the paper and is off by default (filter.drop_duplicates).
RULES = ("moderation", "deleted", "empty", "duplicate", "too_long", "too_few_responses")
KEPT = ""


def is_moderation(text: str) -> bool:
    """True for the subreddit bot's comments: they contain "**Welcome to the Prompt!**",
    "**Off-Topic Discussion**" (exact) or "this submission has been removed" (any case)."""
    return any(marker in text for marker in MODERATION_MARKERS) or REMOVAL_SENTENCE in text.lower()


def is_deleted(text: str) -> bool:
    """True for a body Reddit replaced on deletion or removal: "[deleted]" / "[removed]"."""
    return text.strip().lower() in DELETED_BODIES


def is_empty(text: object) -> bool:
    """True for a missing (None, NaN: not a string), empty or whitespace-only body."""
    return not isinstance(text, str) or not text.strip()


def removal_reasons(
    df: pd.DataFrame,
    *,
    token_lengths: np.ndarray | None,
    max_tokens: int,
    min_responses: int = 2,
    drop_duplicates: bool = False,
) -> pd.Series:
    """For every row of `df`, the first rule of `RULES` that removes it, or `KEPT` ("").

    `token_lengths[i]` is the length in tokens of row i's prompt and response with the
    chat template (computed by the caller with the generator's tokenizer); rows longer
    than `max_tokens` go. `None` skips the length rule. With `drop_duplicates`, a response
    whose text (stripped) repeats an earlier kept response of the same prompt goes (a
    crawl artefact; not a rule of the paper, hence off by default). Prompts with fewer
    than `min_responses` responses left after the per-response rules go entirely.
    """
    texts = df["response"].tolist()
    reasons = np.full(len(df), KEPT, dtype=object)
    for i, text in enumerate(texts):
        if is_empty(text):
            # Checked first only because the other predicates need a string; an empty body
            # can match neither moderation nor deleted, so the counts are unaffected.
            reasons[i] = "empty"
        elif is_moderation(text):
            reasons[i] = "moderation"
        elif is_deleted(text):
            reasons[i] = "deleted"
    if drop_duplicates:
        seen: set[tuple[object, str]] = set()
        for i, (pid, text) in enumerate(zip(df["prompt_id"], texts)):
            if reasons[i] == KEPT:
                key = (pid, text.strip())
                if key in seen:
                    reasons[i] = "duplicate"
                seen.add(key)
    if token_lengths is not None:
        lengths = np.asarray(token_lengths)
        if lengths.shape != (len(df),):
            raise ValueError(f"token_lengths has shape {lengths.shape}, expected ({len(df)},)")
        reasons[(reasons == KEPT) & (lengths > max_tokens)] = "too_long"
    kept = reasons == KEPT
    per_prompt = df.loc[kept, "prompt_id"].value_counts()
    too_few = kept & df["prompt_id"].map(per_prompt).fillna(0).lt(min_responses).to_numpy()
    reasons[too_few] = "too_few_responses"
    return pd.Series(reasons, index=df.index, name="removed_by")


def apply_removals(df: pd.DataFrame, reasons: pd.Series) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows `reasons` keeps (same columns and order, index reset) and the counts:
    `{"input": n, "moderation": k, "deleted": k, "empty": k, "duplicate": k, "too_long": k,
    "too_few_responses": k, "output": n}`; each removed response is counted once, under the
    first rule of `RULES` that removes it, so input = sum of the rules + output."""
    kept = (reasons == KEPT).to_numpy()
    counts = {"input": int(len(df))}
    counts.update({rule: int((reasons == rule).sum()) for rule in RULES})
    counts["output"] = int(kept.sum())
    return df[kept].reset_index(drop=True), counts


def filter_responses(
    df: pd.DataFrame,
    *,
    token_lengths: np.ndarray | None,
    max_tokens: int,
    min_responses: int = 2,
    drop_duplicates: bool = False,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """METHOD.md step 2: the kept rows and the counts per rule (`apply_removals`).
    See `removal_reasons` for the rules."""
    reasons = removal_reasons(
        df,
        token_lengths=token_lengths,
        max_tokens=max_tokens,
        min_responses=min_responses,
        drop_duplicates=drop_duplicates,
    )
    return apply_removals(df, reasons)


# --------------------------------------------------------------------------- what was removed

# The removed responses of a rule are compared with the kept ones from this many on (fewer
# say nothing about a rule's bias), and "score higher" means a removed mean above the kept
# mean by more than BIAS_STANDARD_ERRORS standard errors of the difference (Welch): an
# unbiased rule that removes a handful of responses at random clears that about 2% of the time.
MIN_REMOVED_TO_COMPARE = 5
BIAS_STANDARD_ERRORS = 2.0
ALL_RULES = "all"  # the row of the removal stats for every rule together


def _mean(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 6) if len(values) else None


def score_shift(removed: np.ndarray, kept: np.ndarray) -> dict[str, float | bool | None]:
    """How the removed responses' scores compare with the kept ones': `score_gap` (mean removed
    minus mean kept), `score_gap_se` (its standard error, sqrt(var_r / n_r + var_k / n_k),
    sample variances) and `removed_score_higher`: at least `MIN_REMOVED_TO_COMPARE` removed
    (and 2 kept) and score_gap > `BIAS_STANDARD_ERRORS` * score_gap_se. Gap and error are None
    when there are too few to compare."""
    removed, kept = np.asarray(removed, dtype=float), np.asarray(kept, dtype=float)
    if len(removed) < MIN_REMOVED_TO_COMPARE or len(kept) < 2:
        return {"score_gap": None, "score_gap_se": None, "removed_score_higher": False}
    gap = float(removed.mean() - kept.mean())
    se = float(np.sqrt(removed.var(ddof=1) / len(removed) + kept.var(ddof=1) / len(kept)))
    higher = bool(gap > BIAS_STANDARD_ERRORS * se)
    return {"score_gap": round(gap, 6), "score_gap_se": round(se, 6), "removed_score_higher": higher}


def removal_stats(df: pd.DataFrame, reasons: pd.Series) -> dict:
    """What the filter took from one split, per rule (`RULES`) and for all of them together
    (`ALL_RULES`), beside what it kept:

    `{"input": n, "kept": {"responses": k, "mean_score": s, "mean_upvotes": u},
    "removed": {rule: {"responses": r, "share": r / n, "mean_score": s, "mean_upvotes": u,
    "score_gap": g, "score_gap_se": e, "removed_score_higher": b}, ..., "all": {...}}}`.

    Means are over the `score` and `upvotes` columns (None for no rows); `score_shift` compares
    a rule's removed responses with the responses the whole filter kept. Floats are rounded to
    6 decimals (stable JSON); the flag is decided before rounding.
    """
    score = df["score"].to_numpy(dtype=float)
    upvotes = df["upvotes"].to_numpy(dtype=float)
    reasons = reasons.to_numpy()
    kept = reasons == KEPT
    n = len(df)
    stats: dict = {
        "input": int(n),
        "kept": {"responses": int(kept.sum()), "mean_score": _mean(score[kept]), "mean_upvotes": _mean(upvotes[kept])},
        "removed": {},
    }
    for rule in (*RULES, ALL_RULES):
        gone = ~kept if rule == ALL_RULES else reasons == rule
        stats["removed"][rule] = {
            "responses": int(gone.sum()),
            "share": round(float(gone.sum()) / n, 6) if n else 0.0,
            "mean_score": _mean(score[gone]),
            "mean_upvotes": _mean(upvotes[gone]),
            **score_shift(score[gone], score[kept]),
        }
    return stats


def _removal_message(split: str, rule: str, row: dict, n: int, kept_score: float | None, over: float | None) -> str:
    """One warning about what a rule (or all rules) removed from a split: the share beyond
    gates.max_removed_share (`over`, None when within it), and whether the removed score higher."""
    who = "all rules together" if rule == ALL_RULES else f"rule {rule!r}"
    text = f"filter: {who} removed {row['share']:.1%} of {split} responses ({row['responses']} of {n}"
    text += f"; > gates.max_removed_share {over:.2f})" if over is not None else ")"
    if row["removed_score_higher"]:
        text += (
            f"; removed responses score higher than kept (mean score {row['mean_score']:.2f} vs {kept_score:.2f},"
            f" gap {row['score_gap']:.2f} > {BIAS_STANDARD_ERRORS:g} x its standard error {row['score_gap_se']:.2f}):"
            ' the filter shifts what "good" means'
        )
    elif row["mean_score"] is not None and kept_score is not None:
        text += f"; mean score removed {row['mean_score']:.2f} vs kept {kept_score:.2f}"
    return text


def removals_table(removal: dict[str, dict], max_share: float) -> pd.DataFrame:
    """The filter gate's `removals` table: one row per split and rule (and `all` rules
    together) of `removal` (`removal_stats` per split) with the removed responses, their share
    of the split and mean score, the kept mean score, `removed_score_higher`, and `warning`:
    the text reported when the row removed more than `max_share` or the better-scored ("" for
    a row that does neither). An `all` row warns only about what no rule of its split does."""
    rows = []
    for split, stats in removal.items():
        n, kept_score = stats["input"], stats["kept"]["mean_score"]
        by_rule = stats["removed"]
        rules = [r for r in by_rule if r != ALL_RULES]
        for rule in (*rules, ALL_RULES):
            row = by_rule[rule]
            over, higher = row["share"] > max_share, row["removed_score_higher"]
            if rule == ALL_RULES:  # said already by a rule of this split
                over = over and not any(by_rule[r]["share"] > max_share for r in rules)
                higher = higher and not any(by_rule[r]["removed_score_higher"] for r in rules)
            warning = ""
            if over or higher:
                shown = {**row, "removed_score_higher": higher}
                warning = _removal_message(split, rule, shown, n, kept_score, max_share if over else None)
            rows.append(
                {"split": split, "rule": rule, "responses": row["responses"], "share": row["share"],
                 "mean_score": row["mean_score"], "kept_mean_score": kept_score,
                 "removed_score_higher": row["removed_score_higher"], "warning": warning}
            )  # fmt: skip
    frame = pd.DataFrame(rows, columns=["split", "rule", "responses", "share", "mean_score", "kept_mean_score",
                                        "removed_score_higher", "warning"])  # fmt: skip
    return frame.astype({"share": float, "mean_score": float, "kept_mean_score": float, "removed_score_higher": bool})
