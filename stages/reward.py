"""reward: the quality scorer, fit on the train split's transformed upvotes (METHOD.md "Reward model")."""

from divwrite.embedders import load_embedder
from divwrite.records import RESPONSE_COLUMNS, write_json
from divwrite.reward import train_reward_model
from divwrite.stage import read_input, run_stage


def main(params: dict) -> dict:
    cfg = params["reward"]
    train = read_input("data/filtered/train.parquet", RESPONSE_COLUMNS)
    model, metrics = train_reward_model(
        train, embedder=load_embedder(cfg["embedder"]), ridge=cfg["ridge"], val_fraction=cfg["val_fraction"], seed=params["seed"]
    )
    model.save("models/reward")
    write_json(metrics, "reports/stages/reward.json")
    return metrics


if __name__ == "__main__":
    run_stage("reward", main, ["seed", "reward"])
