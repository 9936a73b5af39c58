"""pair: per prompt, preference pairs without replacement under the upvote-gap rule (METHOD.md step 3)."""

from divwrite.core.files import write_json
from divwrite.core.records import RESPONSE_COLUMNS, write_table
from divwrite.core.schema import Params
from divwrite.core.stage import read_input, run_stage
from divwrite.data.gates import check_pairs, gate_docs_dir, report_gate
from divwrite.data.pairing import make_pairs


def main(params: Params) -> dict:
    gap = params.pair.gap
    train = read_input("data/filtered/train.parquet", RESPONSE_COLUMNS)
    pairs = make_pairs(train, gap=gap, seed=params.seed)
    if pairs.empty:
        raise ValueError(
            f"no pair could be formed from {len(train)} responses: within every prompt all upvotes are equal"
        )
    gate = check_pairs(pairs, params.gates, name="pair", gap=gap, docs_dir=gate_docs_dir(params.gates, "pair"))
    write_table(pairs, "data/pairs/train.parquet")
    per_prompt = pairs.groupby("prompt_id").size()
    stats = {
        "responses": len(train),
        "prompts": int(train.prompt_id.nunique()),
        "pairs": len(pairs),
        "prompts_with_pairs": int(per_prompt.size),
        "prompts_without_pairs": int(train.prompt_id.nunique() - per_prompt.size),
        "responses_paired": 2 * len(pairs),
        "pairs_per_prompt_mean": float(per_prompt.mean()),
        "gap_rule_pairs": int(((pairs.chosen_upvotes - pairs.rejected_upvotes) >= gap).sum()),
        "gate": report_gate(gate),
    }
    stats["fallback_pairs"] = stats["pairs"] - stats["gap_rule_pairs"]
    write_json(stats, "reports/stages/pair.json")
    return stats


if __name__ == "__main__":
    run_stage("pair", main)
