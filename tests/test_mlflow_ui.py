"""`make ui` (`divwrite ui`) in a real headless Chromium: the page it tells the user to open is
the experiment's runs table with the methods' evaluation runs side by side, not MLflow 3.17's
GenAI overview (traces), which is where the experiment's plain address lands."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from conftest import subprocess_env

from divwrite.core.tracking import configure, log_metrics, method_eval_run, stage_run

pytestmark = pytest.mark.slow  # ~35 s: the MLflow server's start, three browsers

METHODS = ["dpo", "ddpo-both", "human"]
GENAI_LANDING = ["Tokens per Trace", "Cost Breakdown"]  # the GenAI overview's panels


def build_store(root: Path) -> str:
    """A store like one `make run` leaves: a pipeline run, a training stage, and an evaluate
    stage with one evaluation run per method (metrics and spec), through the project's code."""
    exp_id = configure("divwrite", root)
    with mlflow.start_run(experiment_id=exp_id, run_name="pipeline", tags={"divwrite.kind": "pipeline"}) as parent:
        os.environ["DIVWRITE_PIPELINE_RUN_ID"] = parent.info.run_id
        try:
            with stage_run("train@dpo"):
                log_metrics({"train_loss": 0.6})
            with stage_run("evaluate"):
                for i, method in enumerate(METHODS):
                    with method_eval_run(method, None if method == "human" else {"loss": "dpo"}):
                        log_metrics({"quality": 0.1 * i, "semantic_diversity": 0.5 - 0.1 * i})
        finally:
            del os.environ["DIVWRITE_PIPELINE_RUN_ID"]
    mlflow.set_tracking_uri(None)
    return exp_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ui(tmp_path, monkeypatch):
    """`divwrite ui --port <free port>` (what `make ui` runs) on a store built in tmp_path;
    yields the port, the experiment id and the links it printed (label -> URL)."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    exp_id = build_store(project)
    port = free_port()
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "divwrite.cli", "ui", "--port", str(port)],
            cwd=project, env=subprocess_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
        links = {}
        for line in log.read_text().splitlines():
            label, sep, url = line.strip().partition(": http")
            if sep:
                links[label] = "http" + url
        yield port, exp_id, links
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server this fixture started, and its workers
        proc.wait(timeout=30)


def open_page(driver, url: str, shows: list[str], timeout: float = 60) -> str:
    """Open `url` and wait until the page shows every string of `shows`; the page's text."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def text(d) -> str:
        return d.find_element(By.TAG_NAME, "body").text

    driver.get(url)
    try:
        WebDriverWait(driver, timeout).until(lambda d: all(s in text(d) for s in shows))
    except TimeoutException:
        missing = [s for s in shows if s not in text(driver)]
        raise AssertionError(f"{driver.current_url} never showed {missing}; it shows:\n{text(driver)[:2000]}") from None
    time.sleep(1)  # the table and charts finish drawing before the screenshot
    return text(driver)


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    """A PNG of the page in tmp_path, copied to $DIVWRITE_SCREENSHOT_DIR when set."""
    path = tmp_path / name
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    if os.environ.get("DIVWRITE_SCREENSHOT_DIR"):
        folder = Path(os.environ["DIVWRITE_SCREENSHOT_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / name)
    return path


def test_the_links_make_ui_prints_open_the_runs_table_not_the_genai_overview(ui, chrome, tmp_path):
    """Each link in a new browser (nothing remembered from an earlier visit): the runs table,
    then the latest evaluation's methods side by side, one bar chart per metric. The
    experiment's own address lands on the GenAI overview instead, although the experiment
    is tagged `custom_model_development`: MLflow 3.17 goes by the URL's workflowType."""
    port, exp_id, links = ui
    runs, methods = links["divwrite: runs"], links["divwrite: the latest evaluation's methods"]
    assert runs == f"http://127.0.0.1:{port}/#/experiments/{exp_id}/runs?workflowType=machine_learning"

    table = chrome("runs")
    # the pipeline run, its stages nested (collapsed) under it: 3 + 3 methods' runs match
    text = open_page(table, runs, ["pipeline", "Run Name", f"{3 + len(METHODS)} matching runs"])
    screenshot(table, tmp_path, "mlflow-ui-runs.png")
    assert "/runs?" in table.current_url and not any(p in text for p in GENAI_LANDING)

    charts = chrome("methods")
    names = [f"eval/{m}" for m in METHODS]
    text = open_page(charts, methods, [*names, "quality", "semantic_diversity", f"{len(METHODS)} matching runs"])
    screenshot(charts, tmp_path, "mlflow-ui-methods.png")
    assert "/runs?" in charts.current_url and not any(p in text for p in GENAI_LANDING)
    assert "pipeline" not in text and "evaluate" not in text  # only the methods' runs, listed flat
    assert "0.20" in text and "0.50" in text  # their metrics, drawn: quality of human, semantic_diversity of dpo

    assert (
        mlflow.MlflowClient(f"sqlite:///{tmp_path / 'project/mlflow.db'}")
        .get_experiment(exp_id)
        .tags["mlflow.experimentKind"]
        == "custom_model_development"
    )
    plain = chrome("plain")
    text = open_page(plain, f"http://127.0.0.1:{port}/#/experiments/{exp_id}", GENAI_LANDING)
    screenshot(plain, tmp_path, "mlflow-ui-plain-address.png")
    assert "/overview" in plain.current_url and "workflowType=genai" in plain.current_url
    assert not any(n in text for n in ["pipeline", *names])
