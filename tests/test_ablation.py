"""The Figure 3 ablation grid as queued DVC experiments (`divwrite.ops.ablation`, `divwrite ablate`).

Unit tests build the grid from a small params dict and parse two `dvc exp show --json`
documents captured from real runs (tests/data/ablation_exp_show*.json, see
`test_fixtures_are_real_dvc_output`). The slow test queues, runs and collects a 2-point grid in
a scratch copy of the project on the smoke profile.
"""

import copy
import json
import math
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, subprocess_env

from divwrite.core.params import load_params, read_params, validate_params
from divwrite.core.vcs import hydra_value
from divwrite.ops import ablation
from divwrite.ops.ablation import GridPoint, build_grid, collect
from divwrite.ops.experiments import baseline_outs, exp_show, experiments, metrics_from_evaluation, queue_command

DATA = Path(__file__).parent / "data"
# `dvc exp show --json` of a smoke project whose `reports/` is git-ignored (as in this repo):
# abl-mr4-plain and abl-mr4-high-quality succeeded, abl-mr8-plain failed, abl-mr6-plain queued.
SHOW_IGNORED = DATA / "ablation_exp_show.json"
# The same kind of project with its reports committed: the metrics are in the experiment commits.
SHOW_COMMITTED = DATA / "ablation_exp_show_reports_in_git.json"

# The project's params.yaml with five methods and a small grid.
RAW = read_params(REPO / "params.yaml") | {
    "train": {
        **read_params(REPO / "params.yaml")["train"],
        "methods": {
            "sft": {"init": "base", "loss": "sft", "data": "filtered"},
            "dpo": {"init": "sft", "loss": "dpo", "data": "selected"},
            "ddpo-both": {"init": "sft", "loss": "dpo", "data": "weighted", "weights": "both"},
            "orpo": {"init": "sft", "loss": "orpo", "data": "selected"},
            "divpo": {"init": "sft", "loss": "dpo", "data": "divpo"},
        },
    },
    "ablation": {
        "methods": ["dpo", "ddpo-both"],
        "max_responses": [4, 0],
        "variants": {
            "plain": {},
            "min-weight": {"deviate.min_weight": 0.5},
            "high-quality": {"deviate.high_quality_first": True},
        },
    },
    "replicate": {
        **read_params(REPO / "params.yaml")["replicate"],
        "methods": ["dpo", "ddpo-both"],
        "comparisons": [["ddpo-both", "dpo"]],
    },
}
PARAMS = validate_params(RAW)
DELETE = ("~train.methods.orpo", "~train.methods.divpo")


def with_ablation(**changes) -> dict:
    """RAW (not yet checked against the schema) with these `ablation` values."""
    params = copy.deepcopy(RAW)
    params["ablation"].update(changes)
    return params


def test_grid_is_max_responses_by_variant_with_exact_overrides():
    assert build_grid(PARAMS) == [
        GridPoint("abl-mr4-plain", 4, "plain", ("deviate.max_responses=4", *DELETE)),
        GridPoint("abl-mr4-min-weight", 4, "min-weight", ("deviate.min_weight=0.5", "deviate.max_responses=4", *DELETE)),
        GridPoint(
            "abl-mr4-high-quality", 4, "high-quality", ("deviate.high_quality_first=true", "deviate.max_responses=4", *DELETE)
        ),
        GridPoint("abl-mrall-plain", 0, "plain", ("deviate.max_responses=0", *DELETE)),
        GridPoint("abl-mrall-min-weight", 0, "min-weight", ("deviate.min_weight=0.5", "deviate.max_responses=0", *DELETE)),
        GridPoint(
            "abl-mrall-high-quality",
            0,
            "high-quality",
            ("deviate.high_quality_first=true", "deviate.max_responses=0", *DELETE),
        ),
    ]  # fmt: skip


def test_subset_keeps_grid_order():
    points = build_grid(PARAMS, max_responses=[0, 4], variants=["high-quality", "plain"])
    assert [p.name for p in points] == [
        "abl-mr4-plain", "abl-mr4-high-quality", "abl-mrall-plain", "abl-mrall-high-quality"
    ]  # fmt: skip
    assert [p.name for p in build_grid(PARAMS, max_responses=[4], variants=["min-weight"])] == ["abl-mr4-min-weight"]


def test_sft_listed_or_not_is_kept_and_nothing_else_is_deleted_twice():
    params = validate_params(with_ablation(methods=["sft", "dpo", "ddpo-both", "orpo", "divpo"]))
    points = build_grid(params, max_responses=[4])
    assert all(not any(o.startswith("~") for o in p.overrides) for p in points)


