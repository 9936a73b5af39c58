"""What the data gates validate: the derived tables and the expectation specs of each suite.

GX has no word-count or group-by expectation, so the gates (`divwrite.data.gates`) validate
derived tables built here with pandas: `n_words` per response, one row per prompt
(responses, prompt words), one row per response used in a pair (uniqueness, deviation
weights). Each suite is a list of specs, (GX expectation class name, kwargs, why), held
with its table in a `Table`; `gates` builds them into GX objects and runs them. A spec
with `**WARNING` is reported, not critical. Nothing here imports great_expectations.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from divwrite.core.records import PAIR_COLUMNS, RESPONSE_COLUMNS
from divwrite.core.schema import GatesParams
from divwrite.data.filtering import is_deleted, is_empty

# dtypes accepted for numeric columns (upvotes, weights); pandas reports them by name.
NUMERIC_DTYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64",
]  # fmt: skip
WEIGHT_MEAN_TOLERANCE = 1e-6  # per-prompt mean of the deviation weights is 1 (METHOD.md step 4)
_FINITE = sys.float_info.max  # `between(-max, max)` rejects +-inf (nulls are checked apart)
_WEIGHT_RE = re.compile(r"^w_(chosen|rejected)(.*)$")


# --------------------------------------------------------------------------- derived tables


def count_words(texts: pd.Series) -> np.ndarray:
    """Whitespace-separated words per text (`len(str.split())`); NaN where the text is not a string."""
    counts = np.array([len(t.split()) if isinstance(t, str) else np.nan for t in texts], dtype=float)
    if not np.isnan(counts).any():
        return counts.astype(np.int64)
    return counts


def responses_tables(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The responses table plus `n_words`, and one row per prompt (None without `prompt_id`)."""
    frame = df.reset_index(drop=True)
    if "response" in frame.columns:
        texts = frame["response"]
        junk = [is_empty(t) or is_deleted(t) for t in texts]
        frame = frame.assign(n_words=count_words(texts), empty_or_deleted=np.array(junk, dtype=bool))
    if "prompt_id" not in frame.columns:
        return frame, None
    groups = frame.groupby("prompt_id", sort=True, dropna=True)
    prompts = groups.size().rename("n_responses").to_frame()
    if "prompt" in frame.columns:
        prompts["n_prompt_texts"] = groups["prompt"].nunique()  # a prompt id names one text
        first = groups["prompt"].first()
        prompts["n_prompt_words"] = pd.Series(count_words(first), index=first.index)
    return frame, prompts.reset_index()


def weight_families(columns: list[str]) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """Pair `w_chosen<X>` with `w_rejected<X>`: {"w<X>": (chosen column, rejected column)}.

    Also returns the `w_rejected<X>` columns expected but absent (their `w_chosen<X>` exists),
    and vice versa.
    """
    suffixes: dict[str, set[str]] = {}
    for col in columns:
        m = _WEIGHT_RE.match(col)
        if m:
            suffixes.setdefault(m.group(2), set()).add(m.group(1))
    families, absent = {}, []
    for suffix, roles in sorted(suffixes.items()):
        if roles == {"chosen", "rejected"}:
            families[f"w{suffix}"] = (f"w_chosen{suffix}", f"w_rejected{suffix}")
        else:
            absent += [f"w_{role}{suffix}" for role in ("chosen", "rejected") if role not in roles]
    return families, absent


