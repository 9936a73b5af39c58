"""Training under `accelerate launch`: DDPO with 2 CPU processes (DDP over gloo) trains and agrees
with the single-process run on the same global batch."""

from __future__ import annotations

import json
import math
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from divwrite.training.modeling import build_builtin_model
from divwrite.training.tokenizer import train_bpe_tokenizer

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "ddp_train.py"
CPU_DDP_CONFIG = REPO / "configs" / "accelerate" / "cpu_ddp_2proc.yaml"
WORDS = "the a cat dog ran sat on mat night sky star ship sea storm old man woman child said".split()
N_PAIRS = 16
GLOBAL_BATCH = 8  # 2 optimizer steps per epoch in both runs
EPOCHS = 2  # 4 steps: 3 of them after an update, so the parameters' agreement is tested too

# Per-step loss tolerance, DDP (2 x 4 pairs) vs one process (8 pairs). They compute the same thing:
# accelerate's seeded sampler gives the same permutation in both runs and shards each global batch
# of 8 as pairs 0-3 to rank 0 and 4-7 to rank 1; the DDPO loss is a mean over pairs, and with equal
# shards the mean of the two ranks' means (the logged loss is gathered and averaged, DDP averages
# the gradients) is the mean over the 8 pairs. Padding differs (each rank pads to its own longest
# sequence) but is masked out. What is left is float32 summation order (per-rank partial sums,
# gloo's all-reduce): measured relative differences were <= ~1e-7 per step (float32 rounding), see
# the report in the assertion message. rtol 1e-4 leaves a wide margin over that (Adam at lr 1e-2 can
# amplify rounding a little over the steps), yet catches any real disagreement: a different data
# order, a lost weight or a sum instead of a mean changes the loss by percent.
RTOL = 1e-4


def _text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "MLFLOW_TRACKING"))}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_DISABLE_TELEMETRY="1",
        MASTER_ADDR="127.0.0.1",
        OMP_NUM_THREADS="1",  # 2 cores: one thread per rank, and the same in the single run
        PYTHONHASHSEED="0",
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    return env


def _run(cmd: list[str], timeout: int = 300) -> None:
    """Run `cmd`; fail the test with the output's tail if it fails."""
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        errors = [line for line in output.splitlines() if "Error" in line][-5:]
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}: {errors}\n{output[-4000:]}")


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory) -> Path:
    """A tiny untrained Llama + BPE tokenizer saved as the 'SFT' model, and 16 weighted pairs."""
    work = tmp_path_factory.mktemp("ddp")
    rng = random.Random(0)
    texts = [_text(rng, 3, 15) for _ in range(48)]
    tokenizer = train_bpe_tokenizer(texts, 320, work / "tok")
    model = build_builtin_model(
        tokenizer, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, max_position_embeddings=128, seed=0
    )
    model.save_pretrained(str(work / "sft"))
    tokenizer.save_pretrained(str(work / "sft"))
    pairs = pd.DataFrame(
        {
            "prompt": [_text(rng, 2, 5) for _ in range(N_PAIRS)],
            "chosen": [_text(rng, 5, 15) for _ in range(N_PAIRS)],
            "rejected": [_text(rng, 5, 15) for _ in range(N_PAIRS)],
            "w_chosen_both": np.random.default_rng(0).uniform(0.2, 2.0, N_PAIRS),
        }
    )
    pairs.to_parquet(work / "pairs.parquet")
    return work


def _launch_ddp(work: Path, out_json: Path, per_device_batch: int) -> list[str]:
    # `--multi_gpu`: accelerate 1.15 starts several MULTI_CPU processes only via mpirun; this
    # picks the torchrun launcher, and `use_cpu` makes each process MULTI_CPU over gloo (see the
    # config's header). A free localhost port, MASTER_ADDR 127.0.0.1: no network.
    return [
        sys.executable, "-m", "divwrite.training.launch",  # as dvc.yaml launches it: handed to accelerate (2 processes)
        "--config_file", str(CPU_DDP_CONFIG),
        "--multi_gpu",
        "--num_processes", "2",
        "--main_process_ip", "127.0.0.1",
        "--main_process_port", str(_free_port()),
        str(SCRIPT), str(work), str(out_json),
        "--batch-size", str(per_device_batch), "--epochs", str(EPOCHS),
    ]  # fmt: skip


