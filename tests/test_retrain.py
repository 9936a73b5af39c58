"""CI-triggered retraining (`divwrite.ops.retrain`, `.github/workflows/retrain.yml`).

Unit tests: the profile as `-S` overrides (DVC's own override machinery applied to
params.yaml gives exactly the params of `divwrite smoke`), DVC's stage log, experiment
names, the metrics of a target, the summary file, bad input, and the workflow file.

End to end (slow, one scratch git repository made from the project's files, `main` plus
branches): the smoke profile on `main` and on a branch that changes `pair.gap`, with
`pair` as target (ingest, base, filter, pair); the same with an impossible data gate (the
run must fail); the full profile against `main`'s committed metrics with a local DVC remote
and a bare git remote (both must receive the results).
"""

import json
import shlex
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, subprocess_env

from divwrite.core.params import flatten
from divwrite.core.vcs import override_args
from divwrite.ops import retrain, retrain_push, retrain_report
from divwrite.ops.retrain_report import Report, Side, StageLog

WORKFLOW = REPO / ".github/workflows/retrain.yml"
PAIR_METRICS = [
    "reports/dataset_card.json",
    "reports/gates/filter.json",
    "reports/gates/ingest.json",
    "reports/gates/pair.json",
    "reports/stages/filter.json",
    "reports/stages/ingest.json",
    "reports/stages/pair.json",
]

# -- the profile as overrides -------------------------------------------------------------


