"""The ingest stage's note on a local source outside data/raw/ (src/divwrite/data/raw_dir.py):
printed exactly when the file is not under the data/raw/ of the project the stage runs in,
however the path is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from divwrite.data.raw_dir import under_raw_dir, untracked_note
from divwrite.ops.profiles import absolute_source

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scratch project with data/raw/stories.jsonl, and a file beside the project."""
    root = tmp_path / "project"
    (root / "data" / "raw").mkdir(parents=True)
    (root / "data" / "raw" / "stories.jsonl").write_text("{}\n", encoding="utf-8")
    (tmp_path / "elsewhere.jsonl").write_text("{}\n", encoding="utf-8")
    return root


def test_a_file_inside_data_raw_gets_no_note(project: Path, tmp_path: Path) -> None:
    inside = project / "data" / "raw" / "stories.jsonl"
    for source in (str(inside), "data/raw/stories.jsonl", "./data/raw/stories.jsonl", "data/raw/x/../stories.jsonl"):
        assert under_raw_dir(source, project) and untracked_note(source, project) is None, source
    # The same project reached through a symlink (as /tmp is /private/tmp on macOS), both ways round.
    link = tmp_path / "link"
    link.symlink_to(project, target_is_directory=True)
    assert untracked_note(str(link / "data/raw/stories.jsonl"), project) is None
    assert untracked_note(str(inside), link) is None
    assert untracked_note("data/raw/stories.jsonl", link) is None
    # A symlink inside data/raw/ to a file elsewhere: DVC hashes what it points to, so it is tracked.
    (project / "data/raw/linked.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    assert untracked_note("data/raw/linked.jsonl", project) is None


def test_a_file_elsewhere_gets_the_note(project: Path, tmp_path: Path) -> None:
    raw = project / "data" / "raw"
    for source in (str(tmp_path / "elsewhere.jsonl"), "../elsewhere.jsonl", "data/raw/../../elsewhere.jsonl",
                   "data/rawer/stories.jsonl", "data/raw"):  # fmt: skip
        assert untracked_note(source, project) == (
            f"ingest: note: {source} is not under this project's data/raw/ ({raw}), so DVC will not re-run ingest "
            "when it changes"
        ), source
    assert untracked_note("builtin", project) is None and untracked_note("hf:euclaise/x", project) is None


def test_a_scratch_copy_reads_the_original_projects_file(project: Path, tmp_path: Path) -> None:
    """`divwrite smoke` makes a relative source absolute against the original project (its
    data/raw/ files are not copied): in the copy that file is not under data/raw/, and the note
    names the copy's data/raw/ so that the path, which does hold "data/raw", does not mislead."""
    source = absolute_source(project, "data/raw/stories.jsonl")
    assert Path(source).is_absolute() and untracked_note(source, project) is None
    copy = tmp_path / "copy"
    (copy / "data" / "raw").mkdir(parents=True)
    assert f"is not under this project's data/raw/ ({copy / 'data' / 'raw'})" in untracked_note(source, copy)


def _run_ingest(root: Path, source: str) -> subprocess.CompletedProcess:
    """The ingest stage script in `root` (its working directory, as under DVC) on 12 prompts
    written to ../elsewhere.jsonl."""
    stories = [f"Story {j}, told with care and a little rain on the pier." for j in range(3)]
    records = [{"post_title": f"[WP] Prompt {i} about a lighthouse", "post_text": "", "comment_texts": stories,
                "comment_scores": [1, 7, 30]} for i in range(12)]  # fmt: skip
    (root.parent / "elsewhere.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["source"] = source
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    env.pop("DIVWRITE_PIPELINE_RUN_ID", None)
    return subprocess.run([sys.executable, str(REPO / "stages/ingest.py")], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_the_stage_notes_only_a_source_outside_its_data_raw(project: Path, tmp_path: Path) -> None:
    """Inside: a symlink in data/raw/ to a file elsewhere, named through a symlink to the project
    (the stage used to resolve the file's own link and call it outside). Outside: the file itself."""
    link = tmp_path / "link"
    link.symlink_to(project, target_is_directory=True)
    (project / "data/raw/linked.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    proc = _run_ingest(project, str(link / "data/raw/linked.jsonl"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "note:" not in proc.stderr
    proc = _run_ingest(project, str(tmp_path / "elsewhere.jsonl"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"ingest: note: {tmp_path / 'elsewhere.jsonl'} is not under this project's data/raw/" in proc.stderr
