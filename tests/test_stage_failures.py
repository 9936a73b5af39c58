"""A stage that meets bad data exits 1 with a readable message and writes no output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def records(n_prompts: int = 12) -> list[dict]:
    return [
        {
            "post_title": f"[WP] Prompt number {i} about a lighthouse",
            "post_text": "",
            "comment_texts": [f"Story {j} for prompt {i}, told with care and a little rain." for j in range(3)],
            "comment_scores": [1, 7, 30],
        }
        for i in range(n_prompts)
    ]


def run_ingest(tmp_path: Path, lines: list[str]) -> subprocess.CompletedProcess:
    source = tmp_path / "corpus.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["ingest"]["source"] = str(source)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    env.pop("DIVWRITE_PIPELINE_RUN_ID", None)
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / "ingest.py")], cwd=tmp_path, env=env, capture_output=True, text=True
    )


def test_gate_failure_names_expectation_and_row_and_writes_nothing(tmp_path):
    recs = records()
    recs[3]["comment_texts"][1] = "word " * 6000
    proc = run_ingest(tmp_path, [json.dumps(r) for r in recs])
    assert proc.returncode == 1
    assert "data gate 'ingest' failed" in proc.stderr
    assert "n_words" in proc.stderr and "max_value=5000" in proc.stderr
    assert "-1'" in proc.stderr  # the offending response id (index 1 of its prompt)
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "reports").exists()


def test_malformed_json_line_is_reported_with_file_and_line(tmp_path):
    lines = [json.dumps(r) for r in records()]
    lines[4] = lines[4][:-5]  # truncated record
    proc = run_ingest(tmp_path, lines)
    assert proc.returncode == 1
    assert "corpus.jsonl" in proc.stderr and "line 5" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("score", ['"many"', "NaN"])
def test_bad_score_is_reported_with_record_and_field(tmp_path, score):
    lines = [json.dumps(r) for r in records()]
    lines[2] = lines[2].replace("[1, 7, 30]", f"[1, {score}, 30]")
    proc = run_ingest(tmp_path, lines)
    assert proc.returncode == 1
    assert "comment_scores" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()
