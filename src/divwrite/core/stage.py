"""What every stage script shares: its params, its MLflow run, readable failures."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from divwrite.core.distributed import is_main_process
from divwrite.core.params import load_params
from divwrite.core.records import read_table

# Errors that mean "the data or the settings are wrong", shown as one readable message
# (DIVWRITE_DEBUG=1 shows the traceback too). Anything else keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (FileNotFoundError, ValueError)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (when imported) for reproducible CPU runs."""
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)


def read_input(path: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read an input table and record it in the stage's MLflow run (digest = DVC's md5)."""
    from divwrite.core.tracking import log_table_input

    df = read_table(path, columns)
    log_table_input(df, path)
    return df


def gate_docs_dir(params: dict[str, Any], gate: str) -> str | None:
    """Where a gate builds its Data Docs HTML (`reports/data_docs/<gate>`), or None when
    `gates.data_docs` is off. Not a DVC output: GX stamps the pages with the run time."""
    return f"reports/data_docs/{gate}" if params["gates"].get("data_docs", True) else None


def report_gate(summary: dict[str, Any]) -> dict[str, Any]:
    """Write a passed gate's summary (`reports/gates/<gate>.json`, a DVC metric, and
    `.details.json`), print its warnings, log the details and Data Docs to MLflow, and
    return the compact summary for the stage's metrics."""
    from divwrite.core.tracking import log_artifact
    from divwrite.data.gates import compact_summary, write_summary

    gate = summary["gate"]
    details = write_summary(summary, f"reports/gates/{gate}.json")
    for warning in summary["warnings"]:
        print(f"{gate}: data gate warning (the stage goes on):\n{warning}", file=sys.stderr)
    log_artifact(details, "gates")
    log_artifact(f"reports/data_docs/{gate}", f"data_docs/{gate}")
    return compact_summary(summary)


def run_stage(name: str, body: Callable[[dict[str, Any]], dict[str, Any] | None], sections: list[str]) -> None:
    """Run `body(params)` inside the stage's MLflow run; exit 1 with a clear message on bad data.

    `sections` names the params sections the stage reads (logged as the run's params).
    `body` returns the metrics to log (nested dicts are flattened to `a.b.c`). Under
    `accelerate launch` every process runs `body`; only the main one opens the MLflow run.
    """
    from divwrite.core.tracking import log_metrics, stage_run
    from divwrite.data.gates import GateError

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    params = load_params()
    seed_everything(int(params.get("seed", 0)))
    logged = {s: params[s] for s in sections if s in params}
    experiment = params.get("mlflow", {}).get("experiment")
    try:
        if not is_main_process():  # another rank under `accelerate launch`: rank 0 logs for all
            body(params)
            return
        with stage_run(name, logged, experiment):
            metrics = body(params)
            if metrics:
                log_metrics(metrics)
    except GateError as err:
        docs = Path(f"reports/data_docs/{err.summary.get('gate', name)}/index.html")
        hint = f"\nData Docs: {docs}" if docs.exists() else ""
        print(f"\n{name}: data gate failed, nothing was written.\n{err}{hint}", file=sys.stderr)
        sys.exit(1)
    except USER_ERRORS as err:
        if os.environ.get("DIVWRITE_DEBUG") == "1":
            raise
        print(f"\n{name}: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
