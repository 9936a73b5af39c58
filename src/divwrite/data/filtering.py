"""Filter (METHOD.md step 2): drop responses that are not stories, or too long to train on,
then prompts left with too few responses.

Each rule is a small predicate; `removal_reasons` applies them in order and names, for
every row, the first rule that removes it, so that the counts add up and a report can
show which rows went and why.
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


def filter_responses(
    df: pd.DataFrame,
    *,
    token_lengths: np.ndarray | None,
    max_tokens: int,
    min_responses: int = 2,
    drop_duplicates: bool = False,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """METHOD.md step 2: the kept rows (same columns and order, index reset) and counts.

    Counts: `{"input": n, "moderation": k, "deleted": k, "empty": k, "duplicate": k,
    "too_long": k, "too_few_responses": k, "output": n}`; each removed response is counted once, under
    the first rule of `RULES` that removes it, so input = sum of the rules + output.
    See `removal_reasons` for the rules.
    """
    reasons = removal_reasons(
        df,
        token_lengths=token_lengths,
        max_tokens=max_tokens,
        min_responses=min_responses,
        drop_duplicates=drop_duplicates,
    )
    kept = (reasons == KEPT).to_numpy()
    counts = {"input": int(len(df))}
    counts.update({rule: int((reasons == rule).sum()) for rule in RULES})
    counts["output"] = int(kept.sum())
    return df[kept].reset_index(drop=True), counts
