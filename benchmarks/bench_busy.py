"""A training step on a busy machine: SFT of the built-in model (params.yaml's sizes, batch 32)
with and without one competing busy process that this benchmark starts itself, under
OpenMP's own wait policy (what the stages ran with before) and under the pipeline's
(`divwrite.core.distributed.cpu_wait_env`, what `venv_env` gives every process DVC starts).

Each configuration runs in a fresh process (the wait policy is read when torch loads); the
rounds alternate the configurations. Goals: with the competitor, a step under the pipeline's
policy takes at most 2x its idle time; idle, the policy costs at most 5%; the trained weights
are the same bytes under every wait policy (it decides how threads wait, not how work is
split). One thread (`DIVWRITE_CPU_THREADS=1`, the opt-in for a loaded machine) is measured
beside them, with its weights' digest: a different thread count sums in a different order.

    python benchmarks/bench_busy.py [--steps 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import Goal, report

from divwrite.core.distributed import WAIT_ENV, cpu_wait_env

BUSY = "while True: pass"


def child(threads: int, steps: int, autocast: bool = False) -> None:
    """Train `steps` SFT steps (under bf16 autocast if `autocast`); print the median step time
    (first two left out), the mean training loss and the weights' md5."""
    import contextlib
    import hashlib

    import torch
    import transformers
    from bench_trainers import StepTimes, build_sft_model
    from harness import corpus_responses

    from divwrite.training.modeling import load_causal_lm
    from divwrite.training.runs import build_sft_trainer
    from divwrite.training.tokenizer import load_tokenizer

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(threads)
    df = corpus_responses(60, seed=2)
    with tempfile.TemporaryDirectory(prefix="divwrite-busy-") as tmp:
        sft = build_sft_model(Path(tmp), list(df["prompt"].unique()) + df["response"].tolist(), seed=0)
        trainer = build_sft_trainer(
            load_causal_lm(sft, is_trainable=True), load_tokenizer(sft), df, Path(tmp) / "out",
            batch_size=32, warmup_ratio=0.0, learning_rate=1e-3, epochs=1, seed=0, max_length=384,
        )  # fmt: skip
        trainer.args.max_steps, trainer.args.disable_tqdm = steps, True
        timer = StepTimes()
        trainer.add_callback(timer)
        with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
            loss = trainer.train().training_loss
        digest = hashlib.md5(b"".join(p.detach().numpy().tobytes() for p in trainer.model.parameters())).hexdigest()
    print(json.dumps({"step": statistics.median(timer.times[2:]), "loss": loss, "md5": digest}))


def measure(policy: str, busy: bool, threads: int, steps: int, autocast: bool = False) -> dict:
    """One fresh process under `policy` ("openmp": no wait settings; "pipeline": `cpu_wait_env`
    decided while the competitor, if any, already runs)."""
    competitor = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        env = {k: v for k, v in os.environ.items() if k not in WAIT_ENV}
        if policy == "pipeline":
            env |= cpu_wait_env(env)
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(threads), str(steps), *(["--autocast"] if autocast else [])],
            env=env, capture_output=True, text=True, check=True, cwd=Path(__file__).parent,
        )  # fmt: skip
    finally:
        if competitor:
            competitor.kill()
            competitor.wait()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result | {"wait": {k: env[k] for k in WAIT_ENV if k in env}}


def run(steps: int = 10, rounds: int = 2) -> dict:
    cores = len(os.sched_getaffinity(0))
    configs = {
        f"{policy}/{'busy' if busy else 'idle'}/{threads}t": (policy, busy, threads)
        for policy in ("openmp", "pipeline")
        for busy in (False, True)
        for threads in sorted({cores, 1})
        if threads == cores or policy == "pipeline"
    }
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    for r in range(rounds):
        names = list(configs)[r % len(configs) :] + list(configs)[: r % len(configs)]
        for name in names:
            runs[name].append(measure(*configs[name], steps=steps))
            print(f"  round {r + 1} {name}: {runs[name][-1]['step']:.3f} s/step {runs[name][-1]['wait']}", flush=True)
    step = {name: statistics.median(x["step"] for x in results) for name, results in runs.items()}
    digests = {name: sorted({x["md5"] for x in results}) for name, results in runs.items()}
    full = f"{cores}t"
    same_bytes = len({d for name, ds in digests.items() if name.endswith(full) for d in ds}) == 1
    goals = [
        Goal(
            "pipeline busy / idle step time", step[f"pipeline/busy/{full}"] / step[f"pipeline/idle/{full}"], "<=", 2.0
        ),
        Goal("pipeline idle / openmp idle", step[f"pipeline/idle/{full}"] / step[f"openmp/idle/{full}"], "<=", 1.05),
        Goal("same weights under every wait policy (1 = yes)", float(same_bytes), ">=", 1.0),
    ]
    measured = {
        "cores": cores,
        "steps": steps,
        "rounds": rounds,
        "seconds_per_step": {k: round(v, 4) for k, v in step.items()},
        "openmp busy / idle": round(step[f"openmp/busy/{full}"] / step[f"openmp/idle/{full}"], 3),
        "weights_md5": digests,
        "wait_settings": {name: results[-1]["wait"] for name, results in runs.items()},
    }
    print(json.dumps(measured["seconds_per_step"], indent=1))
    return report("busy", measured, goals)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(int(sys.argv[2]), int(sys.argv[3]), autocast="--autocast" in sys.argv)
    else:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--steps", type=int, default=10)
        parser.add_argument("--rounds", type=int, default=2)
        args = parser.parse_args()
        run(args.steps, args.rounds)
