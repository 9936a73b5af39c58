"""Test-wide settings: offline, no telemetry, quiet tokenizers."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_STUDIO_OFFLINE", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data`, or skip when the project is a fresh clone without it."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip("../shared/data is absent (fresh clone): real-data test skipped")
    return path


def run_in_scratch_copy(target: Path, *args: str, timeout: int = 900) -> None:
    """`divwrite smoke --dir target *args` (a profile applied in a scratch copy of the
    project, its own DVC and MLflow stores); fails the test with the output's tail."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in {"MLFLOW_TRACKING_URI", "DVC_ROOT"}}
    proc = subprocess.run(
        [sys.executable, "-m", "divwrite.cli", "smoke", "--dir", str(target), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
