"""A stage that meets bad data exits 1 with a readable message and writes no data; a
warning lets it go on. Runs the real ingest stage script in a scratch folder."""

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


def run_ingest(tmp_path: Path, content: bytes | None, name: str = "corpus.jsonl") -> subprocess.CompletedProcess:
    source = tmp_path / "data" / "raw" / name
    if content is not None:
        source.parent.mkdir(parents=True)
        source.write_bytes(content)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["source"] = f"data/raw/{name}"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    env.pop("DIVWRITE_PIPELINE_RUN_ID", None)
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / "ingest.py")], cwd=tmp_path, env=env, capture_output=True, text=True
    )


def jsonl(recs: list[dict]) -> bytes:
    return ("\n".join(json.dumps(r) for r in recs) + "\n").encode()


def truncated_line() -> bytes:
    lines = jsonl(records()).decode().splitlines()
    lines[4] = lines[4][:-5]
    return ("\n".join(lines) + "\n").encode()


def nan_score() -> bytes:
    return jsonl(records()).replace(b"[1, 7, 30]", b"[1, NaN, 30]", 1)


def latin1_text() -> bytes:
    recs = records()
    recs[2]["comment_texts"][0] = "Caf\u00e9 at the end of the pier."
    return json.dumps(recs[0]).encode() + b"\n" + json.dumps(recs[2], ensure_ascii=False).encode("latin-1") + b"\n"


def one_word_responses() -> bytes:
    recs = records()
    for r in recs:
        r["comment_texts"] = ["Yes.", "No.", "Maybe."]
    return jsonl(recs)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (truncated_line(), ["corpus.jsonl, line 5", "malformed JSON"]),
        (nan_score(), ["line 1", "comment_scores"]),
        (latin1_text(), ["line 2", "not valid UTF-8"]),
        (b"", ["no records"]),
        (None, ["FileNotFoundError", "corpus.jsonl"]),
        (
            one_word_responses(),
            [
                "data gate 'ingest' failed",
                "expect_column_mean_to_be_between(column='n_words'",
                "observed: 1",
                "Data Docs: reports/data_docs/ingest/index.html",
            ],
        ),
    ],  # fmt: skip
    ids=["malformed-line", "nan-score", "non-utf8", "empty-file", "missing-path", "gate-mean-words"],
)
def test_bad_source_exits_1_with_a_message_and_writes_no_data(tmp_path, content, expected):
    proc = run_ingest(tmp_path, content)
    assert proc.returncode == 1, proc.stderr
    for text in expected:
        assert text in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / "ingested").exists() and not (tmp_path / "reports" / "stages").exists()


def test_over_long_response_is_a_warning_and_ingest_goes_on(tmp_path):
    recs = records()
    recs[3]["comment_texts"][1] = "word " * 6000
    proc = run_ingest(tmp_path, jsonl(recs))
    assert proc.returncode == 0, proc.stderr
    assert "data gate warning" in proc.stderr and "n_words=6000" in proc.stderr
    summary = json.loads((tmp_path / "reports/gates/ingest.json").read_text())
    assert summary["success"] is True and summary["warnings"] == 1 and summary["failed"] == 0
    assert (tmp_path / "data/ingested/train.parquet").exists()
    assert (tmp_path / "reports/data_docs/ingest/index.html").exists()
