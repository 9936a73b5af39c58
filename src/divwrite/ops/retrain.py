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
DVC's markdown table) is appended to `summary_path` (GitHub's `$GITHUB_STEP_SUMMARY`
expects appends) and printed. With a DVC remote (`dvc remote list` not empty) the results
are pushed as `dvc exp push` would: the experiments' outputs to the DVC remote
(`Repo.push(revs=...)`, what `dvc exp push` calls) and, when the git remote exists, their
`refs/exps/...` refs (with `git push`, which uses the CI checkout's credentials; `dvc exp
pull origin <name>` brings an experiment back); without a remote the summary says the push
was skipped. Any failed step (a stage, a data gate, the diff, the push) makes the exit
code non-zero, so the CI job goes red.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from divwrite.core.files import atomic_path
from divwrite.core.params import flatten, has_param, load_params, parse_yaml
from divwrite.ops.ablation import hydra_value
from divwrite.ops.pipeline import _venv_env
from divwrite.ops.profiles import load_profile

FULL = "full"  # params.yaml as committed: no profile file, diffed against the base's committed metrics
PREFIX = "retrain"
FAILED_OUTPUT_LINES = 25  # of a failed stage's output, in the summary
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

# What `dvc repro` / `dvc exp run` log for each stage (DVC 3.x, dvc/stage/*.py).
_RUNNING = re.compile(r"^Running stage '([^']+)':")
_RUN_CACHE = re.compile(r"^Stage '([^']+)' is cached - skipping run")
_UNCHANGED = re.compile(r"^Stage '([^']+)' didn't change, skipping")
_PULLED = re.compile(r"^Pulling data for stage: '([^']+)'")
_FAILED = re.compile(r"^ERROR: failed to reproduce '([^']+)'")


class RetrainError(RuntimeError):
    """A step of the retraining failed; `step` names it in the summary."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


@dataclass
class StageLog:
    """Which stages an experiment ran, and how the others were satisfied, from DVC's log."""

    ran: list[str] = field(default_factory=list)
    reused: dict[str, str] = field(default_factory=dict)  # stage -> unchanged | run-cache | remote
    failed: str | None = None
    errors: list[str] = field(default_factory=list)  # DVC's `ERROR:` lines, each once
    failed_output: list[str] = field(default_factory=list)  # the end of the failed stage's output


@dataclass
class Side:
    """One side of the comparison: the base or the head revision and how it was run."""

    role: str  # "base" | "head"
    label: str  # the revision as given (`origin/main`, `HEAD`)
    sha: str
    dirty: bool = False  # head only: uncommitted changes to tracked files went into the run
    overrides: list[str] = field(default_factory=list)  # `-S` values
    skipped: list[str] = field(default_factory=list)  # profile keys this revision's params lack
    experiment: str | None = None  # DVC experiment name (None: the committed metrics of `sha`)
    reused: bool = False  # the experiment existed already and was not run again
    stages: StageLog | None = None


@dataclass
class Report:
    """Everything the summary says; filled in as the steps go."""

    profile: str
    targets: list[str]
    metric_files: list[str] | None  # the targets' metrics (None: every metric of dvc.yaml)
    base: Side
    head: Side
    diff_command: list[str] | None = None
    diff_table: str | None = None
    push: list[str] = field(default_factory=list)
    failure: RetrainError | None = None


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
    source = flat.get("data.source")
    if (
        isinstance(source, str)
        and source != "builtin"
        and not source.startswith("hf:")
        and not Path(source).is_absolute()
    ):
        flat["data.source"] = str((root / source).resolve())
    for value in flat.values():
        hydra_value(value)  # raises ValueError on values a -S override cannot carry
    return flat


def override_args(overrides: Mapping[str, Any]) -> list[str]:
    """`key=value` strings for `dvc exp run -S`, in the profile's order."""
    return [f"{key}={hydra_value(value)}" for key, value in overrides.items()]


def experiment_name(
    profile: str, sha: str, overrides: Sequence[str], targets: Sequence[str], dirty: bool = False
) -> str:
    """`retrain-<profile>-<commit[:7]>-<digest>` (`-dirty` with uncommitted changes): the
    digest, of the overrides and the targets, tells apart experiments of one commit that ran
    different things. Base or head is no part of it: a commit's run is the same either way,
    so the head run of one commit serves as the base run of its successors."""
    digest = hashlib.sha1(json.dumps([list(overrides), list(targets)]).encode("utf-8")).hexdigest()[:6]
    return f"{PREFIX}-{profile}-{sha[:7]}-{digest}" + ("-dirty" if dirty else "")


def parse_stage_log(text: str) -> StageLog:
    """The stages DVC ran, restored or skipped, and the one that failed, from its output."""
    log = StageLog()
    pulled: set[str] = set()
    current: list[str] = []  # the output of the stage running now
    for raw in text.splitlines():
        line = raw.strip()
        if m := _RUNNING.match(line):
            if m[1] not in log.ran:
                log.ran.append(m[1])
            log.reused.pop(m[1], None)
            current = []
            continue
        if m := _RUN_CACHE.match(line):
            log.reused[m[1]] = "run-cache"
        elif m := _UNCHANGED.match(line):
            log.reused[m[1]] = "remote" if m[1] in pulled else "unchanged"
        elif m := _PULLED.match(line):
            pulled.add(m[1])
        if line and not line.startswith("ERROR:"):
            current.append(raw.rstrip())
        if line.startswith("ERROR:") and line not in log.errors:
            log.errors.append(line)
            if (m := _FAILED.match(line)) and log.failed is None:
                log.failed = m[1]
                log.failed_output = current[-FAILED_OUTPUT_LINES:]
    for stage in pulled - set(log.ran) - set(log.reused):
        log.reused[stage] = "remote"  # pulled, then neither run nor reported: checked out as is
    return log


# -- git and DVC ---------------------------------------------------------------------------


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def _dvc(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, env=env or _venv_env({}), capture_output=True, text=True
    )


def resolve_commit(root: Path, rev: str) -> str:
    """The full sha of `rev`; ValueError when it is not a commit of this repository."""
    proc = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if proc.returncode != 0:
        hint = " (CI: check out with fetch-depth: 0; locally: git fetch origin)" if "/" in rev else ""
        raise ValueError(f"revision {rev!r} is not a commit of {root}{hint}")
    return proc.stdout.strip()


def dvc_remotes(cwd: Path) -> list[str]:
    """Names of the DVC remotes configured for `cwd` (`dvc remote list`)."""
    proc = _dvc(cwd, "remote", "list")
    if proc.returncode != 0:
        raise RetrainError("dvc remote list", proc.stderr.strip() or proc.stdout.strip())
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


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


def exp_ref(baseline: str, name: str) -> str:
    """The git ref DVC stores experiment `name` of commit `baseline` under."""
    from dvc.repo.experiments.refs import ExpRefInfo

    return str(ExpRefInfo(baseline, name))


def exp_commit(root: Path, baseline: str, name: str) -> str | None:
    """The commit of an existing experiment, or None."""
    proc = _git(root, "rev-parse", "--verify", "--quiet", exp_ref(baseline, name))
    return proc.stdout.strip() if proc.returncode == 0 else None


def _stream(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run `cmd`, echoing its output line by line (CI logs stay live); returns (code, output)."""
    lines = []
    with subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    return proc.returncode, "".join(lines)


@contextmanager
def _parent_run(root: Path, side: Side, profile: str) -> Iterator[str]:
    """An MLflow run `retrain/<role>` in `root`'s store for the stages to nest under; FAILED
    when the block raises."""
    import mlflow

    from divwrite.core.tracking import configure

    experiment = load_params(root / "params.yaml").get("mlflow", {}).get("experiment", "divwrite")
    experiment_id = configure(experiment, root)
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
    cmd = [sys.executable, "-m", "dvc", "exp", "run", "--name", side.experiment]
    if temp:
        cmd.append("--temp")
    if dvc_remotes(cwd):
        cmd.append("--pull")
    for override in side.overrides:
        cmd += ["-S", override]
    cmd += list(targets)
    print(f"divwrite: {side.role}: {' '.join(cmd[2:])}  (in {cwd})", flush=True)
    with _parent_run(root, side, profile) as run_id:
        env = _venv_env({PARENT_RUN_ENV: run_id, "MLFLOW_TRACKING_URI": tracking_uri(root)})
        env.pop("DVC_ROOT", None)
        code, output = _stream(cmd, cwd, env)
        side.stages = parse_stage_log(output)
        if code != 0:
            failed = f" (stage {side.stages.failed!r})" if side.stages.failed else ""
            raise RetrainError(f"{side.role} run", f"dvc exp run exited with {code}{failed}")


@contextmanager
def base_worktree(root: Path, sha: str) -> Iterator[Path]:
    """A detached `git worktree` of `sha` in a temp folder, using `root`'s DVC cache;
    removed afterwards."""
    cache = _dvc(root, "cache", "dir")
    if cache.returncode != 0:
        raise RetrainError("dvc cache dir", cache.stderr.strip())
    folder = Path(tempfile.mkdtemp(prefix="divwrite-retrain-base-"))
    path = folder / "base"
    added = _git(root, "worktree", "add", "--detach", str(path), sha)
    if added.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RetrainError("git worktree add", added.stderr.strip())
    try:
        for key, value in (
            ("cache.dir", cache.stdout.strip()),
            ("core.analytics", "false"),
            ("core.check_update", "false"),
        ):
            proc = _dvc(path, "config", "--local", key, value)
            if proc.returncode != 0:
                raise RetrainError("dvc config (base worktree)", proc.stderr.strip())
        yield path
    finally:
        _git(root, "worktree", "remove", "--force", str(path))
        _git(root, "worktree", "prune")
        shutil.rmtree(folder, ignore_errors=True)


def diff_metrics(root: Path, a_rev: str, b_rev: str, files: Sequence[str] | None) -> tuple[list[str], str]:
    """`dvc metrics diff a_rev b_rev --md [--targets files]`: (the command, DVC's table)."""
    args = ["metrics", "diff", a_rev, b_rev, "--md"]
    if files:
        args += ["--targets", *files]
    proc = _dvc(root, *args)
    if proc.returncode != 0:
        raise RetrainError("dvc metrics diff", (proc.stderr or proc.stdout).strip())
    return ["dvc", *args], proc.stdout.strip()


def push_results(root: Path, sides: Sequence[Side], push: bool | None, git_remote: str) -> list[str]:
    """Push the experiments' outputs to the default DVC remote and their refs to `git_remote`:
    the two halves of `dvc exp push` (`Repo.push(revs=...)`, then the `refs/exps/...` refspecs).

    `push`: None = when a DVC remote is configured, True = required (fails without one),
    False = never. Returns the lines for the summary; raises RetrainError when a push fails.
    """
    if push is False:
        return ["push skipped (--no-push)"]
    if not sides:
        return ["nothing new to push: both experiments were reused"]
    remotes = dvc_remotes(root)
    if not remotes:
        if push:
            raise RetrainError("push", "--push was given but no DVC remote is configured (`dvc remote list` is empty)")
        return ["push skipped: no DVC remote configured (`dvc remote list` is empty)"]
    names = [s.experiment for s in sides if s.experiment]
    revs = [exp_commit(root, s.sha, s.experiment) for s in sides if s.experiment]
    if not names or None in revs:
        raise RetrainError("push", f"no commit for the experiment(s) {names}")
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            default = repo.config["core"].get("remote") or remotes[0]
            uploaded = repo.push(revs=revs, workspace=False)
    except DvcException as err:
        raise RetrainError("dvc push", str(err)) from None
    shown = ", ".join(f"`{n}`" for n in names)
    lines = [
        f"pushed the outputs of {shown} to DVC remote `{default}` ({uploaded} file(s) uploaded, the rest were there)"
    ]
    if git_remote not in _git(root, "remote").stdout.split():
        return [*lines, f"experiment refs not pushed: no git remote `{git_remote}`"]
    # `dvc exp push` sends these refspecs through dulwich, which ignores the credentials that
    # actions/checkout leaves in `http.<url>.extraheader` (treeverse/scmrepo#262); git does not.
    refspecs = [f"+{exp_ref(s.sha, s.experiment)}:{exp_ref(s.sha, s.experiment)}" for s in sides if s.experiment]
    proc = _git(root, "push", "--quiet", git_remote, *refspecs)
    if proc.returncode != 0:
        raise RetrainError("git push (experiment refs)", proc.stderr.strip())
    return [
        *lines,
        f"pushed the experiment refs to git remote `{git_remote}` (`dvc exp pull {git_remote} <name>` fetches one)",
    ]


# -- the summary ---------------------------------------------------------------------------


def _stages_cell(side: Side) -> tuple[str, str]:
    if side.experiment is None:
        return "-", "committed metrics"
    if side.reused:
        return "-", "experiment reused (already run)"
    if side.stages is None:
        return "(not run)", "-"
    ran = ", ".join(f"{s} (failed)" if s == side.stages.failed else s for s in side.stages.ran) or "none"
    reused = ", ".join(f"{s} ({how})" for s, how in side.stages.reused.items()) or "-"
    return ran, reused


def summary_markdown(report: Report) -> str:
    """The step summary: header, the two revisions, DVC's table, the push, any failure."""
    base, head = report.base, report.head
    status = "failed" if report.failure else "ok"
    lines = [
        f"## Retrain `{report.profile}`: head `{head.sha[:7]}` vs base `{base.label}` ({status})",
        "",
        "| | revision | DVC experiment | stages re-run | not re-run |",
        "|---|---|---|---|---|",
    ]
    for side in (base, head):
        rev = f"`{side.label}` = `{side.sha[:7]}`" + (" + uncommitted changes" if side.dirty else "")
        exp = f"`{side.experiment}`" if side.experiment else "-"
        ran, reused = _stages_cell(side)
        lines.append(f"| {side.role} | {rev} | {exp} | {ran} | {reused} |")
    lines.append("")
    if report.profile == FULL:
        lines.append("Profile `full`: params.yaml as committed, against the base revision's committed metrics.")
    else:
        lines.append(
            f"Profile `{report.profile}` (profiles/{report.profile}.yaml) on both sides, as "
            f"{len(head.overrides)} `dvc exp run -S` overrides:"
        )
        lines += [
            "",
            "<details><summary>overrides</summary>",
            "",
            *[f"- `{o}`" for o in head.overrides],
            "",
            "</details>",
        ]
        if base.skipped:
            lines += ["", f"Not in the base revision's params, so left out there: {', '.join(base.skipped)}."]
    if report.targets:
        files = ", ".join(f"`{f}`" for f in report.metric_files or []) or "none"
        lines += ["", f"Targets: {', '.join(report.targets)} and the stages they depend on; metrics compared: {files}."]
    if report.diff_table is not None:
        assert report.diff_command is not None
        command = report.diff_command[: report.diff_command.index("--md") + 1]  # the --targets are listed above
        rows = [line for line in report.diff_table.splitlines()[2:] if line.startswith("|")]
        lines += ["", f"### Metrics: `{' '.join(command)}`", ""]
        lines.append(report.diff_table if rows else "No metric changed.")
    if report.push:
        lines += ["", "### Push", "", *[f"- {line}" for line in report.push]]
    if report.failure:
        lines += ["", f"### Failed: {report.failure.step}", "", report.failure.message]
        for side in (base, head):
            if side.stages and (side.stages.errors or side.stages.failed_output):
                lines += ["", f"{side.role} run, the end of its output:", "", "```"]
                lines += [*side.stages.failed_output, *side.stages.errors, "```"]
    return "\n".join(lines) + "\n"


def append_summary(path: str | Path, text: str) -> None:
    """Append `text` to `path` (GitHub's step summary is appended to by every step), whole:
    written beside it and renamed into place, so a failure never leaves half of it."""
    path = Path(path)
    before = path.read_text(encoding="utf-8") if path.exists() else ""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    sep = "\n" if before and not before.endswith("\n") else ""
    with atomic_path(path) as tmp:
        tmp.write_text(before + sep + text, encoding="utf-8")
        os.chmod(tmp, mode)


# -- the command ---------------------------------------------------------------------------


def plan(root: Path, profile: str, base_rev: str, targets: Sequence[str]) -> Report:
    """Check the inputs and work out both sides (ValueError naming a bad input)."""
    if not (root / "dvc.yaml").is_file() or not (root / ".dvc").is_dir():
        raise ValueError(f"{root}: not a DVC project root (no dvc.yaml or .dvc/)")
    if _git(root, "rev-parse", "--show-toplevel").returncode != 0:
        raise ValueError(f"{root}: not a git repository (DVC experiments need git)")
    targets = list(targets)
    overrides = profile_overrides(root, profile)
    files = metric_files(root, targets)
    head_sha = resolve_commit(root, "HEAD")
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no").stdout.strip())
    head_args = override_args(overrides)
    head = Side("head", "HEAD", head_sha, dirty=dirty, overrides=head_args)
    head.experiment = experiment_name(profile, head_sha, head_args, targets, dirty=dirty)
    base = Side("base", base_rev, resolve_commit(root, base_rev))
    if profile != FULL:
        shown = _git(root, "show", f"{base.sha}:params.yaml")
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
        print(
            f"divwrite: {side.role}: experiment {side.experiment} exists (same commit, overrides, targets): reused",
            flush=True,
        )
        return True
    proc = _dvc(root, "exp", "remove", side.experiment)
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
    untracked = [line[3:] for line in _git(root, "status", "--porcelain").stdout.splitlines() if line.startswith("??")]
    if untracked:
        print(f"divwrite: warning: untracked files are not part of the head run: {', '.join(untracked)}", flush=True)
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
    print(text, flush=True)
    if summary_path:
        append_summary(summary_path, text)
    if report.failure:
        print(f"divwrite: retrain failed: {report.failure}", file=sys.stderr)
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
        print(f"divwrite retrain: {err}", file=sys.stderr)
        if args.summary:
            append_summary(args.summary, f"## Retrain `{args.profile}`: bad input\n\n{err}\n")
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="divwrite retrain", description=__doc__.split("\n\n")[0]))
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