def pairs_tables(
    df: pd.DataFrame, families: dict[str, tuple[str, str]], given: bool = False
) -> dict[str, pd.DataFrame]:
    """The pairs table, one row per (pair, response) and one row per prompt (where derivable).
    With `given` (the pairs layout's pairs), the pairs table also holds `same_text`,
    `empty_text` and the words of each side, `chosen_words` and `rejected_words`.

    `pair_responses`: pair_id, prompt_id, response_id, role, and one column per weight family
    (the weight of that response). `prompts`: n_pairs, and `<family>_mean_minus_1`, the mean
    weight over the set R of responses in the prompt's pairs (chosen and rejected, each once)
    minus 1 (METHOD.md step 4: the mean weight per prompt is 1).
    """
    frame = df.reset_index(drop=True)
    if {"chosen_id", "rejected_id"} <= set(frame.columns):
        same = (frame["chosen_id"] == frame["rejected_id"]).fillna(False)
        frame = frame.assign(same_response=same.to_numpy(dtype=bool))
    if {"chosen_upvotes", "rejected_upvotes"} <= set(frame.columns):
        gap = pd.to_numeric(frame["chosen_upvotes"], errors="coerce") - pd.to_numeric(
            frame["rejected_upvotes"], errors="coerce"
        )
        frame = frame.assign(upvote_gap=gap)
    if given and {"chosen", "rejected"} <= set(frame.columns):
        frame = frame.assign(
            same_text=(frame["chosen"] == frame["rejected"]).to_numpy(dtype=bool),
            empty_text=np.array([is_empty(c) or is_empty(r) for c, r in zip(frame["chosen"], frame["rejected"])]),
            chosen_words=count_words(frame["chosen"]),
            rejected_words=count_words(frame["rejected"]),
        )
    tables = {"pairs": frame}
    need = {"pair_id", "prompt_id", "chosen_id", "rejected_id"}
    if need <= set(frame.columns):
        parts = []
        for role in ("chosen", "rejected"):
            part = pd.DataFrame(
                {
                    "pair_id": frame["pair_id"],
                    "prompt_id": frame["prompt_id"],
                    "response_id": frame[f"{role}_id"],
                    "role": role,
                }
            )
            for fam, cols in families.items():
                # Non-numeric weights become NaN here; the pairs table's dtype check reports them.
                part[fam] = pd.to_numeric(frame[cols[0] if role == "chosen" else cols[1]], errors="coerce")
            parts.append(part)
        tables["pair_responses"] = pd.concat(parts, ignore_index=True)
    if "prompt_id" in frame.columns:
        prompts = frame.groupby("prompt_id", sort=True).size().rename("n_pairs").to_frame()
        if families and "pair_responses" in tables:
            r = tables["pair_responses"].drop_duplicates(["prompt_id", "response_id"])  # the set R
            means = r.groupby("prompt_id", sort=True)[list(families)].mean()
            for fam in families:
                prompts[f"{fam}_mean_minus_1"] = means[fam] - 1.0
        tables["prompts"] = prompts.reset_index()
    return tables


# --------------------------------------------------------------------------- suites


@dataclass
class Table:
    """One DataFrame to validate with its expectations (specs, built into GX objects later)."""

    name: str
    df: pd.DataFrame
    id_columns: list[str]  # shown for offending rows (those present in df)
    specs: list[tuple[str, dict, str]]  # (GX class name, kwargs, why)
    warning_column: str | None = None  # the text of a failed warning, per row ("" = none)


WARNING = {"severity": "warning"}  # a failed warning is reported and logged; the stage goes on


def responses_specs(bounds: GatesParams, raw: bool) -> list[tuple[str, dict, str]]:
    """The responses table's suite: schema, nulls, unique ids, score and upvotes, words per response
    (`raw`, before filter: over-long responses and empty or deleted bodies only warn)."""
    specs: list[tuple[str, dict, str]] = [
        ("ExpectTableColumnsToMatchSet", {"column_set": list(RESPONSE_COLUMNS), "exact_match": False},
         "the response schema (records.RESPONSE_COLUMNS)"),
        ("ExpectTableRowCountToBeBetween", {"min_value": 1}, "at least one response"),
    ]  # fmt: skip
    specs += [("ExpectColumnValuesToNotBeNull", {"column": c}, "no missing values") for c in RESPONSE_COLUMNS]
    specs += [
        ("ExpectColumnValuesToBeUnique", {"column": "response_id"}, "one row per response"),
        ("ExpectColumnValuesToBeInTypeList", {"column": "score", "type_list": NUMERIC_DTYPES}, "scores are numeric"),
        ("ExpectColumnValuesToBeBetween", {"column": "score", "min_value": -1.0, "max_value": 1.0},
         "transformed score in [-1, 1] (METHOD.md step 1)"),
        ("ExpectColumnValuesToBeInTypeList", {"column": "upvotes", "type_list": NUMERIC_DTYPES},
         "upvotes are numeric"),
        ("ExpectColumnValuesToBeBetween", {"column": "upvotes", "min_value": -_FINITE, "max_value": _FINITE},
         "upvotes are finite"),
        ("ExpectColumnMeanToBeBetween",
         {"column": "n_words", "min_value": bounds.mean_response_words[0],
          "max_value": bounds.mean_response_words[1]},
         "mean words per response (gates.mean_response_words)"),
        ("ExpectColumnMedianToBeBetween",
         {"column": "n_words", "min_value": bounds.median_response_words[0],
          "max_value": bounds.median_response_words[1]},
         "median words per response (gates.median_response_words)"),
    ]  # fmt: skip
    if raw:
        # Before filter: empty / deleted bodies and over-long responses are still here and
        # the filter removes them (METHOD.md step 2); too many of them is worth a warning.
        specs += [
            ("ExpectColumnValuesToBeBetween", {"column": "n_words", "max_value": bounds.max_response_words, **WARNING},
             "words per response (gates.max_response_words; the filter removes over-long ones)"),
            ("ExpectColumnValuesToBeInSet",
             {"column": "empty_or_deleted", "value_set": [False], "mostly": 1.0 - bounds.max_empty_share, **WARNING},
             "share of empty / deleted bodies (gates.max_empty_share)"),
        ]  # fmt: skip
    else:
        specs.append(
            ("ExpectColumnValuesToBeBetween",
             {"column": "n_words", "min_value": bounds.min_response_words, "max_value": bounds.max_response_words},
             "words per response (gates.min/max_response_words)")
        )  # fmt: skip
    return specs


