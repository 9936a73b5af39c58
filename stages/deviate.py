"""deviate: deviation weights of every paired response, per embedder and combined (METHOD.md step 4).

The embeddings come from the `embed` stage's tables, so a re-run with another weighting
option (max_responses, min_weight, high_quality_first) embeds nothing. Writes the kept pairs
twice: `data/selected` (PAIR_COLUMNS, for the unweighted methods) and `data/weighted` (with
`w_chosen_*` / `w_rejected_*` for DDPO / DORPO: sem, sty, both as METHOD.md step 4, and qg, the
quality-gated variant of docs/weighting.md). With `data.layout: pairs` the pairs are the given ones
(`divwrite.data.pairs`): R is each prompt's distinct responses in them, and the gate checks them
as given pairs (a response in several, upvotes derived from them).
"""

from divwrite.core.files import write_json
from divwrite.core.records import PAIR_COLUMNS, write_table
from divwrite.core.schema import Params
from divwrite.core.stage import read_input, run_stage
from divwrite.data.gates import check_pairs, gate_docs_dir, report_gate
from divwrite.weighting.deviation import weight_pairs
from divwrite.weighting.embedders import EMBEDDER_KEYS
from divwrite.weighting.embedding_cache import load_table


def main(params: Params) -> dict:
    cfg = params.deviate
    pairs = read_input("data/pairs/train.parquet", PAIR_COLUMNS)
    models = {k: load_table(f"data/embeddings/{k}.safetensors") for k in EMBEDDER_KEYS}
    weighted = weight_pairs(
        pairs,
        models,
        max_responses=cfg.max_responses,
        min_weight=cfg.min_weight,
        high_quality_first=cfg.high_quality_first,
    )
    gate = check_pairs(
        weighted,
        params.gates,
        name="deviate",
        min_weight=cfg.min_weight,
        given=params.data.layout == "pairs",
        docs_dir=gate_docs_dir(params.gates, "deviate"),
    )
    # Plain DPO/ORPO train on `selected` (the same pairs, no weights): a change of weighting
    # option leaves its bytes alone, so DVC does not re-train them.
    write_table(weighted[PAIR_COLUMNS], "data/selected/train.parquet")
    write_table(weighted, "data/weighted/train.parquet")
    stats = {"pairs_in": len(pairs), "pairs_out": len(weighted), "gate": report_gate(gate)}
    for kind in ("sem", "sty", "both", "qg"):
        w = weighted[f"w_chosen_{kind}"]
        stats[f"w_chosen_{kind}"] = {"mean": float(w.mean()), "std": float(w.std()), "max": float(w.max())}
    write_json(stats, "reports/stages/deviate.json")
    return stats


if __name__ == "__main__":
    run_stage("deviate", main)
