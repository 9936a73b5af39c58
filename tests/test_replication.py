"""The claim over seeds (`divwrite.ops.seeds`, `divwrite seeds`): the experiments it queues
and the test of record, on per-prompt tables whose answer is computed by hand."""

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from divwrite.core.params import read_params, validate_params
from divwrite.ops.seeds import claim_test, seed_points, seeds_markdown, write_seeds

REPO = Path(__file__).resolve().parents[1]

METHODS = {
    "sft": {"init": "base", "loss": "sft", "data": "filtered"},
    "dpo": {"init": "sft", "loss": "dpo", "data": "selected"},
    "ddpo-both": {"init": "sft", "loss": "dpo", "data": "weighted", "weights": "both"},
    "orpo": {"init": "sft", "loss": "orpo", "data": "selected"},
}
# The project's params.yaml with four methods and these seeds.
RAW = read_params(REPO / "params.yaml") | {
    "seed": 42,
    "train": {**read_params(REPO / "params.yaml")["train"], "methods": METHODS},
    "ablation": {**read_params(REPO / "params.yaml")["ablation"], "methods": ["dpo", "ddpo-both"]},
    "replicate": {
        "seeds": [42, 43, 44],
        "methods": ["dpo", "ddpo-both"],
        "comparisons": [["ddpo-both", "dpo"]],
        "quality_margin": 0.2,
        "alpha": 0.05,
    },
}


PARAMS = validate_params(RAW)


def with_replicate(**changes) -> dict:
    params = copy.deepcopy(RAW)
    params["replicate"].update(changes)
    return params


def test_one_experiment_per_extra_seed_keeping_sft_and_the_methods():
    points = seed_points(PARAMS)
    assert [(p.name, p.seed, p.overrides) for p in points] == [
        ("seed-43", 43, ("seed=43", "~train.methods.orpo")),
        ("seed-44", 44, ("seed=44", "~train.methods.orpo")),
    ]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"seeds": [42]}, r"replicate.seeds: list should have at least 2 items"),
        ({"seeds": [42, 42]}, r"replicate: seeds: duplicates in \[42, 42\]"),
        ({"methods": ["dpo", "ddpo-both", "nope"]}, r"replicate.methods: unknown method\(s\) \['nope'\]"),
        ({"comparisons": [["ddpo-both", "orpo"]]}, r"comparisons: \[ddpo-both, orpo\] is not \[method, other method\]"),
        ({"comparisons": []}, r"replicate.comparisons: list should have at least 1 item"),
        ({"quality_margin": -1}, r"replicate.quality_margin: input should be greater than or equal to 0"),
        ({"alpha": 1.5}, r"replicate.alpha: input should be less than 1"),
    ],
)
def test_bad_replicate_section_is_a_clear_error(changes, message):
    """The schema (`core.schema.ReplicateParams`) names the key and what it expected."""
    with pytest.raises(ValueError, match=message):
        seed_points(validate_params(with_replicate(**changes)))


PROMPTS = ["p1", "p2", "p3", "p4"]
DPO = {
    "quality": [1.0, 2.0, 3.0, 4.0],
    "semantic_diversity": [0.5, 0.4, 0.6, 0.5],
    "style_diversity": [0.25, 0.25, 0.25, 0.25],
    "archetype_coverage": [2.0, 2.0, 3.0, 2.0],
}
# ddpo-both - dpo, the same in every seed except a per-seed offset that averages to zero
DIFF = {
    "quality": [-0.01, -0.03, -0.01, -0.03],
    "semantic_diversity": [0.1, 0.2, 0.1, 0.2],
    "style_diversity": [0.125, -0.125, 0.125, -0.125],
    "archetype_coverage": [1.0, 1.0, 0.0, 1.0],
}
SEED_OFFSET = {"42": 0.05, "43": 0.0, "44": -0.05}


def tables() -> dict[str, pd.DataFrame]:
    out = {}
    for seed, offset in SEED_OFFSET.items():
        rows = []
        for i, pid in enumerate(PROMPTS):
            rows.append({"method": "dpo", "prompt_id": pid, **{m: v[i] for m, v in DPO.items()}})
            rows.append({"method": "ddpo-both", "prompt_id": pid, **{m: DPO[m][i] + DIFF[m][i] + offset for m in DPO}})
        out[seed] = pd.DataFrame(rows).sample(frac=1.0, random_state=int(seed))  # row order must not matter
    return out


def hand_t(d: list[float]) -> tuple[float, float]:
    d = np.asarray(d)
    t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    return float(d.mean()), float(2 * stats.t.sf(abs(t), len(d) - 1))


