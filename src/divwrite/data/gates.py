"""Data gates: Great Expectations suites run on a stage's output *before* it is written.

A stage builds its output DataFrame, calls `check_responses` (ingest, filter) or
`check_pairs` (pair, deviate) on it, and only then writes it. When a critical expectation
fails, the gate raises `GateError` with a readable message (which expectation, on which
column, the observed value, up to 5 offending rows) and the stage exits non-zero before
writing anything, so DVC records nothing. Expectations marked as warnings (things the
next stage handles, or that are merely suspicious) are reported in the summary's
`warnings` and let the stage go on. On success the gate returns a summary dict;
`write_summary` stores it as a stable DVC metric (no timestamps, no run ids).

Great Expectations 1.24 is used as its docs describe it: an ephemeral context, a pandas
data source with one dataframe asset and a whole-dataframe batch definition per table, an
`ExpectationSuite` and a `ValidationDefinition` per table, each `run` on its own
DataFrame (a Checkpoint would pass one `batch_parameters` to every definition). GX has
no word-count or group-by expectation, so the gates validate derived tables built here
with pandas: `n_words` per response, one row per prompt (responses, prompt words), one
row per response used in a pair (uniqueness, deviation weights). `import
great_expectations` costs ~4 s, so it happens inside the functions, not at import time.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from divwrite.core.files import write_json
from divwrite.core.records import PAIR_COLUMNS, RESPONSE_COLUMNS
from divwrite.core.stage import GateError
from divwrite.core.tracking import log_artifact
from divwrite.data.filtering import is_deleted, is_empty

# dtypes accepted for numeric columns (upvotes, weights); pandas reports them by name.
NUMERIC_DTYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64",
]  # fmt: skip
MAX_OFFENDING_ROWS = 5
WEIGHT_MEAN_TOLERANCE = 1e-6  # per-prompt mean of the deviation weights is 1 (METHOD.md step 4)
_FINITE = sys.float_info.max  # `between(-max, max)` rejects +-inf (nulls are checked apart)
_WEIGHT_RE = re.compile(r"^w_(chosen|rejected)(.*)$")


@dataclass(frozen=True)
class GateBounds:
    """Bounds of the data gates, from the `gates:` section of params.yaml."""

    min_prompts: int  # prompts in a responses table
    min_response_words: int  # words per response (whitespace-separated)
    max_response_words: int  # (ingest: a warning, the filter's token rule removes them; later: critical)
    mean_response_words: tuple[float, float]  # bounds on the mean words per response
    median_response_words: tuple[float, float]  # bounds on the median words per response
    mean_prompt_words: tuple[float, float]  # bounds on the mean words per prompt (each prompt once)
    max_responses_per_prompt: int  # responses of one prompt
    mean_responses_per_prompt: tuple[float, float]
    max_empty_share: float  # ingest warning: share of empty / deleted / removed bodies
    min_pairs_per_prompt: int  # pairs per prompt in a pairs table
    min_gap_share: float  # pair warning: share of pairs that meet the upvote gap (not the fallback)

    def __post_init__(self) -> None:
        for name in ("mean_response_words", "median_response_words", "mean_prompt_words", "mean_responses_per_prompt"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"gates.{name}: lower bound {lo} > upper bound {hi}")
        if self.min_response_words > self.max_response_words:
            raise ValueError(
                f"gates.min_response_words {self.min_response_words} > max_response_words {self.max_response_words}"
            )
        for name in ("max_empty_share", "min_gap_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"gates.{name} must be in [0, 1], got {getattr(self, name)}")

    @classmethod
    def from_params(cls, gates: dict) -> GateBounds:
        """Build from the `gates:` section of params.yaml; unknown or missing keys are errors
        (`data_docs`, a switch of the stages, is allowed and ignored here)."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(gates) - set(names) - {"data_docs"})
        missing = [n for n in names if n not in gates]
        if unknown or missing:
            raise ValueError(f"params.yaml gates: unknown keys {unknown}, missing keys {missing}")

        def convert(f: Any) -> Any:
            value = gates[f.name]
            if f.type == "tuple[float, float]":
                if not isinstance(value, (list, tuple)) or len(value) != 2:
                    raise ValueError(f"gates.{f.name} must be [low, high], got {value!r}")
                return (float(value[0]), float(value[1]))
            return int(value) if f.type == "int" else float(value)

        return cls(**{f.name: convert(f) for f in fields(cls)})


# --------------------------------------------------------------------------- derived tables


def count_words(texts: pd.Series) -> np.ndarray:
    """Whitespace-separated words per text (`len(str.split())`); NaN where the text is not a string."""
    counts = np.array([len(t.split()) if isinstance(t, str) else np.nan for t in texts], dtype=float)
    if not np.isnan(counts).any():
        return counts.astype(np.int64)
    return counts