def prompts_specs(bounds: GatesParams, min_responses_per_prompt: int) -> list[tuple[str, dict, str]]:
    """The per-prompt suite of a responses table: prompts, responses per prompt, one text per id,
    prompt words."""
    return [
        ("ExpectTableRowCountToBeBetween", {"min_value": bounds.min_prompts}, "enough prompts (gates.min_prompts)"),
        ("ExpectColumnValuesToBeBetween",
         {"column": "n_responses", "min_value": min_responses_per_prompt,
          "max_value": bounds.max_responses_per_prompt},
         "responses per prompt (filter.min_responses after filter; gates.max_responses_per_prompt)"),
        ("ExpectColumnMeanToBeBetween",
         {"column": "n_responses", "min_value": bounds.mean_responses_per_prompt[0],
          "max_value": bounds.mean_responses_per_prompt[1]},
         "mean responses per prompt (gates.mean_responses_per_prompt)"),
        ("ExpectColumnValuesToBeBetween", {"column": "n_prompt_texts", "min_value": 1, "max_value": 1},
         "one prompt text per prompt_id"),
        ("ExpectColumnMeanToBeBetween",
         {"column": "n_prompt_words", "min_value": bounds.mean_prompt_words[0],
          "max_value": bounds.mean_prompt_words[1]},
         "mean words per prompt, each prompt once (gates.mean_prompt_words)"),
    ]  # fmt: skip


