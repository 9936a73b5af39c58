"""The whole pipeline, end to end, on the smoke profile in a scratch copy of the repo."""

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from conftest import run_in_scratch_copy

from divwrite.evaluation.reporting import FIGURES
from divwrite.evaluation.scoring import ALL_METRICS

pytestmark = pytest.mark.slow

# The methods params.yaml trains (in its order), then the human row; the DPO family is the
# methods with loss: dpo, which a change to the dpo section re-runs.
TRAINED = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())["train"]["methods"]
METHODS = [*TRAINED, "human"]
DPO_FAMILY = [m for m, spec in TRAINED.items() if spec["loss"] == "dpo"]
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
def smoke(tmp_path_factory):
    target = tmp_path_factory.mktemp("smoke")
    run_in_scratch_copy(target)
    return target


def test_results_have_a_finite_row_per_method(smoke):
    rows = json.loads((smoke / "reports/results.json").read_text())
    assert [r["method"] for r in rows] == METHODS
    for row in rows:
        assert row["n_prompts"] > 0
        for metric in ALL_METRICS:
            cell = row[metric]
            assert set(cell) == {"mean", "ci_low", "ci_high"}
            assert all(math.isfinite(cell[k]) for k in cell)
            assert cell["ci_low"] <= cell["mean"] <= cell["ci_high"]
    md = (smoke / "reports/results.md").read_text()
    assert all(f"| {m} " in md for m in METHODS)
    for figure in FIGURES:
        assert (smoke / "reports" / figure).stat().st_size > 10_000
        assert f"]({figure})" in md
    assert "| ddpo-both vs dpo |" in md and "## Sample generations" in md
    comparisons = json.loads((smoke / "reports/comparisons.json").read_text())
    pairs = {(c["a"], c["b"]) for c in comparisons}
    assert {("ddpo-both", "dpo"), ("dorpo-both", "orpo"), ("divpo", "dpo"), ("dpo", "sft"), ("dpo", "human")} <= pairs
    assert all(0.0 <= c["p_value"] <= 1.0 and c["ci_low"] <= c["mean_diff"] <= c["ci_high"] for c in comparisons)
    plots = json.loads(dvc(smoke, "plots", "show", "--json"))
    assert not plots.get("errors"), plots.get("errors")
    names = {"Quality vs semantic diversity", "Quality vs style diversity", "Lexical diversity"}
    assert names | {f"reports/{f}" for f in FIGURES} <= set(plots["data"])
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
    expected = {"ingest", "base", "filter", "pair", "embed", "deviate", "divpo", "reward", "evaluate", "premise"}
    expected |= {f"{s}@{m}" for s in ("train", "generate") for m in METHODS[:-1]}
    assert stages == expected
    # the methods' evaluation runs: in the pipeline's experiment, under evaluate, one filter away
    (evaluate,) = [r for r in runs if r.info.run_name == "evaluate"]
    evals = [r for r in runs if r.data.tags.get("divwrite.role") == "method-eval"]
    assert sorted(r.info.run_name for r in evals) == sorted(f"eval/{m}" for m in METHODS)
    for run in evals:
        assert run.info.experiment_id == pipeline.info.experiment_id
        assert run.data.tags["mlflow.parentRunId"] == evaluate.info.run_id
        assert {"quality", "semantic_diversity", "style_diversity"} <= set(run.data.metrics)
    assert pipeline.data.metrics["ddpo-both.quality"] == pytest.approx(
        json.loads((smoke / "reports/metrics.json").read_text())["ddpo-both"]["quality"]
    )


DATA_STAGES = ["ingest", "filter", "pair", "embed", "deviate", "divpo"]
DATA_OUTPUTS = [
    "data/ingested",
    "data/truth",
    "data/filtered",
    "data/pairs",
    "data/embeddings",
    "data/selected",
    "data/weighted",
    "data/divpo",
    "reports/gates",
    "reports/dataset_card.json",
    "reports/dataset_card.md",
    "models/base",
]
DATA_OUTPUTS += [f"reports/stages/{stage}.json" for stage in DATA_STAGES]  # fmt: skip


def file_digests(root: Path, paths: list[str]) -> dict[str, str]:
    files = [f for p in paths for f in ([root / p] if (root / p).is_file() else sorted((root / p).rglob("*")))]
    return {str(f.relative_to(root)): hashlib.md5(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def test_data_stages_are_byte_identical_across_runs(smoke, tmp_path):
    """A second scratch copy (its own DVC cache and embedding cache), its stages in fresh
    interpreters (`DIVWRITE_PREFORK=0`) where the first forked them from a warm one,
    reproduces the data stages and the base model with the same bytes: tables, gate
    summaries, dataset card, stage metrics, initial weights."""
    run_in_scratch_copy(tmp_path, "deviate", "divpo", env={"DIVWRITE_PREFORK": "0"})
    first, second = file_digests(smoke, DATA_OUTPUTS), file_digests(tmp_path, DATA_OUTPUTS)
    assert len(first) >= 20 and "data/divpo/train.parquet" in first
    assert first == second
    card = json.loads((smoke / "reports/dataset_card.json").read_text())
    ingested = json.loads((smoke / "reports/stages/ingest.json").read_text())
    assert card["ingested"]["train"]["responses"] == ingested["responses"]["train"]


def test_repro_right_after_is_a_no_op(smoke):
    assert stages_run_by_repro(smoke) == set()


def test_changing_a_training_param_reruns_only_training_and_what_follows(smoke):
    # Runs last in this module: it leaves the scratch copy trained with the new beta.
    params_path = smoke / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["dpo"]["beta"] = 0.2
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    assert stages_run_by_repro(smoke) == {f"{s}@{m}" for s in ("train", "generate") for m in DPO_FAMILY} | {
        "evaluate",
        "premise",
    }


def test_new_weighting_option_embeds_nothing(smoke):
    """Another weighting option re-runs deviate and the preference methods, not embed nor
    SFT; re-embedding anyway (forced) finds every text in the cache by text hash."""
    params_path = smoke / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["deviate"]["min_weight"] = 0.5
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    stale = json.loads(dvc(smoke, "status", "--json"))
    assert "deviate" in stale and not {"embed", "train@sft", "divpo"} & set(stale)
    dvc(smoke, "repro", "--single-item", "deviate")
    assert pd.read_parquet(smoke / "data/weighted/train.parquet")["w_rejected_both"].min() >= 0.5
    stale = json.loads(dvc(smoke, "status", "--json"))
    weighted = {f"train@{m}" for m in METHODS if m.startswith(("ddpo-", "dorpo-"))}
    assert weighted <= set(stale)
    # The unweighted methods train on data/selected, which a weighting option leaves byte-identical.
    assert not {"train@sft", "train@dpo", "train@orpo", "train@divpo"} & set(stale)

    dvc(smoke, "repro", "--force", "--single-item", "embed")
    mlflow.set_tracking_uri(f"sqlite:///{smoke / 'mlflow.db'}")
    try:
        runs = mlflow.search_runs(
            search_all_experiments=True, filter_string="tags.`divwrite.stage` = 'embed'",
            order_by=["attributes.start_time DESC"], output_format="list",
        )  # fmt: skip
    finally:
        mlflow.set_tracking_uri(None)
    latest, first = runs[0].data.metrics, runs[-1].data.metrics
    assert latest["embedding_cache.sem.misses"] == latest["embedding_cache.sty.misses"] == 0
    assert latest["embedding_cache.sem.hits"] == first["embedding_cache.sem.misses"] == latest["sem.texts"] > 0
