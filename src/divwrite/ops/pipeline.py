"""Running the DVC pipeline inside one MLflow run, and the smoke profile.

`run_pipeline` opens the pipeline's MLflow run, runs `dvc repro` with the run id in the
environment (each stage that runs nests its own run under it), then logs the params,
the results, the figure and `dvc.lock` to the pipeline run, and prints a table of the
stages that ran and how long each took.

`run_smoke` copies the project's tracked files into a scratch folder, applies a profile
(`profiles/smoke.yaml` by default, `profiles/hanna.yaml` for the real HANNA stories) on
top of `params.yaml` and runs the same pipeline there, so such a run never touches the
outputs or the DVC cache of the real one.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from divwrite.core.files import read_json
from divwrite.core.params import ParamsError, deep_merge, flatten, load_params, read_params
from divwrite.core.tracking import PARENT_RUN_ENV, configure, git_commit, log_metrics
from divwrite.core.vcs import run_dvc, run_git, venv_env
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


def run_pipeline(dvc_args: list[str] | None = None, root: Path | None = None) -> int:
    """`dvc repro` under one MLflow pipeline run; returns DVC's exit code, or 2 without running
    anything when `params.yaml` does not fit the schema (the message names every bad key)."""
    import mlflow

    root = (root or Path.cwd()).resolve()
    os.chdir(root)
    try:
        params = load_params(root / "params.yaml")
    except ParamsError as err:
        logger.error("%s", err)
        return 2
    experiment_id = configure(params.mlflow.experiment, root)
    tags = {
        "divwrite.kind": "pipeline",
        "mlflow.source.git.commit": git_commit(root),
        "divwrite.dvc_args": " ".join(dvc_args or []),
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name="pipeline", tags=tags) as run:
        mlflow.log_params({k: str(v)[:6000] for k, v in flatten(params.model_dump(mode="json")).items()})
        env = venv_env({PARENT_RUN_ENV: run.info.run_id})
        code = run_dvc(root, "repro", *(dvc_args or []), env=env, output="inherit").returncode
        if (root / "reports/metrics.json").exists():
            log_metrics(read_json(root / "reports/metrics.json"))
        for name in RESULT_ARTIFACTS:
            if (root / name).exists():
                folder = str(Path(name).parent)
                mlflow.log_artifact(str(root / name), artifact_path=None if folder == "." else folder)
        _print_stage_times(run.info.run_id, experiment_id)
        if code != 0:
            mlflow.set_tag("divwrite.error", f"dvc repro exited with {code}")
            mlflow.end_run(status="FAILED")
    return code


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


def _print_stage_times(parent_run_id: str, experiment_id: str) -> None:
    rows = stage_times(parent_run_id, experiment_id)
    if not rows:
        logger.info("no stage ran (the pipeline is up to date)")
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
    """Copy the project's files (not its outputs) to `target` and apply a profile (`None`: none)."""
    params = profile_params(root, profile)
    target.mkdir(parents=True, exist_ok=True)
    for rel in tracked_files(root):
        if rel == Path("dvc.lock") or not (root / rel).is_file():  # the copy's lock is its own
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


def run_smoke(
    target: Path | None = None, root: Path | None = None, profile: str = "smoke", targets: list[str] | None = None
) -> int:
    """The pipeline (or its `targets` stages and what they need) with a profile applied,
    tiny sizes by default, in a scratch copy of the project."""
    root = (root or Path.cwd()).resolve()
    target = Path(target) if target else Path(tempfile.mkdtemp(prefix=f"divwrite-{profile}-"))
    prepare_smoke_copy(root, target, profile)
    logger.info("%s run in %s", profile, target)
    code = run_pipeline(list(targets or []), root=target)
    if code == 0 and (target / "reports/results.md").exists():
        print((target / "reports/results.md").read_text(encoding="utf-8"))  # noqa: T201 - the results are the command's output
    return code
