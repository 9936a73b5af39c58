"""The project's folder of local sources, `data/raw/`: a dependency of the ingest stage
(dvc.yaml), so DVC re-runs ingest when a file in it changes, and only then.

`untracked_note` says when a local `data.source` lies elsewhere. "Under data/raw/" means
under the data/raw/ of the project the stage runs in (its working directory, where DVC runs
it), whatever the path looks like: a relative source is taken against that project, a file
that is a symlink inside data/raw/ counts as inside (DVC hashes what it points to), and the
folders are compared resolved too (`/tmp` vs `/private/tmp`, a symlinked project). A scratch
copy (`divwrite smoke`, `ops.pipeline.prepare_smoke_copy`) or a queued experiment gets a
relative source rewritten to the original project's absolute path (its data/raw/ files are
not copied): that file is not under the copy's data/raw/, and the note names both.
"""

from __future__ import annotations

import os
from pathlib import Path

RAW_DIR = Path("data", "raw")


def is_local_source(source: str) -> bool:
    """True for a file path; False for `builtin` and `hf:<dataset>`."""
    return source != "builtin" and not source.startswith("hf:")


def under_raw_dir(source: str | os.PathLike, root: str | os.PathLike) -> bool:
    """True when the file `source` lies under `root`/data/raw/ (a relative `source` is taken
    against `root`): as written, with `..` folded, or with its folders resolved."""
    root = Path(os.path.abspath(root))
    path = Path(os.path.normpath(root / source))  # an absolute `source` replaces root
    raw = Path(os.path.normpath(root / RAW_DIR))
    written = path != raw and path.is_relative_to(raw)
    resolved = path.parent.resolve() / path.name  # the file itself may be a symlink
    return written or (resolved.is_relative_to(raw.resolve()) and resolved != raw.resolve())


def untracked_note(source: str, root: str | os.PathLike) -> str | None:
    """The note for a local `source` outside the data/raw/ of the project at `root`, else None."""
    if not is_local_source(source) or under_raw_dir(source, root):
        return None
    raw = Path(os.path.abspath(root)) / RAW_DIR
    return (
        f"ingest: note: {source} is not under this project's data/raw/ ({raw}), so DVC will not "
        "re-run ingest when it changes"
    )
