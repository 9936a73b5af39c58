"""What every benchmark here shares: interleaved timing, goals, the built-in fixtures, and the
results file `reports/benchmarks.json`.

This machine is noisy (2 shared cores), so a benchmark never reports an absolute time alone:
it times a candidate and its baseline in the same run, alternating them round by round (a
slow spell hits both), and reports the ratio of their medians against a goal.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from divwrite.core.files import write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "reports" / "benchmarks.json"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall seconds of each function over `rounds` rounds, the functions run in turn inside
    each round (their order rotating), after `warmup` untimed rounds."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            fns[name]()
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return float(statistics.median(values))


@dataclass
class Goal:
    """`value <op> target`, e.g. a speed-up of at least 100 (`">="`) or a ratio of at most 1.02."""

    name: str
    value: float
    op: str
    target: float

    @property
    def met(self) -> bool:
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {"value": round(self.value, 4), "goal": f"{self.op} {self.target:g}", "met": self.met}

    def line(self) -> str:
        mark = "met" if self.met else "MISSED"
        return f"  {self.name}: {self.value:.3f} (goal {self.op} {self.target:g}) {mark}"


def report(section: str, measured: dict[str, Any], goals: list[Goal], out: Path | None = RESULTS) -> dict[str, Any]:
    """Print the goals and merge `{section: {...}}` into the results file (atomically)."""
    print(f"{section}:")
    for goal in goals:
        print(goal.line())
    entry = {"goals": {g.name: g.as_dict() for g in goals}, "measured": measured}
    if out is not None:
        write_section(out, section, entry)
    return entry


def write_section(out: Path, section: str, entry: dict[str, Any]) -> None:
    data = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    data["machine"] = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                       "python": platform.python_version()}  # fmt: skip
    data[section] = entry
    write_json(data, out)


def corpus_responses(n_prompts: int, seed: int = 0, mean_responses: float = 11.0, max_responses: int = 60):
    """The built-in corpus as a responses table (`records.RESPONSE_COLUMNS`, METHOD.md step 1's
    score transform per prompt), junk removed: what `filter` hands to `pair` and `embed`,
    without running the stages."""
    from divwrite.data.corpus.generator import generate_corpus
    from divwrite.data.ingest import records_to_responses, transform_scores

    corpus = generate_corpus(n_prompts, seed=seed, mean_responses=mean_responses, max_responses=max_responses)
    df = records_to_responses(corpus.records)
    df = df[(corpus.truth_responses["junk"] == "").to_numpy()].reset_index(drop=True)
    df["score"] = df.groupby("prompt_id", sort=False)["upvotes"].transform(lambda u: transform_scores(u.to_numpy()))
    return df


def upvote_sample(n: int, rng: np.random.Generator) -> np.ndarray:
    """Upvotes of one prompt's `n` responses, heavy-tailed like Reddit's (many near 1, a few
    in the hundreds): a rounded log-normal."""
    return np.round(np.exp(rng.normal(1.5, 1.4, size=n))).astype(np.float64)
