"""Deviation (METHOD.md step 4) throughput, in responses per second, three ways:

- `per_prompt`: each prompt's responses embedded in a call of their own, then its deviations
  (the straightforward way: one small batch per prompt);
- `pipeline`: what the `embed` + `deviate` stages do: every distinct response embedded once in
  batches of `deviate.batch_size` across prompts (`embedding_cache.embed_table`), then every
  prompt's deviations from the table;
- `limit`: one big batched `SentenceTransformer.encode` of all texts and nothing else, the
  ceiling for any approach on this embedder.

Then the re-run: weights with a new weighting option (`deviate.min_weight`) from the cached
embeddings, as `dvc exp run -S deviate.min_weight=...` does (the `embed` stage does not depend
on that param, so it does not re-run): its embedding time against the cold one.

    python benchmarks/bench_deviation.py [--prompts 60] [--rounds 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness import RESULTS, Goal, corpus_responses, interleaved, median, report

from divwrite.data.pairing import make_pairs
from divwrite.weighting.deviation import deviation, weight_pairs
from divwrite.weighting.embedders import StylometricEmbedder, load_embedder
from divwrite.weighting.embedding_cache import embed_table

BATCH = 128  # params.yaml deviate.batch_size


def run(n_prompts: int, rounds: int, out: Path | None = RESULTS) -> dict:
    df = corpus_responses(n_prompts, seed=1)
    texts = df["response"].tolist()
    groups = [g["response"].tolist() for _, g in df.groupby("prompt_id", sort=True)]
    embedder = load_embedder("all-MiniLM-L6-v2")

    def per_prompt():
        return [deviation(embedder.encode(g, batch_size=BATCH, show_progress=False)) for g in groups]

    def pipeline():
        table = embed_table(embedder, texts, batch_size=BATCH)
        return [deviation(table.encode(g)) for g in groups]

    def limit():
        return embedder.model.encode(texts, batch_size=BATCH, convert_to_numpy=True, normalize_embeddings=True)

    times = interleaved({"per_prompt": per_prompt, "pipeline": pipeline, "limit": limit}, rounds=rounds)
    rate = {name: len(texts) / median(t) for name, t in times.items()}
    # How the one-call ceiling depends on the batch size: on a CPU a big batch buys little or
    # nothing (the matmuls are already large at a few stories), on a GPU it is what fills the device.
    by_batch = {
        size: len(texts) / median(t)
        for size, t in interleaved(
            {
                size: (lambda size=size: embedder.model.encode(texts, batch_size=size, normalize_embeddings=True))
                for size in (8, 32, BATCH)
            },
            rounds=1,
            warmup=0,
        ).items()
    }

    # A new weighting option over the same pairs: embeddings come from the stage's table.
    pairs = make_pairs(df, gap=5, seed=0)
    start = time.perf_counter()
    tables = {"sem": embed_table(embedder, texts, batch_size=BATCH), "sty": embed_table(StylometricEmbedder(), texts)}
    cold = time.perf_counter() - start
    start = time.perf_counter()
    weight_pairs(pairs, tables, min_weight=0.5, batch_size=BATCH)
    rerun = time.perf_counter() - start

    measured = {
        "responses": len(texts),
        "prompts": len(groups),
        "mean_responses_per_prompt": len(texts) / len(groups),
        "responses_per_second": rate,
        "limit_by_batch_size": by_batch,
        "rerun_new_option_seconds": rerun,
        "cold_embedding_seconds": cold,
    }
    print(f"{len(texts)} responses over {len(groups)} prompts; responses/s: "
          + ", ".join(f"{k} {v:.0f}" for k, v in rate.items()))  # fmt: skip
    print("one-call ceiling by batch size: " + ", ".join(f"{k}: {v:.0f}/s" for k, v in by_batch.items()))
    print(f"re-run with min_weight=0.5 from the cached embeddings: {rerun:.3f} s (cold embedding {cold:.1f} s)")
    goals = [
        Goal("vs_per_prompt", rate["pipeline"] / rate["per_prompt"], ">=", 3.0),
        Goal("share_of_limit", rate["pipeline"] / rate["limit"], ">=", 0.8),
        Goal("rerun_embedding_share", rerun / cold, "<=", 0.05),
    ]
    return report("deviation", measured, goals, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    run(args.prompts, args.rounds)


if __name__ == "__main__":
    main()
