"""What every stage script shares: its params, its MLflow run, logging, readable failures."""

from __future__ import annotations

import logging
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from divwrite.core.distributed import is_main_process
from divwrite.core.logs import setup_logging
from divwrite.core.params import load_params
from divwrite.core.records import read_table
from divwrite.core.schema import Params

logger = logging.getLogger(__name__)

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
    """Read an input table and record it in the stage's MLflow run (digest = DVC's md5); under
    several processes only the main one records it."""
    df = read_table(path, columns)
    if is_main_process():
        from divwrite.core.tracking import log_table_input

        log_table_input(df, path)
    return df


def run_stage(name: str, body: Callable[[Params], dict[str, Any] | None]) -> None:
    """Load and check `params.yaml` (`core.schema.Params`), then run `body(params)` inside the
    stage's MLflow run (every param logged, the returned metrics too, nested dicts flattened to
    `a.b.c`); exit 1 with one readable message on bad params or bad data.

    Under `accelerate launch` every process runs `body`; only the main one opens the MLflow run.
    """
    setup_logging()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        params = load_params()
        seed_everything(params.seed)
        if not is_main_process():  # another rank under `accelerate launch`: rank 0 logs for all
            body(params)
            return
        from divwrite.core.tracking import log_metrics, stage_run

        with stage_run(name, params.model_dump(mode="json"), params.mlflow.experiment):
            metrics = body(params)
            if metrics:
                log_metrics(metrics)
    except GateError as err:
        docs = Path(f"reports/data_docs/{err.summary.get('gate', name)}/index.html")
        hint = f"\nData Docs: {docs}" if docs.exists() else ""
        logger.error("%s: data gate failed, nothing was written.\n%s%s", name, err, hint)
        sys.exit(1)
    except USER_ERRORS as err:
        if os.environ.get("DIVWRITE_DEBUG") == "1":
            raise
        logger.error("%s: %s: %s", name, type(err).__name__, err)
        sys.exit(1)
