"""reward: fine-tune the quality scorer on the train split's transformed upvotes (METHOD.md "Reward model").

Trains a sequence regressor on `<prompt>..</prompt><response>..</response>` -> score with the
transformers Trainer (curves to MLflow), holding out `reward.val_fraction` of the prompts; saves
the model trained without them to models/reward and its held-out metrics to
reports/stages/reward.json.
"""

from divwrite.core.files import write_json
from divwrite.core.records import RESPONSE_COLUMNS
from divwrite.core.schema import Params
from divwrite.core.stage import read_input, run_stage
from divwrite.evaluation.reward_training import train_reward_model


def main(params: Params) -> dict:
    train = read_input("data/filtered/train.parquet", RESPONSE_COLUMNS)
    model, metrics = train_reward_model(train, seed=params.seed, report_to="mlflow", **params.reward.model_dump())
    model.save("models/reward")
    write_json(metrics, "reports/stages/reward.json")
    return metrics


if __name__ == "__main__":
    run_stage("reward", main)
