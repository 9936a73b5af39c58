"""MLflow tracking: stage runs nest under the pipeline run in a real sqlite store."""

import mlflow
import pytest

from divwrite.core.params import deep_merge, flatten
from divwrite.core.tracking import PARENT_RUN_ENV, configure, file_md5, log_metrics, stage_run


def test_deep_merge_overrides_leaves_and_keeps_the_rest():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2}
    merged = deep_merge(base, {"a": {"y": [3]}, "c": 4})
    assert merged == {"a": {"x": 1, "y": [3]}, "b": 2, "c": 4}
    assert base["a"]["y"] == [1, 2]  # the input is not modified


def test_flatten_names_nested_keys_with_dots():
    assert flatten({"dpo": {"beta": 0.1, "m": {"k": "v"}}, "seed": 1}) == {"dpo.beta": 0.1, "dpo.m.k": "v", "seed": 1}


def test_file_md5_matches_dvc_digest_of_known_bytes(tmp_path):
    f = tmp_path / "x.txt"
    f.write_bytes(b"hello\n")
    assert file_md5(f) == "b1946ac92492d2347c6235b4d2611184"


def test_stage_run_nests_under_pipeline_run_in_sqlite_store(store, monkeypatch):
    exp_id = configure("unit")
    assert (store / "mlflow.db").exists()
    with mlflow.start_run(experiment_id=exp_id, run_name="pipeline") as parent:
        monkeypatch.setenv(PARENT_RUN_ENV, parent.info.run_id)
        with stage_run("pair", {"pair": {"gap": 5}}, experiment="unit"):
            log_metrics({"pairs": 12, "gate": {"success": True, "n": 3}})
    runs = mlflow.search_runs([exp_id], output_format="list")
    child = next(r for r in runs if r.info.run_name == "pair")
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.data.tags["divwrite.stage"] == "pair"
    assert child.data.params["pair.gap"] == "5"
    assert child.data.metrics["pairs"] == 12.0
    assert child.data.metrics["gate.n"] == 3.0
    assert "gate.success" not in child.data.metrics  # booleans are not metrics
    assert child.data.metrics["stage_seconds"] >= 0.0


def test_stage_run_without_pipeline_is_standalone_and_failure_is_recorded(store):
    exp_id = configure("unit2")
    with pytest.raises(RuntimeError), stage_run("ingest", experiment="unit2"):
        raise RuntimeError("boom")
    (run,) = mlflow.search_runs([exp_id], output_format="list")
    assert run.info.status == "FAILED"
    assert run.data.tags["divwrite.kind"] == "standalone-stage"
    assert "mlflow.parentRunId" not in run.data.tags


def test_store_follows_dvc_root_in_queued_experiments(store, monkeypatch, tmp_path_factory):
    original = tmp_path_factory.mktemp("original-repo")
    monkeypatch.setenv("DVC_ROOT", str(original))
    configure("queued")
    assert (original / "mlflow.db").exists()
    assert not (store / "mlflow.db").exists()


def test_input_table_is_logged_with_dvc_md5_as_digest(store):
    import pandas as pd

    from divwrite.core.tracking import log_table_input

    df = pd.DataFrame({"prompt_id": ["a", "b"], "upvotes": [3, 7]})
    df.to_parquet(store / "t.parquet")
    exp_id = configure("lineage")
    with mlflow.start_run(experiment_id=exp_id) as run:
        log_table_input(df, store / "t.parquet")
    (logged,) = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert logged.dataset.digest == file_md5(store / "t.parquet")
    assert logged.dataset.name == "t.parquet"


def test_compare_prints_two_runs_side_by_side(store, capsys):
    """`divwrite compare` finds runs by name (latest) or id in the real store."""
    from divwrite.cli import main

    exp_id = configure("divwrite")
    with mlflow.start_run(experiment_id=exp_id, run_name="train@dpo") as old:
        mlflow.log_params({"dpo.beta": 0.5, "seed": 1})
    with mlflow.start_run(experiment_id=exp_id, run_name="train@dpo") as a:
        mlflow.log_params({"dpo.beta": 0.1, "seed": 1, "weights": "none"})
        mlflow.log_metrics({"loss": 0.5, "steps": 10})
    with mlflow.start_run(experiment_id=exp_id, run_name="train@ddpo-both") as b:
        mlflow.log_params({"dpo.beta": 0.1, "seed": 1, "weights": "both"})
        mlflow.log_metrics({"loss": 0.75, "only_b": 2})
    assert main(["compare", "train@dpo", b.info.run_id]) == 0
    out = capsys.readouterr().out.splitlines()
    name_a, name_b = f"train@dpo ({a.info.run_id[:8]})", f"train@ddpo-both ({b.info.run_id[:8]})"
    assert out[0] == f"| metric | {name_a} | {name_b} | b - a |"  # the latest train@dpo, not `old`
    assert "| loss | 0.5 | 0.75 | 0.25 |" in out
    assert "| only_b | - | 2 | - |" in out and "| steps | 10 | - | - |" in out
    assert [line for line in out if line.startswith("| weights ")] == ["| weights | none | both |"]
    assert not any(line.startswith("| seed ") for line in out)  # equal params are left out
    assert old.info.run_id[:8] not in "\n".join(out)
    assert main(["compare", "train@dpo", "no-such-run"]) == 2
    assert "no MLflow run with id or name 'no-such-run'" in capsys.readouterr().err