def test_queue_command_is_the_dvc_exp_run_line():
    point = GridPoint("abl-mr4-plain", 4, "plain", ("deviate.max_responses=4", "~train.methods.orpo"))
    assert queue_command(point, ["checkpoints", "reports"]) == [
        "dvc", "exp", "run", "--queue", "--name", "abl-mr4-plain",
        "-S", "deviate.max_responses=4", "-S", "~train.methods.orpo", "-C", "checkpoints", "-C", "reports",
    ]  # fmt: skip
    assert queue_command(point, force=True)[-1] == "-f"


@pytest.mark.parametrize(
    "value, text",
    [(True, "true"), (False, "false"), (None, "null"), (4, "4"), (0.5, "0.5"), (1e-5, "1e-05"),
     ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2"), ("true", "'true'"), ("a b", "'a b'"), ("it's", "'it\\'s'"),
     ([1, "x"], "[1,x]")],
)  # fmt: skip
def test_hydra_values(value, text):
    assert hydra_value(value) == text


def test_dvc_applies_the_overrides_deletion_included(tmp_path):
    """DVC's own `-S` machinery (`dvc.utils.hydra.apply_overrides`, what `dvc exp run -S`
    calls) deletes the methods and sets the params."""
    from dvc.utils.hydra import apply_overrides

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(RAW, sort_keys=False))
    point = build_grid(PARAMS, max_responses=[4], variants=["min-weight"])[0]
    apply_overrides(path, list(point.overrides))
    params = yaml.safe_load(path.read_text())
    assert list(params["train"]["methods"]) == ["sft", "dpo", "ddpo-both"]
    assert params["deviate"] == {**RAW["deviate"], "max_responses": 4, "min_weight": 0.5}
    assert params["ablation"] == RAW["ablation"]


@pytest.mark.parametrize(
    "params, kwargs, message",
    [
        (RAW, {"variants": ["plain", "min-delta"]}, r"unknown variant\(s\) \['min-delta'\]"),
        (RAW, {"max_responses": [4, 5]}, r"--max-responses \[5\]: not in ablation.max_responses"),
        (with_ablation(methods=["dpo", "ddpo-bothh"]), {}, r"ablation.methods: unknown method\(s\) \['ddpo-bothh'\]"),
        (with_ablation(methods=[]), {}, r"ablation.methods: list should have at least 1 item"),
        (with_ablation(max_responses=[4, -1]), {}, r"ablation.max_responses\[1\]: input should be greater than or equal to 0"),
        (with_ablation(max_responses=[4, 4]), {}, "ablation.max_responses: .*duplicates"),
        (with_ablation(max_responses=[True]), {}, r"ablation.max_responses\[0\]: input should be a valid integer"),
        (with_ablation(variants={"plain": {"deviate.min_weigth": 0.5}}), {},
         r"ablation.variants.plain: deviate.min_weigth: unknown key \(got 0.5\); deviate has: semantic_embedder"),
        (with_ablation(variants={"plain": {"deviate.min_weight": "0.5"}}), {},
         r"ablation.variants.plain: deviate.min_weight: input should be a valid number \(got '0.5'\)"),
        (with_ablation(variants={"x": {"deviate.max_responses": 2}}), {}, "set by the grid itself"),
        (with_ablation(variants={"x": {"train.methods.dpo.data": "weighted"}}), {}, "set by the grid itself"),
        (with_ablation(variants={"Bad Name": {}}), {}, "bad variant name"),
        (with_ablation(variants={"x": {"deviate.min_weight": {1, 2}}}), {}, "cannot write"),
        ({k: v for k, v in RAW.items() if k != "ablation"}, {}, "ablation: missing"),
    ],
)  # fmt: skip
def test_bad_grids_raise_a_clear_value_error(params, kwargs, message):
    """Each problem is a ValueError naming the key: a ParamsError from the schema, or the grid's own."""
    with pytest.raises(ValueError, match=message):
        build_grid(validate_params(params), **kwargs)


def test_a_kept_method_cannot_start_from_a_deleted_one():
    params = with_ablation(methods=["dpo2"])
    params["train"]["methods"]["dpo2"] = {"init": "dpo", "loss": "dpo", "data": "selected"}
    with pytest.raises(ValueError, match="'dpo2' starts from 'dpo'"):
        build_grid(validate_params(params))


