"""premise: does preference tuning behave here as it does on real LLMs? The checks P1-P5 of
params `premise` (`divwrite.evaluation.premise`) on the built-in corpus's ground truth, into
reports/premise.json (a DVC metric) and reports/premise.md. Without a ground truth (real
data) only the reward model's held-out accuracy is reported."""

import numpy as np
from scipy import stats

from divwrite.core.files import read_json, write_json, write_text
from divwrite.core.records import PAIR_COLUMNS, RESPONSE_COLUMNS, read_table
from divwrite.core.schema import Params
from divwrite.core.stage import read_input, run_stage
from divwrite.data.corpus.detectors import true_quality
from divwrite.evaluation.premise import premise_markdown, premise_report, signal_share
from divwrite.evaluation.reward import SequenceRewardModel, validation_prompts


def reward_truth_spearman(params: Params, elements: dict[str, list[str]]) -> float:
    """Spearman correlation of the reward model's scores with the noise-free quality on the
    reward stage's held-out prompts (the same draw: `validation_prompts`, `reward.val_fraction`, seed)."""
    train = read_input("data/filtered/train.parquet", RESPONSE_COLUMNS)
    val = train[train.prompt_id.isin(validation_prompts(train.prompt_id, params.reward.val_fraction, params.seed))]
    predicted = SequenceRewardModel.load("models/reward").predict(val["prompt"].tolist(), val["response"].tolist())
    truth = [true_quality(text, elements[pid]) for pid, text in zip(val.prompt_id, val.response)]
    return float(stats.spearmanr(predicted, truth).statistic) if np.ptp(truth) > 0 else 0.0


def main(params: Params) -> dict:
    reward = read_json("reports/stages/reward.json")
    truth = read_input("data/truth/prompts.parquet")
    if truth.empty:  # real data: nothing to check the samples against
        report = {"ground_truth": False, "reward_accuracy": reward["val_pairwise_accuracy"]}
        write_json(report, "reports/premise.json")
        write_text("No ground truth (not the built-in corpus): only the reward model's accuracy applies.\n",
                   "reports/premise.md")  # fmt: skip
        return report
    elements = {pid: list(el) for pid, el in zip(truth.prompt_id, truth.elements)}
    preference = [m for m, spec in params.train.methods.items() if spec.loss != "sft"]
    report = premise_report(
        params.premise,
        signal=signal_share(read_input("data/pairs/train.parquet", PAIR_COLUMNS), elements),
        reward_accuracy=reward["val_pairwise_accuracy"],
        reward_truth_spearman=reward_truth_spearman(params, elements),
        sft_samples=read_table("data/generations/sft.parquet")["text"].tolist(),
        table=read_input("data/evaluation/per_prompt.parquet"),
        chosen_logp_change={m: read_json(f"reports/train/{m}.json")["chosen_logp_change"] for m in preference},
        confidence=params.evaluate.confidence,
    )
    write_json({"ground_truth": True, **report}, "reports/premise.json")
    write_text(premise_markdown(report), "reports/premise.md")
    return report


if __name__ == "__main__":
    run_stage("premise", main)
