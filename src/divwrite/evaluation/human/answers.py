"""The answers file: one JSON object per line, appended and fsync'd as each answer is given.

A line is the rater's whole state for one task at that moment: `rater`, `task_id`, `q1`,
`q2` ("A", "B", "similar" or null while not yet answered), `comment`, `tasks_digest` (the
task file it answers) and `saved_at` (UTC). The page sends a new line on every click, so a
closed tab loses nothing; the latest line of a (rater, task) replaces the earlier ones.
Appending whole lines with fsync means a crash can at worst leave a torn last line without
its newline, which readers skip (and count); any other unreadable line is an error.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from divwrite.evaluation.human.tasks import CHOICES, QUESTIONS

RATER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_COMMENT_CHARS = 5000
Key = tuple[str, str]


def validate_rater(rater: Any) -> str:
    """A rater id: 1-64 letters, digits, `_`, `.` or `-`, starting with a letter or digit."""
    if rater is None or rater == "":
        raise ValueError("no rater id given: open the page as /?rater=NAME")
    if not isinstance(rater, str) or not RATER_PATTERN.fullmatch(rater):
        raise ValueError(
            f"rater id {rater!r} is invalid: use 1-64 letters, digits, '_', '.' or '-' (e.g. ?rater=alice)"
        )
    return rater


def validate_answer(payload: Any, task_ids: Collection[str]) -> dict[str, Any]:
    """The answer a client posted, checked field by field; ValueError naming the problem."""
    if not isinstance(payload, Mapping):
        raise ValueError("an answer must be a JSON object")
    unknown = set(payload) - {"rater", "task_id", *QUESTIONS, "comment"}
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}")
    rater = validate_rater(payload.get("rater"))
    task_id = payload.get("task_id")
    if not isinstance(task_id, str) or task_id not in task_ids:
        raise ValueError(f"task_id {task_id!r} is not a task of this evaluation")
    answer: dict[str, Any] = {"rater": rater, "task_id": task_id}
    for question in QUESTIONS:
        choice = payload.get(question)
        if choice is not None and choice not in CHOICES:
            raise ValueError(f"{question} must be one of {list(CHOICES)} or null, got {choice!r}")
        answer[question] = choice
    comment = payload.get("comment", "")
    if comment is None:
        comment = ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
        raise ValueError(f"comment must be a string of at most {MAX_COMMENT_CHARS} characters")
    answer["comment"] = comment
    return answer


def is_complete(answer: Mapping[str, Any]) -> bool:
    """Whether every question of the task has been answered."""
    return all(answer.get(q) is not None for q in QUESTIONS)


class AnswerLog:
    """Appends answers to a JSON Lines file, one fsync'd line per answer, thread-safely."""

    def __init__(self, path: str | Path, tasks_digest: str) -> None:
        self.path = Path(path)
        self.tasks_digest = tasks_digest
        self._lock = threading.Lock()

    def append(self, answer: Mapping[str, Any]) -> dict[str, Any]:
        record = {
            **answer,
            "tasks_digest": self.tasks_digest,
            "saved_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            created = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            if created:  # the new file's directory entry must survive a crash too
                fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        return record

    def recover(self) -> int:
        """Make the file end at a whole line before appending to it: a torn last line (a
        write cut short by a crash, never acknowledged to the page) is cut off; returns the
        number of bytes dropped."""
        with self._lock:
            if not self.path.exists():
                return 0
            with self.path.open("rb+") as f:
                data = f.read()
                if not data or data.endswith(b"\n"):
                    return 0
                tail_start = data.rfind(b"\n") + 1
                try:
                    json.loads(data[tail_start:])
                except ValueError:
                    f.truncate(tail_start)
                    dropped = len(data) - tail_start
                else:  # a whole record that lost only its newline
                    f.seek(0, os.SEEK_END)
                    f.write(b"\n")
                    dropped = 0
                f.flush()
                os.fsync(f.fileno())
            return dropped

    def read(self) -> list[dict[str, Any]]:
        with self._lock:
            return read_answers(self.path, self.tasks_digest)[0]


def read_answers(path: str | Path, tasks_digest: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """The answer records in file order (none when the file does not exist yet), and the
    number of torn last lines skipped (0 or 1). With `tasks_digest`, a record answering
    another task file is an error."""
    path = Path(path)
    if not path.exists():
        return [], 0
    raw = path.read_text(encoding="utf-8")
    lines = raw.split("\n")
    records, torn = [], 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):  # the last line and no newline after it: a write cut short
                torn += 1
                continue
            raise ValueError(f"{path}:{number}: not a JSON answer ({err})") from err
        if not isinstance(record, dict) or not {"rater", "task_id", "tasks_digest"} <= set(record):
            raise ValueError(f"{path}:{number}: not an answer record (needs rater, task_id, tasks_digest)")
        if tasks_digest is not None and record["tasks_digest"] != tasks_digest:
            raise ValueError(
                f"{path}:{number}: answers another task file (digest {record['tasks_digest'][:12]}..., "
                f"expected {tasks_digest[:12]}...): use a separate answers file per task file"
            )
        records.append(record)
    return records, torn


def latest_answers(records: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """The last record of each (rater, task_id), in the order the keys first appeared."""
    latest: dict[Key, dict[str, Any]] = {}
    for record in records:
        latest[(record["rater"], record["task_id"])] = record
    return latest
