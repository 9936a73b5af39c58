"""Test-wide settings: offline, no telemetry, quiet tokenizers; under pytest-xdist each worker
gets its share of the cores, and the slowest modules start first."""

import contextlib
import os
from pathlib import Path

import pytest

# `make test` runs the suite on 2 pytest-xdist workers (`-n 2 --dist loadfile`). Each worker and
# every process it starts (DVC stages, `accelerate launch`) gets its share of the cores, so two
# workers do not fight over the same ones; torch reads these before its first use.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _share = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "DIVWRITE_CPU_THREADS"):
        os.environ.setdefault(_var, _share)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_STUDIO_OFFLINE", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


# The modules that run the pipeline, longest first (minutes on 2 cores, see README "Performance"):
# `--dist loadfile` hands whole modules to idle workers in collection order, so starting the
# longest ones first keeps the two workers busy until the end (longest-processing-time first).
SLOWEST_FIRST = [
    "test_smollm2.py",
    "test_pipeline_e2e.py",
    "test_ablation.py",
    "test_retrain.py",
    "test_resume.py",
    "test_data_stages_hanna.py",
    "test_pairs_hanna.py",
    "test_real_data_recipe.py",
    "test_ddp.py",
    "test_hub_model_lora.py",
    "test_smoke_run.py",
    "test_mlflow_ui.py",
    "test_benchmarks.py",
]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept otherwise


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A throwaway MLflow sqlite store in the working directory (`tracking.configure` puts it at
    the project root, here `tmp_path`), outside any pipeline run."""
    import mlflow

    from divwrite.core.tracking import PARENT_RUN_ENV

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv(PARENT_RUN_ENV, raising=False)
    yield tmp_path
    mlflow.set_tracking_uri(None)


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"  # Debian's (`.ci/run` installs them)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,1000",
]


@pytest.fixture
def chrome(tmp_path):
    """Start headless Chromium browsers (selenium): `chrome(name)` opens a new one with its own
    profile (`tmp_path/<name>`: nothing shared between two), each quit at teardown. Skips the
    test when Debian's chromium or chromedriver is absent."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(f"{CHROMIUM} or {CHROMEDRIVER} is absent: apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    drivers = []

    def start(name: str = "profile"):
        options = Options()
        options.binary_location = CHROMIUM
        for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / name}"]:
            options.add_argument(flag)
        drivers.append(webdriver.Chrome(service=Service(CHROMEDRIVER), options=options))
        return drivers[-1]

    yield start
    for driver in drivers:
        with contextlib.suppress(Exception):  # a test may have quit it already
            driver.quit()


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """The tiny preference tests' BPE tokenizer (`tiny_preference.tiny_tokenizer`), one per module.
    A module may define its own `tokenizer` fixture instead (test_training.py does)."""
    from tiny_preference import tiny_tokenizer

    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def base_model(tokenizer):
    """The tiny preference tests' seeded 2-layer Llama (`tiny_preference.tiny_model`), one per module."""
    from tiny_preference import tiny_model

    return tiny_model(tokenizer)


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data`, or skip when the project is a fresh clone without it."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip("../shared/data is absent (fresh clone): real-data test skipped")
    return path


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a pipeline, DVC or stage process a test starts: this interpreter's bin
    first on PATH and telemetry off (`core.vcs.venv_env`), no MLflow store or DVC root inherited
    from an outer run, then `extra`."""
    from divwrite.core.vcs import venv_env

    env = {k: v for k, v in venv_env().items() if k not in {"MLFLOW_TRACKING_URI", "DVC_ROOT"}}
    return env | extra


def run_in_scratch_copy(target: Path, *args: str, timeout: int = 1800, env: dict[str, str] | None = None) -> str:
    """`divwrite smoke --dir target *args` (a profile applied in a scratch copy of the
    project, its own DVC and MLflow stores; `env`: extra variables); fails the test with the
    output's tail. Returns what the command printed (stdout: the run's report)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "divwrite.cli", "smoke", "--dir", str(target), *args],
        cwd=REPO, env=subprocess_env(**(env or {})), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout
