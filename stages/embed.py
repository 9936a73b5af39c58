"""embed: every train response through the semantic and the style embedder, once (METHOD.md
step 4's e_i), for deviate and divpo to share. Through the on-disk cache by text hash, so
only texts never seen before are embedded."""

from divwrite.core.files import write_json
from divwrite.core.records import RESPONSE_COLUMNS
from divwrite.core.schema import Params
from divwrite.core.stage import read_input, run_stage
from divwrite.weighting.embedding_cache import deviation_embedders, embed_table, save_table


def main(params: Params) -> dict:
    cfg = params.deviate
    train = read_input("data/filtered/train.parquet", RESPONSE_COLUMNS)
    models = deviation_embedders(
        cfg.semantic_embedder, cfg.style_embedder, trust_remote_code=cfg.trust_remote_code, cache=cfg.embedding_cache,
    )  # fmt: skip
    stats = {}
    for kind, model in models.items():
        table = embed_table(model, train["response"].tolist(), batch_size=cfg.batch_size)
        save_table(table, f"data/embeddings/{kind}.safetensors")
        stats[kind] = {"embedder": model.name, "texts": len(table), "dim": int(table.vectors.shape[1])}
    write_json(stats, "reports/stages/embed.json")
    # Cache hits depend on what earlier runs embedded: MLflow only, not the DVC metric.
    return {**stats, "embedding_cache": {k: m.stats() for k, m in models.items() if hasattr(m, "stats")}}


if __name__ == "__main__":
    run_stage("embed", main)
