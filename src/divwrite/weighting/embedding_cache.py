"""On-disk embedding cache, so re-running a stage with new options never re-embeds.

Design:
- Keys are the sha256 of each text's UTF-8 bytes: a row is reused wherever the same
  text recurs (another run, another stage, another pairing), independent of ids or order.
- One directory per embedder, named after its `fingerprint` (model files, sequence
  length, feature definition): a changed model never reads another model's vectors.
- Vectors are stored as the float32 the embedder returned, bit for bit, so a run that
  reads the cache gets exactly the bits of the run that wrote it (reproducible reruns).
- The default location follows `DVC_ROOT`: DVC queued experiments run in a temporary
  checkout but point `DVC_ROOT` at the real repo, so the cache outlives them.
- Shards are immutable safetensors files (`keys` uint8 (n, 32), `vectors` float32
  (n, dim)), named by the hash of their keys and written to a temp file then
  `os.replace`d: concurrent writers never collide and readers never see half a file.
  Past `MAX_SHARDS` they are compacted into one. Nothing is pickled, so reading a
  cache cannot run code.

`EmbeddingTable` is the other half: the `embed` stage embeds every train response once
(through the cache) and writes the vectors as one safetensors file; `deviate` and `divpo`
look texts up in it instead of calling the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from divwrite.core.files import atomic_path, write_text
from divwrite.weighting.embedders import Embedder, load_embedder

logger = logging.getLogger(__name__)

MAX_SHARDS = 64
KEY_BYTES = 32
SHARD_SUFFIX = ".safetensors"
META_FILE = "meta.json"


def default_cache_dir() -> Path:
    """`$DIVWRITE_CACHE_DIR`, else `<$DVC_ROOT or cwd>/.cache/embeddings`."""
    explicit = os.environ.get("DIVWRITE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()) / ".cache" / "embeddings"


def text_key(text: str) -> bytes:
    """The cache key of a text: raw sha256 of its UTF-8 bytes (lone surrogates kept)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def cache_slug(name: str, fingerprint: str) -> str:
    """Directory name for an embedder: its name made filesystem-safe, plus a fingerprint hash."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:64] or "embedder"
    return f"{safe}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:16]}"


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


class CachedEmbedder:
    """An embedder that reads vectors from, and adds new ones to, an on-disk cache.

    Same interface as the wrapped embedder (`name`, `fingerprint`, `encode`). `hits` and
    `misses` count distinct texts found in the cache vs embedded, over all calls.
    """

    def __init__(self, embedder: Embedder, cache_dir: str | os.PathLike):
        self.embedder = embedder
        self.name = embedder.name
        self.fingerprint = embedder.fingerprint
        self.directory = Path(cache_dir) / cache_slug(self.name, self.fingerprint)
        self.hits = 0
        self.misses = 0
        self._loaded = False
        self._meta_written = False
        self._dim: int | None = None
        self._keys = np.zeros((0, KEY_BYTES), dtype=np.uint8)
        self._vectors: np.ndarray | None = None
        self._rows: dict[bytes, int] = {}
        self._shards: set[str] = set()  # shard file names whose rows are in memory

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses}

    def encode(self, texts: list[str], batch_size: int = 64, show_progress: bool | None = None) -> np.ndarray:
        """Rows for `texts` in order, embedding (once, deduplicated) only texts not cached."""
        if len(texts) == 0:
            if self._dim is not None:
                return np.zeros((0, self._dim), dtype=np.float32)
            return np.asarray(self.embedder.encode([]), dtype=np.float32)
        self._load()
        keys = [text_key(t) for t in texts]
        distinct = dict(zip(keys, texts))  # key -> text, in first-seen order
        missing = [k for k in distinct if k not in self._rows]
        self.hits += len(distinct) - len(missing)
        self.misses += len(missing)
        if missing:
            vectors = self.embedder.encode(
                [distinct[k] for k in missing], batch_size=batch_size, show_progress=show_progress
            )
            self._add(missing, np.ascontiguousarray(vectors, dtype=np.float32))
        rows = np.fromiter((self._rows[k] for k in keys), dtype=np.int64, count=len(keys))
        return self._vectors[rows]

    # -- storage -------------------------------------------------------------------------

    def _shard_paths(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob(f"*{SHARD_SUFFIX}") if not p.name.startswith("."))

    def _load(self) -> None:
        """Read meta.json and every shard into memory, once."""
        if self._loaded:
            return
        self._loaded = True
        meta_path = self.directory / META_FILE
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
                dim = int(meta["dim"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("embedding cache: unreadable %s (%s); ignoring it", meta_path, exc)
            else:
                if meta.get("fingerprint") != self.fingerprint:
                    raise ValueError(
                        f"embedding cache {self.directory} holds fingerprint {meta.get('fingerprint')!r}, "
                        f"not {self.fingerprint!r}"
                    )
                self._dim = dim
                self._meta_written = True
        self._merge_shards(self._shard_paths())

    def _merge_shards(self, paths: list[Path]) -> None:
        """Add the rows of readable shards at `paths` that are not in memory yet (one concatenation)."""
        shards = []
        for path in paths:
            if path.name not in self._shards and (shard := self._read_shard(path)) is not None:
                shards.append(shard)
                self._shards.add(path.name)
                self._dim = shard[1].shape[1]  # set by meta.json, else by the first readable shard
        if shards:
            self._append(_concat([k for k, _ in shards]), _concat([v for _, v in shards]))

    def _read_shard(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """(keys, vectors) of a shard, or None (with a warning) if it is unusable."""
        try:
            tensors = load_file(str(path))
        except FileNotFoundError:
            return None  # compacted away by another process meanwhile
        except Exception as exc:  # safetensors raises its own error types on corrupt files
            logger.warning("embedding cache: ignoring unreadable shard %s (%s)", path, exc)
            return None
        keys, vectors = tensors.get("keys"), tensors.get("vectors")
        problem = None
        if keys is None or vectors is None:
            problem = "missing 'keys' or 'vectors'"
        elif keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != KEY_BYTES:
            problem = f"keys are {keys.dtype} {keys.shape}"
        elif vectors.dtype != np.float32 or vectors.ndim != 2 or len(vectors) != len(keys):
            problem = f"vectors are {vectors.dtype} {vectors.shape} for {len(keys)} keys"
        elif self._dim is not None and vectors.shape[1] != self._dim:
            problem = f"dimension {vectors.shape[1]}, cache has {self._dim}"
        if problem:
            logger.warning("embedding cache: ignoring shard %s: %s", path, problem)
            return None
        return keys, vectors

    def _append(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add rows to the in-memory index, skipping keys already present (copying no more than needed)."""
        self._dim = vectors.shape[1]
        raw = keys.tobytes()
        keep = []
        for i in range(len(keys)):
            key = raw[i * KEY_BYTES : (i + 1) * KEY_BYTES]
            if key not in self._rows:
                self._rows[key] = len(self._keys) + len(keep)
                keep.append(i)
        if not keep:
            return
        if len(keep) < len(keys):
            keys, vectors = keys[keep], vectors[keep]
        if len(self._keys):
            keys, vectors = np.concatenate([self._keys, keys]), np.concatenate([self._vectors, vectors])
        self._keys, self._vectors = keys, vectors

    def _add(self, keys: list[bytes], vectors: np.ndarray) -> None:
        """Store freshly embedded rows: in memory, then as a new shard on disk."""
        if vectors.ndim != 2 or len(vectors) != len(keys):
            raise ValueError(f"{self.name} returned shape {vectors.shape} for {len(keys)} texts")
        if self._dim is not None and vectors.shape[1] != self._dim:
            raise ValueError(
                f"{self.name} returned dimension {vectors.shape[1]} but its cache {self.directory} holds "
                f"{self._dim}: the embedder's fingerprint does not capture a change"
            )
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, KEY_BYTES)
        self._append(key_array, vectors)
        try:
            if not self._meta_written:
                self._write_meta()
            self._shards.add(self._write_shard(key_array, vectors))
            if len(self._shard_paths()) > MAX_SHARDS:
                self._compact()
        except OSError as exc:
            logger.warning("embedding cache: could not write to %s (%s)", self.directory, exc)

    def _write_meta(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = {"name": self.name, "fingerprint": self.fingerprint, "dim": self._dim}
        text = json.dumps(meta, indent=2) + "\n"
        write_text(text, self.directory / META_FILE)
        self._meta_written = True

    def _write_shard(self, keys: np.ndarray, vectors: np.ndarray) -> str:
        """Write a shard named by the hash of its keys; return its file name."""
        name = hashlib.sha256(keys.tobytes()).hexdigest()[:32] + SHARD_SUFFIX
        tensors = {"keys": np.ascontiguousarray(keys), "vectors": np.ascontiguousarray(vectors)}
        with atomic_path(self.directory / name) as tmp:
            save_file(tensors, str(tmp))
        return name

    def _compact(self) -> None:
        """Replace every shard by one holding all their rows (in memory already, or read now)."""
        paths = self._shard_paths()
        self._merge_shards(paths)  # shards other processes wrote since we loaded
        merged = self._write_shard(self._keys, self._vectors)
        for path in paths:
            if path.name in self._shards and path.name != merged:
                path.unlink(missing_ok=True)
        self._shards = {merged}


def cached(embedder: Embedder, cache_dir: str | os.PathLike | None = None, enabled: bool = True) -> Embedder:
    """`embedder` behind a `CachedEmbedder` (in `default_cache_dir()` unless given), or as is if disabled."""
    if not enabled:
        return embedder
    return CachedEmbedder(embedder, default_cache_dir() if cache_dir is None else cache_dir)


# --------------------------------------------------------------------------- embedding tables


class EmbeddingTable:
    """Fixed embeddings of a set of texts, looked up by text hash: the `embed` stage's output.

    Satisfies the embedder interface (`name`, `fingerprint`, `encode`), so `deviate` and
    `divpo` use it in place of the model. Both stages then see the very same vectors,
    whatever order they run in and whatever their options: an embedding depends on the
    batch it was computed in at the float32 round-off level, so computing it once is what
    makes their outputs byte-identical across runs. A text that is not in the table is an
    error, never a silent re-embedding.
    """

    def __init__(self, keys: np.ndarray, vectors: np.ndarray, name: str, fingerprint: str, path: str = "") -> None:
        if keys.ndim != 2 or keys.shape[1] != KEY_BYTES or len(keys) != len(vectors):
            raise ValueError(f"embedding table {path}: keys {keys.shape} do not match vectors {vectors.shape}")
        self.name, self.fingerprint, self.path = name, fingerprint, path
        self.keys, self.vectors = keys, vectors
        raw = keys.tobytes()
        self._rows = {raw[i * KEY_BYTES : (i + 1) * KEY_BYTES]: i for i in range(len(keys))}

    def __len__(self) -> int:
        return len(self._rows)

    def encode(self, texts: list[str], batch_size: int = 64, show_progress: bool | None = None) -> np.ndarray:
        """The stored rows of `texts`, in order (batch_size and show_progress are ignored)."""
        rows = []
        for i, text in enumerate(texts):
            row = self._rows.get(text_key(text))
            if row is None:
                raise ValueError(
                    f"text {i} ({text[:40]!r}...) is not in the embedding table {self.path or self.name}; "
                    "re-run the `embed` stage (`dvc repro embed`)"
                )
            rows.append(row)
        return self.vectors[np.asarray(rows, dtype=np.int64)].reshape(len(texts), self.vectors.shape[1])


def embed_table(embedder: Embedder, texts: list[str], batch_size: int = 64) -> EmbeddingTable:
    """Embed the distinct `texts` (first-seen order) in one call and return them as a table
    (a non-finite vector is an error)."""
    distinct = list(dict.fromkeys(texts))
    vectors = np.ascontiguousarray(embedder.encode(distinct, batch_size=batch_size), dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if bad.size:
        raise ValueError(
            f"{embedder.name} gave non-finite embeddings for {bad.size} texts, e.g. {distinct[bad[0]][:60]!r}"
        )
    keys = np.frombuffer(b"".join(text_key(t) for t in distinct), dtype=np.uint8).reshape(-1, KEY_BYTES)
    return EmbeddingTable(keys, vectors, embedder.name, embedder.fingerprint)


def save_table(table: EmbeddingTable, path: str | os.PathLike) -> None:
    """Write a table as one safetensors file (keys, vectors; name and fingerprint as metadata), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"keys": np.ascontiguousarray(table.keys), "vectors": np.ascontiguousarray(table.vectors)}
    # One metadata key: safetensors writes a multi-key metadata map in a random order.
    metadata = {"embedder": json.dumps({"name": table.name, "fingerprint": table.fingerprint}, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_table(path: str | os.PathLike) -> EmbeddingTable:
    """Read a table written by `save_table`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such embedding table (run the `embed` stage: `dvc repro embed`)")
    with safe_open(str(path), framework="numpy") as f:
        embedder = json.loads((f.metadata() or {}).get("embedder", "{}"))
    tensors = load_file(str(path))
    return EmbeddingTable(
        tensors["keys"], tensors["vectors"], embedder.get("name", ""), embedder.get("fingerprint", ""), str(path)
    )


def deviation_embedders(
    semantic: str, style: str, *, trust_remote_code: bool = False, cache: bool = True
) -> dict[str, Embedder]:
    """The embedders of METHOD.md step 4 by name (`"sem"`, `"sty"`), behind the on-disk
    embedding cache unless `cache` is off."""
    names = {"sem": semantic, "sty": style}
    return {k: cached(load_embedder(n, trust_remote_code=trust_remote_code), enabled=cache) for k, n in names.items()}