def pairs_specs(
    columns: list[str],
    families: dict,
    absent: list[str],
    min_weight: float,
    bounds: GatesParams,
    gap: float | None,
    given: bool = False,
) -> list[tuple[str, dict, str]]:
    """The pairs table's suite: schema, nulls, unique ids, chosen over rejected, two different
    responses, scores, the upvote gap (a warning, with `gap`) and the weight columns. `given`
    (the pairs layout, `data.pairs`: pairs as judged, upvotes derived from them) replaces
    "chosen over rejected" by two different, non-empty texts within the words per response."""
    specs: list[tuple[str, dict, str]] = [
        ("ExpectTableColumnsToMatchSet", {"column_set": list(PAIR_COLUMNS), "exact_match": False},
         "the pair schema (records.PAIR_COLUMNS)"),
        ("ExpectTableRowCountToBeBetween", {"min_value": 1}, "at least one pair"),
    ]  # fmt: skip
    specs += [("ExpectColumnValuesToNotBeNull", {"column": c}, "no missing values") for c in PAIR_COLUMNS]
    specs.append(("ExpectColumnValuesToBeUnique", {"column": "pair_id"}, "one row per pair"))
    if given:
        specs += [
            ("ExpectColumnValuesToBeInSet", {"column": "same_text", "value_set": [False]},
             "a given pair compares two different texts"),
            ("ExpectColumnValuesToBeInSet", {"column": "empty_text", "value_set": [False]},
             "no empty chosen or rejected text"),
        ]  # fmt: skip
        specs += [
            ("ExpectColumnValuesToBeBetween",
             {"column": c, "min_value": bounds.min_response_words, "max_value": bounds.max_response_words},
             "words per response (gates.min/max_response_words; filter removed the over-long)")
            for c in ("chosen_words", "rejected_words")
        ]  # fmt: skip
    else:
        specs.append(
            ("ExpectColumnPairValuesAToBeGreaterThanB",
             {"column_A": "chosen_upvotes", "column_B": "rejected_upvotes", "or_equal": False},
             "chosen has more upvotes than rejected (METHOD.md step 3)")
        )  # fmt: skip
    specs += [
        # Derived column: GX's select_column_values_unique_within_record runs a Python loop per row.
        ("ExpectColumnValuesToBeInSet", {"column": "same_response", "value_set": [False]},
         "a pair has two different responses (same_response = chosen_id == rejected_id)"),
    ]  # fmt: skip
    specs += [
        ("ExpectColumnValuesToBeBetween", {"column": c, "min_value": -1.0, "max_value": 1.0},
         "transformed score in [-1, 1] (METHOD.md step 1)")
        for c in ("chosen_score", "rejected_score")
    ]  # fmt: skip
    if gap is not None:
        specs.append(
            ("ExpectColumnValuesToBeBetween",
             {"column": "upvote_gap", "min_value": float(gap), "mostly": bounds.min_gap_share, **WARNING},
             "most pairs meet the upvote gap, few come from the fallback (pair.gap, gates.min_gap_share)")
        )  # fmt: skip
    specs += [("ExpectColumnToExist", {"column": c}, "weights come in chosen/rejected pairs") for c in absent]
    for c in sorted(c for c in columns if c.startswith("w_")):
        specs += [
            ("ExpectColumnValuesToNotBeNull", {"column": c}, "no missing weights"),
            ("ExpectColumnValuesToBeInTypeList", {"column": c, "type_list": NUMERIC_DTYPES}, "weights are numeric"),
            ("ExpectColumnValuesToBeBetween", {"column": c, "min_value": float(min_weight), "max_value": _FINITE},
             "weights are finite and >= the minimum weight (METHOD.md step 4)"),
        ]  # fmt: skip
    return specs


def pair_responses_specs() -> list[tuple[str, dict, str]]:
    """One row per (pair, response): each response in at most one pair."""
    return [
        ("ExpectColumnValuesToBeUnique", {"column": "response_id"},
         "each response in at most one pair (METHOD.md step 3)"),
    ]  # fmt: skip


def pair_prompts_specs(bounds: GatesParams, families: dict, min_weight: float) -> list[tuple[str, dict, str]]:
    """The per-prompt suite of a pairs table: enough pairs, and each weight family's mean 1."""
    specs: list[tuple[str, dict, str]] = [
        ("ExpectColumnValuesToBeBetween", {"column": "n_pairs", "min_value": bounds.min_pairs_per_prompt},
         "enough pairs per prompt (gates.min_pairs_per_prompt)"),
    ]  # fmt: skip
    tol = WEIGHT_MEAN_TOLERANCE
    for fam in families:
        # With the "minimum delta" floor (w <- max(w, w_min)) the mean can only rise above 1.
        hi = None if min_weight > 0 else tol
        specs.append(
            ("ExpectColumnValuesToBeBetween", {"column": f"{fam}_mean_minus_1", "min_value": -tol, "max_value": hi},
             "mean weight over the prompt's responses R is 1 (METHOD.md step 4)")
        )  # fmt: skip
    return specs


def removals_specs(bounds: GatesParams) -> list[tuple[str, dict, str]]:
    """The filter's removals (`filtering.removals_table`): warnings when a rule, or all rules
    together, remove more than gates.max_removed_share of a split, or remove responses that
    score higher than the kept ones (`filtering.score_shift`): the filter shifts what "good"
    means. The warning's text is the table's `warning` column."""
    return [
        ("ExpectColumnValuesToBeBetween",
         {"column": "share", "min_value": 0.0, "max_value": bounds.max_removed_share, **WARNING},
         "share of a split's responses a rule removes (gates.max_removed_share)"),
        ("ExpectColumnValuesToBeInSet", {"column": "removed_score_higher", "value_set": [False], **WARNING},
         "removed responses do not score higher than the kept ones (filtering.score_shift)"),
    ]  # fmt: skip
