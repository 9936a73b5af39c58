"""Testbed calibration (`divwrite.ops.calibration`): which levers it takes, the params it runs
with, and the table it keeps."""

from pathlib import Path

import pytest

from divwrite.core.params import ParamsError
from divwrite.ops.calibration import calibration_params, parse_overrides, table_markdown

REPO = Path(__file__).resolve().parents[1]


def test_overrides_are_yaml_values_of_method_neutral_levers():
    flat = parse_overrides(
        ["corpus.quality_noise_sd=0.2", "dpo.learning_rate=5e-5", "model.lora.target_modules=[q, v]"]
    )
    assert flat == {"corpus.quality_noise_sd": 0.2, "dpo.learning_rate": 5e-05, "model.lora.target_modules": ["q", "v"]}
    for refused in ("deviate.min_weight=0.5", "divpo.rho=10", "train.methods.dpo.beta=1", "premise.min_signal=0.5"):
        with pytest.raises(ValueError, match="not a method-neutral lever"):
            parse_overrides([refused])
    with pytest.raises(ValueError, match="expected key=value"):
        parse_overrides(["sft.epochs"])


def test_only_sft_dpo_and_orpo_train_and_the_schema_checks_the_rest():
    params = calibration_params(REPO, {"sft.epochs": 10, "corpus.upvote_noise_sd": 0.3})
    assert list(params["train"]["methods"]) == ["sft", "dpo", "orpo"]
    assert params["sft"]["epochs"] == 10 and params["corpus"]["upvote_noise_sd"] == 0.3
    with pytest.raises(ParamsError, match=r"sft\.epoch: unknown key"):
        calibration_params(REPO, {"sft.epoch": 10})


def test_the_table_marks_every_check_not_met():
    ok = {"value": 0.8, "threshold": 0.75, "met": True}
    row = {
        "name": "c9",
        "overrides": {"sft.epochs": 10},
        "premise": {
            "checks": {
                "P1_signal": ok,
                "P2_reward_model": {**ok, "truth_spearman": 0.91},
                "P3_base_on_topic": {"value": 0.9, "threshold": 0.95, "met": False},
                "P3_base_recognised": ok,
                "P4_preference_tuning": {"dpo": {"true_quality_gain": {**ok, "ci": [0.1, 0.3]}}},
                "P5_narrowing": {"style_entropy": {**ok, "ci": [0.5, 0.7]}},
            },
            "all_met": False,
            "chosen_logp_change": {"dpo": -2.04},
        },
        "results": {},
        "seconds": 600,
    }
    line = table_markdown([row]).splitlines()[-1]
    assert line.startswith("| c9 | `sft.epochs=10` | 0.800 | 0.800 (ρ 0.91) | 0.900 ✗ | 0.800 | 0.800 [0.100, 0.300] |")
    assert line.endswith("| dpo -2.0 | no | 10 |")
