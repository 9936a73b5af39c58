"""Export of pairwise comparison tasks from two methods' generations (the paper's Table 2 set-up).

One task per prompt both methods answered: set A and set B, `n_samples` stories each, shown
as excerpts (the first `excerpt_words` words; the full text stays in the task for the rater
to expand). Which method is shown as A is drawn per task from `records.prompt_rng(seed,
prompt_id)`, so a task's order does not depend on which other prompts are present, and it
is recorded in the task (`order`): the page never sees it, the analysis maps answers back
with it.

The task file is JSON with the methods, the seed, the source files and their md5 (DVC's
digest), and a `digest` over the methods and tasks: answers carry it, so answers given on
one task file cannot be analysed against another.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from divwrite.core.files import write_json
from divwrite.core.records import GENERATION_COLUMNS, prompt_rng, read_table
from divwrite.core.tracking import file_md5

FORMAT = "divwrite-human-eval-tasks/1"
SIDES = ("A", "B")
# The two questions of the paper's Figure 6; each is answered "A", "B" or "similar".
QUESTIONS: dict[str, str] = {
    "q1": "Which set has the most interesting, highest-quality story?",
    "q2": "Which set of stories is more diverse?",
}
CHOICES = ("A", "B", "similar")
DEFAULT_EXCERPT_WORDS = 150
_WORD = re.compile(r"\S+")


def excerpt(text: str, words: int) -> tuple[str, bool]:
    """The first `words` words of `text` with its line breaks kept, and whether it was cut."""
    if words < 1:
        raise ValueError(f"excerpt_words must be >= 1, got {words}")
    for count, match in enumerate(_WORD.finditer(text), start=1):
        if count == words:
            cut = match.end()
            return text[:cut].strip(), bool(text[cut:].strip())
    return text.strip(), False


def tasks_digest(methods: Mapping[str, str], tasks: list[dict[str, Any]]) -> str:
    """SHA-256 of the methods and tasks in canonical JSON: the identity of a task set."""
    canonical = json.dumps({"methods": methods, "tasks": tasks}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _samples_by_prompt(path: Path, method: str, n_samples: int) -> tuple[dict[str, str], dict[str, list[dict]]]:
    """A method's prompts (id -> text) and its first `n_samples` samples per prompt (by
    `sample_index`); ValueError naming the file and the prompts when the table is unfit."""
    df = read_table(path, GENERATION_COLUMNS)
    if df.empty:
        raise ValueError(f"{path}: no generations for method {method!r}")
    nulls = [c for c in GENERATION_COLUMNS if df[c].isna().any()]
    if nulls:
        raise ValueError(f"{path}: missing values in column(s) {nulls}")
    if not pd.api.types.is_integer_dtype(df["sample_index"]):
        raise ValueError(f"{path}: sample_index must be integers, got dtype {df['sample_index'].dtype}")
    df = df.assign(prompt_id=df["prompt_id"].astype(str))
    duplicated = df.duplicated(["prompt_id", "sample_index"])
    if duplicated.any():
        pid, index = df.loc[duplicated, ["prompt_id", "sample_index"]].iloc[0]
        raise ValueError(f"{path}: prompt {pid!r} has sample_index {int(index)} more than once")
    prompt_texts = df.groupby("prompt_id")["prompt"].nunique()
    if (prompt_texts > 1).any():
        raise ValueError(
            f"{path}: prompt(s) {sorted(prompt_texts[prompt_texts > 1].index)[:5]} have several prompt texts"
        )
    sizes = df.groupby("prompt_id").size()
    short = sorted(sizes[sizes < n_samples].index)
    if short:
        raise ValueError(
            f"{path}: {len(short)} prompt(s) of method {method!r} have fewer than n_samples={n_samples} samples, "
            f"e.g. {short[:5]} ({int(sizes[short[0]])} samples)"
        )
    prompts, samples = {}, {}
    for pid, group in df.sort_values(["prompt_id", "sample_index"]).groupby("prompt_id", sort=True):
        prompts[pid] = str(group["prompt"].iloc[0])
        first = group.head(n_samples)
        samples[pid] = [{"sample_index": int(i), "text": str(t)} for i, t in zip(first["sample_index"], first["text"])]
    return prompts, samples


def export_tasks(
    gen_a: str | Path,
    gen_b: str | Path,
    method_a: str,
    method_b: str,
    out_path: str | Path,
    seed: int,
    n_samples: int = 4,
    max_prompts: int | None = None,
    excerpt_words: int = DEFAULT_EXCERPT_WORDS,
) -> dict[str, Any]:
    """Write the comparison tasks of `method_a` against `method_b` to `out_path` (JSON,
    atomically) and return them: one task per prompt both tables have, in prompt-id order
    (the first `max_prompts` when given), A/B order drawn per task from `seed`."""
    if method_a == method_b:
        raise ValueError(f"method_a and method_b are both {method_a!r}: compare two different methods")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if max_prompts is not None and max_prompts < 1:
        raise ValueError(f"max_prompts must be >= 1 (or None for all), got {max_prompts}")
    excerpt("", excerpt_words)  # validates excerpt_words
    gen_a, gen_b = Path(gen_a), Path(gen_b)
    prompts_a, samples_a = _samples_by_prompt(gen_a, method_a, n_samples)
    prompts_b, samples_b = _samples_by_prompt(gen_b, method_b, n_samples)
    common = sorted(set(prompts_a) & set(prompts_b))
    if not common:
        raise ValueError(
            f"{gen_a} and {gen_b} have no prompt_id in common: were they generated on the same test prompts?"
        )
    differing = [pid for pid in common if prompts_a[pid] != prompts_b[pid]]
    if differing:
        raise ValueError(f"{gen_a} and {gen_b} give different prompt texts for prompt_id(s) {differing[:5]}")
    if max_prompts is not None:
        common = common[:max_prompts]

    def shown(sample: dict[str, Any]) -> dict[str, Any]:
        text_excerpt, truncated = excerpt(sample["text"], excerpt_words)
        return {**sample, "excerpt": text_excerpt, "truncated": truncated}

    tasks = []
    for pid in common:
        a_first = bool(prompt_rng(seed, pid).integers(2) == 0)
        order = {"A": method_a, "B": method_b} if a_first else {"A": method_b, "B": method_a}
        by_method = {method_a: samples_a[pid], method_b: samples_b[pid]}
        tasks.append(
            {
                "task_id": pid,
                "prompt_id": pid,
                "prompt": prompts_a[pid],
                "order": order,
                "sets": {side: [shown(s) for s in by_method[order[side]]] for side in SIDES},
            }
        )
    methods = {"method_a": method_a, "method_b": method_b}
    document = {
        "format": FORMAT,
        "methods": methods,
        "seed": int(seed),
        "n_samples": n_samples,
        "max_prompts": max_prompts,
        "excerpt_words": excerpt_words,
        "questions": QUESTIONS,
        "choices": list(CHOICES),
        "sources": {
            method_a: {"path": str(gen_a), "md5": file_md5(gen_a)},
            method_b: {"path": str(gen_b), "md5": file_md5(gen_b)},
        },
        "digest": tasks_digest(methods, tasks),
        "tasks": tasks,
    }
    write_json(document, out_path)
    return document


def load_tasks(path: str | Path) -> dict[str, Any]:
    """Read a task file written by `export_tasks`, checking its format and its digest (a
    hand-edited file would silently change what the answers mean)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such task file (run `divwrite human export` first)")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path}: not a divwrite human-evaluation task file (format {FORMAT!r})")
    for key in ("methods", "tasks", "digest"):
        if key not in document:
            raise ValueError(f"{path}: no {key!r}")
    if tasks_digest(document["methods"], document["tasks"]) != document["digest"]:
        raise ValueError(f"{path}: tasks do not match their digest: the file was edited after export")
    return document


def public_tasks(document: Mapping[str, Any]) -> dict[str, Any]:
    """What the rater's page receives: prompts and the two sets, never which method is which."""
    return {
        "digest": document["digest"],
        "questions": document["questions"],
        "choices": document["choices"],
        "tasks": [
            {
                "task_id": t["task_id"],
                "prompt": t["prompt"],
                "sets": {
                    side: [
                        {"excerpt": s["excerpt"], "text": s["text"], "truncated": s["truncated"]}
                        for s in t["sets"][side]
                    ]
                    for side in SIDES
                },
            }
            for t in document["tasks"]
        ],
    }
