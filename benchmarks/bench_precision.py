"""bf16 autocast on CPU: an SFT step of the built-in model (params.yaml's sizes, batch 32) in
float32 and under `torch.autocast("cpu", dtype=torch.bfloat16)` (what `TrainingArguments(bf16=True)`
does on a CPU; this CPU has AVX-512 bf16 and AMX tiles, which oneDNN's bf16 matrix products use),
each in a fresh process under the pipeline's wait policy, the rounds alternating. Goal: bf16 at
most 0.8x float32's step time (a speed-up worth changing every trained byte and re-checking the
premise for); the mean loss over the steps is reported beside it.

    python benchmarks/bench_precision.py [--steps 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics

from bench_busy import measure
from harness import Goal, report


def run(steps: int = 10, rounds: int = 2) -> dict:
    cores = len(os.sched_getaffinity(0))
    runs: dict[str, list[dict]] = {"float32": [], "bf16": []}
    for r in range(rounds):
        for name in ["float32", "bf16"][:: 1 if r % 2 == 0 else -1]:
            runs[name].append(measure("pipeline", busy=False, threads=cores, steps=steps, autocast=name == "bf16"))
            print(f"  round {r + 1} {name}: {runs[name][-1]['step']:.3f} s/step, loss {runs[name][-1]['loss']:.4f}")
    step = {name: statistics.median(x["step"] for x in results) for name, results in runs.items()}
    goals = [Goal("bf16 / float32 step time", step["bf16"] / step["float32"], "<=", 0.8)]
    measured = {
        "steps": steps,
        "rounds": rounds,
        "seconds_per_step": {k: round(v, 4) for k, v in step.items()},
        "mean_loss": {name: round(results[-1]["loss"], 4) for name, results in runs.items()},
    }
    return report("precision", measured, goals)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    run(args.steps, args.rounds)