def _responses_tables(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
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


def _weight_families(columns: list[str]) -> tuple[dict[str, tuple[str, str]], list[str]]:
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


def _pairs_tables(df: pd.DataFrame, families: dict[str, tuple[str, str]]) -> dict[str, pd.DataFrame]:
    """The pairs table, one row per (pair, response) and one row per prompt (where derivable).

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
class _Table:
    """One DataFrame to validate with its expectations (specs, built into GX objects later)."""

    name: str
    df: pd.DataFrame
    id_columns: list[str]  # shown for offending rows (those present in df)
    specs: list[tuple[str, dict, str]]  # (GX class name, kwargs, why)


WARNING = {"severity": "warning"}  # a failed warning is reported and logged; the stage goes on


def _responses_specs(bounds: GateBounds, raw: bool) -> list[tuple[str, dict, str]]:
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


def _prompts_specs(bounds: GateBounds, min_responses_per_prompt: int) -> list[tuple[str, dict, str]]:
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


def _pairs_specs(
    columns: list[str], families: dict, absent: list[str], min_weight: float, bounds: GateBounds, gap: float | None
) -> list[tuple[str, dict, str]]:
    specs: list[tuple[str, dict, str]] = [
        ("ExpectTableColumnsToMatchSet", {"column_set": list(PAIR_COLUMNS), "exact_match": False},
         "the pair schema (records.PAIR_COLUMNS)"),
        ("ExpectTableRowCountToBeBetween", {"min_value": 1}, "at least one pair"),
    ]  # fmt: skip
    specs += [("ExpectColumnValuesToNotBeNull", {"column": c}, "no missing values") for c in PAIR_COLUMNS]
    specs += [
        ("ExpectColumnValuesToBeUnique", {"column": "pair_id"}, "one row per pair"),
        ("ExpectColumnPairValuesAToBeGreaterThanB",
         {"column_A": "chosen_upvotes", "column_B": "rejected_upvotes", "or_equal": False},
         "chosen has more upvotes than rejected (METHOD.md step 3)"),
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


def _pair_responses_specs() -> list[tuple[str, dict, str]]:
    return [
        ("ExpectColumnValuesToBeUnique", {"column": "response_id"},
         "each response in at most one pair (METHOD.md step 3)"),
    ]  # fmt: skip


def _pair_prompts_specs(bounds: GateBounds, families: dict, min_weight: float) -> list[tuple[str, dict, str]]:
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


# --------------------------------------------------------------------------- running


def _fmt_value(value: Any, width: int = 60) -> str:
    if isinstance(value, (float, np.floating)) and math.isfinite(value):
        return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{float(value):.6g}"
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= width else text[: width - 5] + "...'"


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars as Python numbers, non-finite floats as strings."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return str(value)


def _observed(result: dict) -> tuple[str, Any]:
    """What an expectation observed: ("value", x) for aggregates, ("unexpected_count", n) for rows."""
    if "observed_value" in result:
        value = result["observed_value"]
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        if isinstance(value, float):
            value = float(f"{value:.6g}") if math.isfinite(value) else str(value)
        return "value", _jsonable(value)
    if "unexpected_count" in result:
        return "unexpected_count", _jsonable(result["unexpected_count"])
    return "value", None


def _exception_message(info: dict) -> str | None:
    """The first exception message in a GX result's `exception_info` (flat or keyed by metric)."""
    if not info:
        return None
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    for sub in info.values():
        if isinstance(sub, dict) and sub.get("exception_message"):
            return str(sub["exception_message"])
    return None


def _describe_failure(
    table: str, cfg: dict, result: dict, error: str | None, n_rows: int, id_columns: list[str]
) -> list[str]:
    kwargs = {k: v for k, v in cfg["kwargs"].items() if k not in ("batch_id", "result_format", "severity")}
    args = ", ".join(f"{k}={_fmt_value(v, 200)}" for k, v in kwargs.items() if v is not None)
    why = (cfg.get("meta") or {}).get("why", "")
    head = f"- {table}: {cfg['type']}({args})" + (f" [{why}]" if why else "")
    if error:
        return [head, f"    could not run: {error}"]
    lines = [head]
    if "unexpected_count" in result:
        lines.append(f"    observed: {result['unexpected_count']} of {n_rows} rows unexpected")
    elif "observed_value" in result:
        observed = result["observed_value"]
        missing = ((result.get("details") or {}).get("mismatched") or {}).get("missing")
        suffix = f"; missing columns: {missing}" if missing else ""
        lines.append(f"    observed: {_fmt_value(observed, 300)}{suffix}")
    for row in (result.get("partial_unexpected_index_list") or [])[:MAX_OFFENDING_ROWS]:
        if isinstance(row, dict):  # ids first, then the offending values
            keys = [k for k in id_columns if k in row] + [k for k in row if k not in id_columns]
            lines.append("    " + " ".join(f"{k}={_fmt_value(row[k])}" for k in keys))
        else:
            lines.append(f"    row {_fmt_value(row)}")
    return lines


def _run_gate(name: str, tables: list[_Table], docs_dir: str | os.PathLike | None) -> dict:
    """Validate each table with its own suite and validation definition; raise GateError on failure."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.metadata_types import FailureSeverity

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas(f"{name}_gate")

    summary: dict[str, Any] = {"gate": name, "success": True, "n_rows": len(tables[0].df), "tables": {}}
    expectations: dict[str, dict] = {}
    failures: list[list[str]] = []
    warnings: list[list[str]] = []
    for table in tables:
        batch = source.add_dataframe_asset(table.name).add_batch_definition_whole_dataframe("whole")
        suite_expectations = [
            getattr(gxe, cls_name)(**kwargs, meta={"order": order, "why": why})
            for order, (cls_name, kwargs, why) in enumerate(table.specs)
        ]
        suite = context.suites.add(gx.ExpectationSuite(name=f"{name}.{table.name}", expectations=suite_expectations))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{name}.{table.name}", data=batch, suite=suite)
        )
        id_columns = [c for c in table.id_columns if c in table.df.columns]
        result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_OFFENDING_ROWS}
        if id_columns:
            result_format["unexpected_index_column_names"] = id_columns
        run = definition.run(batch_parameters={"dataframe": table.df}, result_format=result_format)

        table_failures = []
        for res in sorted(run.results, key=lambda r: r.expectation_config.meta["order"]):
            cfg = res.expectation_config.to_json_dict()
            result = res.result or {}
            error = _exception_message(res.exception_info)
            kw = cfg["kwargs"]
            column = kw.get("column") or ",".join(
                kw.get("column_list") or [c for c in (kw.get("column_A"), kw.get("column_B")) if c]
            )
            key = f"{table.name}/{cfg['type']}" + (f"/{column}" if column else "")
            if key in expectations:  # the same check twice on one column: keep both
                key += f"#{cfg['meta']['order']}"
            metric, observed = _observed(result)
            critical = res.expectation_config.severity == FailureSeverity.CRITICAL
            entry = {"type": cfg["type"], "table": table.name, "column": column, "success": bool(res.success)}
            entry["severity"] = "critical" if critical else "warning"
            entry.update({"observed_metric": metric, "observed": observed})
            if error:
                entry["error"] = error
            expectations[key] = entry
            if not res.success:
                lines = _describe_failure(table.name, cfg, result, error, len(table.df), id_columns)
                (table_failures if critical else warnings).append(lines)
        failures += table_failures
        summary["tables"][table.name] = {"n_rows": len(table.df), "success": not table_failures}

    summary["success"] = not failures
    summary["failed"] = len(failures)
    summary["warnings"] = ["\n".join(lines) for lines in warnings]
    summary["expectations"] = expectations
    summary = _jsonable(summary)
    if docs_dir is not None:
        _build_docs(context, docs_dir)  # also for a failed gate: the docs show what went wrong
    if failures:
        n = len(failures)
        lines = [f"data gate '{name}' failed: {n} critical expectation{'s' * (n != 1)} on {summary['n_rows']} rows"]
        for failure in failures:
            lines += failure
        lines.append("Nothing was written. Fix the data upstream, or the bounds in params.yaml `gates:`.")
        raise GateError("\n".join(lines), summary)
    return summary


def _build_docs(context: Any, docs_dir: str | os.PathLike) -> None:
    """Build Data Docs HTML for this context's validations into `docs_dir` (repointed local
    site), replacing what an earlier run left there."""
    docs = Path(docs_dir).resolve()
    shutil.rmtree(docs, ignore_errors=True)
    sites = context.list_data_docs_sites()
    site_name = "local_site" if "local_site" in sites else next(iter(sites))
    config = dict(sites[site_name])
    config["store_backend"] = {**config["store_backend"], "base_directory": str(docs)}
    context.update_data_docs_site(site_name, config)
    context.build_data_docs(site_names=[site_name])


# --------------------------------------------------------------------------- public API


def check_responses(
    df: pd.DataFrame,
    bounds: GateBounds,
    *,
    name: str = "ingest",
    min_responses_per_prompt: int = 1,
    before_filter: bool = False,
    docs_dir: str | os.PathLike | None = None,
) -> dict:
    """Gate a responses table (records.RESPONSE_COLUMNS) before it is written.

    Critical: the schema columns exist, none is null, response_id is unique, score
    numeric in [-1, 1], upvotes numeric and finite, the mean and median words per response
    (`n_words`) within bounds; per prompt: at least `bounds.min_prompts` prompts, between
    `min_responses_per_prompt` and `bounds.max_responses_per_prompt` responses each and
    their mean within bounds, one prompt text per id, mean prompt words within bounds.
    After filter also every response's words within [min_response_words,
    max_response_words]. `before_filter=True` (ingest's output, which still holds the
    empty, deleted and over-long bodies that filter removes, METHOD.md step 2) turns the
    per-response word bounds into a warning and warns when more than
    `bounds.max_empty_share` of the bodies are empty or deleted.
    Returns the summary dict; raises GateError when a critical expectation fails. With
    `docs_dir`, also builds Data Docs HTML there (not a DVC output: it holds timestamps).
    """
    frame, prompts = _responses_tables(df)
    tables = [_Table("responses", frame, ["prompt_id", "response_id"], _responses_specs(bounds, before_filter))]
    if prompts is not None:
        tables.append(_Table("prompts", prompts, ["prompt_id"], _prompts_specs(bounds, min_responses_per_prompt)))
    return _run_gate(name, tables, docs_dir)


def check_pairs(
    df: pd.DataFrame,
    bounds: GateBounds,
    *,
    name: str = "pair",
    min_weight: float = 0.0,
    gap: float | None = None,
    docs_dir: str | os.PathLike | None = None,
) -> dict:
    """Gate a pairs table (records.PAIR_COLUMNS, plus `w_*` weight columns after deviate).

    Critical: the schema columns exist, none is null, pair_id unique, chosen_upvotes >
    rejected_upvotes, chosen_id != rejected_id (derived `same_response`), scores in
    [-1, 1]; each response in at most one pair; at least `bounds.min_pairs_per_prompt`
    pairs per prompt. Weight columns (`w_chosen<X>` with `w_rejected<X>`): numeric,
    finite, >= `min_weight` (deviate's "minimum delta"; 0 = off), and per prompt their
    mean over the set R of responses in the prompt's pairs is 1 within 1e-6 (with a floor
    > 0: at least 1 - 1e-6). With `gap`, a warning when fewer than
    `bounds.min_gap_share` of the pairs meet the upvote gap (the rest came from the
    fallback rule, METHOD.md step 3). Returns the summary dict; raises GateError when a
    critical expectation fails.
    """
    families, absent = _weight_families(list(df.columns))
    derived = _pairs_tables(df, families)
    tables = [
        _Table(
            "pairs",
            derived["pairs"],
            ["pair_id"],
            _pairs_specs(list(df.columns), families, absent, min_weight, bounds, gap),
        )
    ]
    if "pair_responses" in derived:
        tables.append(_Table("pair_responses", derived["pair_responses"], ["pair_id"], _pair_responses_specs()))
    if "prompts" in derived:
        tables.append(
            _Table("pair_prompts", derived["prompts"], ["prompt_id"], _pair_prompts_specs(bounds, families, min_weight))
        )
    return _run_gate(name, tables, docs_dir)


def compact_summary(summary: dict) -> dict:
    """The gate's DVC metric: pass/fail and counts, per table too (the full summary is long)."""
    return {
        "success": summary["success"],
        "expectations": len(summary["expectations"]),
        "failed": summary["failed"],
        "warnings": len(summary["warnings"]),
        "tables": summary["tables"],
    }


