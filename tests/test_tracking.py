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


# -- what the MLflow UI shows: the experiment's kind, no empty pipeline runs, the methods side by side


def test_experiments_are_tagged_as_model_training_new_and_old(store):
    """`configure` creates its experiment tagged `mlflow.experimentKind: custom_model_development`
    and tags one an earlier version created without it; a kind someone chose is kept."""
    from divwrite.core.tracking import EXPERIMENT_KIND

    ((key, value),) = EXPERIMENT_KIND.items()
    assert (key, value) == ("mlflow.experimentKind", "custom_model_development")
    configure("divwrite")
    assert mlflow.get_experiment_by_name("divwrite").tags[key] == value
    old = mlflow.create_experiment("calibration")  # as configure did before
    chosen = mlflow.create_experiment("mine", tags={key: "genai_development"})
    assert key not in mlflow.get_experiment(old).tags
    assert configure("calibration") == old
    assert mlflow.get_experiment(old).tags[key] == value
    configure("mine")
    assert mlflow.get_experiment(chosen).tags[key] == "genai_development"


TINY_STAGE = """\
from pathlib import Path

from divwrite.core.tracking import stage_run

text = Path("input.txt").read_text()
with stage_run("tiny"):
    if text.startswith("fail"):
        raise RuntimeError("asked to fail")
    Path("out.txt").write_text(text.upper())
"""


@pytest.fixture
def tiny_project(store, repo_root):
    """A DVC project of one stage (`tiny`, a real `stage_run`) with the project's params.yaml."""
    from divwrite.core.vcs import run_dvc

    (store / "params.yaml").write_bytes((repo_root / "params.yaml").read_bytes())
    (store / "dvc.yaml").write_text("stages:\n  tiny:\n    cmd: python tiny.py\n    deps: [tiny.py, input.txt]\n"
                                    "    outs: [out.txt]\n")  # fmt: skip
    (store / "tiny.py").write_text(TINY_STAGE)
    (store / "input.txt").write_text("hello\n")
    run_dvc(store, "init", "--no-scm", "-q", check=True)
    return store


def test_a_repro_in_which_no_stage_ran_logs_no_run_and_a_failure_keeps_its_run(tiny_project):
    from mlflow.entities import ViewType

    from divwrite.ops.pipeline import reproduce

    def runs(view=ViewType.ACTIVE_ONLY):
        return mlflow.search_runs(experiment_names=["divwrite"], run_view_type=view, output_format="list")

    first = reproduce(root=tiny_project)
    assert first.code == 0 and [s["stage"] for s in first.stages] == ["tiny"]
    assert {(r.info.run_name, r.info.status) for r in runs()} == {("pipeline", "FINISHED"), ("tiny", "FINISHED")}

    again = reproduce(root=tiny_project)  # up to date: no stage runs
    assert (again.code, again.stages, again.run_id) == (0, [], None)
    assert len(runs()) == 2  # no new run in the UI's (active) runs
    (deleted,) = runs(ViewType.DELETED_ONLY)
    assert deleted.info.run_name == "pipeline" and deleted.data.tags["divwrite.kind"] == "pipeline"

    (tiny_project / "input.txt").write_text("fail now\n")
    failed = reproduce(root=tiny_project)
    assert failed.code != 0 and [(s["stage"], s["status"]) for s in failed.stages] == [("tiny", "FAILED")]
    kept = mlflow.get_run(failed.run_id)
    assert kept.info.status == "FAILED" and kept.info.lifecycle_stage == "active"
    assert "dvc repro exited with" in kept.data.tags["divwrite.error"]
    assert len(runs()) == 4


def test_method_evaluation_runs_sit_in_the_experiment_and_one_filter_selects_exactly_them(store):
    """Each method's evaluation run (`method_eval_run`, nested under the evaluate stage's run)
    lands in the stage's experiment, not MLflow's Default one; `METHOD_EVAL_FILTER` selects
    those runs only, with their metrics and the method's spec; the UI links encode it."""
    from urllib.parse import parse_qs, urlsplit

    from divwrite.core.tracking import METHOD_EVAL_FILTER, method_eval_run, ui_links

    exp_id = configure("divwrite")
    with pytest.raises(RuntimeError, match="no active MLflow run"), method_eval_run("dpo"):
        pass
    with mlflow.start_run(experiment_id=exp_id, run_name="pipeline"), stage_run("train@dpo"):
        pass
    evaluations = []
    for methods in (["dpo", "human"], ["dpo", "ddpo-both", "human"]):
        with stage_run("evaluate") as evaluate:
            evaluations.append(evaluate.info.run_id)
            for i, method in enumerate(methods):
                spec = None if method == "human" else {"init": "sft", "loss": "dpo", "weights": None}
                with method_eval_run(method, spec):
                    log_metrics({"quality": 0.5 + i, "semantic_diversity": 0.25})

    def names(filter_string):
        found = mlflow.search_runs(search_all_experiments=True, filter_string=filter_string, output_format="list")
        return sorted(r.info.run_name for r in found)

    assert names(METHOD_EVAL_FILTER) == ["eval/ddpo-both", "eval/dpo", "eval/dpo", "eval/human", "eval/human"]
    runs = mlflow.search_runs([exp_id], filter_string=METHOD_EVAL_FILTER, output_format="list")
    assert len(runs) == 5  # all in the project's experiment
    for run in runs:
        assert run.data.tags["mlflow.parentRunId"] in evaluations
        assert run.data.tags["divwrite.method"] == run.info.run_name.removeprefix("eval/")
        assert run.data.tags["mlflow.source.git.commit"]  # the stage run's
        assert {"quality", "semantic_diversity"} <= set(run.data.metrics)
        human = run.info.run_name == "eval/human"
        assert run.data.params == ({} if human else {"method.init": "sft", "method.loss": "dpo"})

    links = dict(ui_links(port=5123))
    assert links["divwrite: runs"] == f"http://127.0.0.1:5123/#/experiments/{exp_id}/runs?workflowType=machine_learning"
    for label, expected in [
        ("divwrite: every method evaluation", ["eval/ddpo-both", "eval/dpo", "eval/dpo", "eval/human", "eval/human"]),
        ("divwrite: the latest evaluation's methods", ["eval/ddpo-both", "eval/dpo", "eval/human"]),
    ]:
        query = parse_qs(urlsplit(urlsplit(links[label]).fragment).query)
        assert query["workflowType"] == ["machine_learning"]
        assert query["orderByKey"] == ["metrics.`quality`"]  # sorted by a metric: listed flat, not nested
        (search,) = query["searchFilter"]
        assert search.startswith(METHOD_EVAL_FILTER)
        assert names(search) == expected
