"""Start-up of a training stage: `accelerate launch` against `divwrite.training.launch` (dvc.yaml's train cmd),
and the same command forked from the warm interpreter of `divwrite repro` (`divwrite.ops.prefork`).

For the default single-process config, `accelerate launch` imports torch, then starts a second
Python that imports torch, transformers, TRL and the trainers again; `divwrite.training.launch` parses
the same options with accelerate's own code and runs the script in its own process. Both run
a script that imports what `stages/train.py` imports and exits, so the difference is pure
launcher overhead; interleaved rounds, wall seconds per launch. Under `divwrite repro` DVC's
`python` is the warm interpreter's shim: the imports were done once, before the first stage.
Goal: a stage starts in at most 3 s that way.

    python benchmarks/bench_launch.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import RESULTS, ROOT, Goal, interleaved, median, report

from divwrite.core.vcs import venv_env
from divwrite.ops.prefork import warm_interpreter

CONFIG = ROOT / "configs" / "accelerate" / "single_process.yaml"
SCRIPT = "import divwrite.training.runs, divwrite.core.stage, divwrite.training.checkpoints  # what stages/train.py imports\n"


def run(rounds: int, out: Path | None = RESULTS) -> dict:
    with tempfile.TemporaryDirectory(prefix="divwrite-bench-") as tmp, warm_interpreter(venv_env()) as warm:
        script = Path(tmp) / "imports_only.py"
        script.write_text(SCRIPT, encoding="utf-8")

        def launch(*launcher: str, python: str = sys.executable, env: dict | None = None):
            argv = [python, "-m", *launcher, "--config_file", str(CONFIG), str(script)]
            return lambda: subprocess.run(argv, check=True, cwd=ROOT, env=env)

        times = interleaved(
            {
                "accelerate_launch": launch("accelerate.commands.launch"),
                "divwrite_launch": launch("divwrite.training.launch"),
                "warm_divwrite_launch": launch("divwrite.training.launch", python="python", env=warm),
            },
            rounds=rounds,
        )
    stock, ours = median(times["accelerate_launch"]), median(times["divwrite_launch"])
    warm_start = median(times["warm_divwrite_launch"])
    print(f"train stage start-up: accelerate launch {stock:.2f} s, divwrite.training.launch {ours:.2f} s "
          f"({stock - ours:.2f} s saved per stage, x{stock / ours:.2f}), from the warm interpreter {warm_start:.2f} s "
          f"(x{ours / warm_start:.1f})")  # fmt: skip
    measured = {
        "accelerate_launch_seconds": stock,
        "divwrite_launch_seconds": ours,
        "saved_per_stage_seconds": stock - ours,
        "warm_divwrite_launch_seconds": warm_start,
    }
    goals = [
        Goal("startup_speedup", stock / ours, ">=", 1.0),
        Goal("warm start-up seconds", warm_start, "<=", 3.0),
    ]
    return report("launch", measured, goals, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    run(args.rounds)


if __name__ == "__main__":
    main()
