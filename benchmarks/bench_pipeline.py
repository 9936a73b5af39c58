"""The whole pipeline: wall time per stage, a no-op `dvc repro`, and what one training param re-runs.

In a scratch copy of the project (`pipeline.prepare_smoke_copy`, so the workspace's outputs and
DVC cache are never touched) with the smoke profile (`--profile smoke`, the default) or with
params.yaml as is (`--profile default`: the `make run` pipeline, ~25 min here; with `--in-place` in the project
itself, which is then up to date):

1. the pipeline under MLflow (`pipeline.run_pipeline`), timed end to end, and per stage from its
   MLflow runs (`pipeline.stage_times`: the stage's own seconds and its wall time with process
   start-up);
2. `dvc repro` again with nothing changed (median of 3), the no-op;
3. `dvc repro --dry` after changing one training param (`dpo.beta`): the stages DVC would re-run
   (only the method trained with that loss and what reads its model).

    python benchmarks/bench_pipeline.py [--profile smoke|default] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

import networkx as nx
import yaml
from dvc.repo import Repo
from harness import RESULTS, ROOT, Goal, median, report

from divwrite.core import tracking
from divwrite.core.params import parse_yaml
from divwrite.core.vcs import run_dvc
from divwrite.ops import pipeline

GOAL_SECONDS = {"smoke": 120.0, "default": 720.0}  # issue 18: smoke <= 2 min, `make run` <= 12 min
CHANGED_PARAM = ("dpo", "beta", 0.2)


def would_rerun(root: Path, section: str, key: str, value) -> list[str]:
    """The stages `dvc repro --dry` would run after setting params `section.key` to `value`
    (params.yaml restored afterwards)."""
    path = root / "params.yaml"
    original = path.read_text(encoding="utf-8")
    params = parse_yaml(original)
    params[section][key] = value
    try:
        path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        dry = run_dvc(root, "repro", "--dry")
    finally:
        path.write_text(original, encoding="utf-8")
    if dry.returncode != 0:
        raise RuntimeError(f"dvc repro --dry failed: {dry.stderr[-2000:]}")
    changed = re.findall(r"Running stage '([^']+)'", dry.stdout)
    # A dry run lists the stages whose own deps changed; those downstream re-run too once the
    # new outputs exist. DVC's graph points from a stage to the stages it depends on.
    with Repo(str(root)) as repo:
        graph = repo.index.graph
        stages = {s.name: s for s in graph.nodes}
        downstream = {d.name for name in changed for d in nx.ancestors(graph, stages[name])}
        order = {s.name: i for i, s in enumerate(reversed(list(nx.topological_sort(graph))))}
    return sorted(set(changed) | downstream, key=lambda name: order[name])


def run(
    profile: str, workdir: Path | None, out: Path | None = RESULTS, in_place: bool = False, reuse: bool = False
) -> dict:
    """The measurements above; `reuse`: `workdir` already holds this benchmark's finished run
    (e.g. one whose later steps failed), so only the no-op and the re-run list are measured."""
    if reuse:
        if workdir is None or not (Path(workdir) / "mlflow.db").is_file():
            raise ValueError("--reuse needs --dir with a finished run of this benchmark")
        return _measure(profile, Path(workdir), out)
    if in_place:  # the project itself (`make run`'s outputs, dvc.lock and reports/ updated)
        if profile != "default":
            raise ValueError("--in-place runs the project's own params.yaml: use it with --profile default")
        target = ROOT
    else:
        target = Path(workdir or tempfile.mkdtemp(prefix=f"divwrite-bench-{profile}-"))
        pipeline.prepare_smoke_copy(ROOT, target, None if profile == "default" else profile)
    cwd = os.getcwd()
    try:
        code = pipeline.run_pipeline([], root=target)
    finally:
        os.chdir(cwd)
    if code != 0:
        raise RuntimeError(f"the {profile} pipeline failed in {target} (dvc exit code {code})")
    return _measure(profile, target, out)


def _measure(profile: str, target: Path, out: Path | None) -> dict:
    experiment_id = tracking.configure("divwrite", target)
    run = tracking.find_run("pipeline")
    total = (run.info.end_time - run.info.start_time) / 1000  # the whole `dvc repro` under MLflow
    stages = pipeline.stage_times(run.info.run_id, experiment_id)

    noop = []
    for _ in range(3):
        t = time.perf_counter()
        if run_dvc(target, "repro").returncode != 0:
            raise RuntimeError("the no-op dvc repro failed")
        noop.append(time.perf_counter() - t)
    section, key, value = CHANGED_PARAM
    rerun = would_rerun(target, section, key, value)

    in_stage = sum(s["seconds"] for s in stages)
    measured = {
        "profile": profile,
        "dir": str(target),
        "total_seconds": total,
        "stages": {s["stage"]: {"seconds": round(s["seconds"], 2), "wall": round(s["wall"], 2)} for s in stages},
        "in_stage_seconds": in_stage,
        "startup_seconds": total - in_stage,
        "noop_seconds": median(noop),
        "changed_param": f"{section}.{key}={value}",
        "reruns": rerun,
    }
    print(f"{profile} pipeline: {total:.0f} s ({len(stages)} stages, {in_stage:.0f} s inside them, "
          f"{total - in_stage:.0f} s of start-up and DVC)")  # fmt: skip
    for s in stages:
        print(f"  {s['stage']:<24} {s['seconds']:7.1f} s   wall {s['wall']:7.1f} s")
    print(f"no-op dvc repro: {median(noop):.2f} s; after {section}.{key}={value} DVC re-runs: {', '.join(rerun)}")
    goals = [
        Goal(f"{profile}_run_seconds", total, "<=", GOAL_SECONDS.get(profile, GOAL_SECONDS["default"])),
        Goal("noop_seconds", median(noop), "<=", 5.0),
    ]
    return report(f"pipeline_{profile}", measured, goals, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="smoke", help="a profiles/ name, or `default` for params.yaml as is")
    parser.add_argument("--dir", type=Path, default=None, help="where to run (default: a new temp folder)")
    parser.add_argument("--in-place", action="store_true", help="with --profile default: run `make run` in the project")
    parser.add_argument("--reuse", action="store_true", help="--dir holds a finished run: measure the rest only")
    args = parser.parse_args(argv)
    run(args.profile, args.dir, in_place=args.in_place, reuse=args.reuse)


if __name__ == "__main__":
    main()
