"""Running the DVC pipeline inside one MLflow run, and the smoke profile.

`run_pipeline` opens the pipeline's MLflow run, runs `dvc repro` with the run id in the
environment (each stage that runs nests its own run under it), then logs the params,
the results, the figure and `dvc.lock` to the pipeline run, and prints a table of the
stages that ran and how long each took. When no stage ran (the pipeline was up to date)
and DVC succeeded, the pipeline run is deleted: a no-op leaves no run in the UI. A failure
keeps its run, marked FAILED, with the stages that did run under it.

`run_smoke` copies the project's files, not its outputs (`reports/` included: its committed
results are the full run's), into a scratch folder, applies a profile (`profiles/smoke.yaml`
by default, `profiles/hanna.yaml` for the real HANNA stories) on top of `params.yaml` and
runs the same pipeline there, so such a run never touches the outputs or the DVC cache of
the real one. It ends by printing what this run produced (`run_report`): the stages that
ran, the files they wrote under `reports/`, each stage's stats and gate, and `results.md`
and `premise.md` only when this run wrote them.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from divwrite.core.files import read_json
from divwrite.core.params import ParamsError, deep_merge, flatten, load_params, read_params
from divwrite.core.tracking import PARENT_RUN_ENV, configure, git_commit, log_metrics
from divwrite.core.vcs import run_dvc, run_git, venv_env
from divwrite.ops.prefork import warm_interpreter
from divwrite.ops.profiles import absolute_source, load_profile

logger = logging.getLogger(__name__)

RESULT_ARTIFACTS = [
    "reports/results.json",
    "reports/results.md",
    "reports/metrics.json",
    "reports/quality_vs_diversity.png",
    "dvc.lock",
    "params.yaml",
]


# Not copied into a scratch copy: the committed outputs of the full run (DVC writes its own).
NOT_COPIED = ("dvc.lock", "reports")
# What `run_report` prints whole when this run wrote it.
REPORT_DOCUMENTS = ("reports/premise.md", "reports/results.md")
STATS_SHOWN = 12  # a stage's stats `run_report` prints; the file has them all


@dataclass
class PipelineRun:
    """What `reproduce` did: DVC's exit code (2: params.yaml does not fit the schema, nothing
    ran), the stages that ran (`stage_times` rows) and the MLflow pipeline run's id (None
    when none was kept)."""

    code: int
    stages: list[dict] = field(default_factory=list)
    run_id: str | None = None


def run_pipeline(dvc_args: list[str] | None = None, root: Path | None = None) -> int:
    """`dvc repro` under one MLflow pipeline run (`reproduce`); returns DVC's exit code, or 2
    without running anything when `params.yaml` does not fit the schema."""
    return reproduce(dvc_args, root).code


def reproduce(dvc_args: list[str] | None = None, root: Path | None = None) -> PipelineRun:
    """`dvc repro` under one MLflow pipeline run. When DVC succeeds and no stage ran, the
    pipeline run is deleted (nothing logged but the params of a run no one sees); a failure
    keeps it, FAILED. A bad `params.yaml` runs nothing (code 2, the message names every bad key)."""
    import mlflow

    root = (root or Path.cwd()).resolve()
    os.chdir(root)
    try:
        params = load_params(root / "params.yaml")
    except ParamsError as err:
        logger.error("%s", err)
        return PipelineRun(2)
    experiment_id = configure(params.mlflow.experiment, root)
    tags = {
        "divwrite.kind": "pipeline",
        "mlflow.source.git.commit": git_commit(root),
        "divwrite.dvc_args": " ".join(dvc_args or []),
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name="pipeline", tags=tags) as run:
        run_id = run.info.run_id
        mlflow.log_params({k: str(v)[:6000] for k, v in flatten(params.model_dump(mode="json")).items()})
        with warm_interpreter(venv_env({PARENT_RUN_ENV: run_id})) as env:  # stages fork from a warm one
            code = run_dvc(root, "repro", *(dvc_args or []), env=env, output="inherit").returncode
        stages = stage_times(run_id, experiment_id)
        if stages or code != 0:
            _log_results(root)
            _print_stage_times(stages)
        if code != 0:
            mlflow.set_tag("divwrite.error", f"dvc repro exited with {code}")
            mlflow.end_run(status="FAILED")
    if code == 0 and not stages:
        mlflow.MlflowClient().delete_run(run_id)
        logger.info("no stage ran (the pipeline is up to date): no MLflow run logged")
        return PipelineRun(code)
    return PipelineRun(code, stages, run_id)


def _log_results(root: Path) -> None:
    """The results' metrics and files, to the active (pipeline) run."""
    import mlflow

    if (root / "reports/metrics.json").exists():
        log_metrics(read_json(root / "reports/metrics.json"))
    for name in RESULT_ARTIFACTS:
        if (root / name).exists():
            folder = str(Path(name).parent)
            mlflow.log_artifact(str(root / name), artifact_path=None if folder == "." else folder)