def test_the_projects_grid():
    params = load_params(REPO / "params.yaml")
    points = build_grid(params)
    spec = params.ablation
    assert len(points) == len(spec.max_responses) * len(spec.variants)
    assert len({p.name for p in points}) == len(points)
    kept = {"sft", *spec.methods}
    for p in points:
        deleted = {o.removeprefix("~train.methods.") for o in p.overrides if o.startswith("~")}
        assert deleted == set(params.train.methods) - kept


def test_fixtures_are_real_dvc_output():
    """Both documents are verbatim `dvc exp show --json` (DVC 3.67) of smoke-profile projects."""
    for path in (SHOW_IGNORED, SHOW_COMMITTED):
        show = json.loads(path.read_text())
        assert show[0]["rev"] == "workspace" and len(show) == 2
        assert all({"revs", "executor", "name"} <= set(e) for e in show[1]["experiments"])


def test_experiments_of_the_current_commit():
    found = experiments(json.loads(SHOW_IGNORED.read_text()))
    assert {n: e.state for n, e in found.items()} == {
        "abl-mr4-plain": "success", "abl-mr4-high-quality": "success", "abl-mr8-plain": "failed",
        "abl-mr6-plain": "queued",
    }  # fmt: skip
    plain = found["abl-mr4-plain"]
    assert len(plain.rev) == 40 and plain.log.endswith(".out")
    assert list(plain.params["train"]["methods"]) == ["sft", "dpo", "ddpo-both"]
    assert plain.params["deviate"]["max_responses"] == 4
    assert plain.metrics is None  # reports/ is git-ignored: exp show says FileNotFoundError
    assert {p for p in plain.outs if p.startswith("models/")} == {
        "models/base", "models/sft", "models/dpo", "models/ddpo-both", "models/reward"
    }  # fmt: skip


def test_collect_rebuilds_missing_metrics_from_the_evaluation_table():
    show = json.loads(SHOW_IGNORED.read_text())
    calls = []

    def load(rev, confidence):
        calls.append((rev, confidence))
        return {
            "human": {"quality": 0.1},
            "dpo": {"quality": 0.3},
            "sft": {"quality": 0.2},
            "ddpo-both": {"quality": 0.4},
        }

    params = load_params(REPO / "params.yaml")
    names = ["abl-mr4-plain", "abl-mr4-high-quality", "abl-mr8-plain", "abl-mr6-plain", "abl-mr12-plain"]
    points = [p for p in build_grid(params) if p.name in names]
    rows = {r["name"]: r for r in collect(Path("."), points, show=show, load_metrics=load)}
    found = experiments(show)
    assert calls == [(found["abl-mr4-plain"].rev, 0.95), (found["abl-mr4-high-quality"].rev, 0.95)]
    plain, hq = rows["abl-mr4-plain"], rows["abl-mr4-high-quality"]
    assert plain["metrics_source"] == "data/evaluation/per_prompt.parquet (DVC cache)"
    assert list(plain["metrics"]) == ["sft", "dpo", "ddpo-both", "human"]  # trained order, then the rest
    assert plain["params"] == {
        "deviate.max_responses": 4,
        "deviate.min_weight": 0.0,
        "deviate.high_quality_first": False,
    }
    assert hq["params"]["deviate.high_quality_first"] is True and hq["trained"] == ["sft", "dpo", "ddpo-both"]
    assert (rows["abl-mr8-plain"]["state"], rows["abl-mr6-plain"]["state"], rows["abl-mr12-plain"]["state"]) == (
        "failed", "queued", "missing"
    )  # fmt: skip
    assert not any("metrics" in rows[n] for n in names[2:])


def test_collect_takes_metrics_from_exp_show_when_the_commit_has_them():
    show = json.loads(SHOW_COMMITTED.read_text())
    points = [GridPoint("abl-mr4-plain", 4, "plain", ("deviate.max_responses=4", "~train.methods.orpo")),
              GridPoint("abl-bad", 0, "plain", ("~train.methods.sft",))]  # fmt: skip

    def load(rev, confidence):
        raise AssertionError("not needed")

    plain, bad = collect(Path("."), points, show=show, load_metrics=load)
    assert plain["metrics_source"] == "reports/metrics.json"
    assert list(plain["metrics"]) == ["sft", "dpo", "ddpo-both", "human"]
    for stats in plain["metrics"].values():
        assert all(math.isfinite(stats[m]) for m in ("quality", "semantic_diversity", "style_diversity"))
    assert bad["state"] == "failed" and "metrics" not in bad  # its commit still holds the baseline's file


