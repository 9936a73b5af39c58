"""The retraining's report: what each side ran, DVC's stage log, the step summary.

`retrain` (`divwrite.ops.retrain`) fills in a `Report` as its steps go: the two `Side`s
(base and head: revision, `-S` overrides, DVC experiment, whether it was reused), DVC's
metrics table, the push, and the `RetrainError` of the step that failed, if one did.

`parse_stage_log` reads what DVC 3.x logs for each stage (`Running stage`, `is cached -
skipping run`, `didn't change, skipping`, `Pulling data for stage`, `ERROR: failed to
reproduce`) into a `StageLog`: the stages that ran, how the others were satisfied
(unchanged, DVC's run-cache, the remote), and the end of the failed stage's output.

`summary_markdown` writes the summary: profile, base and head revisions, the experiment of
each, which stages re-ran, DVC's markdown table, the push, any failure. `append_summary`
appends it to a file whole (GitHub's `$GITHUB_STEP_SUMMARY` expects appends).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from divwrite.core.files import atomic_path

FULL = "full"  # params.yaml as committed: no profile file, diffed against the base's committed metrics
FAILED_OUTPUT_LINES = 25  # of a failed stage's output, in the summary

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


# -- DVC's stage log --------------------------------------------------------------------------


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
