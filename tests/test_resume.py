"""Resumable training (`divwrite.training.checkpoints`): fingerprints, stale checkpoints, and a training
stage killed for real (SIGKILL) that resumes on the next `dvc repro` and ends with the same
weights as an uninterrupted run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import run_in_scratch_copy

from divwrite.training import checkpoints


def _checkpoint(directory: Path, step: int, complete: bool = True) -> Path:
    path = directory / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"w")
    if complete:
        (path / "trainer_state.json").write_text("{}")
    return path


def test_fingerprint_covers_config_and_input_bytes(tmp_path):
    data = tmp_path / "train.parquet"
    data.write_bytes(b"abc")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    base = checkpoints.fingerprint({"lr": 1e-4, "method": {"loss": "dpo"}}, [data, model])
    assert base == checkpoints.fingerprint({"method": {"loss": "dpo"}, "lr": 1e-4}, [data, model])  # key order
    assert base != checkpoints.fingerprint({"lr": 2e-4, "method": {"loss": "dpo"}}, [data, model])
    data.write_bytes(b"abd")
    assert base != checkpoints.fingerprint({"lr": 1e-4, "method": {"loss": "dpo"}}, [data, model])
    data.write_bytes(b"abc")
    (model / "config.json").write_text('{"x": 1}')
    assert base != checkpoints.fingerprint({"lr": 1e-4, "method": {"loss": "dpo"}}, [data, model])
    with pytest.raises(FileNotFoundError, match="missing"):
        checkpoints.fingerprint({}, [tmp_path / "missing"])


def test_resume_point_picks_the_latest_complete_checkpoint(tmp_path):
    ckpt = tmp_path / "checkpoints"
    assert checkpoints.resume_point(ckpt, "run-a") is None  # fresh: folder made, fingerprint recorded
    assert json.loads((ckpt / checkpoints.FINGERPRINT_FILE).read_text()) == {"fingerprint": "run-a"}
    _checkpoint(ckpt, 5)
    _checkpoint(ckpt, 10)
    _checkpoint(ckpt, 15, complete=False)  # killed while saving: no trainer_state.json
    assert checkpoints.resume_point(ckpt, "run-a") == ckpt / "checkpoint-10"
    assert checkpoints.checkpoint_step(ckpt / "checkpoint-10") == 10
    assert [p.name for p in checkpoints.complete_checkpoints(ckpt)] == ["checkpoint-5", "checkpoint-10"]


def test_checkpoints_of_another_run_are_wiped_never_resumed(tmp_path):
    ckpt = tmp_path / "checkpoints"
    checkpoints.resume_point(ckpt, "run-a")
    _checkpoint(ckpt, 10)
    assert checkpoints.resume_point(ckpt, "run-b") is None
    assert sorted(p.name for p in ckpt.iterdir()) == [checkpoints.FINGERPRINT_FILE]
    assert json.loads((ckpt / checkpoints.FINGERPRINT_FILE).read_text())["fingerprint"] == "run-b"


def test_finish_keeps_only_the_fingerprint(tmp_path):
    ckpt = tmp_path / "checkpoints"
    checkpoints.resume_point(ckpt, "run-a")
    _checkpoint(ckpt, 10)
    (ckpt / "stray.txt").write_text("x")
    checkpoints.finish(ckpt)
    assert [p.name for p in ckpt.iterdir()] == [checkpoints.FINGERPRINT_FILE]
    with pytest.raises(ValueError, match="checkpoint-<step>"):
        checkpoints.checkpoint_step(ckpt / "model")


def _dvc(cwd: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True, **kwargs
    )


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sft", "ddpo-both"])
def test_killed_training_resumes_on_the_next_repro_with_the_same_result(tmp_path, method):
    """Train once uninterrupted; train again and SIGKILL the whole process group (dvc,
    accelerate launch, the trainer) once a checkpoint exists; `dvc repro` then resumes from
    that checkpoint and produces byte-identical weights."""
    run_in_scratch_copy(tmp_path, *(["filter"] if method == "sft" else ["train@sft", "deviate"]))
    params_path = tmp_path / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    section = "sft" if method == "sft" else "dpo"
    params[section]["epochs"] = 3  # long enough to be killed mid-run (tens of steps)
    params["train"]["checkpoint_steps"] = 4
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    stage = f"train@{method}"
    weights = tmp_path / "models" / method / "model.safetensors"
    ckpt = tmp_path / "checkpoints" / method

    first = _dvc(tmp_path, "repro", "--single-item", stage)
    assert first.returncode == 0, first.stdout + first.stderr
    uninterrupted = _md5(weights)
    report = json.loads((tmp_path / "reports/train" / f"{method}.json").read_text())
    assert report["resumed_from_step"] == 0 and report["steps"] >= 16
    assert [p.name for p in ckpt.iterdir()] == [checkpoints.FINGERPRINT_FILE]  # cleaned after success

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "--force", "--single-item", stage],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not any(checkpoints.checkpoint_step(p) >= 8 for p in checkpoints.complete_checkpoints(ckpt)):
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint after 300 s"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = checkpoints.complete_checkpoints(ckpt)
    assert saved and not weights.exists()  # killed before the end: no model, checkpoints left

    resumed = _dvc(tmp_path, "repro", "--single-item", stage)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    report = json.loads((tmp_path / "reports/train" / f"{method}.json").read_text())
    assert report["resumed_from_step"] >= 8
    assert report["resumed_from_step"] == checkpoints.checkpoint_step(saved[-1])
    assert _md5(weights) == uninterrupted
    assert [p.name for p in ckpt.iterdir()] == [checkpoints.FINGERPRINT_FILE]
    assert _dvc(tmp_path, "status", stage).stdout.strip().endswith("up to date.")
