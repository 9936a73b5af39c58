"""pair: per prompt, preference pairs without replacement under the upvote-gap rule (METHOD.md step 3).

With `data.layout: pairs` the pairs are given (`divwrite.data.pairs`): none is drawn, `pair.gap`
does not apply; the given pairs whose two responses survived the filter pass the gate as they are.
"""

import logging

from divwrite.core.files import write_json
from divwrite.core.records import GIVEN_PAIR_COLUMNS, RESPONSE_COLUMNS, write_table
from divwrite.core.schema import Params
from divwrite.core.stage import read_input, run_stage
from divwrite.data.gates import check_pairs, gate_docs_dir, report_gate
from divwrite.data.given_pairs import given_pair_stats, through_filter
from divwrite.data.pairing import make_pairs

logger = logging.getLogger("divwrite.stages.pair")


def given_pairs(params: Params) -> dict:
    """The pairs layout: the given train pairs through the filter, gated, as they are."""
    train = read_input("data/filtered/train.parquet", RESPONSE_COLUMNS)
    given = read_input("data/given_pairs/train.parquet", GIVEN_PAIR_COLUMNS)
    pairs, counts = through_filter(given, train)
    logger.info("pair: %d given pairs, %d kept (the filter removed a side of the others: %s); pair.gap does "
                "not apply to given pairs", counts["given"], counts["kept"], counts)  # fmt: skip
    if pairs.empty:
        raise ValueError(f"no given pair is left after the filter: {counts}")
    gate = check_pairs(pairs, params.gates, name="pair", given=True, docs_dir=gate_docs_dir(params.gates, "pair"))
    write_table(pairs, "data/pairs/train.parquet")
    stats = {"responses": len(train), "prompts": int(train.prompt_id.nunique()), "given": counts}
    stats |= given_pair_stats(pairs) | {"gate": report_gate(gate)}
    write_json(stats, "reports/stages/pair.json")
    return stats


def main(params: Params) -> dict:
    if params.data.layout == "pairs":
        return given_pairs(params)
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
