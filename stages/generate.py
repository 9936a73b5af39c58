"""generate: `n_samples` responses per test prompt from one method's model (`python stages/generate.py <method>`),
with transformers (default) or vLLM (`generate.backend: vllm`, GPU)."""

import sys

import pandas as pd

from divwrite.core.records import RESPONSE_COLUMNS, write_table
from divwrite.core.schema import Params
from divwrite.core.stage import read_input, run_stage
from divwrite.evaluation.generation import generate_samples, generate_samples_vllm, load_generator


def test_prompts(max_prompts: int) -> pd.DataFrame:
    """The test prompts in a fixed order (by id), the first `max_prompts` when > 0."""
    test = read_input("data/filtered/test.parquet", RESPONSE_COLUMNS)
    prompts = test[["prompt_id", "prompt"]].drop_duplicates("prompt_id").sort_values("prompt_id")
    return prompts.head(max_prompts) if max_prompts > 0 else prompts


def main(params: Params, method: str) -> dict:
    cfg = params.generate
    prompts = test_prompts(params.evaluate.max_prompts)
    settings = dict(
        n_samples=cfg.n_samples,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        repetition_penalty=cfg.repetition_penalty,
        seed=params.seed,
    )
    trust = params.model.trust_remote_code
    if cfg.backend == "vllm":
        samples = generate_samples_vllm(
            f"models/{method}", list(prompts["prompt"]), trust_remote_code=trust, **settings
        )
    else:
        model, tokenizer = load_generator(f"models/{method}", trust_remote_code=trust)
        samples = generate_samples(model, tokenizer, list(prompts["prompt"]), batch_size=cfg.batch_size, **settings)
    rows = [
        {"prompt_id": pid, "prompt": prompt, "sample_index": i, "text": text}
        for pid, prompt, texts in zip(prompts["prompt_id"], prompts["prompt"], samples)
        for i, text in enumerate(texts)
    ]
    write_table(pd.DataFrame(rows), f"data/generations/{method}.parquet")
    words = [len(r["text"].split()) for r in rows]
    return {"prompts": len(prompts), "samples": len(rows), "mean_words": sum(words) / max(len(words), 1)}


if __name__ == "__main__":
    method = sys.argv[1]
    run_stage(f"generate@{method}", lambda p: main(p, method))
