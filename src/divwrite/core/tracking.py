"""MLflow tracking: one run per pipeline execution, one nested run per stage that ran.

The store is a sqlite file in the repository (`mlflow.db`), artifacts go to
`mlartifacts/`, telemetry is off. `divwrite repro` (what `make run` calls) opens the
pipeline run and hands its id to the stages through `DIVWRITE_PIPELINE_RUN_ID`; a stage
started some other way (`dvc repro`, `dvc exp run`, by hand) still gets a run of its
own, tagged as standalone. `MLFLOW_TRACKING_URI` overrides the store.

Every experiment the project creates is tagged `mlflow.experimentKind:
custom_model_development` (a model-training experiment, not a GenAI app). MLflow 3.17's UI
does not read that tag to pick its landing page: it opens the GenAI overview unless the
page's URL (or the toggle in its sidebar, remembered by the browser) says
`workflowType=machine_learning`, hence the links of `ui_links` (`divwrite ui`, `make ui`).

The evaluate stage logs one nested run per method (`method_eval_run`): run name
`eval/<method>`, tag `divwrite.role = method-eval`, the method's metrics and spec, in the
experiment of the stage's run. `METHOD_EVAL_FILTER` selects exactly those runs in the UI.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from divwrite.core.params import flatten
from divwrite.core.vcs import run_git

PARENT_RUN_ENV = "DIVWRITE_PIPELINE_RUN_ID"
DEFAULT_EXPERIMENT = "divwrite"
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
METHOD_EVAL_ROLE = "method-eval"
METHOD_EVAL_FILTER = f"tags.divwrite.role = '{METHOD_EVAL_ROLE}'"
# The UI nests child runs under their parent (collapsed) only when the table is sorted by
# date: sorted by quality, the methods' evaluation runs are listed flat, best first.
METHODS_ORDER = "&orderByKey=" + quote("metrics.`quality`") + "&orderByAsc=false"
# Tags a method's evaluation run copies from the evaluate stage's run.
INHERITED_TAGS = ("mlflow.source.git.commit", "dvc.experiment", "dvc.baseline_rev")


def project_root() -> Path:
    """The repository whose `mlflow.db` receives the runs.

    In `dvc exp run --queue` stages run in a temporary checkout while `DVC_ROOT` points at
    the original repository: a path relative to the working directory would be lost with
    the checkout, so the store follows `DVC_ROOT` when it is set.
    """
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def tracking_uri(root: Path | None = None) -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = root or project_root()
    return f"sqlite:///{root / 'mlflow.db'}"


def use_store(root: Path | None = None) -> None:
    """Point MLflow at the project's store (`tracking_uri`), telemetry off."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(root))


def configure(experiment: str = DEFAULT_EXPERIMENT, root: Path | None = None) -> str:
    """Point MLflow at the project's store (telemetry off); return the experiment id. The
    experiment is created tagged `EXPERIMENT_KIND`; one that lacks the tag (made by an
    earlier version) gets it."""
    import mlflow

    root = root or project_root()
    use_store(root)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        try:
            location = (root / "mlartifacts" / experiment).as_uri()
            return mlflow.create_experiment(experiment, artifact_location=location, tags=EXPERIMENT_KIND)
        except Exception:  # another process created it in the meantime
            found = mlflow.get_experiment_by_name(experiment)
            if found is None:
                raise
    client = mlflow.MlflowClient()
    for key, value in EXPERIMENT_KIND.items():
        if key not in found.tags:
            client.set_experiment_tag(found.experiment_id, key, value)
    return found.experiment_id


