"""Start-up of a training stage: `accelerate launch` against `divwrite.training.launch` (dvc.yaml's train cmd).

For the default single-process config, `accelerate launch` imports torch, then starts a second
Python that imports torch, transformers, TRL and the trainers again; `divwrite.training.launch` parses
the same options with accelerate's own code and runs the script in its own process. Both run
a script that imports what `stages/train.py` imports and exits, so the difference is pure
launcher overhead; interleaved rounds, wall seconds per launch.

    python benchmarks/bench_launch.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import RESULTS, ROOT, Goal, interleaved, median, report

CONFIG = ROOT / "configs" / "accelerate" / "single_process.yaml"
SCRIPT = "import divwrite.training.runs, divwrite.core.stage, divwrite.training.checkpoints  # what stages/train.py imports\n"


def run(rounds: int, out: Path | None = RESULTS) -> dict:
    with tempfile.TemporaryDirectory(prefix="divwrite-bench-") as tmp:
        script = Path(tmp) / "imports_only.py"
        script.write_text(SCRIPT, encoding="utf-8")

        def launch(*launcher: str):
            return lambda: subprocess.run(
                [sys.executable, "-m", *launcher, "--config_file", str(CONFIG), str(script)], check=True, cwd=ROOT
            )

        times = interleaved(
            {
                "accelerate_launch": launch("accelerate.commands.launch"),
                "divwrite_launch": launch("divwrite.training.launch"),
            },
            rounds=rounds,
        )
    stock, ours = median(times["accelerate_launch"]), median(times["divwrite_launch"])
    print(f"train stage start-up: accelerate launch {stock:.2f} s, divwrite.training.launch {ours:.2f} s "
          f"({stock - ours:.2f} s saved per stage, x{stock / ours:.2f})")  # fmt: skip
    measured = {
        "accelerate_launch_seconds": stock,
        "divwrite_launch_seconds": ours,
        "saved_per_stage_seconds": stock - ours,
    }
    return report("launch", measured, [Goal("startup_speedup", stock / ours, ">=", 1.0)], out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    run(args.rounds)


if __name__ == "__main__":
    main()