def test_write_ablation(tmp_path):
    rows = [
        {"name": "abl-mr4-plain", "max_responses": 4, "variant": "plain", "state": "success",
         "metrics": {"dpo": {"n_prompts": 8, "quality": 0.25, "semantic_diversity": 0.5}}},
        {"name": "abl-mrall-plain", "max_responses": 0, "variant": "plain", "state": "failed"},
    ]  # fmt: skip
    paths = ablation.write_ablation(rows, tmp_path)
    assert json.loads(paths["json"].read_text()) == rows
    assert paths["csv"].read_text().splitlines() == [
        "experiment,max_responses,variant,method,n_prompts,quality,semantic_diversity",
        "abl-mr4-plain,4,plain,dpo,8,0.25,0.5",
    ]
    md = paths["md"].read_text()
    assert "| abl-mr4-plain | 4 | plain | dpo | 8 | 0.250 | 0.500 |" in md
    assert "No results: abl-mrall-plain (failed)" in md


def test_cli_dry_run_prints_the_dvc_commands(tmp_path, monkeypatch, capsys):
    """`divwrite ablate --dry-run` in a small DVC project: the queue lines (with `-C` for the
    git-ignored `cache: false` outputs that exist) and the run line, nothing queued."""
    from divwrite.cli import main

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(RAW, sort_keys=False))
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  train:\n    foreach: ${train.methods}\n    do:\n      cmd: echo ${key}\n"
        "      outs:\n        - models/${key}\n        - checkpoints/${key}:\n            cache: false\n"
        "            persist: true\n      metrics:\n        - reports/train/${key}.json:\n            cache: false\n"
    )  # fmt: skip
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "reports/train").mkdir(parents=True)
    (tmp_path / "reports/train/sft.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert main(["ablate", "--dry-run", "--max-responses", "0", "--variants", "high-quality"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [shlex.split(line) for line in lines] == [
        ["dvc", "exp", "run", "--queue", "--name", "abl-mrall-high-quality", "-S", "deviate.high_quality_first=true",
         "-S", "deviate.max_responses=0", "-S", "~train.methods.orpo", "-S", "~train.methods.divpo", "-C", "reports"],
        ["dvc", "exp", "run", "--run-all", "--jobs", "1"],
    ]  # fmt: skip
    assert not (tmp_path / "reports/ablation.json").exists()
    with pytest.raises(ValueError, match="unknown variant"):
        main(["ablate", "--dry-run", "--variants", "nope"])


# -- end to end ----------------------------------------------------------------------------

GRID_METHODS = ["sft", "dpo", "ddpo-both"]


def run(cwd: Path, *cmd: str, out: str = "stdout") -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return getattr(proc, out)


