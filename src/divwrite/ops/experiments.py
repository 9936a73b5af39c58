"""Queued DVC experiments of the current commit: what `divwrite ablate` and `divwrite seeds` share.

Both commands turn a list of points (a name and its `-S` overrides: `ablation.GridPoint`,
`seeds.SeedPoint`) into queued experiments, `dvc exp run --queue --name NAME -S ... -C ...`,
run the queue and read the results back from `dvc exp show --json`.

Two things make the experiments reuse the baseline (`sft`, `embed`, `reward`, ...) instead
of recomputing it. First, a queued experiment starts from the current commit plus the
uncommitted changes to tracked files (untracked files are left out), so its `dvc.lock`
must describe the outputs in the DVC cache: run `dvc repro` first, then queue (`preflight`
warns otherwise). Second, outputs declared `cache: false` that git does not have (train
checkpoints, which are git-ignored; reports not yet committed) are missing from the
experiment's temporary checkout. Missing outputs mark their stages changed. Stages with a
`persist: true` output (`train@*`) and stages with a `cache: false` entry under `outs` are
never stored in DVC's run-cache, so those stages would run again, SFT included.
`copy_paths` therefore finds those outputs, and every experiment carries them in with `dvc
exp run -C` (copied from the workspace when the experiment starts).

`methods_to_delete` is how a point trains fewer methods: `~train.methods.<m>` (Hydra's
deletion syntax) for every method it does not keep, `sft` always kept (every preference
method starts from it); the `train` / `generate` `foreach` then has fewer stages, and
`evaluate` reports only the methods that are left.

`run_queue` is `dvc exp run --run-all --jobs 1`: it starts a worker, blocks until the
queue is empty and exits 0 even when an experiment failed, so the outcome is read back from
`dvc exp show --json` (`experiments`). One job: two cores here, and the stages of parallel
experiments would write the same sqlite MLflow store.

An experiment's metrics are `reports/metrics.json` in its commit when the project commits
`reports/`; a project that git-ignores `reports/` has experiment commits without that file.
`metrics_from_evaluation` then recomputes them from the experiment's
`data/evaluation/per_prompt.parquet` (a cached output recorded in its `dvc.lock`, read by
`evaluation_table`) with the functions `evaluate` itself uses, which gives the same numbers
bit for bit.
"""

from __future__ import annotations

import io
import json
import logging
import shlex
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from divwrite.core.files import read_json
from divwrite.core.schema import Method
from divwrite.core.vcs import run_dvc, run_git, venv_env
from divwrite.ops.prefork import warm_interpreter

logger = logging.getLogger(__name__)

ALWAYS_KEPT = ("sft",)  # every preference method starts from it
METRICS_FILE = "reports/metrics.json"
EVALUATION_TABLE = "data/evaluation/per_prompt.parquet"
# `dvc exp show` executor states, best first: a point keeps its best experiment.
STATE_RANK = {"success": 0, "running": 1, "queued": 2, "failed": 3}


class Point(Protocol):
    """What queueing needs of an experiment to be: its name and its `-S` overrides."""

    @property
    def name(self) -> str: ...

    @property
    def overrides(self) -> tuple[str, ...]: ...


@dataclass
class Experiment:
    """An experiment of the current commit as `dvc exp show --json` describes it."""

    name: str
    state: str
    rev: str | None
    params: dict[str, Any] = field(default_factory=dict)  # params.yaml, nested
    metrics: dict[str, Any] | None = None  # reports/metrics.json, when the commit has it
    outs: dict[str, Any] = field(default_factory=dict)  # path -> {"hash": ..., ...}
    log: str | None = None  # the executor's log file


def methods_to_delete(trained: Mapping[str, Method], methods: Sequence[str], label: str) -> list[str]:
    """The `train.methods` an experiment that keeps only `methods` (and `sft`, which every
    preference method starts from) deletes with `~train.methods.<m>`, in params order.
    Raises ValueError (naming the `label` param) for an unknown method, or when a kept method
    starts from a deleted one."""
    unknown = [m for m in methods if m not in trained]
    if unknown:
        raise ValueError(f"{label}: unknown method(s) {unknown}; train.methods has {list(trained)}")
    kept = set(methods) | {m for m in ALWAYS_KEPT if m in trained}
    for m in sorted(kept):
        init = trained[m].init
        if init in trained and init not in kept:
            raise ValueError(f"{label}: {m!r} starts from {init!r}, which the experiment would delete")
    return [m for m in trained if m not in kept]


