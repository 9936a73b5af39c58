"""pair: per prompt, preference pairs without replacement under the upvote-gap rule (METHOD.md step 3)."""

from divwrite.gates import GateBounds, check_pairs, write_summary
from divwrite.pairing import make_pairs
from divwrite.records import RESPONSE_COLUMNS, write_json, write_table
from divwrite.stage import read_input, run_stage


def main(params: dict) -> dict:
    train = read_input("data/filtered/train.parquet", RESPONSE_COLUMNS)
    pairs = make_pairs(train, gap=params["pair"]["gap"], seed=params["seed"])
    gate = check_pairs(pairs, GateBounds.from_params(params["gates"]), name="pair")
    write_table(pairs, "data/pairs/train.parquet")
    per_prompt = pairs.groupby("prompt_id").size()
    stats = {
        "responses": len(train),
        "pairs": len(pairs),
        "prompts_with_pairs": int(per_prompt.size),
        "responses_paired": 2 * len(pairs),
        "pairs_per_prompt_mean": float(per_prompt.mean()) if len(per_prompt) else 0.0,
        "gap_rule_pairs": int(((pairs.chosen_upvotes - pairs.rejected_upvotes) >= params["pair"]["gap"]).sum()),
        "gate": {"success": gate["success"], "expectations": len(gate["expectations"])},
    }
    write_json(stats, "reports/stages/pair.json")
    write_summary(gate, "reports/gates/pair.json")
    return stats


if __name__ == "__main__":
    run_stage("pair", main, ["seed", "pair", "gates"])
