"""The retraining's experiments as git refs, and pushing them: the two halves of `dvc exp push`.

A DVC experiment is a git ref, `refs/exps/<baseline[:2]>/<baseline[2:]>/<name>` (`exp_ref`),
on top of the commit it ran on; `exp_commit` reads its commit (None: no such experiment).

With a DVC remote (`dvc remote list` not empty, `dvc_remotes`) `push_results` pushes the
results as `dvc exp push` would: the experiments' outputs to the DVC remote
(`Repo.push(revs=...)`, what `dvc exp push` calls) and, when the git remote exists, their
`refs/exps/...` refs (with `git push`, which uses the CI checkout's credentials; `dvc exp
pull origin <name>` brings an experiment back); without a remote the summary says the push
was skipped. A push that fails raises `RetrainError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from divwrite.core.vcs import run_dvc, run_git
from divwrite.ops.retrain_report import RetrainError, Side


def dvc_remotes(cwd: Path) -> list[str]:
    """Names of the DVC remotes configured for `cwd` (`dvc remote list`)."""
    proc = run_dvc(cwd, "remote", "list")
    if proc.returncode != 0:
        raise RetrainError("dvc remote list", proc.stderr.strip() or proc.stdout.strip())
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def exp_ref(baseline: str, name: str) -> str:
    """The git ref DVC stores experiment `name` of commit `baseline` under."""
    from dvc.repo.experiments.refs import ExpRefInfo

    return str(ExpRefInfo(baseline, name))


def exp_commit(root: Path, baseline: str, name: str) -> str | None:
    """The commit of an existing experiment, or None."""
    proc = run_git(root, "rev-parse", "--verify", "--quiet", exp_ref(baseline, name))
    return proc.stdout.strip() if proc.returncode == 0 else None


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
    if git_remote not in run_git(root, "remote").stdout.split():
        return [*lines, f"experiment refs not pushed: no git remote `{git_remote}`"]
    # `dvc exp push` sends these refspecs through dulwich, which ignores the credentials that
    # actions/checkout leaves in `http.<url>.extraheader` (treeverse/scmrepo#262); git does not.
    refspecs = [f"+{exp_ref(s.sha, s.experiment)}:{exp_ref(s.sha, s.experiment)}" for s in sides if s.experiment]
    proc = run_git(root, "push", "--quiet", git_remote, *refspecs)
    if proc.returncode != 0:
        raise RetrainError("git push (experiment refs)", proc.stderr.strip())
    return [
        *lines,
        f"pushed the experiment refs to git remote `{git_remote}` (`dvc exp pull {git_remote} <name>` fetches one)",
    ]
