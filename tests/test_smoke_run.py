"""A smoke or profile run in a scratch copy: its `reports/` holds only what its own stages
wrote, and what it prints at the end is this run's (`pipeline.run_report`), never the
project's committed results."""

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from conftest import REPO, run_in_scratch_copy, subprocess_env

from divwrite.ops.pipeline import (
    STATS_SHOWN,
    PipelineRun,
    prepare_smoke_copy,
    report_files,
    run_report,
    tracked_files,
)

DATA_STAGES = ["ingest", "base", "filter", "pair", "embed", "deviate"]  # `deviate` and what it needs


def reports_outputs(root: Path, stages: list[str]) -> set[str]:
    """The paths under reports/ that dvc.yaml declares as outs or metrics of `stages`."""
    declared = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    paths = set()
    for stage in stages:
        for entry in declared[stage].get("outs", []) + declared[stage].get("metrics", []):
            path = entry if isinstance(entry, str) else next(iter(entry))
            if path.startswith("reports/"):
                paths.add(path)
    return paths


def test_the_scratch_copy_has_the_project_files_but_no_reports(tmp_path):
    """The committed reports/ (the full run's results, figures, stats) stay out of the copy,
    and so does dvc.lock; the code, dvc.yaml and the profile's params.yaml are in."""
    committed = {p.as_posix() for p in tracked_files(REPO)}
    assert "reports/results.md" in committed  # what an earlier version copied
    work = prepare_smoke_copy(REPO, tmp_path / "copy")
    assert not (work / "reports").exists() and not (work / "dvc.lock").exists()
    assert (work / "dvc.yaml").read_bytes() == (REPO / "dvc.yaml").read_bytes()
    assert (work / "stages/evaluate.py").is_file() and (work / ".dvc/config").is_file()
    assert yaml.safe_load((work / "params.yaml").read_text()) != yaml.safe_load((REPO / "params.yaml").read_text())


def test_the_report_shows_only_what_this_run_wrote(tmp_path):
    (tmp_path / "reports/gates").mkdir(parents=True)
    (tmp_path / "reports/stages").mkdir()
    (tmp_path / "reports/gates/pair.json").write_text(
        json.dumps({"success": True, "expectations": 22, "failed": 0, "warnings": 1})
    )
    (tmp_path / "reports/stages/pair.json").write_text(
        json.dumps({"gate": {"success": True}, "pairs": 127, "pairs_per_prompt_mean": 2.6458333})
    )
    (tmp_path / "reports/results.md").write_text("# Results\n\nan earlier run's\n")
    assert set(report_files(tmp_path)) == {"reports/gates/pair.json", "reports/stages/pair.json", "reports/results.md"}
    run = PipelineRun(0, [{"stage": "pair", "status": "FINISHED", "seconds": 1.0, "wall": 2.0}], "abc")
    docs = [f"reports/data_docs/pair/{name}" for name in ("index.html", "static/logo.png")]
    text = run_report(tmp_path, run, ["reports/gates/pair.json", "reports/stages/pair.json", *docs])
    assert "Stages run: pair (finished)" in text
    assert "- reports/gates/pair.json\n- reports/stages/pair.json\n- reports/data_docs/pair/ (2 files)\n" in text
    assert "(reports/ also holds 1 file an earlier run in this folder wrote.)" in text
    assert "### pair\n  gate: passed (22 expectations, 0 failed, 1 warnings)\n  pairs: 127\n" in text
    assert "pairs_per_prompt_mean: 2.646" in text and "gate.success" not in text
    assert "Results" not in text and "results.md" not in text  # an earlier run's, not shown
    many = {f"k{i:02d}": i for i in range(STATS_SHOWN + 3)}
    (tmp_path / "reports/stages/embed.json").write_text(json.dumps(many))
    embed = PipelineRun(0, [{"stage": "embed", "status": "FINISHED"}])
    text = run_report(tmp_path, embed, ["reports/stages/embed.json"])
    assert f"  k{STATS_SHOWN - 1:02d}: {STATS_SHOWN - 1}\n  ... 3 more in stages/embed.json\n" in text
    idle = run_report(tmp_path, PipelineRun(0), [])
    assert "No stage ran" in idle and "Files this run wrote under reports/ (0):\n- none" in idle
    assert "FAILED, exit code 1" in run_report(tmp_path, PipelineRun(1), [])


@pytest.mark.slow
def test_a_smoke_run_of_deviate_holds_and_prints_only_its_own_reports(tmp_path):
    """`divwrite smoke deviate` (what `make smoke TARGETS=deviate` runs): reports/ holds the
    reports of the data stages that ran and nothing else; the printout names them, with
    their stats and gates, and no results; `divwrite repro` in the copy, up to date, adds
    no MLflow run."""
    out = run_in_scratch_copy(tmp_path, "deviate")
    on_disk = set(report_files(tmp_path))
    declared = reports_outputs(tmp_path, DATA_STAGES)
    docs = {p for p in on_disk if p.startswith("reports/data_docs/")}  # the gates' Data Docs (not DVC outs)
    assert on_disk - docs == declared
    assert {p.split("/")[2] for p in docs} <= set(DATA_STAGES)
    report = out[out.index("## This run (succeeded)") :]
    (ran,) = [line.removeprefix("Stages run: ") for line in report.splitlines() if line.startswith("Stages run: ")]
    assert sorted(ran.split(", ")) == sorted(f"{s} (finished)" for s in DATA_STAGES)  # pair, embed: either order
    for path in declared:
        assert f"- {path}\n" in report
    assert {f"- reports/data_docs/{stage}/" for stage in ("ingest", "filter", "pair", "deviate")} <= {
        line.split(" (")[0] for line in report.splitlines()
    }
    for stage in set(DATA_STAGES) - {"base"}:  # base writes no report
        assert f"### {stage}\n" in report
    assert "### deviate\n  gate: passed (" in report and "  pairs_out: " in report
    assert "results" not in report and "Results" not in out  # no results.md: evaluate did not run
    assert "premise" not in report

    # `make run` in the copy, now up to date: no stage runs, and no MLflow run is added.
    proc = subprocess.run(
        [sys.executable, "-m", "divwrite.cli", "repro", "deviate"],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no stage ran (the pipeline is up to date): no MLflow run logged" in proc.stderr
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        runs = mlflow.search_runs(experiment_names=["divwrite"], output_format="list")
    finally:
        mlflow.set_tracking_uri(None)
    (pipeline,) = [r for r in runs if r.info.run_name == "pipeline"]
    assert sorted(r.info.run_name for r in runs if r is not pipeline) == sorted(DATA_STAGES)