@pytest.mark.slow
def test_ddpo_two_process_ddp_matches_single_process(work_dir: Path) -> None:
    single_json, ddp_json = work_dir / "single.json", work_dir / "ddp.json"
    _run(
        [
            sys.executable,
            str(SCRIPT),
            str(work_dir),
            str(single_json),
            "--batch-size",
            str(GLOBAL_BATCH),
            "--epochs",
            str(EPOCHS),
        ]
    )
    _run(_launch_ddp(work_dir, ddp_json, GLOBAL_BATCH // 2))
    single, ddp = json.loads(single_json.read_text()), json.loads(ddp_json.read_text())

    assert single["num_processes"] == 1
    assert (ddp["num_processes"], ddp["distributed_type"], ddp["backend"], ddp["device"]) == (
        2,
        "MULTI_CPU",
        "gloo",
        "cpu",
    )
    n_steps = EPOCHS * math.ceil(N_PAIRS / GLOBAL_BATCH)
    assert single["global_step"] == ddp["global_step"] == n_steps  # every step ran
    assert [s["step"] for s in ddp["steps"]] == [s["step"] for s in single["steps"]] == list(range(1, n_steps + 1))
    single_losses = [s["loss"] for s in single["steps"]]
    ddp_losses = [s["loss"] for s in ddp["steps"]]
    assert all(math.isfinite(x) for x in ddp_losses + [ddp["train_loss"]])
    assert ddp_losses[-1] < ddp_losses[0]  # it trains (lr 1e-2: ~0.87 -> ~0.56 over 4 steps)

    diffs = [abs(a - b) / abs(b) for a, b in zip(ddp_losses, single_losses)]
    report = f"single {single_losses}, ddp {ddp_losses}, relative differences {diffs}"
    print(report)
    # Same pairs in each global step: the logged batch-mean weight agrees (it is gathered over ranks).
    assert [s["weights/mean"] for s in ddp["steps"]] == pytest.approx(
        [s["weights/mean"] for s in single["steps"]], rel=1e-6
    ), report
    assert ddp_losses == pytest.approx(single_losses, rel=RTOL), report
    assert ddp["train_loss"] == pytest.approx(single["train_loss"], rel=RTOL), report


@pytest.mark.slow
def test_train_stage_under_two_processes_writes_once(tmp_path: Path) -> None:
    """The real train stage (`stages/train.py`, as dvc.yaml launches it) with 2 CPU processes: both
    ranks train, the main one saves the model, the metrics and one MLflow run; checkpoints are
    written and cleaned up as in a single-process run."""
    import mlflow
    import yaml
    from conftest import run_in_scratch_copy

    run_in_scratch_copy(tmp_path, "train@sft", "deviate")
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["train"]["checkpoint_steps"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cmd = [
        sys.executable, "-m", "divwrite.training.launch",  # as dvc.yaml launches it: handed to accelerate (2 processes)
        "--config_file", str(CPU_DDP_CONFIG), "--multi_gpu", "--num_processes", "2",
        "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port()),
        "stages/train.py", "ddpo-both",
    ]  # fmt: skip
    env = {**_env(), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    assert (tmp_path / "models/ddpo-both/model.safetensors").is_file()
    report = json.loads((tmp_path / "reports/train/ddpo-both.json").read_text())
    assert report["steps"] > 2 and math.isfinite(report["train_loss"])
    assert [p.name for p in (tmp_path / "checkpoints/ddpo-both").iterdir()] == ["fingerprint.json"]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        runs = mlflow.search_runs(
            search_all_experiments=True, filter_string="tags.`divwrite.stage` = 'train@ddpo-both'", output_format="list"
        )
    finally:
        mlflow.set_tracking_uri(None)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["train_loss"] == pytest.approx(report["train_loss"])
