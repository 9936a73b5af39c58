"""The scale benchmark's corpus (`bench_scale.py`): the built-in generator at a multiple of the
default corpus, or at the paper's size and shape.

- `1` (or any number f): the default built-in corpus (params.yaml `corpus`) with f times its
  prompts; `1` is byte for byte the default run's corpus.
- `paper` (`paper:f` for a fraction f of it): ~106k prompts, ~4.7 responses per prompt with a long
  tail to 500, ~500-word stories, run with `ingest.test_fraction` 0.1 and `filter.max_tokens` 2048
  as in the paper. The generator's element pools give at most 13,500 distinct prompts per call,
  so the corpus is several calls of `generate_corpus` (seeds data_seed + k, the titles of call
  k >= 1 marked "(part k+1)" so that prompts of different calls stay apart): 105k prompts at mean
  3.6 / max 60 responses and 1k at mean 100 / max 500 (the tail). Each real story is then
  lengthened to a drawn length (log-normal, mean 470 words; it ends with the paragraph that
  reaches it, ~500 on average) by more paragraphs the grammar writes for the same prompt,
  archetype and style (as the generator's own overlong junk is written).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

MAX_DRAW = 13_125  # prompts per generator draw (its element pools allow 13,500)
PAPER_BODY, PAPER_TAIL = (105_000, 3.6, 60), (1_000, 100.0, 500)  # prompts, mean and max responses
PAPER_WORDS = 470.0  # mean drawn story length; a story ends at the paragraph that reaches it (~500)
PAPER_PARAMS = {"ingest": {"test_fraction": 0.1}, "filter": {"max_tokens": 2048}}


@dataclass(frozen=True)
class Scale:
    """A scale point: generator draws `(n_prompts, mean_responses, max_responses)`, the mean words
    stories are lengthened to (None: as generated) and the params it runs with."""

    name: str
    draws: tuple[tuple[int, float, int], ...]
    story_words: float | None = None
    overrides: dict = field(default_factory=dict)


def _split(n: int, mean: float, most: int) -> list[tuple[int, float, int]]:
    k = -(-n // MAX_DRAW)
    return [(n // k + (i < n % k), mean, most) for i in range(k)]


def parse_scale(name: str, corpus: dict) -> Scale:
    """`"1"`, `"10"`, `"0.05"`: the default corpus with that many times its prompts; `"paper"`,
    `"paper:0.01"`: the paper-shaped corpus (module docstring), or a fraction of it."""
    if name.startswith("paper"):
        f = float(name.partition(":")[2] or 1.0)
        body, tail = PAPER_BODY, PAPER_TAIL
        draws = _split(max(10, round(body[0] * f)), *body[1:]) + _split(max(1, round(tail[0] * f)), *tail[1:])
        return Scale(name, tuple(draws), PAPER_WORDS, PAPER_PARAMS)
    n = round(corpus["n_prompts"] * float(name))
    if n < 10:
        raise ValueError(f"scale {name}: {n} prompts, the gates need at least 10")
    return Scale(name, tuple(_split(n, corpus["mean_responses"], corpus["max_responses"])))


def lengthen(corpus, words: float, rng: np.random.Generator) -> None:
    """Lengthen every real story of `corpus` (in place) to a drawn length, log-normal with mean
    `words`, adding paragraphs the grammar writes for the same prompt, archetype and style."""
    from divwrite.data.corpus.grammar import write_story

    truth = corpus.truth_responses
    kinds = iter(zip(truth["archetype"].tolist(), truth["style"].tolist(), truth["junk"].tolist()))
    elements = [tuple(e) for e in corpus.truth_prompts["elements"]]
    for i, record in enumerate(corpus.records):
        texts = record["comment_texts"]
        for j, text in enumerate(texts):
            arch, style, junk = next(kinds)
            if junk:
                continue
            target, n = rng.lognormal(np.log(words) - 0.125, 0.5), len(text.split())
            parts = [text]
            while n < target:
                parts.append(write_story(rng, elements[i], arch, style))
                n += len(parts[-1].split())
            texts[j] = "\n\n".join(parts)


def build_corpus(scale: Scale, params: dict, path: Path) -> dict:
    """Write the scale's records to `path` (Parquet, the per_prompt layout), reusing a file built
    before for the same scale and params; returns what it holds and how long it took to build."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from divwrite.data.corpus.generator import generate_corpus

    spec = json.dumps([asdict(scale), params["corpus"], params["data_seed"]], sort_keys=True)
    stamp = path.with_suffix(".json")
    if path.exists() and stamp.exists() and json.loads(stamp.read_text())["spec"] == spec:
        return json.loads(stamp.read_text())["corpus"]
    start, writer, counts, words = time.perf_counter(), None, [], 0
    extra = {k: v for k, v in params["corpus"].items() if k not in ("n_prompts", "mean_responses", "max_responses")}
    for k, (n, mean, most) in enumerate(scale.draws):
        seed = params["data_seed"] + k
        corpus = generate_corpus(n, seed=seed, mean_responses=mean, max_responses=most, **extra)
        if scale.story_words:
            lengthen(corpus, scale.story_words, np.random.default_rng([seed, 1]))
        if k:  # prompts of different draws stay different prompts
            for r in corpus.records:
                r["post_title"] += f" (part {k + 1})"
        table = pa.Table.from_pylist(corpus.records)
        writer = writer or pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table)
        counts += [len(r["comment_texts"]) for r in corpus.records]
        words += sum(len(t.split()) for r in corpus.records for t in r["comment_texts"])
        print(f"  [{scale.name}] corpus draw {k + 1}/{len(scale.draws)}: {n} prompts", flush=True)
    writer.close()
    c = np.array(counts)
    info = {"prompts": len(c), "responses": int(c.sum()), "mean_words": round(words / c.sum(), 1),
            "responses_per_prompt": {"mean": round(float(c.mean()), 2), "median": float(np.median(c)),
                                     "q75": float(np.percentile(c, 75)), "max": int(c.max())},
            "build_seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    stamp.write_text(json.dumps({"spec": spec, "corpus": info}))
    return info
