"""`make bench`: every benchmark here, each against its baseline measured in the same run ->
reports/benchmarks.json (one section per benchmark, each goal with its value and whether it
was met) and a summary on stdout.

    python benchmarks/run_all.py [--only pairing deviation ...] [--full]

`--full` adds the default pipeline (`make run`'s, ~25 min here) to the smoke one, and the paper's
size to the scale benchmark's 1x and 10x.
"""

from __future__ import annotations

import argparse
import sys
import time

import bench_busy
import bench_deviation
import bench_generation
import bench_launch
import bench_pairing
import bench_pipeline
import bench_precision
import bench_scale
import bench_smollm2
import bench_trainers
from harness import RESULTS

BENCHMARKS = {
    "pairing": lambda full: bench_pairing.run([4, 50, 500], rounds=3),
    "deviation": lambda full: bench_deviation.run(60, rounds=2),
    "trainers": lambda full: bench_trainers.run(60, steps=12, rounds=3),
    "generation": lambda full: bench_generation.run(32, 160, rounds=2),
    "launch": lambda full: bench_launch.run(rounds=5),
    "smollm2": lambda full: bench_smollm2.run(batches=3, n_prompts=16, measured_builtin_minutes=None) or [],
    "pipeline": lambda full: [bench_pipeline.run(p, None) for p in (["smoke", "default"] if full else ["smoke"])],
    "busy": lambda full: bench_busy.run(steps=10, rounds=2),
    "precision": lambda full: bench_precision.run(steps=10, rounds=2),
    "scale": lambda full: bench_scale.run(["1", "10", "paper:0.1", "paper"] if full else ["1", "10"]),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument(
        "--full",
        action="store_true",
        help="also time the default pipeline (~25 min) and the data stages at the paper's size",
    )
    args = parser.parse_args(argv)
    results = {}
    for name in args.only:
        start = time.perf_counter()
        print(f"\n== {name}")
        entries = BENCHMARKS[name](args.full)
        results[name] = entries if isinstance(entries, list) else [entries]
        print(f"({name}: {time.perf_counter() - start:.0f} s)")
    print(f"\n== summary ({RESULTS})")
    missed = 0
    for name, entries in results.items():
        for entry in entries:
            for goal, g in entry["goals"].items():
                missed += not g["met"]
                print(
                    f"  {name:<11} {goal:<28} {g['value']:>10.3f}  goal {g['goal']:<8} {'met' if g['met'] else 'MISSED'}"
                )
    print(f"{missed} goal(s) missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
