"""Retraining on a change (what the CI job runs, and the same from a terminal): run the
pipeline for the checked-out commit with a profile, diff its metrics against the base
branch with DVC, write the table to the GitHub step summary, push the results.

Like for like. `main`'s committed metrics (`reports/*.json`, in git) come from the full
profile, so a smoke run must not be diffed against them:

- profile `full` (params.yaml as committed): the head run is diffed against the base
  revision's committed metrics, `dvc metrics diff <base_rev> <head-exp> --md`;
- any other profile (`profiles/<name>.yaml`): the profile is turned into `dvc exp run -S
  key=value` overrides and run twice, as two DVC experiments: the base one in a `git
  worktree` of the base revision, the head one from the checkout, then `dvc metrics diff
  <base-exp> <head-exp> --md`. Experiments are git refs (`refs/exps/...`) that every
  worktree of a repository shares, so the checkout sees both; the worktree uses the
  checkout's DVC cache, so both runs' outputs land in one cache (and a stage that both
  runs share, such as `base`, is restored from DVC's run-cache the second time).

The head experiment runs with `dvc exp run --temp`: in a temporary copy of the commit plus
its uncommitted changes to tracked files (untracked files are left out), so the checkout's
own params, outputs and `dvc.lock` stay as they were. Each experiment runs under one
MLflow parent run (`retrain/base`, `retrain/head`) that its stages nest under, in the
checkout's store. With a DVC remote configured, `dvc exp run --pull` first fetches the
outputs of unchanged stages from it instead of recomputing them.

Experiment names are `retrain-<profile>-<commit>-<digest>`, the digest being that of the
`-S` overrides and the targets: an experiment that already exists under that name (same
commit, same overrides, same targets: the same run) is reused rather than run again, so
the head run of `main` (pushed by CI, fetched back with `git fetch origin
'refs/exps/*:refs/exps/*'`) is the base run of the pull requests on top of it.

The summary (profile, base and head revisions, the experiment of each, which stages re-ran,
DVC's markdown table; `divwrite.ops.retrain_report`) is appended to `summary_path`
(GitHub's `$GITHUB_STEP_SUMMARY` expects appends) and printed. With a DVC remote the
results are pushed as `dvc exp push` would (`divwrite.ops.retrain_push`): the experiments'
outputs to the DVC remote and their `refs/exps/...` refs to the git remote; without one the
summary says the push was skipped. Any failed step (a stage, a data gate, the diff, the
push) makes the exit code non-zero, so the CI job goes red. Progress notes go to the log
(stderr); the summary and DVC's own output to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from divwrite.core.logs import setup_logging
from divwrite.core.params import flatten, has_param, load_params, parse_yaml
from divwrite.core.vcs import hydra_value, override_args, run_dvc, run_git, venv_env
from divwrite.ops.prefork import warm_interpreter
from divwrite.ops.profiles import absolute_source, load_profile
from divwrite.ops.retrain_push import dvc_remotes, exp_commit, push_results
from divwrite.ops.retrain_report import (
    FULL,
    Report,
    RetrainError,
    Side,
    append_summary,
    parse_stage_log,
    summary_markdown,
)

# Named, not `__name__`: that is `__main__` under `python -m divwrite.ops.retrain`, outside the
# `divwrite` logger that `setup_logging` configures.
logger = logging.getLogger("divwrite.ops.retrain")

PREFIX = "retrain"
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


# -- inputs -------------------------------------------------------------------------------


def profile_overrides(root: Path, profile: str) -> dict[str, Any]:
    """`profiles/<profile>.yaml` as flat `key -> value` overrides (`{}` for `full`).

    Checked against `root`'s params.yaml by `profiles.load_profile` (a typo would otherwise
    surface as a Hydra error in the middle of a run). A relative local `data.source` is made
    absolute against `root`, as `pipeline.profile_params` does: the runs happen in other
    folders. Raises ValueError naming the problem.
    """
    if not _PROFILE_NAME.match(profile):
        raise ValueError(f"bad profile name {profile!r} (letters, digits, '-', '_')")
    if profile == FULL:
        return {}
    if not (root / "profiles" / f"{profile}.yaml").is_file():
        known = sorted(p.stem for p in (root / "profiles").glob("*.yaml"))
        raise ValueError(f"no profile {profile!r}; profiles: {[FULL, *known]}")
    flat = flatten(load_profile(root, profile))
    if "data.source" in flat:
        flat["data.source"] = absolute_source(root, flat["data.source"])
    for value in flat.values():
        hydra_value(value)  # raises ValueError on values a -S override cannot carry
    return flat


def experiment_name(
    profile: str, sha: str, overrides: Sequence[str], targets: Sequence[str], dirty: bool = False
) -> str:
    """`retrain-<profile>-<commit[:7]>-<digest>` (`-dirty` with uncommitted changes): the
    digest, of the overrides and the targets, tells apart experiments of one commit that ran
    different things. Base or head is no part of it: a commit's run is the same either way,
    so the head run of one commit serves as the base run of its successors."""
    digest = hashlib.sha1(json.dumps([list(overrides), list(targets)]).encode("utf-8")).hexdigest()[:6]
    return f"{PREFIX}-{profile}-{sha[:7]}-{digest}" + ("-dirty" if dirty else "")


# -- git and DVC ---------------------------------------------------------------------------


def resolve_commit(root: Path, rev: str) -> str:
    """The full sha of `rev`; ValueError when it is not a commit of this repository."""
    proc = run_git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if proc.returncode != 0:
        hint = " (CI: check out with fetch-depth: 0; locally: git fetch origin)" if "/" in rev else ""
        raise ValueError(f"revision {rev!r} is not a commit of {root}{hint}")
    return proc.stdout.strip()


def metric_files(root: Path, targets: Sequence[str]) -> list[str] | None:
    """The metrics files of `targets` and the stages they depend on (what a run of those
    targets rewrites), or None (every metric) without targets. ValueError for a target
    that is not a stage of `dvc.yaml`."""
    if not targets:
        return None
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    files: list[str] = []
    with Repo(str(root)) as repo:
        for target in targets:
            try:
                stages = repo.stage.collect(target, with_deps=True)
            except DvcException as err:
                raise ValueError(f"target {target!r}: {err}") from None
            for stage in stages:
                files += [str(out.def_path) for out in stage.outs if out.metric and str(out.def_path) not in files]
    return sorted(files)


@contextmanager
def _parent_run(root: Path, side: Side, profile: str) -> Iterator[str]:
    """An MLflow run `retrain/<role>` in `root`'s store for the stages to nest under; FAILED
    when the block raises."""
    import mlflow

    from divwrite.core.tracking import configure

    experiment_id = configure(load_params(root / "params.yaml").mlflow.experiment, root)
    tags = {
        "divwrite.kind": "retrain",
        "divwrite.profile": profile,
        "mlflow.source.git.commit": f"{side.sha}-dirty" if side.dirty else side.sha,
        "dvc.experiment": side.experiment or "",
        "divwrite.revision": side.label,
    }
    # MLflow's context manager ends the run FAILED when the block raises.
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"retrain/{side.role}", tags=tags) as run:
        mlflow.log_params({"retrain.profile": profile, "retrain.overrides": " ".join(side.overrides)[:6000]})
        yield run.info.run_id


def run_experiment(root: Path, cwd: Path, side: Side, profile: str, targets: Sequence[str], temp: bool) -> None:
    """`dvc exp run --name <side.experiment> -S ... [targets]` in `cwd` (`--temp` for the
    head, the worktree's own workspace for the base), with `--pull` when `cwd` has a DVC
    remote, under an MLflow parent run in `root`'s store. Fills in `side.stages`; raises
    RetrainError when DVC fails."""
    from divwrite.core.tracking import PARENT_RUN_ENV, tracking_uri

    assert side.experiment is not None
    args = ["exp", "run", "--name", side.experiment]
    if temp:
        args.append("--temp")
    if dvc_remotes(cwd):
        args.append("--pull")
    for override in side.overrides:
        args += ["-S", override]
    args += list(targets)
    logger.info("%s: %s  (in %s)", side.role, " ".join(["dvc", *args]), cwd)
    with _parent_run(root, side, profile) as run_id:
        env = venv_env({PARENT_RUN_ENV: run_id, "MLFLOW_TRACKING_URI": tracking_uri(root)})
        env.pop("DVC_ROOT", None)
        with warm_interpreter(env) as env:  # its stages fork from a warm interpreter
            proc = run_dvc(cwd, *args, env=env, output="stream")
        code = proc.returncode
        side.stages = parse_stage_log(proc.stdout)
        if code != 0:
            failed = f" (stage {side.stages.failed!r})" if side.stages.failed else ""
            raise RetrainError(f"{side.role} run", f"dvc exp run exited with {code}{failed}")


@contextmanager
def base_worktree(root: Path, sha: str) -> Iterator[Path]:
    """A detached `git worktree` of `sha` in a temp folder, using `root`'s DVC cache;
    removed afterwards."""
    cache = run_dvc(root, "cache", "dir")
    if cache.returncode != 0:
        raise RetrainError("dvc cache dir", cache.stderr.strip())
    folder = Path(tempfile.mkdtemp(prefix="divwrite-retrain-base-"))
    path = folder / "base"
    added = run_git(root, "worktree", "add", "--detach", str(path), sha)
    if added.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RetrainError("git worktree add", added.stderr.strip())
    try:
        for key, value in (
            ("cache.dir", cache.stdout.strip()),
            ("core.analytics", "false"),
            ("core.check_update", "false"),
        ):
            proc = run_dvc(path, "config", "--local", key, value)
            if proc.returncode != 0:
                raise RetrainError("dvc config (base worktree)", proc.stderr.strip())
        yield path
    finally:
        run_git(root, "worktree", "remove", "--force", str(path))
        run_git(root, "worktree", "prune")
        shutil.rmtree(folder, ignore_errors=True)


def diff_metrics(root: Path, a_rev: str, b_rev: str, files: Sequence[str] | None) -> tuple[list[str], str]:
    """`dvc metrics diff a_rev b_rev --md [--targets files]`: (the command, DVC's table)."""
    args = ["metrics", "diff", a_rev, b_rev, "--md"]
    if files:
        args += ["--targets", *files]
    proc = run_dvc(root, *args)
    if proc.returncode != 0:
        raise RetrainError("dvc metrics diff", (proc.stderr or proc.stdout).strip())
    return ["dvc", *args], proc.stdout.strip()


# -- the command ---------------------------------------------------------------------------


def plan(root: Path, profile: str, base_rev: str, targets: Sequence[str]) -> Report:
    """Check the inputs and work out both sides (ValueError naming a bad input)."""
    if not (root / "dvc.yaml").is_file() or not (root / ".dvc").is_dir():
        raise ValueError(f"{root}: not a DVC project root (no dvc.yaml or .dvc/)")
    if run_git(root, "rev-parse", "--show-toplevel").returncode != 0:
        raise ValueError(f"{root}: not a git repository (DVC experiments need git)")
    targets = list(targets)
    overrides = profile_overrides(root, profile)
    files = metric_files(root, targets)
    head_sha = resolve_commit(root, "HEAD")
    dirty = bool(run_git(root, "status", "--porcelain", "--untracked-files=no").stdout.strip())
    head_args = override_args(overrides)
    head = Side("head", "HEAD", head_sha, dirty=dirty, overrides=head_args)
    head.experiment = experiment_name(profile, head_sha, head_args, targets, dirty=dirty)
    base = Side("base", base_rev, resolve_commit(root, base_rev))
    if profile != FULL:
        shown = run_git(root, "show", f"{base.sha}:params.yaml")
        base_params = parse_yaml(shown.stdout) if shown.returncode == 0 else None
        if not isinstance(base_params, dict):
            raise ValueError(f"{base_rev}: no params.yaml in that revision")
        kept = {k: v for k, v in overrides.items() if has_param(base_params, k)}
        base.skipped = [k for k in overrides if k not in kept]
        base.overrides = override_args(kept)
        base.experiment = experiment_name(profile, base.sha, base.overrides, targets)
    return Report(profile=profile, targets=targets, metric_files=files, base=base, head=head)


def _reusable(root: Path, side: Side, reuse: bool) -> bool:
    """True (and `side.reused`) when `side`'s experiment exists and may be reused; one that
    may not (`reuse` off, or uncommitted changes) is removed, for the new run to replace."""
    assert side.experiment is not None
    if not exp_commit(root, side.sha, side.experiment):
        return False
    if reuse and not side.dirty:
        side.reused = True
        logger.info(
            "divwrite: %s: experiment %s exists (same commit, overrides, targets): reused", side.role, side.experiment
        )
        return True
    proc = run_dvc(root, "exp", "remove", side.experiment)
    if proc.returncode != 0:
        raise RetrainError("dvc exp remove", (proc.stderr or proc.stdout).strip())
    return False


def retrain(
    root: Path | None = None,
    profile: str = "smoke",
    base_rev: str = "origin/main",
    targets: Sequence[str] | None = None,
    summary_path: str | Path | None = None,
    push: bool | None = None,
    git_remote: str = "origin",
    reuse: bool = True,
) -> int:
    """Run the head (and, for a profile other than `full`, the base) as DVC experiments,
    diff their metrics, write the summary, push. An experiment that exists already (same
    commit, overrides and targets; never one with uncommitted changes) is reused unless
    `reuse` is off. Returns 0, or 1 when a step failed (the summary says which). Raises
    ValueError for bad inputs, before anything runs."""
    root = (root or Path.cwd()).resolve()
    report = plan(root, profile, base_rev, targets or [])
    base, head = report.base, report.head
    untracked = [
        line[3:] for line in run_git(root, "status", "--porcelain").stdout.splitlines() if line.startswith("??")
    ]
    if untracked:
        logger.warning("untracked files are not part of the head run: %s", ", ".join(untracked))
    try:
        if base.experiment and not _reusable(root, base, reuse):
            with base_worktree(root, base.sha) as worktree:
                run_experiment(root, worktree, base, profile, report.targets, temp=False)
        head_name = head.experiment
        assert head_name is not None
        if head_name == base.experiment:  # head is the base: that run was this one
            head.reused = True
        elif not _reusable(root, head, reuse):
            run_experiment(root, root, head, profile, report.targets, temp=True)
        a_rev = base.experiment or base.label
        report.diff_command, report.diff_table = diff_metrics(root, a_rev, head_name, report.metric_files)
        ran = [side for side in (base, head) if side.experiment and not side.reused]
        report.push = push_results(root, ran, push, git_remote)
        code = 0
    except RetrainError as err:
        report.failure = err
        code = 1
    text = summary_markdown(report)
    print(text, flush=True)  # noqa: T201 - the summary is the command's output
    if summary_path:
        append_summary(summary_path, text)
    if report.failure:
        logger.error("retrain failed: %s", report.failure)
    return code


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `divwrite retrain` (shared by `main` and the `divwrite` CLI)."""
    parser.add_argument(
        "--profile", default="smoke", help="profiles/<name>.yaml, or `full` (params.yaml as is); default smoke"
    )
    parser.add_argument("--base", default="origin/main", help="the revision to compare with (default origin/main)")
    parser.add_argument(
        "--summary", type=Path, default=None, help="append the markdown summary here (CI: $GITHUB_STEP_SUMMARY)"
    )
    pushing = parser.add_mutually_exclusive_group()
    pushing.add_argument(
        "--push", dest="push", action="store_true", default=None, help="require a push (fail without a DVC remote)"
    )
    pushing.add_argument("--no-push", dest="push", action="store_false", help="never push")
    parser.add_argument("--git-remote", default="origin", help="git remote for the experiment refs (default origin)")
    parser.add_argument("--rerun", action="store_true", help="run the experiments even when they exist already")
    parser.add_argument("targets", nargs="*", help="stages to reproduce (default: all), e.g. pair")
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    """`divwrite retrain` with parsed arguments; a bad input exits 2 with its message
    (also appended to the summary, so the CI page says why)."""
    try:
        return retrain(
            profile=args.profile,
            base_rev=args.base,
            targets=args.targets,
            summary_path=args.summary,
            push=args.push,
            git_remote=args.git_remote,
            reuse=not args.rerun,
        )
    except ValueError as err:
        logger.error("%s", err)
        if args.summary:
            append_summary(args.summary, f"## Retrain `{args.profile}`: bad input\n\n{err}\n")
        return 2


def main(argv: list[str] | None = None) -> int:
    """`python -m divwrite.ops.retrain`: `divwrite retrain` on its own, its log on stderr."""
    setup_logging()
    parser = add_arguments(argparse.ArgumentParser(prog="divwrite retrain", description=__doc__.split("\n\n")[0]))
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
