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


class GateError(RuntimeError):
    """A data gate failed (`divwrite.data.gates`). The message is meant for a person; `summary`
    holds the details. The stage exits 1 with the message and writes nothing."""

    def __init__(self, message: str, summary: dict) -> None:
        super().__init__(message)
        self.summary = summary


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


def run_stage(name: str, body: Callable[[dict[str, Any]], dict[str, Any] | None], sections: list[str]) -> None:
    """Run `body(params)` inside the stage's MLflow run; exit 1 with a clear message on bad data.

    `sections` names the params sections the stage reads (logged as the run's params).
    `body` returns the metrics to log (nested dicts are flattened to `a.b.c`). Under
    `accelerate launch` every process runs `body`; only the main one opens the MLflow run.
    """
    from divwrite.core.tracking import log_metrics, stage_run

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
