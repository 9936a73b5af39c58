"""Resumable training: checkpoints that survive `dvc repro` and are only ever resumed by the
run they were written for.

A training stage checkpoints into `checkpoints/<method>/` (a DVC *persisted* output, so DVC
does not delete it before re-running the stage). The folder carries `fingerprint.json`: a
digest of everything the run depends on (its params and the bytes of its inputs). When the
stage starts:

- same fingerprint and a complete checkpoint (`checkpoint-<step>/trainer_state.json`, which
  `transformers.Trainer` writes last) -> resume from the latest one: a run killed mid-way
  picks up where it stopped and ends with the same weights as an uninterrupted run;
- another fingerprint (params or data changed since) -> the folder is emptied first, so a
  stale checkpoint is never resumed;
- after a successful run the checkpoints are removed and only `fingerprint.json` stays
  (the output DVC records), so finished runs cost no disk.

Checkpoints are `transformers.Trainer` checkpoints: weights as safetensors, optimizer /
scheduler / RNG state as torch files and `training_args.bin` (a pickle written by
transformers). They are local scratch state, read back only by this project's own resume,
never published as a model: `models/<method>` is what the pipeline hands on.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from divwrite.core.files import write_text

FINGERPRINT_FILE = "fingerprint.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _digest_path(path: Path, h: Any) -> None:
    """Feed a file's bytes, or every file of a folder (sorted relative paths and bytes), to `h`."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"{path}: no such input file or folder (or it is empty)")
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)


def fingerprint(config: Mapping[str, Any], inputs: Iterable[str | os.PathLike]) -> str:
    """sha256 of `config` (JSON with sorted keys) and of the bytes of every input file / folder."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for path in inputs:
        h.update(b"\0input\0")
        _digest_path(Path(path), h)
    return h.hexdigest()


def complete_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """`checkpoint-<step>` folders that hold `trainer_state.json` (written last), oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found) if (p / "trainer_state.json").is_file()]


def checkpoint_step(checkpoint: str | os.PathLike) -> int:
    match = _CHECKPOINT.match(Path(checkpoint).name)
    if match is None:
        raise ValueError(f"{checkpoint}: not a checkpoint-<step> folder")
    return int(match.group(1))


def resume_point(directory: str | os.PathLike, run_fingerprint: str) -> Path | None:
    """The checkpoint to resume from, or None; prepares `directory` for a run with `run_fingerprint`.

    Empties `directory` when it was written for another fingerprint (or has none), then
    records `run_fingerprint`. Under several processes (`accelerate launch`) the main process
    does this first and the others then read the same answer.
    """
    from divwrite.core.distributed import process_state

    directory = Path(directory)
    state = process_state()
    with state.main_process_first():
        if state.is_main_process:
            recorded = directory / FINGERPRINT_FILE
            previous = json.loads(recorded.read_text())["fingerprint"] if recorded.is_file() else None
            if previous != run_fingerprint:
                shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True, exist_ok=True)
            write_text(json.dumps({"fingerprint": run_fingerprint}, indent=2) + "\n", recorded)
    checkpoints = complete_checkpoints(directory)
    return checkpoints[-1] if checkpoints else None


def finish(directory: str | os.PathLike) -> None:
    """After a successful run: remove the checkpoints and the trainer's other scratch files,
    keep `fingerprint.json` (what DVC records as the output)."""
    directory = Path(directory)
    if directory.is_dir():
        for p in directory.iterdir():
            if p.name != FINGERPRINT_FILE:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
