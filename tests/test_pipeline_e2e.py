"""The whole pipeline, end to end, on the smoke profile in a scratch copy of the repo."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

pytestmark = pytest.mark.slow

METHODS = ["sft", "dpo", "ddpo-both", "human"]
METRICS = ["quality", "semantic_diversity", "style_diversity"]


def dvc(cwd: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def stages_run_by_repro(cwd: Path) -> set[str]:
    out = dvc(cwd, "repro")
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, repo_root=Path(__file__).resolve().parents[1]):
    target = tmp_path_factory.mktemp("smoke")
    env = {k: v for k, v in os.environ.items() if k not in {"MLFLOW_TRACKING_URI", "DVC_ROOT"}}
    proc = subprocess.run(
        [sys.executable, "-m", "divwrite.cli", "smoke", "--dir", str(target)],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return target


def test_results_have_a_finite_row_per_method(smoke):
    rows = json.loads((smoke / "reports/results.json").read_text())
    assert [r["method"] for r in rows] == METHODS
    for row in rows:
        assert row["n_prompts"] > 0
        for metric in METRICS + ["archetype_coverage", "style_coverage", "true_quality"]:
            cell = row[metric]
            assert set(cell) == {"mean", "ci_low", "ci_high"}
            assert all(math.isfinite(cell[k]) for k in cell)
            assert cell["ci_low"] <= cell["mean"] <= cell["ci_high"]
    md = (smoke / "reports/results.md").read_text()
    assert all(f"| {m} " in md for m in METHODS)
    assert (smoke / "reports/quality_vs_diversity.png").stat().st_size > 10_000
    metrics = json.loads((smoke / "reports/metrics.json").read_text())
    assert set(metrics) == set(METHODS)


def test_every_stage_ran_under_one_mlflow_pipeline_run(smoke):
    mlflow.set_tracking_uri(f"sqlite:///{smoke / 'mlflow.db'}")
    try:
        runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    finally:
        mlflow.set_tracking_uri(None)
    (pipeline,) = [r for r in runs if r.data.tags.get("divwrite.kind") == "pipeline"]
    assert pipeline.info.status == "FINISHED"
    stages = {r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId") == pipeline.info.run_id}
    expected = {"ingest", "base", "filter", "pair", "deviate", "reward", "evaluate"}
    expected |= {f"{s}@{m}" for s in ("train", "generate") for m in METHODS[:-1]}
    assert stages == expected
    assert pipeline.data.metrics["ddpo-both.quality"] == pytest.approx(
        json.loads((smoke / "reports/metrics.json").read_text())["ddpo-both"]["quality"]
    )


def test_repro_right_after_is_a_no_op(smoke):
    assert stages_run_by_repro(smoke) == set()


def test_changing_a_training_param_reruns_only_training_and_what_follows(smoke):
    # Runs last in this module: it leaves the scratch copy trained with the new beta.
    params_path = smoke / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["dpo"]["beta"] = 0.2
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    assert stages_run_by_repro(smoke) == {
        "train@dpo", "train@ddpo-both", "generate@dpo", "generate@ddpo-both", "evaluate"
    }