def stage_times(parent_run_id: str, experiment_id: str) -> list[dict]:
    """The stages that ran under a pipeline run, in order: name, status, `seconds` (the stage's
    own `stage_seconds`) and `wall` (from the end of the stage before, or the pipeline run's
    start, to the end of this one: the stage's process start-up, imports and DVC's own work
    included)."""
    import mlflow

    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )
    previous_end = mlflow.get_run(parent_run_id).info.start_time
    rows = []
    for r in runs:
        end = r.info.end_time or r.info.start_time
        rows.append(
            {
                "stage": r.info.run_name,
                "status": r.info.status,
                "seconds": r.data.metrics.get("stage_seconds", float("nan")),
                "wall": max(0, end - previous_end) / 1000,
            }
        )
        previous_end = max(previous_end, end)
    return rows


def _print_stage_times(rows: list[dict]) -> None:
    if not rows:
        return
    print("\nstage                      status     seconds    wall (with start-up)")  # noqa: T201 - the command's output
    for row in rows:
        print(f"{row['stage']:<26} {row['status']:<10} {row['seconds']:7.1f}    {row['wall']:7.1f}")  # noqa: T201 - ditto


def profile_params(root: Path, profile: str | None = "smoke") -> dict:
    """`params.yaml` with `profiles/<profile>.yaml` applied (`None`: params.yaml as is), checked
    against the schema (`load_profile`); a relative local `data.source` is made absolute
    against `root` (the copy runs elsewhere)."""
    override = load_profile(root, profile) if profile is not None else {}
    params = deep_merge(read_params(root / "params.yaml"), override)
    params["data"]["source"] = absolute_source(root, params["data"]["source"])
    return params


def tracked_files(root: Path) -> list[Path]:
    """The project's files, relative to `root`: those git tracks and the untracked ones it
    does not ignore. RuntimeError when `root` is not a git checkout."""
    try:
        out = run_git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", check=True).stdout
        return [Path(p) for p in out.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        raise RuntimeError(f"{root} is not a git checkout: cannot tell project files from outputs") from None


def prepare_smoke_copy(root: Path, target: Path, profile: str | None = "smoke") -> Path:
    """Copy the project's files to `target` and apply a profile (`None`: none). Not copied
    (`NOT_COPIED`): `dvc.lock` (the copy's lock is its own) and `reports/` (the committed
    results, figures and stats of the full run, and the reports of commands outside DVC):
    every file there is the output of a stage, which the copy's own run writes."""
    params = profile_params(root, profile)
    target.mkdir(parents=True, exist_ok=True)
    for rel in tracked_files(root):
        if rel.parts[0] in NOT_COPIED or not (root / rel).is_file():
            continue
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest)
    with (target / "params.yaml").open("w", encoding="utf-8") as f:
        yaml.safe_dump(params, f, sort_keys=False)
    # A DVC project of its own, outside git: nothing here is committed.
    run_dvc(target, "init", "--no-scm", "-f", "-q", output="inherit", check=True)
    for key, value in [("core.analytics", "false"), ("core.check_update", "false")]:
        run_dvc(target, "config", key, value, output="inherit", check=True)
    return target