def test_claim_test_by_hand():
    (claim,) = claim_test(tables(), [("ddpo-both", "dpo")], quality_margin=0.2, alpha=0.05)
    assert (claim["a"], claim["b"], claim["n_seeds"], claim["n_prompts"]) == ("ddpo-both", "dpo", 3, 4)
    sem = claim["metrics"]["semantic_diversity"]
    mean, p = hand_t(DIFF["semantic_diversity"])  # 0.15, t = 5.196, p = 0.0138
    assert sem["mean_diff"] == pytest.approx(mean) and sem["p_value"] == pytest.approx(p) and p < 0.05
    assert sem["seeds_a_ahead"] == 3
    assert sem["per_seed"]["42"]["mean_diff"] == pytest.approx(0.2)
    assert sem["per_seed"]["44"]["mean_diff"] == pytest.approx(0.1)
    assert claim["metrics"]["style_diversity"]["mean_diff"] == pytest.approx(0.0, abs=1e-12)
    assert claim["metrics"]["style_diversity"]["seeds_a_ahead"] == 1  # only seed 42's +0.05
    # quality: d = [-0.01, -0.03, -0.01, -0.03], interval -0.02 -/+ t(.975, 3) * sd / 2
    q = claim["metrics"]["quality"]
    half = stats.t.ppf(0.975, 3) * np.std(DIFF["quality"], ddof=1) / 2
    assert q["ci_low"] == pytest.approx(-0.02 - half)
    assert claim["quality_margin"] == pytest.approx(0.2 * np.std(DPO["quality"], ddof=1))  # 0.258
    assert claim["verdict"] == {
        "more_diverse": {"semantic_diversity": True, "style_diversity": False, "archetype_coverage": False},
        "quality_within_margin": True,
        "claim_holds": False,
    }
    # archetype coverage +0.75 with p = 0.058: not significant at 0.05, significant at 0.1
    assert claim["metrics"]["archetype_coverage"]["p_value"] == pytest.approx(hand_t(DIFF["archetype_coverage"])[1])
    (lenient,) = claim_test(tables(), [("ddpo-both", "dpo")], alpha=0.1)
    assert lenient["verdict"]["more_diverse"]["archetype_coverage"] is True


def test_quality_outside_the_margin_fails_the_claim():
    shifted = {s: t.assign(quality=np.where(t["method"] == "ddpo-both", t["quality"] - 0.5, t["quality"]))
               for s, t in tables().items()}  # fmt: skip
    (claim,) = claim_test(shifted, [("ddpo-both", "dpo")])
    assert claim["verdict"]["quality_within_margin"] is False and claim["verdict"]["claim_holds"] is False


def test_write_seeds_reports(tmp_path):
    (tmp_path / "reports").mkdir()
    paths = write_seeds(tables(), PARAMS.replicate, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert [r["method"] for r in data["rows"]] == ["dpo", "ddpo-both"]  # sft and human absent here
    seed_avg_quality = np.mean(DPO["quality"])
    assert data["rows"][0]["quality"]["mean"] == pytest.approx(seed_avg_quality)
    assert data["per_seed_means"]["42"]["ddpo-both"]["semantic_diversity"] == pytest.approx(0.5 + 0.15 + 0.05)
    md = paths["md"].read_text()
    assert "## ddpo-both vs dpo" in md and "**the claim does not hold** for ddpo-both vs dpo" in md
    assert "| semantic_diversity | +0.150 [" in md
    assert paths["png"].stat().st_size > 10_000


def test_cli_dry_run_prints_the_dvc_commands(tmp_path, monkeypatch, capsys):
    """`divwrite seeds --dry-run` in a small DVC project: one queue line per extra seed and
    the run line, nothing queued."""
    import shlex
    import subprocess
    import sys

    import yaml

    from divwrite.cli import main

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(RAW, sort_keys=False))
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  train:\n    foreach: ${train.methods}\n    do:\n      cmd: echo ${key}\n      outs:\n        - models/${key}\n"
    )
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    assert main(["seeds", "--dry-run"]) == 0
    lines = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        ["dvc", "exp", "run", "--queue", "--name", "seed-43", "-S", "seed=43", "-S", "~train.methods.orpo"],
        ["dvc", "exp", "run", "--queue", "--name", "seed-44", "-S", "seed=44", "-S", "~train.methods.orpo"],
        ["dvc", "exp", "run", "--run-all", "--jobs", "1"],
    ]
    assert not (tmp_path / "reports/seeds.json").exists()


def test_true_quality_decides_beating_on_diversity_and_true_quality_together():
    """The same margin on the ground truth: 0.2 x sd of b's seed-averaged true quality."""
    base = tables()
    dpo_truth = [0.0, 0.2, 0.4, 0.6]  # sd 0.2582 -> margin 0.0516
    for drop, beats in [(0.0, True), (0.3, False)]:
        with_truth = {}
        for seed, t in base.items():
            t = t.copy()
            index = t["prompt_id"].map({p: i for i, p in enumerate(PROMPTS)})
            t["true_quality"] = [dpo_truth[i] - (drop if m == "ddpo-both" else 0.0) for m, i in zip(t["method"], index)]
            with_truth[seed] = t
        (claim,) = claim_test(with_truth, [("ddpo-both", "dpo")], quality_margin=0.2, alpha=0.05)
        v = claim["verdict"]
        assert v["true_quality_within_margin"] is beats  # a constant difference: the interval is the point
        assert v["beats_on_diversity_and_true_quality"] is (beats and v["claim_holds"])
        assert v["true_quality_margin"] == pytest.approx(0.2 * 0.2582, abs=1e-4)
        verb = "beats" if v["beats_on_diversity_and_true_quality"] else "does not beat"
        assert f"**ddpo-both {verb} dpo on diversity and true quality together**" in seeds_markdown([], [claim], 0.05)
