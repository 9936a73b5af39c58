"""The paper's Figure 3 ablation (METHOD.md, "Ablation") as queued DVC experiments.

The grid comes from the `ablation` section of `params.yaml`: one experiment per
`max_responses` x `variant`, named `abl-mr<N>-<variant>` (`abl-mrall-<variant>` for 0 = all
responses). Each experiment is `dvc exp run --queue` with `-S` overrides:

- the variant's overrides (e.g. `deviate.min_weight=0.5`);
- `deviate.max_responses=<N>`;
- `~train.methods.<m>` (Hydra's deletion syntax) for every method that is neither `sft` nor
  in `ablation.methods`: the `train` / `generate` `foreach` then has fewer stages, and
  `evaluate` reports only the methods that are left.

Two things make the experiments reuse the baseline (`sft`, `embed`, `reward`, ...) instead
of recomputing it. First, a queued experiment starts from the current commit plus the
uncommitted changes to tracked files (untracked files are left out), so its `dvc.lock`
must describe the outputs in the DVC cache: run `dvc repro` first, then queue. Second,
outputs declared `cache: false` that git does not have (train checkpoints, which are
git-ignored; reports not yet committed) are missing from the experiment's temporary checkout. Missing outputs mark their stages
changed. Stages with a `persist: true` output (`train@*`) and stages with a `cache: false`
entry under `outs` are never stored in DVC's run-cache, so those stages would run again, SFT
included. `copy_paths` therefore finds those outputs, and every experiment carries them in
with `dvc exp run -C` (copied from the workspace when the experiment starts).

`run_queue` is `dvc exp run --run-all --jobs 1`: it starts a worker, blocks until the
queue is empty and exits 0 even when an experiment failed, so the outcome is read back from
`dvc exp show --json`. One job: two cores here, and the stages of parallel experiments
would write the same sqlite MLflow store.

`collect` reads the experiments of the current commit from `dvc exp show --json`: state,
params and the `reports/metrics.json` metric (this project commits `reports/`, so experiment
commits carry it). A project that git-ignores `reports/` has experiment commits without that
file, and `dvc exp show` reports it missing. In that case the metrics are recomputed from the experiment's `data/evaluation/per_prompt.parquet`
(a cached output recorded in its `dvc.lock`) with the functions `evaluate` itself uses, which
gives the same numbers bit for bit. `write_ablation` writes `reports/ablation.json`,
`reports/ablation.csv`, `reports/ablation.md` and the Figure 3 PNG `reports/ablation.png`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from divwrite.core.files import atomic_path, read_json, write_json
from divwrite.core.params import get_param, has_param
from divwrite.ops.pipeline import _venv_env

PREFIX = "abl"
ALWAYS_KEPT = ("sft",)  # every preference method starts from it
METRICS_FILE = "reports/metrics.json"
EVALUATION_TABLE = "data/evaluation/per_prompt.parquet"
RESULT_FILES = {
    "json": "reports/ablation.json",
    "csv": "reports/ablation.csv",
    "md": "reports/ablation.md",
    "png": "reports/ablation.png",
}
# `dvc exp show` executor states, best first: a grid point keeps its best experiment.
STATE_RANK = {"success": 0, "running": 1, "queued": 2, "failed": 3}
_VARIANT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PLAIN_STRING = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_YAML_WORDS = {"true", "false", "null", "none", "yes", "no", "on", "off", "inf", "nan"}


@dataclass(frozen=True)
class GridPoint:
    """One experiment of the grid: its name and the `-S` overrides that make it."""

    name: str
    max_responses: int
    variant: str
    overrides: tuple[str, ...]


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


# -- the grid -----------------------------------------------------------------------------


def experiment_name(max_responses: int, variant: str) -> str:
    """`abl-mr4-plain`, `abl-mrall-high-quality` (0 = every response)."""
    return f"{PREFIX}-mr{max_responses if max_responses else 'all'}-{variant}"


def hydra_value(value: Any) -> str:
    """A params value as the right-hand side of a Hydra override (`-S key=<this>`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if _PLAIN_STRING.match(value) and value.lower() not in _YAML_WORDS:
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    raise ValueError(f"cannot write {value!r} ({type(value).__name__}) as a -S override")


def _flat_overrides(overrides: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flat_overrides(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def methods_to_delete(trained: Mapping[str, Any], methods: Any, label: str) -> list[str]:
    """The `train.methods` an experiment that keeps only `methods` (and `sft`, which every
    preference method starts from) deletes with `~train.methods.<m>`, in params order.
    Raises ValueError (naming the `label` param) for an empty or unknown method list, or when
    a kept method starts from a deleted one."""
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise ValueError(f"{label} must be a non-empty list of method names, got {methods!r}")
    unknown = [m for m in methods if m not in trained]
    if unknown:
        raise ValueError(f"{label}: unknown method(s) {unknown}; train.methods has {list(trained)}")
    kept = set(methods) | {m for m in ALWAYS_KEPT if m in trained}
    for m in sorted(kept):
        init = trained[m].get("init") if isinstance(trained[m], Mapping) else None
        if init in trained and init not in kept:
            raise ValueError(f"{label}: {m!r} starts from {init!r}, which the experiment would delete")
    return [m for m in trained if m not in kept]


def _spec(params: Mapping[str, Any]) -> tuple[list[str], list[int], dict[str, dict[str, Any]], list[str]]:
    """Validated `ablation` section: (methods, max_responses, variant -> flat overrides,
    methods to delete). Raises ValueError with the reason."""
    spec = params.get("ablation")
    if not isinstance(spec, Mapping):
        raise ValueError("params.yaml has no `ablation` section (methods, max_responses, variants)")
    trained = params.get("train", {}).get("methods")
    if not isinstance(trained, Mapping) or not trained:
        raise ValueError("params.yaml has no `train.methods`")

    methods = spec.get("methods")
    deleted = methods_to_delete(trained, methods, "ablation.methods")

    sizes = spec.get("max_responses")
    if (
        not isinstance(sizes, list)
        or not sizes
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in sizes)
    ):
        raise ValueError(f"ablation.max_responses must be a non-empty list of integers >= 0, got {sizes!r}")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"ablation.max_responses has duplicates: {sizes}")

    variants = spec.get("variants")
    if not isinstance(variants, Mapping) or not variants:
        raise ValueError(f"ablation.variants must be a mapping name -> overrides, got {variants!r}")
    flat_variants: dict[str, dict[str, Any]] = {}
    for name, overrides in variants.items():
        if not isinstance(name, str) or not _VARIANT_NAME.match(name):
            raise ValueError(f"ablation.variants: bad name {name!r} (lowercase letters, digits, '-')")
        if overrides is None:
            overrides = {}
        if not isinstance(overrides, Mapping):
            raise ValueError(f"ablation.variants.{name}: expected a mapping of param -> value, got {overrides!r}")
        flat = _flat_overrides(overrides)
        for key, value in flat.items():
            if key == "deviate.max_responses" or key == "train" or key.startswith("train.methods"):
                raise ValueError(f"ablation.variants.{name}: {key} is set by the grid itself")
            if not has_param(params, key):
                raise ValueError(f"ablation.variants.{name}: no param {key!r} in params.yaml")
            hydra_value(value)  # raises on values a -S override cannot carry
        flat_variants[name] = flat
    return methods, sizes, flat_variants, deleted


def build_grid(
    params: Mapping[str, Any],
    max_responses: Sequence[int] | None = None,
    variants: Sequence[str] | None = None,
) -> list[GridPoint]:
    """The grid of `params["ablation"]`, max_responses-major, in params order; optionally only
    the given `max_responses` values and `variants` (each must be in the grid)."""
    _, sizes, all_variants, deleted = _spec(params)
    if max_responses is not None:
        missing = [n for n in max_responses if n not in sizes]
        if missing:
            raise ValueError(f"--max-responses {missing}: not in ablation.max_responses {sizes}")
        sizes = [n for n in sizes if n in set(max_responses)]
    names = list(all_variants)
    if variants is not None:
        missing_names = [v for v in variants if v not in all_variants]
        if missing_names:
            raise ValueError(f"unknown variant(s) {missing_names}; ablation.variants has {names}")
        names = [v for v in names if v in set(variants)]
    points = []
    for n in sizes:
        for variant in names:
            overrides = [f"{k}={hydra_value(v)}" for k, v in all_variants[variant].items()]
            overrides.append(f"deviate.max_responses={n}")
            overrides += [f"~train.methods.{m}" for m in deleted]
            points.append(GridPoint(experiment_name(n, variant), n, variant, tuple(overrides)))
    return points


def queue_command(point: GridPoint, copy: Sequence[str] = (), force: bool = False) -> list[str]:
    """`dvc exp run --queue --name NAME -S ... [-C path ...] [-f]` for one grid point."""
    cmd = ["dvc", "exp", "run", "--queue", "--name", point.name]
    for override in point.overrides:
        cmd += ["-S", override]
    for path in copy:
        cmd += ["-C", path]
    if force:
        cmd.append("-f")
    return cmd


# -- running DVC --------------------------------------------------------------------------


def _dvc(root: Path, *args: str, capture: bool = True) -> subprocess.CompletedProcess:
    """`dvc ARGS` in `root` with this interpreter's bin first on PATH (stages call `python`)."""
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, env=_venv_env({}), capture_output=capture, text=True
    )


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def copy_paths(root: Path) -> list[str]:
    """Paths to copy into every experiment's checkout (`dvc exp run -C`): for each output
    declared `cache: false` that exists in the workspace and is not in git, its topmost
    folder that git does not have (DVC copies a folder with `copytree`, which creates the
    parents, but a file only into an existing folder)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        uncached = sorted({out.def_path for stage in repo.index.stages for out in stage.outs if not out.use_cache})
    listed = _git(root, "ls-tree", "-r", "--name-only", "HEAD")
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
    proc = _dvc(root, "exp", "show", "--json", *(["--rev", rev] if rev else []))
    if proc.returncode != 0:
        raise RuntimeError(f"dvc exp show failed:\n{proc.stdout}{proc.stderr}")
    return json.loads(proc.stdout)


def preflight(root: Path) -> list[str]:
    """Problems that make the experiments fail or recompute the baseline, as warnings; raises
    RuntimeError when there is no commit to start the experiments from."""
    if _git(root, "rev-parse", "--verify", "HEAD").returncode != 0:
        raise RuntimeError(
            f"{root}: DVC experiments start from a git commit; commit the project first "
            "(git init && git add -A && git commit -m ...)"
        )
    warnings = []
    status = _git(root, "status", "--porcelain").stdout.splitlines()
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
    stale = _dvc(root, "status", "--json")
    if stale.returncode == 0 and stale.stdout.strip() not in ("", "{}"):
        names = sorted(json.loads(stale.stdout))
        warnings.append(
            f"the workspace is not up to date with dvc.lock ({', '.join(names)}): every experiment "
            "re-runs those stages; run `dvc repro` (make run) first"
        )
    return warnings


def queue_grid(root: Path, points: Sequence[GridPoint], force: bool = False, dry_run: bool = False) -> list[GridPoint]:
    """Queue the grid points that have no successful, running or queued experiment on the
    current commit (all of them with `force`); returns those queued. `dry_run` prints the
    commands and queues nothing."""
    copy = copy_paths(root)
    if dry_run:
        existing: dict[str, Experiment] = {}
    else:
        existing = experiments(exp_show(root))
    queued = []
    for point in points:
        found = existing.get(point.name)
        if found and found.state != "failed" and not force:
            print(f"divwrite: {point.name}: {found.state} on this commit, not queued again (--force re-runs it)")
            continue
        cmd = queue_command(point, copy, force=force)
        print(shlex.join(cmd))
        if dry_run:
            queued.append(point)
            continue
        proc = _dvc(root, *cmd[1:])
        if proc.returncode != 0:
            raise RuntimeError(f"queueing {point.name} failed:\n{proc.stdout}{proc.stderr}")
        queued.append(point)
    return queued


def run_queue(root: Path, dry_run: bool = False) -> int:
    """`dvc exp run --run-all --jobs 1`: run every queued experiment, one at a time, and wait.
    Its exit code says nothing about failed experiments (read `dvc exp show`)."""
    cmd = ["dvc", "exp", "run", "--run-all", "--jobs", "1"]
    print(shlex.join(cmd))
    if dry_run:
        return 0
    return _dvc(root, *cmd[1:], capture=False).returncode


# -- collecting ---------------------------------------------------------------------------


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


def collect(
    root: Path,
    points: Sequence[GridPoint],
    show: Sequence[Mapping[str, Any]] | None = None,
    load_metrics: Any = None,
) -> list[dict[str, Any]]:
    """One row per grid point: name, max_responses, variant, state, the experiment's rev and
    deviate params, its methods, and `metrics` (method -> reports/metrics.json entry) for a
    successful experiment. `show` defaults to `dvc exp show --json` of `root`; `load_metrics(rev,
    confidence)` (default `metrics_from_evaluation`) fills in metrics the commit lacks."""
    show = exp_show(root) if show is None else show
    found = experiments(show)
    load = load_metrics or (lambda rev, confidence: metrics_from_evaluation(root, rev, confidence))
    rows = []
    for point in points:
        exp = found.get(point.name)
        row: dict[str, Any] = {
            "name": point.name,
            "max_responses": point.max_responses,
            "variant": point.variant,
            "overrides": list(point.overrides),
            "state": exp.state if exp else "missing",
            "rev": exp.rev if exp else None,
        }
        if exp is not None:
            row["params"] = {
                key: get_param(exp.params, key)
                for key in ("deviate.max_responses", "deviate.min_weight", "deviate.high_quality_first")
            }
            for override in point.overrides:
                key = override.split("=", 1)[0]
                if "=" in override and not key.startswith("~"):
                    row["params"].setdefault(key, get_param(exp.params, key))
            row["trained"] = list(get_param(exp.params, "train.methods") or {})
        if exp is not None and exp.state == "success":
            if exp.metrics is not None:
                metrics, source = exp.metrics, METRICS_FILE
            else:
                confidence = get_param(exp.params, "evaluate.confidence") or 0.95
                metrics, source = load(exp.rev, confidence), f"{EVALUATION_TABLE} (DVC cache)"
            order = [m for m in row["trained"] if m in metrics] + sorted(m for m in metrics if m not in row["trained"])
            row["metrics_source"] = source
            row["metrics"] = {m: metrics[m] for m in order}
        rows.append(row)
    return rows


def _metric_names(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    from divwrite.evaluation.scoring import ALL_METRICS

    present = {k for r in rows for stats in (r.get("metrics") or {}).values() for k in stats}
    return [m for m in ["n_prompts", *ALL_METRICS] if m in present] + sorted(present - {"n_prompts", *ALL_METRICS})


def write_ablation(rows: Sequence[Mapping[str, Any]], root: Path) -> dict[str, Path]:
    """`reports/ablation.json` (the rows), `.csv` (one line per experiment and method), `.md`
    (the same as a table) and `.png` (Figure 3, `reporting.plot_ablation`, when any grid point
    has results) under `root`."""
    paths = {k: root / v for k, v in RESULT_FILES.items()}
    write_json(list(rows), paths["json"])
    names = _metric_names(rows)
    lines = [
        [r["name"], r["max_responses"], r["variant"], method, *[stats.get(m, "") for m in names]]
        for r in rows
        for method, stats in (r.get("metrics") or {}).items()
    ]
    header = ["experiment", "max_responses", "variant", "method", *names]
    with atomic_path(paths["csv"]) as tmp, tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(lines)

    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    md = [
        "# Ablation (Figure 3): responses per prompt x variant",
        "",
        "`max_responses` 0 = every response of a prompt. One experiment per line group; "
        "`dvc exp show` has the full params.",
        "",
        "| " + " | ".join(header) + " |",
        "|---|---:|---|---|" + "---:|" * len(names),
    ]
    md += ["| " + " | ".join(cell(v) for v in line) + " |" for line in lines]
    if any(r.get("metrics") for r in rows):
        from divwrite.evaluation.reporting import plot_ablation

        plot_ablation(rows, paths["png"])
        md += ["", "![Figure 3: quality and diversity against responses per prompt](ablation.png)"]
    missing = [f"{r['name']} ({r['state']})" for r in rows if not r.get("metrics")]
    if missing:
        md += ["", "No results: " + ", ".join(missing)]
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text("\n".join(md) + "\n", encoding="utf-8")
    return paths


# -- the command --------------------------------------------------------------------------


def run_ablation(
    root: Path | None = None,
    max_responses: Sequence[int] | None = None,
    variants: Sequence[str] | None = None,
    dry_run: bool = False,
    collect_only: bool = False,
    force: bool = False,
) -> int:
    """`divwrite ablate`: queue the grid (or the chosen part of it), run the queue, collect
    `reports/ablation.*`. Returns 0 when every chosen grid point has results."""
    from divwrite.core.params import load_params

    root = (root or Path.cwd()).resolve()
    points = build_grid(load_params(root / "params.yaml"), max_responses, variants)
    if not collect_only:
        if not dry_run:
            for warning in preflight(root):
                print(f"divwrite: warning: {warning}")
        start = time.perf_counter()
        queue_grid(root, points, force=force, dry_run=dry_run)
        code = run_queue(root, dry_run=dry_run)
        if dry_run:
            return 0
        print(f"divwrite: queue ran in {time.perf_counter() - start:.0f} s (dvc exit code {code})")
    rows = collect(root, points)
    paths = write_ablation(rows, root)
    print(paths["md"].read_text(encoding="utf-8"))
    failed = [r for r in rows if not r.get("metrics")]
    for r in failed:
        print(f"divwrite: {r['name']}: {r['state']} (see `dvc queue logs {r['name']}`)")
    print(f"divwrite: {len(rows) - len(failed)}/{len(rows)} experiments in {paths['json']}")
    return 1 if failed else 0