def report_files(root: Path) -> dict[str, tuple[int, int]]:
    """The files under `root/reports`, by path relative to `root`: (mtime in ns, size)."""
    folder = root / "reports"
    if not folder.is_dir():
        return {}
    return {
        f.relative_to(root).as_posix(): (f.stat().st_mtime_ns, f.stat().st_size)
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


def _stat_lines(path: Path, skip: tuple[str, ...] = (), most: int = STATS_SHOWN) -> list[str]:
    """`key: value` for the leaves of a stage's stats file, the first `most` of them."""
    leaves = flatten({k: v for k, v in read_json(path).items() if k not in skip})
    lines = [f"  {k}: {f'{v:.4g}' if isinstance(v, float) else v}" for k, v in leaves.items() if v is not None]
    if len(lines) > most:
        lines = [*lines[:most], f"  ... {len(lines) - most} more in {path.parent.name}/{path.name}"]
    return lines


def _listed(paths: list[str]) -> list[str]:
    """One line per file, a folder deeper than reports/<a>/<b> (e.g. a gate's Data Docs) as one."""
    folders: dict[str, int] = {}
    for path in paths:
        parts = path.split("/")
        key = "/".join(parts[:3]) + "/" if len(parts) > 3 else path
        folders[key] = folders.get(key, 0) + 1
    return [f"- {k} ({n} files)" if k.endswith("/") else f"- {k}" for k, n in folders.items()]


def _gate_line(gate: dict) -> str:
    verdict = "passed" if gate.get("success") else "FAILED"
    counts = ", ".join(f"{gate[k]} {k}" for k in ("expectations", "failed", "warnings") if k in gate)
    return f"  gate: {verdict} ({counts})"


def run_report(root: Path, run: PipelineRun, written: list[str]) -> str:
    """What one run produced, as markdown: the stages that ran, the files they wrote under
    `reports/` (`written`; a gate's Data Docs as one folder), each stage's gate
    (`reports/gates/<stage>.json`) and first `STATS_SHOWN` stats (`reports/stages/<stage>.json`,
    or `reports/<a>/<b>.json` for `a@b`) when this run wrote them, then the `REPORT_DOCUMENTS`
    this run wrote, whole. Nothing from an earlier run."""
    status = "succeeded" if run.code == 0 else f"FAILED, exit code {run.code}"
    lines = [f"## This run ({status}) in {root}", ""]
    if not run.stages:
        lines.append("No stage ran: the outputs in this folder were already up to date.")
    else:
        lines.append("Stages run: " + ", ".join(f"{r['stage']} ({r['status'].lower()})" for r in run.stages))
    others = sorted(set(report_files(root)) - set(written))
    lines += ["", f"Files this run wrote under reports/ ({len(written)}):"]
    lines += _listed(written) or ["- none"]
    if others:
        files = "file" if len(others) == 1 else "files"
        lines.append(f"(reports/ also holds {len(others)} {files} an earlier run in this folder wrote.)")
    for row in run.stages:
        stage = row["stage"]
        head, _, tail = stage.partition("@")
        stats = f"reports/{head}/{tail}.json" if tail else f"reports/stages/{stage}.json"
        gate = f"reports/gates/{stage}.json"
        body = [_gate_line(read_json(root / gate))] if gate in written else []
        if stats in written:
            body += _stat_lines(root / stats, skip=("gate",) if body else ())
        if body:
            lines += ["", f"### {stage}", *body]
    for name in REPORT_DOCUMENTS:
        if name in written:
            lines += ["", f"### {name}", "", (root / name).read_text(encoding="utf-8").rstrip()]
    return "\n".join(lines) + "\n"


def run_smoke(
    target: Path | None = None, root: Path | None = None, profile: str = "smoke", targets: list[str] | None = None
) -> int:
    """The pipeline (or its `targets` stages and what they need) with a profile applied,
    tiny sizes by default, in a scratch copy of the project; prints `run_report`."""
    root = (root or Path.cwd()).resolve()
    target = Path(target).resolve() if target else Path(tempfile.mkdtemp(prefix=f"divwrite-{profile}-"))
    prepare_smoke_copy(root, target, profile)
    logger.info("%s run in %s", profile, target)
    before = report_files(target)
    run = reproduce(list(targets or []), root=target)
    written = [name for name, stat in report_files(target).items() if before.get(name) != stat]
    print("\n" + run_report(target, run, written), end="")  # noqa: T201 - what this run produced is the command's output
    return run.code