def git_commit(root: Path | None = None) -> str:
    """The checked-out commit (with `-dirty` when the tree has changes), or "unknown"."""
    root = root or project_root()
    try:
        commit = run_git(root, "rev-parse", "HEAD", check=True).stdout.strip()
        dirty = run_git(root, "status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def file_md5(path: str | Path) -> str:
    """MD5 of a file's bytes: the digest DVC records for it in `dvc.lock`."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def log_table_input(df: Any, path: str | Path, context: str = "input") -> None:
    """Record a stage's input table as an MLflow dataset whose digest is DVC's md5."""
    import mlflow

    path = Path(path)
    with warnings.catch_warnings():  # schema inference warns about int columns and NaN: irrelevant here
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(df, source=str(path), name=path.name, digest=file_md5(path))
        mlflow.log_input(dataset, context=context)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """Log a file or a folder to the active MLflow run (nothing without one)."""
    import mlflow

    path = Path(path)
    if mlflow.active_run() is None or not path.exists():
        return
    if path.is_dir():
        mlflow.log_artifacts(str(path), artifact_path=artifact_path)
    else:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_metrics(metrics: dict[str, Any], prefix: str = "") -> None:
    """Log the numeric leaves of a (nested) dict as metrics named `a.b.c`."""
    import mlflow

    flat = {
        f"{prefix}{k}": float(v)
        for k, v in flatten(metrics).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    if flat:
        mlflow.log_metrics(flat)


@contextmanager
def stage_run(stage: str, params: dict[str, Any] | None = None, experiment: str | None = None) -> Iterator[Any]:
    """A nested MLflow run for one stage (under the pipeline run when there is one).

    Logs the stage's params (flattened), tags the git commit and the stage name, and
    records the stage's wall time as the metric `stage_seconds`. A failure marks the run
    FAILED and re-raises.
    """
    import mlflow

    root = project_root()
    experiment_id = configure(experiment or DEFAULT_EXPERIMENT, root)
    parent = os.environ.get(PARENT_RUN_ENV) or None
    tags = {
        "divwrite.stage": stage,
        "divwrite.kind": "stage" if parent else "standalone-stage",
        "mlflow.source.git.commit": git_commit(root),
    }
    # A queued `dvc exp run` names its experiment and baseline: grid points stay apart in MLflow.
    for env, tag in (("DVC_EXP_NAME", "dvc.experiment"), ("DVC_EXP_BASELINE_REV", "dvc.baseline_rev")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    start = time.perf_counter()
    nested = mlflow.active_run() is not None  # in-process callers (tests, notebooks)
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=stage, parent_run_id=parent, nested=nested, tags=tags
    ) as run:
        if params:
            mlflow.log_params({k: str(v)[:6000] for k, v in flatten(params).items()})
        yield run
        mlflow.log_metric("stage_seconds", time.perf_counter() - start)


@contextmanager
def method_eval_run(method: str, spec: dict[str, Any] | None = None) -> Iterator[Any]:
    """A nested run `eval/<method>` under the active run (the evaluate stage's), in that run's
    experiment, tagged `divwrite.role = method-eval` (`METHOD_EVAL_FILTER`) and
    `divwrite.method`, with the stage run's commit and DVC experiment tags; `spec` (the
    method's `train.methods` entry) is logged as params `method.<key>`."""
    import mlflow

    parent = mlflow.active_run()
    if parent is None:
        raise RuntimeError(f"eval/{method}: no active MLflow run to nest the method's evaluation under")
    inherited = mlflow.get_run(parent.info.run_id).data.tags
    tags = {k: inherited[k] for k in INHERITED_TAGS if k in inherited}
    tags |= {"divwrite.role": METHOD_EVAL_ROLE, "divwrite.method": method}
    with mlflow.start_run(
        experiment_id=parent.info.experiment_id, run_name=f"eval/{method}", nested=True, tags=tags
    ) as run:
        if spec:
            mlflow.log_params({f"method.{k}": str(v) for k, v in spec.items() if v is not None})
        yield run


def ui_links(port: int = 5000, host: str = "127.0.0.1") -> list[tuple[str, str]]:
    """(label, URL) of the MLflow UI pages worth opening, for the store `configure` set: each
    experiment's runs table; where methods were evaluated, the latest evaluation's methods
    side by side (a bar chart per metric) and every method evaluation in a table, flat, best
    quality first. The URLs say `workflowType=machine_learning`: without it MLflow 3.17 opens
    its GenAI overview (traces), whatever the experiment's tags."""
    import mlflow

    base = f"http://{host}:{port}/#/experiments"
    links = []
    for exp in mlflow.search_experiments(order_by=["name ASC"]):
        if not mlflow.search_runs([exp.experiment_id], max_results=1, output_format="list"):
            continue
        runs = f"{base}/{exp.experiment_id}/runs?workflowType=machine_learning"
        links.append((f"{exp.name}: runs", runs))
        latest = mlflow.search_runs(
            [exp.experiment_id],
            filter_string=METHOD_EVAL_FILTER,
            order_by=["attributes.start_time DESC"],
            max_results=1,
            output_format="list",
        )
        if latest:
            last = f"{METHOD_EVAL_FILTER} AND tags.mlflow.parentRunId = '{latest[0].data.tags['mlflow.parentRunId']}'"
            charts = f"{runs}&searchFilter={quote(last)}{METHODS_ORDER}&compareRunsMode=CHART"
            links.append((f"{exp.name}: the latest evaluation's methods", charts))
            table = f"{runs}&searchFilter={quote(METHOD_EVAL_FILTER)}{METHODS_ORDER}"
            links.append((f"{exp.name}: every method evaluation", table))
    return links


def find_run(ref: str, experiment: str | None = None) -> Any:
    """An MLflow run by id, or by run name (the most recent run of that name, e.g.
    `eval/ddpo-both`, `train@dpo`, `pipeline`); LookupError when there is none."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.get_run(ref)
    except MlflowException:
        pass
    names = [experiment] if experiment else None
    escaped = ref.replace("'", "\\'")
    runs = mlflow.search_runs(
        experiment_names=names,
        search_all_experiments=names is None,
        filter_string=f"attributes.run_name = '{escaped}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        raise LookupError(f"no MLflow run with id or name {ref!r} in {tracking_uri()}")
    return runs[0]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def compare_runs(a: Any, b: Any, all_params: bool = False) -> str:
    """Two MLflow runs side by side as markdown: the metrics of either (with b - a), then
    the params that differ (every param with `all_params`)."""
    ma, mb = a.data.metrics, b.data.metrics
    name_a, name_b = (f"{r.info.run_name} ({r.info.run_id[:8]})" for r in (a, b))
    lines = [f"| metric | {name_a} | {name_b} | b - a |", "|---|---:|---:|---:|"]
    for key in sorted(set(ma) | set(mb)):
        va, vb = ma.get(key), mb.get(key)
        diff = vb - va if va is not None and vb is not None else None
        lines.append(f"| {key} | {_cell(va)} | {_cell(vb)} | {_cell(diff)} |")
    pa, pb = a.data.params, b.data.params
    keys = sorted(k for k in set(pa) | set(pb) if all_params or pa.get(k) != pb.get(k))
    lines += ["", f"| param | {name_a} | {name_b} |", "|---|---|---|"]
    lines += [f"| {k} | {_cell(pa.get(k))} | {_cell(pb.get(k))} |" for k in keys]
    if not keys:
        lines.append("| (no param differs) | | |")
    return "\n".join(lines) + "\n"
