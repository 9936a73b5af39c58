"""reward: fine-tune the quality scorer on the train split's transformed upvotes (METHOD.md "Reward model").

Trains a sequence regressor on `<prompt>..</prompt><response>..</response>` -> score with the
transformers Trainer (curves to MLflow), holding out `reward.val_fraction` of the prompts; saves
the model trained without them to models/reward and its held-out metrics to
reports/stages/reward.json. With `data.layout: pairs` (judged pairs, no scores) the same model is
a Bradley-Terry reward model fitted to the given pairs that passed the pair stage
(`evaluation.reward_pairs`, TRL's RewardTrainer), held out likewise by prompt.
"""

from divwrite.core.files import write_json
from divwrite.core.records import PAIR_COLUMNS, RESPONSE_COLUMNS
from divwrite.core.schema import Params
from divwrite.core.stage import read_input, run_stage
from divwrite.evaluation.reward_pairs import train_pairwise_reward_model
from divwrite.evaluation.reward_training import train_reward_model


def main(params: Params) -> dict:
    if params.data.layout == "pairs":  # judged pairs, no scores: a Bradley-Terry reward model
        data, train_model = read_input("data/pairs/train.parquet", PAIR_COLUMNS), train_pairwise_reward_model
    else:
        data, train_model = read_input("data/filtered/train.parquet", RESPONSE_COLUMNS), train_reward_model
    model, metrics = train_model(data, seed=params.seed, report_to="mlflow", **params.reward.model_dump())
    model.save("models/reward")
    write_json(metrics, "reports/stages/reward.json")
    return metrics


if __name__ == "__main__":
    run_stage("reward", main)