def queue_command(point: Point, copy: Sequence[str] = (), force: bool = False) -> list[str]:
    """`dvc exp run --queue --name NAME -S ... [-C path ...] [-f]` for one point."""
    cmd = ["dvc", "exp", "run", "--queue", "--name", point.name]
    for override in point.overrides:
        cmd += ["-S", override]
    for path in copy:
        cmd += ["-C", path]
    if force:
        cmd.append("-f")
    return cmd


# -- the queue ----------------------------------------------------------------------------


def copy_paths(root: Path) -> list[str]:
    """Paths to copy into every experiment's checkout (`dvc exp run -C`): for each output
    declared `cache: false` that exists in the workspace and is not in git, its topmost
    folder that git does not have (DVC copies a folder with `copytree`, which creates the
    parents, but a file only into an existing folder)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        uncached = sorted({out.def_path for stage in repo.index.stages for out in stage.outs if not out.use_cache})
    listed = run_git(root, "ls-tree", "-r", "--name-only", "HEAD")
    tracked = set(listed.stdout.splitlines()) if listed.returncode == 0 else set()
    tracked_dirs = {str(Path(*Path(f).parts[:i])) for f in tracked for i in range(1, len(Path(f).parts))}
    roots: list[str] = []
    for path in uncached:
        if path in tracked or not (root / path).exists():
            continue
        parts = Path(path).parts
        prefixes = (str(Path(*parts[: i + 1])) for i in range(len(parts)))
        top = next((p for p in prefixes if p not in tracked_dirs), None)
        if top is not None and top not in roots:  # None: a folder git has part of (left alone)
            roots.append(top)
    return sorted(r for r in roots if not any(r != o and Path(o) in Path(r).parents for o in roots))


def exp_show(root: Path, rev: str | None = None) -> list[dict[str, Any]]:
    """`dvc exp show --json` (the current commit, or `rev`, and its experiments)."""
    proc = run_dvc(root, "exp", "show", "--json", *(["--rev", rev] if rev else []))
    if proc.returncode != 0:
        raise RuntimeError(f"dvc exp show failed:\n{proc.stdout}{proc.stderr}")
    return json.loads(proc.stdout)


def preflight(root: Path) -> list[str]:
    """Problems that make the experiments fail or recompute the baseline, as warnings; raises
    RuntimeError when there is no commit to start the experiments from."""
    if run_git(root, "rev-parse", "--verify", "HEAD").returncode != 0:
        raise RuntimeError(
            f"{root}: DVC experiments start from a git commit; commit the project first "
            "(git init && git add -A && git commit -m ...)"
        )
    warnings = []
    status = run_git(root, "status", "--porcelain").stdout.splitlines()
    changed = [line[3:] for line in status if not line.startswith("??")]
    untracked = [line[3:] for line in status if line.startswith("??")]
    if changed:
        warnings.append(
            "uncommitted changes to tracked files go into every queued experiment, as they are "
            f"when it is queued: {', '.join(changed)}"
        )
    if untracked:
        warnings.append(
            "untracked files are NOT part of the experiments (git add the ones stages need): " + ", ".join(untracked)
        )
    stale = run_dvc(root, "status", "--json")
    if stale.returncode == 0 and stale.stdout.strip() not in ("", "{}"):
        names = sorted(json.loads(stale.stdout))
        warnings.append(
            f"the workspace is not up to date with dvc.lock ({', '.join(names)}): every experiment "
            "re-runs those stages; run `dvc repro` (make run) first"
        )
    return warnings


def queue_experiments(root: Path, points: Sequence[Point], force: bool = False, dry_run: bool = False) -> list[Point]:
    """Queue the points that have no successful, running or queued experiment on the
    current commit (all of them with `force`); returns those queued. Prints each queue
    command; `dry_run` queues nothing."""
    copy = copy_paths(root)
    if dry_run:
        existing: dict[str, Experiment] = {}
    else:
        existing = experiments(exp_show(root))
    queued = []
    for point in points:
        found = existing.get(point.name)
        if found and found.state != "failed" and not force:
            logger.info(
                "divwrite: %s: %s on this commit, not queued again (--force re-runs it)", point.name, found.state
            )
            continue
        cmd = queue_command(point, copy, force=force)
        print(shlex.join(cmd))  # noqa: T201 - the dvc commands are the command's output (all of it with --dry-run)
        if dry_run:
            queued.append(point)
            continue
        proc = run_dvc(root, *cmd[1:])
        if proc.returncode != 0:
            raise RuntimeError(f"queueing {point.name} failed:\n{proc.stdout}{proc.stderr}")
        queued.append(point)
    return queued


def run_queue(root: Path, dry_run: bool = False) -> int:
    """`dvc exp run --run-all --jobs 1`: run every queued experiment, one at a time, and wait.
    Its exit code says nothing about failed experiments (read `dvc exp show`)."""
    cmd = ["dvc", "exp", "run", "--run-all", "--jobs", "1"]
    print(shlex.join(cmd))  # noqa: T201 - the dvc commands are the command's output (all of it with --dry-run)
    if dry_run:
        return 0
    with warm_interpreter(venv_env()) as env:  # the experiments' stages fork from a warm interpreter
        return run_dvc(root, *cmd[1:], env=env, output="inherit").returncode


def queue_and_run(root: Path, points: Sequence[Point], force: bool = False, dry_run: bool = False) -> None:
    """`preflight` (its warnings logged), `queue_experiments`, `run_queue`, and how long the
    queue took; `dry_run` prints the dvc commands and runs nothing."""
    if not dry_run:
        for warning in preflight(root):
            logger.warning("%s", warning)
    start = time.perf_counter()
    queue_experiments(root, points, force=force, dry_run=dry_run)
    code = run_queue(root, dry_run=dry_run)
    if not dry_run:
        logger.info("queue ran in %.0f s (dvc exit code %s)", time.perf_counter() - start, code)


# -- reading the results ------------------------------------------------------------------


def experiments(show: Sequence[Mapping[str, Any]]) -> dict[str, Experiment]:
    """The named experiments of the first commit in a `dvc exp show --json` document (the
    current one), by name; of several with one name, the best state wins (success, running,
    queued, failed)."""
    baselines = [entry for entry in show if entry.get("rev") != "workspace"]
    if not baselines:
        return {}
    found: dict[str, Experiment] = {}
    for exp in baselines[0].get("experiments") or []:
        rev = (exp.get("revs") or [{}])[0]  # the experiment's tip
        name = exp.get("name") or rev.get("name")
        if not name:
            continue
        executor = exp.get("executor") or {}
        state = executor.get("state") or ("failed" if rev.get("error") else "success")
        data = rev.get("data") or {}
        metrics = (data.get("metrics") or {}).get(METRICS_FILE) or {}
        candidate = Experiment(
            name=name,
            state=state,
            rev=rev.get("rev"),
            params=((data.get("params") or {}).get("params.yaml") or {}).get("data") or {},
            metrics=metrics.get("data") if "error" not in metrics else None,
            outs=data.get("outs") or {},
            log=(executor.get("local") or {}).get("log"),
        )
        if name not in found or STATE_RANK.get(state, 9) < STATE_RANK.get(found[name].state, 9):
            found[name] = candidate
    return found


def baseline_outs(show: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Outputs (path -> hash record) of the current commit in a `dvc exp show --json` document."""
    baselines = [entry for entry in show if entry.get("rev") != "workspace"]
    return ((baselines[0].get("data") or {}).get("outs") or {}) if baselines else {}


def evaluation_table(root: Path, rev: str):
    """An experiment's `data/evaluation/per_prompt.parquet` (one row per method and prompt),
    read from the DVC cache at `rev`."""
    import dvc.api
    import pandas as pd

    with dvc.api.open(EVALUATION_TABLE, repo=str(root), rev=rev, mode="rb") as f:
        return pd.read_parquet(io.BytesIO(f.read()))


def metrics_from_evaluation(root: Path, rev: str, confidence: float) -> dict[str, Any]:
    """`reports/metrics.json` of an experiment, rebuilt from its `data/evaluation/per_prompt.parquet`
    (read from the DVC cache at `rev`) with `evaluation.summarise` and `reporting.write_results`,
    as the `evaluate` stage builds it."""
    from divwrite.evaluation.reporting import write_results
    from divwrite.evaluation.scoring import summarise

    table = evaluation_table(root, rev)
    rows = [summarise(m, g.drop(columns="method"), confidence) for m, g in table.groupby("method", sort=False)]
    with tempfile.TemporaryDirectory() as tmp:
        return read_json(write_results(rows, tmp)["metrics_json"])
