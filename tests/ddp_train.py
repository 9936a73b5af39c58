"""One short DDPO run, for tests/test_ddp.py: run it plainly (one process) or under `accelerate launch`.

    python tests/ddp_train.py WORK_DIR OUT_JSON --batch-size B [--epochs E]

WORK_DIR holds `sft/` (a saved model + tokenizer) and `pairs.parquet` (prompt, chosen, rejected,
w_chosen_both), both written by the test. Trains "ddpo-both" with per-device batch size B and, on
the main process, writes OUT_JSON: the logged loss of every step, `train_loss`, `num_processes`,
`global_step` and the distributed type / backend / device. Nothing is saved besides that (the trainer's scratch folder is in WORK_DIR).
Not collected by pytest (the name does not start with `test_`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pandas as pd  # noqa: E402

from divwrite.training.runs import build_preference_trainer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("out_json", type=Path)
    parser.add_argument("--batch-size", type=int, required=True, help="per-device batch size")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    args = parser.parse_args()

    pairs = pd.read_parquet(args.work_dir / "pairs.parquet")
    trainer = build_preference_trainer(
        "ddpo-both",
        args.work_dir / "sft",
        pairs,
        args.work_dir / f"run-{args.out_json.stem}",
        beta=0.1,
        learning_rate=args.learning_rate,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=0,
        max_length=96,
        report_to="none",
    )
    trainer.args.logging_steps = (
        1  # one log per optimizer step (`training.arguments.schedule_args` logs at most every 10)
    )
    trainer.args.disable_tqdm = True
    result = trainer.train()
    if trainer.accelerator.is_main_process:
        steps = [
            {"step": e["step"], "loss": e["loss"], "weights/mean": e.get("weights/mean")}
            for e in trainer.state.log_history
            if "loss" in e
        ]
        args.out_json.write_text(
            json.dumps(
                {
                    "steps": steps,
                    "train_loss": float(result.training_loss),
                    "global_step": int(result.global_step),
                    "num_processes": int(trainer.accelerator.num_processes),
                    "distributed_type": trainer.accelerator.distributed_type.value,
                    "backend": trainer.accelerator.state.backend,
                    "device": trainer.accelerator.device.type,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