def write_summary(summary: dict, path: str | os.PathLike) -> Path:
    """Write a gate's compact summary to `path` (a stable DVC metric: sorted keys, plain
    JSON, no timestamps) and the full one, every expectation with what it observed, beside
    it as `<name>.details.json`. Returns the details path."""
    path = Path(path)
    details = path.with_name(path.stem + ".details.json")
    write_json(_jsonable(compact_summary(summary)), path)
    write_json(_jsonable(summary), details)
    return details


def gate_docs_dir(params: dict[str, Any], gate: str) -> str | None:
    """Where a gate builds its Data Docs HTML (`reports/data_docs/<gate>`), or None when
    `gates.data_docs` is off. Not a DVC output: GX stamps the pages with the run time."""
    return f"reports/data_docs/{gate}" if params["gates"].get("data_docs", True) else None


def report_gate(summary: dict[str, Any]) -> dict[str, Any]:
    """Write a passed gate's summary (`reports/gates/<gate>.json`, a DVC metric, and
    `.details.json`), print its warnings, log the details and Data Docs to MLflow, and
    return the compact summary for the stage's metrics."""
    gate = summary["gate"]
    details = write_summary(summary, f"reports/gates/{gate}.json")
    for warning in summary["warnings"]:
        print(f"{gate}: data gate warning (the stage goes on):\n{warning}", file=sys.stderr)
    log_artifact(details, "gates")
    log_artifact(f"reports/data_docs/{gate}", f"data_docs/{gate}")
    return compact_summary(summary)
