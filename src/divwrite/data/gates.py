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
DataFrame (a Checkpoint would pass one `batch_parameters` to every definition). The tables
and their expectation specs come from `divwrite.data.expectations`. `import
great_expectations` costs ~4 s, so it happens inside the functions, not at import time.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from divwrite.core.files import write_json
from divwrite.core.schema import GatesParams
from divwrite.core.stage import GateError
from divwrite.core.tracking import log_artifact
from divwrite.data.expectations import (
    Table,
    pair_prompts_specs,
    pair_responses_specs,
    pairs_specs,
    pairs_tables,
    prompts_specs,
    removals_specs,
    responses_specs,
    responses_tables,
    weight_families,
)
from divwrite.data.filtering import removals_table

logger = logging.getLogger(__name__)

MAX_OFFENDING_ROWS = 5


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


def _run_gate(name: str, tables: list[Table], docs_dir: str | os.PathLike | None) -> dict:
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

        table_failures, table_warnings = [], []
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
                (table_failures if critical else table_warnings).append(lines)
        texts = [t for t in table.df[table.warning_column] if t] if table.warning_column else []
        warnings += [[t] for t in texts] if table_warnings and texts else table_warnings
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
    bounds: GatesParams,
    *,
    name: str = "ingest",
    min_responses_per_prompt: int = 1,
    before_filter: bool = False,
    removal: dict[str, dict] | None = None,
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
    `bounds.max_empty_share` of the bodies are empty or deleted. With `removal` (the filter's
    `filtering.removal_stats` per split) also a `removals` table, one row per split and rule:
    a warning, naming the rule and its numbers, when a rule (or all together) removed more than
    `bounds.max_removed_share` of a split, or removed responses that score higher than the
    kept ones (`filtering.score_shift`).
    Returns the summary dict; raises GateError when a critical expectation fails. With
    `docs_dir`, also builds Data Docs HTML there (not a DVC output: it holds timestamps).
    """
    frame, prompts = responses_tables(df)
    tables = [Table("responses", frame, ["prompt_id", "response_id"], responses_specs(bounds, before_filter))]
    if prompts is not None:
        tables.append(Table("prompts", prompts, ["prompt_id"], prompts_specs(bounds, min_responses_per_prompt)))
    if removal is not None:
        removals = removals_table(removal, bounds.max_removed_share)
        tables.append(Table("removals", removals, ["split", "rule"], removals_specs(bounds), warning_column="warning"))
    return _run_gate(name, tables, docs_dir)


def check_pairs(
    df: pd.DataFrame,
    bounds: GatesParams,
    *,
    name: str = "pair",
    min_weight: float = 0.0,
    gap: float | None = None,
    given: bool = False,
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
    fallback rule, METHOD.md step 3). `given` (the pairs layout, `divwrite.data.pairs`: the
    pairs as judged, a response in several of them, upvotes derived from them) checks instead
    of chosen_upvotes > rejected_upvotes and "each response in at most one pair" that chosen
    and rejected are different, non-empty texts, each within [min_response_words,
    max_response_words]. Returns the summary dict; raises GateError when a critical
    expectation fails.
    """
    families, absent = weight_families(list(df.columns))
    derived = pairs_tables(df, families, given)
    tables = [
        Table(
            "pairs",
            derived["pairs"],
            ["pair_id"],
            pairs_specs(list(df.columns), families, absent, min_weight, bounds, gap, given),
        )
    ]
    if "pair_responses" in derived and not given:
        tables.append(Table("pair_responses", derived["pair_responses"], ["pair_id"], pair_responses_specs()))
    if "prompts" in derived:
        tables.append(
            Table("pair_prompts", derived["prompts"], ["prompt_id"], pair_prompts_specs(bounds, families, min_weight))
        )
    return _run_gate(name, tables, docs_dir)


def compact_summary(summary: dict) -> dict:
    """The gate's DVC metric: pass/fail and counts, per table too (the full summary is long),
    and the warnings' texts when there are any (`dvc metrics` shows only the numbers)."""
    compact = {
        "success": summary["success"],
        "expectations": len(summary["expectations"]),
        "failed": summary["failed"],
        "warnings": len(summary["warnings"]),
        "tables": summary["tables"],
    }
    if summary["warnings"]:
        compact["warning_messages"] = summary["warnings"]
    return compact


def write_summary(summary: dict, path: str | os.PathLike) -> Path:
    """Write a gate's compact summary to `path` (a stable DVC metric: sorted keys, plain
    JSON, no timestamps) and the full one, every expectation with what it observed, beside
    it as `<name>.details.json`. Returns the details path."""
    path = Path(path)
    details = path.with_name(path.stem + ".details.json")
    write_json(_jsonable(compact_summary(summary)), path)
    write_json(_jsonable(summary), details)
    return details


def gate_docs_dir(gates: GatesParams, gate: str) -> str | None:
    """Where a gate builds its Data Docs HTML (`reports/data_docs/<gate>`), or None when
    `gates.data_docs` is off. Not a DVC output: GX stamps the pages with the run time."""
    return f"reports/data_docs/{gate}" if gates.data_docs else None


def report_gate(summary: dict[str, Any]) -> dict[str, Any]:
    """Write a passed gate's summary (`reports/gates/<gate>.json`, a DVC metric, and
    `.details.json`), log its warnings, log the details and Data Docs to MLflow, and
    return the compact summary for the stage's metrics."""
    gate = summary["gate"]
    details = write_summary(summary, f"reports/gates/{gate}.json")
    for warning in summary["warnings"]:
        logger.warning("%s: data gate warning (the stage goes on):\n%s", gate, warning)
    log_artifact(details, "gates")
    log_artifact(f"reports/data_docs/{gate}", f"data_docs/{gate}")
    return compact_summary(summary)
