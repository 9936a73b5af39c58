"""Generation throughput (new tokens per second), prompts batched against one prompt at a time.

`generation.generate_samples` as the `generate` stage calls it (4 samples per prompt, the
paper's sampling settings, `generate.batch_size` prompts per `generate` call, prompts sorted by
length) against the same function with one prompt per call (its 4 samples still in one call).
The model is `models/sft` when the default pipeline has run (a trained model stops at its own
end-of-turn, so a batch waits for its longest sample, as in the stage), else a freshly
initialised built-in model at params.yaml's sizes (every sample runs to max_new_tokens).

    python benchmarks/bench_generation.py [--prompts 32] [--max-new-tokens 160] [--rounds 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness import RESULTS, ROOT, Goal, corpus_responses, interleaved, median, report

from divwrite.core.params import load_params
from divwrite.evaluation.generation import generate_samples, load_generator


def _model_dir(tmp: Path, texts: list[str]) -> tuple[Path, str]:
    trained = ROOT / "models" / "sft"
    if (trained / "config.json").is_file():
        return trained, "models/sft"
    from bench_trainers import build_sft_model

    return build_sft_model(tmp, texts, seed=0), "untrained built-in model"


def run(n_prompts: int, max_new_tokens: int, rounds: int, out: Path | None = RESULTS) -> dict:
    cfg = load_params(ROOT / "params.yaml").generate
    df = corpus_responses(max(n_prompts, 8), seed=3)
    prompts = list(dict.fromkeys(df["prompt"]))[:n_prompts]
    with tempfile.TemporaryDirectory(prefix="divwrite-bench-") as tmp:
        model_dir, which = _model_dir(Path(tmp), list(dict.fromkeys(df["prompt"])) + df["response"].tolist())
        model, tokenizer = load_generator(model_dir)
        new_tokens: dict[str, int] = {}

        def sample(batch_size: int, name: str):
            def go():
                texts = generate_samples(
                    model, tokenizer, prompts, n_samples=cfg.n_samples, max_new_tokens=max_new_tokens,
                    temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p,
                    repetition_penalty=cfg.repetition_penalty, batch_size=batch_size, seed=0, show_progress=False,
                )  # fmt: skip
                new_tokens[name] = sum(
                    len(tokenizer(t, add_special_tokens=False)["input_ids"]) for s in texts for t in s
                )

            return go

        times = interleaved(
            {"batched": sample(cfg.batch_size, "batched"), "one_prompt": sample(1, "one_prompt")}, rounds=rounds
        )
    rate = {name: new_tokens[name] / median(t) for name, t in times.items()}
    measured = {
        "model": which,
        "prompts": len(prompts),
        "samples_per_prompt": cfg.n_samples,
        "batch_size": cfg.batch_size,
        "max_new_tokens": max_new_tokens,
        "tokens_per_second": rate,
        "new_tokens": new_tokens,
    }
    print(f"{which}, {len(prompts)} prompts x {cfg.n_samples}: tokens/s batched {rate['batched']:.0f}, "
          f"one prompt at a time {rate['one_prompt']:.0f}")  # fmt: skip
    return report(
        "generation", measured, [Goal("batched_speedup", rate["batched"] / rate["one_prompt"], ">=", 5.0)], out
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    run(args.prompts, args.max_new_tokens, args.rounds)


if __name__ == "__main__":
    main()
