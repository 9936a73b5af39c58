"""divpo: DivPO preference pairs (METHOD.md step 5, Lanchantin et al. 2025), the baseline
trained with plain DPO: per prompt, the most deviating of the top-k responses by upvotes
against the least deviating of the bottom-k, with semantic deviation.

With `data.layout: pairs` the responses are those of the given pairs and "by upvotes" is by their
win share among the given pairs (`divwrite.data.pairs`); DivPO then builds its own pairs, as it
does from scores, and the report counts how many of them were given as such (`from_given_pairs`).
"""

from divwrite.core.files import write_json
from divwrite.core.records import PAIR_COLUMNS, write_table
from divwrite.core.schema import Params
from divwrite.core.stage import read_input, run_stage
from divwrite.data.gates import check_pairs, gate_docs_dir, report_gate
from divwrite.data.given_pairs import given_share
from divwrite.weighting.deviation import divpo_pairs, responses_in_pairs
from divwrite.weighting.embedding_cache import load_table


def main(params: Params) -> dict:
    cfg = params.divpo
    pairs = read_input("data/pairs/train.parquet", PAIR_COLUMNS)
    responses = responses_in_pairs(pairs)  # the responses used in post-training
    semantic = load_table("data/embeddings/sem.safetensors")  # the embed stage's vectors
    selected = divpo_pairs(
        responses,
        semantic,
        p=cfg.pairs_per_prompt,
        rho=cfg.rho,
        seed=params.seed,
    )
    gate = check_pairs(selected, params.gates, name="divpo", docs_dir=gate_docs_dir(params.gates, "divpo"))
    write_table(selected, "data/divpo/train.parquet")
    stats = {
        "responses": len(responses),
        "prompts": int(responses.prompt_id.nunique()),
        "pairs": len(selected),
        "prompts_with_pairs": int(selected.prompt_id.nunique()),
        "gate": report_gate(gate),
    }
    if params.data.layout == "pairs":  # DivPO's pairs among the given ones (judged so, the other way, not at all)
        stats["from_given_pairs"] = given_share(selected, pairs)
    write_json(stats, "reports/stages/divpo.json")
    return stats


if __name__ == "__main__":
    run_stage("divpo", main)