def small_project(root: Path, profile: dict | None = None) -> Path:
    """The project's params.yaml and, with `profile`, profiles/tiny.yaml."""
    (root / "profiles").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    if profile is not None:
        (root / "profiles/tiny.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return root


def test_profile_becomes_flat_overrides_in_its_order(tmp_path):
    root = small_project(tmp_path, {"gates": {"mean_response_words": [5, 200], "min_prompts": 5},
                                    "corpus": {"n_prompts": 60}, "model": {"lora": {"r": 8}}})  # fmt: skip
    overrides = retrain.profile_overrides(root, "tiny")
    assert overrides == {"gates.mean_response_words": [5, 200], "gates.min_prompts": 5, "corpus.n_prompts": 60,
                         "model.lora.r": 8}  # fmt: skip
    assert override_args(overrides) == [
        "gates.mean_response_words=[5,200]", "gates.min_prompts=5", "corpus.n_prompts=60", "model.lora.r=8"
    ]  # fmt: skip
    assert retrain.profile_overrides(root, "full") == {}


def test_a_relative_local_source_is_made_absolute(tmp_path):
    root = small_project(tmp_path, {"data": {"source": "../shared/data/hanna/x.jsonl"}})
    assert retrain.profile_overrides(root, "tiny") == {
        "data.source": str((root / "../shared/data/hanna/x.jsonl").resolve())
    }


@pytest.mark.parametrize(
    "profile, name, message",
    [
        ({"corpus": {"n_prompt": 60}}, "tiny", r"tiny.yaml: corpus.n_prompt: unknown key \(got 60\); corpus has: n_prompts"),
        ({"corpus": {"n_prompts": 60}}, "nope", r"no profile 'nope'.*profiles: \['full', 'tiny'\]"),
        ({"corpus": {"n_prompts": 60}}, "../tiny", "bad profile name"),
        ([1, 2], "tiny", "expected a mapping"),
        ({"corpus": {"n_prompts": {1, 2}}}, "tiny", r"corpus.n_prompts: input should be a valid integer \(got \{1, 2\}\)"),
    ],
)  # fmt: skip
def test_bad_profiles_raise_a_clear_value_error(tmp_path, profile, name, message):
    root = small_project(tmp_path)
    (root / "profiles/tiny.yaml").write_text(yaml.dump(profile))  # yaml.dump: the set case too
    with pytest.raises(ValueError, match=message):
        retrain.profile_overrides(root, name)


def test_smoke_overrides_give_exactly_the_smoke_params(tmp_path):
    """DVC's own `-S` machinery (`apply_overrides`, what `dvc exp run -S` calls) turns the
    project's params.yaml into the params `divwrite smoke` runs with."""
    from dvc.utils.hydra import apply_overrides

    from divwrite.ops.pipeline import profile_params

    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    args = override_args(retrain.profile_overrides(REPO, "smoke"))
    assert len(args) == len(flatten(yaml.safe_load((REPO / "profiles/smoke.yaml").read_text())))
    apply_overrides(path, args)
    assert yaml.safe_load(path.read_text()) == profile_params(REPO, "smoke")


# -- DVC's log, names, targets ------------------------------------------------------------

# Lines of real `dvc exp run` output (DVC 3.67) in this project, stage output left out.
EXP_RUN_LOG = """\
Reproducing experiment 'retrain-smoke-head-d34d897-5afd56'
Pulling data for stage: 'ingest'
Stage 'ingest' didn't change, skipping
Pulling data for stage: 'filter'
WARNING: Some of the cache files do not exist neither locally nor on remote. Missing cache files:
md5: 743d966eebb0d216cf11568b736ac48c.dir
Unable to pull data for stage: 'filter'
Running stage 'filter':
> python stages/filter.py
Updating lock file 'dvc.lock'

Stage 'base' is cached - skipping run, checking out outputs
Updating lock file 'dvc.lock'

Running stage 'pair':
> python stages/pair.py

pair: data gate failed, nothing was written.
data gate 'pair' failed: 1 critical expectation on 126 rows
ERROR: failed to reproduce 'pair': failed to run: python stages/pair.py, exited with 1
ERROR: failed to reproduce 'pair': failed to run: python stages/pair.py, exited with 1
"""


def test_stage_log_tells_what_ran_and_what_did_not():
    log = retrain_report.parse_stage_log(EXP_RUN_LOG)
    assert log.ran == ["filter", "pair"]
    assert log.reused == {"ingest": "remote", "base": "run-cache"}
    assert log.failed == "pair"
    assert log.errors == ["ERROR: failed to reproduce 'pair': failed to run: python stages/pair.py, exited with 1"]
    assert log.failed_output == [
        "> python stages/pair.py", "pair: data gate failed, nothing was written.",
        "data gate 'pair' failed: 1 critical expectation on 126 rows",
    ]  # fmt: skip
    unchanged = retrain_report.parse_stage_log("Stage 'ingest' didn't change, skipping\nRunning stage 'pair':\n")
    assert (unchanged.ran, unchanged.reused, unchanged.failed) == (["pair"], {"ingest": "unchanged"}, None)


def test_experiment_names_are_stable_valid_refs_and_tell_runs_apart():
    sha = "59f90b0fa970bb10f877dd6a76253bb756fa7f74"
    name = retrain.experiment_name("smoke", sha, ["pair.gap=8"], ["pair"])
    assert name == retrain.experiment_name("smoke", sha, ["pair.gap=8"], ["pair"])
    assert name.startswith("retrain-smoke-59f90b0-") and len(name) == len("retrain-smoke-59f90b0-") + 6
    others = {
        retrain.experiment_name("smoke", sha, ["pair.gap=9"], ["pair"]),
        retrain.experiment_name("smoke", sha, ["pair.gap=8"], []),
        retrain.experiment_name("hanna", sha, ["pair.gap=8"], ["pair"]),
        retrain.experiment_name("smoke", sha, ["pair.gap=8"], ["pair"], dirty=True),
    }
    assert name not in others and len(others) == 4
    assert name + "-dirty" in others  # never reused: the changes are not in the commit
    ref = retrain_push.exp_ref(sha, name)
    assert ref == f"refs/exps/59/f90b0fa970bb10f877dd6a76253bb756fa7f74/{name}"
    assert subprocess.run(["git", "check-ref-format", ref]).returncode == 0


def test_metric_files_of_a_target_and_its_upstream():
    assert retrain.metric_files(REPO, ["pair"]) == PAIR_METRICS
    assert retrain.metric_files(REPO, ["filter"]) == [
        "reports/dataset_card.json", "reports/gates/filter.json", "reports/gates/ingest.json",
        "reports/stages/filter.json", "reports/stages/ingest.json",
    ]  # fmt: skip
    assert retrain.metric_files(REPO, []) is None
    with pytest.raises(ValueError, match="target 'pairs'"):
        retrain.metric_files(REPO, ["pairs"])


# -- the summary --------------------------------------------------------------------------


def test_summary_is_appended_whole_and_keeps_the_file_mode(tmp_path):
    path = tmp_path / "step_summary"
    path.write_text("# an earlier step")  # no trailing newline
    path.chmod(0o664)
    retrain_report.append_summary(path, "## Retrain\n")
    retrain_report.append_summary(path, "## again\n")
    assert path.read_text() == "# an earlier step\n## Retrain\n## again\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o664
    assert [p.name for p in tmp_path.iterdir()] == ["step_summary"]  # no temp file left
    retrain_report.append_summary(tmp_path / "new.md", "x\n")
    assert (tmp_path / "new.md").read_text() == "x\n"


def test_summary_says_no_change_and_names_a_failure():
    base = Side("base", "main", "a" * 40, experiment="retrain-full-base", stages=StageLog(["ingest"], {}))
    head = Side("head", "HEAD", "b" * 40, dirty=True, experiment="retrain-full-head",
                stages=StageLog(["ingest", "pair"], {"base": "run-cache"}, failed="pair", errors=["ERROR: failed"],
                                failed_output=["pair: data gate failed"]))  # fmt: skip
    report = Report("smoke", ["pair"], ["reports/stages/pair.json"], base, head)
    report.diff_command = ["dvc", "metrics", "diff", "a", "b", "--md", "--targets", "reports/stages/pair.json"]
    report.diff_table = "| Path | Metric | a | b | Change |\n|---|---|---|---|---|"
    text = retrain_report.summary_markdown(report)
    assert "### Metrics: `dvc metrics diff a b --md`\n\nNo metric changed." in text
    head_row = "| head | `HEAD` = `bbbbbbb` + uncommitted changes | `retrain-full-head` | ingest, pair (failed) |"
    assert f"{head_row} base (run-cache) |" in text
    report.failure = retrain_report.RetrainError("head run", "dvc exp run exited with 255 (stage 'pair')")
    text = retrain_report.summary_markdown(report)
    assert text.startswith("## Retrain `smoke`: head `bbbbbbb` vs base `main` (failed)")
    assert (
        "### Failed: head run\n\ndvc exp run exited with 255 (stage 'pair')\n\n"
        "head run, the end of its output:\n\n```\npair: data gate failed\nERROR: failed\n```"
    ) in text


def test_bad_input_exits_2_with_its_reason_before_running_anything(tmp_path, monkeypatch, capsys):
    root = small_project(tmp_path / "p", {"corpus": {"n_prompts": 60}})
    (root / "dvc.yaml").write_text("stages:\n  pair:\n    cmd: echo\n")
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "p"]):  # fmt: skip
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    monkeypatch.chdir(root)
    summary = tmp_path / "summary.md"
    assert retrain.main(["--profile", "tiny", "--base", "origin/main", "--summary", str(summary)]) == 2
    assert "revision 'origin/main' is not a commit" in capsys.readouterr().err
    assert "bad input" in summary.read_text() and "fetch-depth: 0" in summary.read_text()
    assert retrain.main(["--profile", "huge", "--base", "HEAD"]) == 2
    assert "no profile 'huge'" in capsys.readouterr().err
    assert retrain.main(["--profile", "tiny", "--base", "HEAD", "pairs"]) == 2
    assert "target 'pairs'" in capsys.readouterr().err
    assert (
        not list(root.glob(".dvc/tmp/exps/*"))
        and "refs/exps" not in subprocess.run(["git", "for-each-ref"], cwd=root, capture_output=True, text=True).stdout
    )


