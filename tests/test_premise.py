"""The premise checks (`divwrite.evaluation.premise`) against values computed by hand."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from divwrite.core.schema import PremiseParams
from divwrite.data.corpus.grammar import ARCHETYPE_QUALITY, STYLE_QUALITY, write_story
from divwrite.evaluation.premise import (
    narrowing_checks,
    preference_checks,
    premise_markdown,
    premise_report,
    recognised_share,
    signal_share,
)

ELEMENTS = ("Mara", "lighthouse", "compass")
CFG = PremiseParams(
    min_signal=0.75, min_reward_accuracy=0.7, min_on_topic=0.95, min_recognised=0.95, max_on_topic_drop=0.03,
    methods=["dpo", "orpo"], narrowing_method="dpo",
)  # fmt: skip


def story(archetype: str, style: str, seed: int = 0) -> str:
    return write_story(np.random.default_rng(seed), ELEMENTS, archetype, style)


def test_signal_is_the_share_of_pairs_whose_chosen_is_truly_better_ties_against():
    # noise-free quality of an on-topic story = ARCHETYPE_QUALITY + STYLE_QUALITY
    best = ARCHETYPE_QUALITY["quest"] + STYLE_QUALITY["classic"]
    plain = ARCHETYPE_QUALITY["romance"] + STYLE_QUALITY["dialogue"]
    assert best > plain
    pairs = pd.DataFrame(
        {
            "prompt_id": ["p"] * 4,
            "chosen": [story("quest", "classic"), story("romance", "dialogue", 1),
                       story("romance", "dialogue", 2), story("mystery", "confessional")],
            "rejected": [story("romance", "dialogue", 3), story("quest", "classic", 4),
                         story("romance", "dialogue", 5), story("heist", "terse")],
        }
    )  # fmt: skip
    # right, wrong, tie, right -> 2 of 4 strictly higher; 1 tie
    assert signal_share(pairs, {"p": list(ELEMENTS)}) == {"value": 0.5, "ties": 0.25, "n_pairs": 4}


def test_recognised_needs_both_archetype_and_style():
    texts = [story("romance", "dialogue"), "Nothing here but words without any shape at all.", story("heist", "terse")]
    assert recognised_share(texts) == pytest.approx(2 / 3)


def table(rows: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    frames = [
        pd.DataFrame({"method": m, "prompt_id": [f"p{i}" for i in range(len(next(iter(cols.values()))))], **cols})
        for m, cols in rows.items()
    ]
    return pd.concat(frames, ignore_index=True)


def test_preference_tuning_must_raise_true_quality_and_keep_the_topic():
    t = table(
        {
            "sft": {"true_quality": [0.0, 0.1, 0.2, 0.3], "on_topic": [1.0, 1.0, 1.0, 1.0]},
            "dpo": {"true_quality": [0.2, 0.2, 0.5, 0.4], "on_topic": [1.0, 1.0, 1.0, 0.75]},  # diff .2 .1 .3 .1
            "orpo": {"true_quality": [0.1, 0.2, 0.3, 0.4], "on_topic": [1.0, 1.0, 1.0, 1.0]},  # diff .1 each
        }
    )
    out = preference_checks(t, CFG, confidence=0.95)
    d = np.array([0.2, 0.1, 0.3, 0.1])
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2.0
    assert out["dpo"]["true_quality_gain"]["value"] == pytest.approx(0.175)
    assert out["dpo"]["true_quality_gain"]["ci"] == pytest.approx([0.175 - half, 0.175 + half])
    assert out["dpo"]["true_quality_gain"]["met"]  # 0.175 - 0.152 > 0
    assert out["dpo"]["on_topic_drop"] == {"value": pytest.approx(0.0625), "threshold": 0.03, "met": False}
    assert out["orpo"]["true_quality_gain"]["met"] and out["orpo"]["on_topic_drop"]["met"]  # constant +0.1
    assert preference_checks(t[t.method != "orpo"], CFG, 0.95)["orpo"]["not_run"]["met"] is False


def test_narrowing_needs_the_interval_below_both_others():
    t = table(
        {
            "sft": {"archetype_entropy": [1.5, 1.5, 2.0, 2.0], "style_entropy": [1.0, 1.5, 1.0, 1.5]},
            "human": {"archetype_entropy": [2.0, 2.0, 1.5, 1.5], "style_entropy": [1.5, 1.5, 1.5, 1.5]},
            "dpo": {"archetype_entropy": [0.0, 0.5, 0.0, 0.5], "style_entropy": [1.0, 1.5, 1.5, 1.0]},
        }
    )
    out = narrowing_checks(t, "dpo", 0.95)
    # archetype: dpo mean .25, half-width t(.975,3) * .2887 / 2 = .459 -> upper .709 < sft/human lower 1.29
    assert out["archetype_entropy"]["value"] == 0.25 and out["archetype_entropy"]["met"]
    assert out["archetype_entropy"]["ci"][1] == pytest.approx(
        0.25 + stats.t.ppf(0.975, 3) * np.std([0, 0.5, 0, 0.5], ddof=1) / 2
    )
    assert not out["style_entropy"]["met"]  # dpo's style entropy is sft's


def test_the_report_is_met_only_when_every_check_is():
    t = table(
        {
            "sft": {"true_quality": [0.0, 0.1, 0.2, 0.3], "on_topic": [1.0] * 4, "archetype_entropy": [1.5, 1.5, 2.0, 2.0],
                    "style_entropy": [1.5, 1.5, 2.0, 2.0]},
            "human": {"true_quality": [0.5] * 4, "on_topic": [1.0] * 4, "archetype_entropy": [2.0, 2.0, 1.5, 1.5],
                      "style_entropy": [2.0, 2.0, 1.5, 1.5]},
            "dpo": {"true_quality": [0.2, 0.2, 0.5, 0.4], "on_topic": [1.0] * 4, "archetype_entropy": [0.0, 0.5, 0.0, 0.5],
                    "style_entropy": [0.0, 0.5, 0.0, 0.5]},
            "orpo": {"true_quality": [0.1, 0.2, 0.3, 0.4], "on_topic": [1.0] * 4, "archetype_entropy": [1.0] * 4,
                     "style_entropy": [1.0] * 4},
        }
    )  # fmt: skip
    texts = [story(a, s) for a, s in [("quest", "classic"), ("romance", "lyrical")]]
    report = premise_report(
        CFG, signal={"value": 0.8, "ties": 0.05, "n_pairs": 100}, reward_accuracy=0.72, reward_truth_spearman=0.5,
        sft_samples=texts, table=t, chosen_logp_change={"dpo": -1.5, "orpo": 0.4},
    )  # fmt: skip
    assert report["all_met"] and report["chosen_logp_change"] == {"dpo": -1.5, "orpo": 0.4}
    assert report["checks"]["P3_base_on_topic"] == {"value": 1.0, "threshold": 0.95, "met": True}
    md = premise_markdown(report)
    assert "Premise checks: **all met**." in md and "| P1 signal" in md and "dpo -1.50, orpo +0.40" in md
    worse = premise_report(
        CFG, signal={"value": 0.7, "ties": 0.05, "n_pairs": 100}, reward_accuracy=0.72, reward_truth_spearman=0.5,
        sft_samples=texts, table=t, chosen_logp_change={},
    )  # fmt: skip
    assert not worse["all_met"] and "**not met**" in premise_markdown(worse)


def test_premise_over_seeds_counts_the_seeds_each_check_is_met_in():
    from divwrite.evaluation.premise import premise_over_seeds, premise_seeds_markdown

    def report(signal: float) -> dict:
        check = {"value": 1.0, "threshold": 0.95, "met": True}
        return {
            "checks": {
                "P1_signal": {"value": signal, "threshold": 0.75, "met": signal >= 0.75, "ties": 0.0, "n_pairs": 9},
                "P2_reward_model": {**check, "truth_spearman": 0.4},
                "P3_base_on_topic": check,
                "P3_base_recognised": check,
                "P4_preference_tuning": {"dpo": {"true_quality_gain": {**check, "ci": [0.1, 0.2]}}},
                "P5_narrowing": {"style_entropy": {**check, "ci": [0.1, 0.2], "others": {}}},
            },
            "all_met": signal >= 0.75,
            "chosen_logp_change": {"dpo": -1.0},
        }

    summary = premise_over_seeds({"43": report(0.7), "42": report(0.8), "44": report(0.9)})
    assert summary["seeds"] == ["42", "43", "44"] and summary["all_met_seeds"] == ["42", "44"]
    assert (
        summary["checks"]["P1_signal"]["met_in"] == 2 and summary["checks"]["P4_dpo_true_quality_gain"]["met_in"] == 3
    )
    md = premise_seeds_markdown(summary)
    assert "every check met in 2 (42, 44)" in md and "| P1_signal | 0.800 | 0.700 ✗ | 0.900 | 2/3 |" in md
