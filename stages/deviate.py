"""deviate: deviation weights of every paired response, per embedder and combined (METHOD.md step 4)."""

from divwrite.deviation import weight_pairs
from divwrite.embedders import load_embedder
from divwrite.gates import GateBounds, check_pairs, write_summary
from divwrite.records import PAIR_COLUMNS, write_json, write_table
from divwrite.stage import read_input, run_stage


def main(params: dict) -> dict:
    cfg = params["deviate"]
    pairs = read_input("data/pairs/train.parquet", PAIR_COLUMNS)
    embedders = {"sem": load_embedder(cfg["semantic_embedder"]), "sty": load_embedder(cfg["style_embedder"])}
    weighted = weight_pairs(
        pairs,
        embedders,
        max_responses=cfg["max_responses"],
        min_weight=cfg["min_weight"],
        high_quality_first=cfg["high_quality_first"],
        batch_size=cfg["batch_size"],
    )
    gate = check_pairs(weighted, GateBounds.from_params(params["gates"]), name="deviate", min_weight=cfg["min_weight"])
    write_table(weighted, "data/weighted/train.parquet")
    write_summary(gate, "reports/gates/deviate.json")
    stats = {"pairs_in": len(pairs), "pairs_out": len(weighted)}
    for kind in ("sem", "sty", "both"):
        w = weighted[f"w_chosen_{kind}"]
        stats[f"w_chosen_{kind}"] = {"mean": float(w.mean()), "std": float(w.std()), "max": float(w.max())}
    write_json(stats, "reports/stages/deviate.json")
    return stats


if __name__ == "__main__":
    run_stage("deviate", main, ["deviate", "gates"])
