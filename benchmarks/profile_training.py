"""Where a training step's time goes: `torch.profiler` over a few optimizer steps of SFT and of
DDPO on the built-in model at params.yaml's sizes (the two that dominate `make run`), the
top operators by self CPU time. Not a ratio benchmark: the profile behind the trainer goals.

    python benchmarks/profile_training.py [--steps 8] [--top 12]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import transformers
from bench_trainers import build_sft_model
from harness import RESULTS, corpus_responses, write_section
from torch.profiler import ProfilerActivity, profile

from divwrite.data.pairing import make_pairs
from divwrite.training.modeling import load_causal_lm
from divwrite.training.runs import build_preference_trainer, build_sft_trainer
from divwrite.training.tokenizer import load_tokenizer


class Profiled(transformers.TrainerCallback):
    """Profile optimizer steps `skip` .. end of training."""

    def __init__(self, skip: int) -> None:
        self.skip, self.prof = skip, profile(activities=[ProfilerActivity.CPU])

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.skip:
            self.prof.__enter__()

    def on_train_end(self, args, state, control, **kwargs):
        self.prof.__exit__(None, None, None)


def _table(prof, top: int) -> list[dict]:
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [
        {"op": e.key, "share": e.self_cpu_time_total / total, "calls": e.count, "self_ms": e.self_cpu_time_total / 1e3}
        for e in events[:top]
    ]


def run(steps: int, top: int) -> dict:
    transformers.logging.set_verbosity_error()
    df = corpus_responses(60, seed=2)
    pairs = make_pairs(df, gap=5, seed=0)
    pairs["w_chosen_both"] = 1.0 + np.random.default_rng(0).random(len(pairs))
    tables = {}
    with tempfile.TemporaryDirectory(prefix="divwrite-profile-") as tmp:
        sft = build_sft_model(Path(tmp), list(df["prompt"].unique()) + df["response"].tolist(), seed=0)
        common = dict(learning_rate=1e-4, epochs=1, seed=0, max_length=384)
        trainers = {
            "sft": build_sft_trainer(
                load_causal_lm(sft, is_trainable=True),
                load_tokenizer(sft),
                df,
                Path(tmp) / "o1",
                batch_size=32,
                warmup_ratio=0.0,
                **common,
            ),  # fmt: skip
            "ddpo-both": build_preference_trainer(
                "ddpo-both", sft, pairs, Path(tmp) / "o2", beta=0.1, batch_size=8, **common
            ),
        }
        for name, trainer in trainers.items():
            callback = Profiled(skip=2)
            trainer.add_callback(callback)
            trainer.args.max_steps, trainer.args.disable_tqdm = steps + 2, True
            trainer.train()
            tables[name] = _table(callback.prof, top)
            print(f"\n{name}: top operators by self CPU time over {steps} steps")
            for row in tables[name]:
                print(f"  {row['share']:6.1%}  {row['op']:<40} {row['calls']:>6} calls")
    write_section(RESULTS, "profile_training", tables)
    return tables


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)
    run(args.steps, args.top)


if __name__ == "__main__":
    main()
