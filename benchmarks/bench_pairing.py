"""Pairing (METHOD.md step 3) against the literal reference algorithm.

The reference, `pairing.sample_pairs_reference`, lists every valid pair of the responses
still unused and draws one at random, again and again: O(n^3) per prompt. `sample_pairs`
draws the same pair from a cumulative count of valid partners, O(n log n) per draw. Both are
given the same seeded generator, so besides the speed-up the benchmark checks that they
return the same pairs (then they have the same distribution, not just similar statistics).

    python benchmarks/bench_pairing.py [--sizes 4 50 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from harness import RESULTS, Goal, interleaved, median, report, upvote_sample

from divwrite.data.pairing import sample_pairs, sample_pairs_reference

GAP = 5.0
PROMPTS_PER_SIZE = {4: 2000, 50: 40, 500: 1}  # about the same number of responses at the small sizes


def run(sizes: list[int], rounds: int, out: Path | None = RESULTS) -> dict:
    measured, goals = {}, []
    for n in sizes:
        rng = np.random.default_rng(n)
        prompts = [upvote_sample(n, rng) for _ in range(PROMPTS_PER_SIZE.get(n, 1))]
        same = all(
            sample_pairs(u, GAP, np.random.default_rng(s)) == sample_pairs_reference(u, GAP, np.random.default_rng(s))
            for s, u in enumerate(prompts[:50])
        )
        times = interleaved(
            {
                "reference": lambda prompts=prompts: [
                    sample_pairs_reference(u, GAP, np.random.default_rng(0)) for u in prompts
                ],
                "sample_pairs": lambda prompts=prompts: [
                    sample_pairs(u, GAP, np.random.default_rng(0)) for u in prompts
                ],
            },
            rounds=rounds,
        )
        ref, ours = median(times["reference"]), median(times["sample_pairs"])
        measured[str(n)] = {
            "prompts": len(prompts),
            "reference_ms_per_prompt": 1e3 * ref / len(prompts),
            "sample_pairs_ms_per_prompt": 1e3 * ours / len(prompts),
            "speedup": ref / ours,
            "same_pairs": same,
        }
        print(f"n={n}: reference {1e3 * ref / len(prompts):.3f} ms/prompt, ours {1e3 * ours / len(prompts):.3f} "
              f"ms/prompt, speed-up {ref / ours:.1f}x, same pairs: {same}")  # fmt: skip
        goals.append(Goal(f"same_pairs_n{n}", float(same), ">=", 1.0))
    if "500" in measured:
        goals.insert(0, Goal("speedup_n500", measured["500"]["speedup"], ">=", 100.0))
    return report("pairing", measured, goals, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 50, 500])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    run(args.sizes, args.rounds)


if __name__ == "__main__":
    main()
