"""Step time of the deviation-weighted trainers against stock TRL, same model, data and batches.

DDPO (`DeviationWeightedDPOTrainer`) against `trl.DPOTrainer`, DORPO
(`DeviationWeightedORPOTrainer`) against `trl.experimental.orpo.ORPOTrainer`: each pair of
trainers gets the same built-in model (default `model` sizes of params.yaml, same seed), the
same pairs of the built-in corpus in the same order (sequential sampling, so every step sees
the very same batch in both) and the same config (`training.build_preference_trainer`'s). The
weighted ones also carry a weight per pair. A round trains each trainer for `--steps`
optimizer steps, the two in turn; the ratio is the median step time of the weighted trainer
over the stock one (first steps of a round excluded as warm-up).

    python benchmarks/bench_trainers.py [--prompts 60] [--steps 12] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import transformers
from harness import RESULTS, Goal, corpus_responses, median, report
from trl import DPOTrainer
from trl.import_utils import TRLExperimentalWarning

from divwrite.core.params import load_params
from divwrite.data.pairing import make_pairs
from divwrite.training.modeling import builtin_model_from_params, load_causal_lm
from divwrite.training.runs import build_preference_trainer, preference_dataset
from divwrite.training.tokenizer import train_bpe_tokenizer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", TRLExperimentalWarning)
    from trl.experimental.orpo import ORPOTrainer

WARMUP_STEPS = 2
STOCK = {"dpo": DPOTrainer, "orpo": ORPOTrainer}


class StepTimes(transformers.TrainerCallback):
    """Wall time of every optimizer step."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def build_sft_model(root: Path, texts: list[str], seed: int) -> Path:
    """A built-in model at params.yaml's sizes and its tokenizer, saved as the "SFT" model."""
    cfg = load_params(Path(__file__).resolve().parents[1] / "params.yaml").model
    out = root / "sft"
    tokenizer = train_bpe_tokenizer(texts, vocab_size=cfg.vocab_size, out_dir=out)
    builtin_model_from_params(tokenizer, cfg, seed=seed).save_pretrained(out)
    return out


def _steps(method: str, stock: bool, sft_dir: Path, pairs, out: Path, steps: int) -> list[float]:
    """Step times of `method` (its stock TRL trainer if `stock`), `steps` steps, sequential batches."""
    trainer = build_preference_trainer(
        method, sft_dir, pairs, out, beta=0.1, learning_rate=1e-4, epochs=1, batch_size=8, seed=0, max_length=384
    )
    args = trainer.args  # read at train() time: changing them here is the same as building them so
    args.train_sampling_strategy, args.max_steps, args.disable_tqdm = "sequential", steps, True
    if stock:  # the same model, tokenizer, pairs and config under TRL's own class, which prepares them itself
        trainer = STOCK[method](
            model=load_causal_lm(sft_dir, is_trainable=True),
            args=args,
            train_dataset=preference_dataset(pairs),
            processing_class=trainer.processing_class,
        )
    timer = StepTimes()
    trainer.add_callback(timer)
    trainer.train()
    return timer.times[WARMUP_STEPS:]


def run(n_prompts: int, steps: int, rounds: int, out: Path | None = RESULTS) -> dict:
    transformers.logging.set_verbosity_error()
    df = corpus_responses(n_prompts, seed=2)
    pairs = make_pairs(df, gap=5, seed=0)
    rng = np.random.default_rng(0)
    for v in ("sem", "sty", "both"):  # deviation weights are >= 1 (METHOD.md step 4)
        pairs[f"w_chosen_{v}"] = 1.0 + rng.random(len(pairs))
    measured, goals = {"pairs": len(pairs), "steps_per_round": steps, "rounds": rounds}, []
    with tempfile.TemporaryDirectory(prefix="divwrite-bench-") as tmp:
        sft = build_sft_model(Path(tmp), list(df["prompt"].unique()) + df["response"].tolist(), seed=0)
        for stock_name, weighted in (("dpo", "ddpo-both"), ("orpo", "dorpo-both")):
            times: dict[str, list[float]] = {"stock": [], "weighted": []}
            for r in range(rounds):
                for kind in ("stock", "weighted") if r % 2 == 0 else ("weighted", "stock"):
                    method = stock_name if kind == "stock" else weighted
                    times[kind] += _steps(method, kind == "stock", sft, pairs, Path(tmp) / f"{kind}{r}", steps)
            ratio = median(times["weighted"]) / median(times["stock"])
            measured[weighted] = {
                "stock_seconds_per_step": median(times["stock"]),
                "weighted_seconds_per_step": median(times["weighted"]),
                "ratio": ratio,
            }
            print(f"{weighted} vs stock {stock_name}: {median(times['weighted']):.3f} s vs "
                  f"{median(times['stock']):.3f} s per step, ratio {ratio:.3f}")  # fmt: skip
            goals.append(Goal(f"{weighted}_step_ratio", ratio, "<=", 1.02))
    return report("trainers", measured, goals, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=60)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    run(args.prompts, args.steps, args.rounds)


if __name__ == "__main__":
    main()