# -- the workflow -------------------------------------------------------------------------


def workflow() -> dict:
    doc = yaml.safe_load(WORKFLOW.read_text())
    doc["on"] = doc.pop(True)  # YAML 1.1 reads the key `on` as true
    return doc


def steps_running(job: dict, needle: str) -> list[dict]:
    return [s for s in job["steps"] if needle in s.get("run", "")]


def test_workflow_triggers_on_the_pipelines_inputs_and_on_demand():
    on = workflow()["on"]
    assert set(on) == {"push", "pull_request", "workflow_dispatch"}
    for event in ("push", "pull_request"):
        paths = on[event]["paths"]
        assert {"data/**", "params.yaml", "dvc.yaml", "profiles/**", "src/**", "stages/**", "configs/**"} <= set(paths)
        assert not {"dvc.lock", "reports/**"} & set(paths)  # a run's record, not its input
    assert on["push"]["branches"] == ["main"]
    assert "labeled" in on["pull_request"]["types"]
    assert on["workflow_dispatch"]["inputs"]["profile"]["default"] == "smoke"


def test_workflow_jobs():
    doc = workflow()
    assert doc["concurrency"]["group"].startswith("retrain-")
    smoke, full = doc["jobs"]["smoke"], doc["jobs"]["full"]
    assert smoke["runs-on"] == "ubuntu-latest" and full["runs-on"] == ["self-hosted", "gpu"]
    for job in (smoke, full):
        assert isinstance(job["timeout-minutes"], int)
        checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
        assert checkout["with"]["fetch-depth"] == 0
        python = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@"))
        assert python["with"]["python-version"] == "3.11"
        assert steps_running(job, "make setup")
        assert steps_running(job, "git fetch --quiet origin '+refs/exps/*:refs/exps/*'")  # earlier runs, reused
        assert len(steps_running(job, "divwrite retrain")) == 1
    assert "inputs.profile == 'full'" in full["if"] and "retrain-full" in full["if"]
    assert "head.repo.full_name == github.repository" in full["if"]  # no fork code on the GPU machine
    assert full["concurrency"]["cancel-in-progress"] is False
    (run_full,) = steps_running(full, "divwrite retrain")
    assert run_full["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    assert "HF_TOKEN" not in json.dumps(smoke)


def test_workflow_never_prints_a_secret():
    """Secrets reach the scripts through `env:` only, and no script echoes one."""
    for job in workflow()["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "")
            assert "secrets." not in script
            secret_vars = [k for k, v in (step.get("env") or {}).items() if "secrets." in str(v)]
            for line in script.splitlines():
                if any(word in line for word in ("echo", "printf", "set -x")):
                    assert not any(f"${name}" in line or "${" + name in line for name in secret_vars), line


def test_workflow_calls_the_script_with_arguments_it_accepts():
    """The `divwrite retrain` line of each job, with sample values for its variables, parses
    with the script's own argument parser into the intended options."""
    import argparse

    parser = retrain.add_arguments(argparse.ArgumentParser())
    values = {"$PROFILE": "smoke", "$BASE": "origin/main", "$GITHUB_STEP_SUMMARY": "/tmp/summary",
              "$PUSH": "--no-push", "$TARGETS": "pair"}  # fmt: skip
    jobs = workflow()["jobs"]
    parsed = {}
    for name in ("smoke", "full"):
        (step,) = steps_running(jobs[name], "divwrite retrain")
        line = step["run"]
        for var, value in values.items():
            line = line.replace(var, value)
        argv = shlex.split(line)
        assert argv[:2] == [".venv/bin/divwrite", "retrain"]
        parsed[name] = parser.parse_args(argv[2:])
    assert vars(parsed["smoke"]) == {
        "profile": "smoke", "base": "origin/main", "summary": Path("/tmp/summary"), "push": False,
        "git_remote": "origin", "rerun": False, "targets": ["pair"],
    }  # fmt: skip
    assert parsed["full"].profile == "full" and parsed["full"].push is None


# -- end to end ---------------------------------------------------------------------------

GIT_ID = ["-c", "user.name=divwrite-test", "-c", "user.email=test@example.invalid"]


def sh(cwd: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1200, env=subprocess_env())
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def run_retrain(root: Path, *args: str) -> subprocess.CompletedProcess:
    return sh(root, sys.executable, "-m", "divwrite.ops.retrain", *args, check=False)


def branch(root: Path, name: str, start: str, old: str, new: str) -> str:
    """Branch `name` off `start` with one line of params.yaml changed; its commit."""
    sh(root, "git", "checkout", "-q", "-b", name, start)
    text = (root / "params.yaml").read_text()
    assert text.count(old) == 1, old
    (root / "params.yaml").write_text(text.replace(old, new))
    sh(root, "git", *GIT_ID, "commit", "-qam", f"params: {new.strip()}")
    return sh(root, "git", "rev-parse", "HEAD").stdout.strip()


def show_json(root: Path, rev: str, path: str) -> dict:
    return json.loads(sh(root, "git", "show", f"{rev}:{path}").stdout)


def table_rows(summary: str) -> dict[tuple[str, str], tuple[str, str, str]]:
    """(path, metric) -> (old, new, change) of the `dvc metrics diff --md` table."""
    rows = {}
    for line in summary.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("reports/"):
            rows[(cells[0], cells[1])] = (cells[2], cells[3], cells[4])
    return rows


def changed_metrics(root: Path, old_rev: str, new_rev: str, files: list[str]) -> dict[tuple[str, str], tuple]:
    """What the table must hold, computed here: every numeric metric that differs."""
    out = {}
    for path in files:
        old, new = flatten(show_json(root, old_rev, path)), flatten(show_json(root, new_rev, path))
        for key in sorted(set(old) | set(new)):
            a, b = old.get(key), new.get(key)
            if a != b and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
                out[(path, key)] = (a, b)
    return out


def assert_table_is_the_diff(summary: str, expected: dict) -> None:
    rows = table_rows(summary)
    assert set(rows) == set(expected), (sorted(rows), sorted(expected))
    for key, (a, b) in expected.items():
        old, new, change = (float(v) for v in rows[key])  # DVC rounds to 5 decimals
        assert old == pytest.approx(a, abs=1e-5) and new == pytest.approx(b, abs=1e-5), key
        assert change == pytest.approx(b - a, abs=2e-5), key


def exp_refs(git_dir_args: list[str], cwd: Path) -> dict[str, str]:
    out = sh(cwd, "git", *git_dir_args, "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps").stdout
    return {ref: sha for sha, ref in (line.split() for line in out.splitlines()) if "/exec/" not in ref}


def baseline(ref: str) -> str:
    """The commit an experiment ref `refs/exps/<2>/<38>/<name>` was run on."""
    parts = ref.split("/")
    return parts[2] + parts[3]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    """The project's files (not its outputs) committed as `main` in a new git repository,
    with `main`'s committed dvc.lock and reports (its metrics are the full profile's)."""
    from divwrite.ops.pipeline import tracked_files

    root = tmp_path_factory.mktemp("retrain") / "project"
    for rel in tracked_files(REPO):
        if (REPO / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes((REPO / rel).read_bytes())
    sh(root, "git", "init", "-q", "-b", "main")
    sh(root, "git", "add", "-A")
    sh(root, "git", *GIT_ID, "commit", "-qm", "main")
    for key, value in (("user.name", "divwrite-test"), ("user.email", "test@example.invalid")):
        sh(root, "git", "config", key, value)  # the experiment commits (CI sets one too)
    main = sh(root, "git", "rev-parse", "HEAD").stdout.strip()
    gap = branch(root, "gap", "main", "\n  gap: 5 ", "\n  gap: 8 ")
    return {"root": root, "main": main, "gap": gap}


@pytest.mark.slow
def test_smoke_profile_diffs_against_the_same_profile_on_main(project, tmp_path):
    root, main, gap = project["root"], project["main"], project["gap"]
    sh(root, "git", "checkout", "-q", "gap")
    summary_path = tmp_path / "step_summary.md"
    summary_path.write_text("# Tests\n\nall passed\n")
    proc = run_retrain(root, "--profile", "smoke", "--base", "main", "--summary", str(summary_path), "pair")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    text = summary_path.read_text()
    assert text.startswith("# Tests\n\nall passed\n## Retrain `smoke`: ")  # appended
    summary = text.split("all passed\n", 1)[1]
    assert summary.strip() in proc.stdout  # and printed
    refs = exp_refs([], root)
    overrides = override_args(retrain.profile_overrides(root, "smoke"))
    base_name = retrain.experiment_name("smoke", main, overrides, ["pair"])
    head_name = retrain.experiment_name("smoke", gap, overrides, ["pair"])
    base_exp, head_exp = refs[retrain_push.exp_ref(main, base_name)], refs[retrain_push.exp_ref(gap, head_name)]
    assert summary.startswith(f"## Retrain `smoke`: head `{gap[:7]}` vs base `main` (ok)")
    assert f"| base | `main` = `{main[:7]}` | `{base_name}` | ingest, base, filter, pair | - |" in summary
    assert f"| head | `HEAD` = `{gap[:7]}` | `{head_name}` | ingest, filter, pair | base (run-cache) |" in summary
    assert f"### Metrics: `dvc metrics diff {base_name} {head_name} --md`" in summary
    assert "- push skipped: no DVC remote configured (`dvc remote list` is empty)" in summary

    # Like for like: both experiments ran the smoke profile; only pair.gap differs.
    base_params = yaml.safe_load(sh(root, "git", "show", f"{base_exp}:params.yaml").stdout)
    head_params = yaml.safe_load(sh(root, "git", "show", f"{head_exp}:params.yaml").stdout)
    assert base_params["corpus"]["n_prompts"] == head_params["corpus"]["n_prompts"] == 60
    assert (base_params["pair"]["gap"], head_params["pair"]["gap"]) == (5, 8)
    assert {k: v for k, v in flatten(base_params).items() if flatten(head_params)[k] != v} == {"pair.gap": 5}
    expected = changed_metrics(root, base_exp, head_exp, PAIR_METRICS)
    assert ("reports/stages/pair.json", "gap_rule_pairs") in expected
    assert {p for p, _ in expected} == {"reports/stages/pair.json", "reports/gates/pair.json"}  # same data upstream
    assert_table_is_the_diff(summary, expected)
    committed = show_json(root, main, "reports/stages/pair.json")["gap_rule_pairs"]  # the full profile's
    assert table_rows(summary)[("reports/stages/pair.json", "gap_rule_pairs")][0] != str(committed)

    # The checkout is as it was: no worktree left, params and lock untouched.
    assert sh(root, "git", "worktree", "list", "--porcelain").stdout.count("worktree ") == 1
    assert sh(root, "git", "status", "--porcelain", "--untracked-files=no").stdout == ""
    with sqlite3.connect(root / "mlflow.db") as db:
        runs = db.execute(
            "SELECT r.name, r.status, p.name FROM runs r LEFT JOIN tags t ON t.run_uuid = r.run_uuid "
            "AND t.key = 'mlflow.parentRunId' LEFT JOIN runs p ON p.run_uuid = t.value"
        ).fetchall()
    assert ("retrain/base", "FINISHED", None) in runs and ("retrain/head", "FINISHED", None) in runs
    assert sorted(r[0] for r in runs if r[2] == "retrain/head") == ["filter", "ingest", "pair"]
    assert sorted(r[0] for r in runs if r[2] == "retrain/base") == ["base", "filter", "ingest", "pair"]

    # Run again (a CI re-run): both experiments exist, so nothing runs; the same table.
    again = run_retrain(root, "--profile", "smoke", "--base", "main", "pair")
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    assert again.stdout.count("experiment reused (already run)") == 2 and "Running stage" not in again.stdout
    assert table_rows(again.stdout) == table_rows(summary)
    assert "- nothing new to push: both experiments were reused" in again.stdout
    assert exp_refs([], root) == refs


@pytest.mark.slow
def test_a_failing_gate_fails_the_run(project, tmp_path):
    root = project["root"]
    bad = branch(root, "bad-gate", "main", "min_pairs_per_prompt: 1\n", "min_pairs_per_prompt: 1000\n")
    summary_path = tmp_path / "step_summary.md"
    proc = run_retrain(root, "--profile", "smoke", "--base", "main", "--summary", str(summary_path), "pair")
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "retrain failed: head run: dvc exp run exited with" in proc.stderr
    assert "data gate 'pair' failed" in proc.stdout
    summary = summary_path.read_text()
    assert summary.startswith(f"## Retrain `smoke`: head `{bad[:7]}` vs base `main` (failed)")
    assert "### Failed: head run" in summary and "(stage 'pair')" in summary
    assert summary.count("ERROR: failed to reproduce 'pair'") == 1
    assert "data gate 'pair' failed: 1 critical expectation" in summary  # the stage's own message
    assert "gates.min_pairs_per_prompt" in summary
    assert "pair (failed)" in summary and "### Metrics" not in summary and "### Push" not in summary
    assert bad not in {baseline(ref) for ref in exp_refs([], root)}  # no experiment of the failed commit
    assert sh(root, "git", "worktree", "list", "--porcelain").stdout.count("worktree ") == 1
    with sqlite3.connect(root / "mlflow.db") as db:
        (status,) = db.execute(
            "SELECT status FROM runs WHERE name = 'retrain/head' ORDER BY start_time DESC LIMIT 1"
        ).fetchone()
    assert status == "FAILED"
    sh(root, "git", "checkout", "-q", "gap")


@pytest.mark.slow
def test_full_profile_diffs_against_mains_committed_metrics_and_pushes(project, tmp_path):
    root, main, gap = project["root"], project["main"], project["gap"]
    sh(root, "git", "checkout", "-q", "gap")
    storage, origin = tmp_path / "dvc-storage", tmp_path / "origin.git"
    sh(root, sys.executable, "-m", "dvc", "remote", "add", "--local", "-d", "store", str(storage))
    sh(tmp_path, "git", "init", "-q", "--bare", "-b", "main", str(origin))
    sh(root, "git", "remote", "add", "origin", str(origin))
    sh(root, "git", "push", "-q", "origin", "main", "gap")
    try:
        summary_path = tmp_path / "step_summary.md"
        proc = run_retrain(root, "--profile", "full", "--base", "main", "--summary", str(summary_path), "pair")
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    finally:
        sh(root, sys.executable, "-m", "dvc", "remote", "remove", "--local", "store")
        sh(root, "git", "remote", "remove", "origin")
    summary = summary_path.read_text()
    head_name = retrain.experiment_name("full", gap, [], ["pair"])
    head_exp = exp_refs([], root)[retrain_push.exp_ref(gap, head_name)]
    assert summary.startswith(f"## Retrain `full`: head `{gap[:7]}` vs base `main` (ok)")
    assert f"| base | `main` = `{main[:7]}` | - | - | committed metrics |" in summary
    assert f"### Metrics: `dvc metrics diff main {head_name} --md`" in summary
    expected = changed_metrics(root, main, head_exp, PAIR_METRICS)
    assert ("reports/stages/pair.json", "gap_rule_pairs") in expected
    assert_table_is_the_diff(summary, expected)

    # The outputs of the run are in the DVC remote, the experiment ref in the git remote.
    lock = yaml.safe_load(sh(root, "git", "show", f"{head_exp}:dvc.lock").stdout)
    hashes = [out["md5"] for name in ("ingest", "base", "filter", "pair") for out in lock["stages"][name]["outs"]
              if not out["path"].startswith("reports/")]  # fmt: skip
    assert len(hashes) == 6  # data/ingested, data/given_pairs, data/truth, models/base, data/filtered, data/pairs
    for md5 in hashes:
        assert (storage / "files/md5" / md5[:2] / md5[2:]).is_file(), md5
    files = sum(1 for p in storage.rglob("*") if p.is_file())
    assert f"to DVC remote `store` ({files} file(s) uploaded" in summary
    assert exp_refs(["--git-dir", str(origin)], tmp_path) == {retrain_push.exp_ref(gap, head_name): head_exp}
    assert "- pushed the experiment refs to git remote `origin`" in summary
    # ... from where DVC itself gets the experiment back, params and metrics included.
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", "--branch", "gap", str(origin), str(clone))
    sh(clone, sys.executable, "-m", "dvc", "exp", "pull", "--no-cache", "origin", head_name)
    assert show_json(clone, head_exp, "reports/stages/pair.json") == show_json(
        root, head_exp, "reports/stages/pair.json"
    )