@pytest.mark.slow
def test_grid_runs_as_queued_experiments(tmp_path):
    """Smoke profile, methods sft + dpo + ddpo-both + orpo (the grid deletes orpo): commit,
    `dvc repro`, commit the lock, then `divwrite ablate` on a 2-point grid."""
    from divwrite.ops.pipeline import prepare_smoke_copy

    root = prepare_smoke_copy(REPO, tmp_path / "project")
    params = yaml.safe_load((root / "params.yaml").read_text())
    methods = params["train"]["methods"]
    params["train"]["methods"] = {m: methods[m] for m in [*GRID_METHODS, "orpo"]}
    assert params["ablation"]["methods"] == GRID_METHODS[1:]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # prepare_smoke_copy makes a DVC project without git; experiments need git.
    run(root, sys.executable, "-m", "dvc", "config", "core.no_scm", "false")
    (root / ".dvc/.gitignore").write_text("/config.local\n/tmp\n/cache\n")
    git = ["git", "-c", "user.name=divwrite-test", "-c", "user.email=test@example.invalid"]
    run(root, "git", "init", "-q")
    run(root, "git", "add", "-A")
    run(root, *git, "commit", "-qm", "project")
    run(root, sys.executable, "-m", "dvc", "repro")
    run(root, "git", "add", "dvc.lock", "reports")  # metrics, plots, results: committed, as in this repo
    run(root, *git, "commit", "-qm", "baseline")

    out = run(root, sys.executable, "-m", "divwrite.cli", "ablate", "--max-responses", "4",
              "--variants", "plain", "high-quality")  # fmt: skip
    assert "-C checkpoints" in out and "-C reports" not in out  # reports/ is in git: not copied

    show = exp_show(root)
    found = experiments(show)
    names = ["abl-mr4-plain", "abl-mr4-high-quality"]
    assert {n: found[n].state for n in names} == {n: "success" for n in names}
    baseline_sft = baseline_outs(show)["models/sft"]["hash"]
    for name in names:
        exp = found[name]
        assert list(exp.params["train"]["methods"]) == GRID_METHODS
        trained = sorted(p.removeprefix("models/") for p in exp.outs if p.startswith("models/"))
        assert trained == sorted([*GRID_METHODS, "base", "reward"])
        assert exp.outs["models/sft"]["hash"] == baseline_sft
        log = Path(exp.log).read_text()
        assert "Stage 'train@sft' didn't change, skipping" in log
        assert "Running stage 'train@dpo'" in log and "Running stage 'train@ddpo-both'" in log
        assert "train@orpo" not in log
        assert "Running stage 'ingest'" not in log  # the committed reports and -C checkpoints came along
    assert found["abl-mr4-plain"].params["deviate"]["max_responses"] == 4
    assert found["abl-mr4-plain"].params["deviate"]["high_quality_first"] is False
    assert found["abl-mr4-high-quality"].params["deviate"]["max_responses"] == 4
    assert found["abl-mr4-high-quality"].params["deviate"]["high_quality_first"] is True

    rows = json.loads((root / "reports/ablation.json").read_text())
    assert [r["name"] for r in rows] == names
    # reports/ is committed, so the experiment commits carry their metrics; rebuilt from the
    # evaluation table instead (a project that ignores reports/), they are the same numbers.
    assert {r["metrics_source"] for r in rows} == {"reports/metrics.json"}
    head = run(root, "git", "rev-parse", "HEAD").strip()
    assert metrics_from_evaluation(root, head, 0.95) == json.loads((root / "reports/metrics.json").read_text())
    for name in names:
        assert metrics_from_evaluation(root, found[name].rev, 0.95) == found[name].metrics

    # `dvc metrics diff` / `dvc plots diff` between the baseline and an experiment
    rev = found["abl-mr4-high-quality"].rev
    diff = json.loads(run(root, sys.executable, "-m", "dvc", "metrics", "diff", head, rev, "--json"))
    changed = diff["reports/metrics.json"]
    assert "ddpo-both.semantic_diversity" in changed and "sft.quality" not in changed  # sft is shared
    entry = changed["ddpo-both.semantic_diversity"]
    assert entry["new"] == found["abl-mr4-high-quality"].metrics["ddpo-both"]["semantic_diversity"]
    plots = json.loads(run(root, sys.executable, "-m", "dvc", "plots", "diff", head, rev, "--json"))
    assert not plots.get("errors"), plots.get("errors")
    assert {"Quality vs semantic diversity", "Lexical diversity", "reports/pareto.png"} <= set(plots["data"])
    assert len(plots["data"]["Quality vs semantic diversity"][0]["revisions"]) == 2  # baseline and experiment
    for row in rows:
        assert row["state"] == "success" and row["rev"] == found[row["name"]].rev
        assert set(row["metrics"]) == {*GRID_METHODS, "human"}
        for method in GRID_METHODS[1:]:
            stats = row["metrics"][method]
            assert all(math.isfinite(stats[m]) for m in ("quality", "semantic_diversity", "style_diversity"))
    assert rows[1]["params"]["deviate.high_quality_first"] is True
    assert (root / "reports/ablation.csv").read_text().count("\nabl-mr4-") == 2 * 4  # 3 methods + human each
    assert "| abl-mr4-high-quality | 4 | high-quality | ddpo-both |" in (root / "reports/ablation.md").read_text()

    # The stages of queued experiments log to the project's own MLflow store (DVC_ROOT), not
    # to their temporary checkouts: SFT trained once (the baseline), DPO three times.
    with sqlite3.connect(root / "mlflow.db") as db:
        runs = dict(db.execute("SELECT name, COUNT(*) FROM runs GROUP BY name").fetchall())
    assert runs["train@sft"] == 1 and runs["train@dpo"] == 3 and runs["train@orpo"] == 1
    assert not list((root / ".dvc/tmp/exps").rglob("mlflow.db"))

    # Collecting again reads the same rows; a second `ablate` queues nothing.
    argv = ["-m", "divwrite.cli", "ablate", "--max-responses", "4", "--variants", "plain"]
    assert "success on this commit, not queued again" in run(root, sys.executable, *argv, out="stderr")  # the log
    assert json.loads((root / "reports/ablation.json").read_text())[0] == rows[0]
