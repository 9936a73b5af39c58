"""Scored records -> a pairwise source file, for the pairs layout (`data.layout: pairs`).

Real pairwise data (UltraFeedback-, LitBench-style, human A/B judgements) comes as such a file;
this makes one from data with scores, so the pairs layout can run on real stories here: the
HANNA ratings (../shared/data/hanna, `profiles/hanna_pairs.yaml`). Per prompt (record), every
two responses whose scores differ make a pair, the higher-scored one chosen, `margin` = the
score difference; ties are skipped. The prompt is the title, or title + "\\n" + body when the
post has one. Responses whose text repeats an earlier one of the prompt are skipped.

    python -m divwrite.data.pairs_convert ../shared/data/hanna/hanna_per_prompt.jsonl \\
        data/raw/hanna_pairs.jsonl --column prompt=writing_prompt --column chosen=better_story \\
        --column rejected=worse_story --column margin=rating_gap

writes one JSON object a line with those column names (the canonical names by default); the
source is read as params.yaml's `data:` reads a per_prompt file (`sources.load_records`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from divwrite.core.files import write_text
from divwrite.core.logs import setup_logging
from divwrite.core.records import prompt_id, prompt_rng
from divwrite.data.sources import load_records

logger = logging.getLogger(__name__)

PAIR_FIELDS = ("prompt", "chosen", "rejected", "margin")


def pairs_from_scores(
    records: Sequence[Mapping[str, Any]],
    *,
    names: Mapping[str, str] | None = None,
    max_pairs_per_prompt: int = 0,
    seed: int = 42,
) -> list[dict[str, Any]]:
    """Pair rows from canonical per-prompt records (`post_title`, `post_text`, `comment_texts`,
    `comment_scores`), as the module docstring says; `names` renames the fields (canonical ->
    output column). `max_pairs_per_prompt` > 0 keeps that many of a prompt's pairs, drawn with
    `prompt_rng(seed, prompt id)` and kept in their order. Rows: prompt by prompt, pairs by
    (i, j) with i < j the responses' positions."""
    if max_pairs_per_prompt < 0:
        raise ValueError(f"max_pairs_per_prompt must be >= 0, got {max_pairs_per_prompt}")
    out_name = {f: f for f in PAIR_FIELDS} | dict(names or {})
    unknown = sorted(set(out_name) - set(PAIR_FIELDS))
    if unknown:
        raise ValueError(f"unknown pair fields {unknown}; the fields are {list(PAIR_FIELDS)}")
    rows: list[dict[str, Any]] = []
    for rec in records:
        title, body = rec["post_title"], rec["post_text"] or ""
        prompt = title + ("\n" + body if body else "")
        first = {text: score for text, score in reversed(list(zip(rec["comment_texts"], rec["comment_scores"])))}
        texts = [t for t in dict.fromkeys(rec["comment_texts"]) if t.strip()]
        pairs = [(a, b) for a, b in itertools.combinations(texts, 2) if first[a] != first[b]]
        if 0 < max_pairs_per_prompt < len(pairs):
            keep = prompt_rng(seed, prompt_id(title, body)).choice(len(pairs), max_pairs_per_prompt, replace=False)
            pairs = [pairs[i] for i in sorted(keep.tolist())]
        for a, b in pairs:
            chosen, rejected = (a, b) if first[a] > first[b] else (b, a)
            margin = round(abs(float(first[a]) - float(first[b])), 6)
            values = {"prompt": prompt, "chosen": chosen, "rejected": rejected, "margin": margin}
            rows.append({out_name[f]: values[f] for f in PAIR_FIELDS})
    return rows


def write_jsonl(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """`rows` as JSON Lines (UTF-8, one object a line), written atomically."""
    return write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), path)


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(prog="python -m divwrite.data.pairs_convert", description=__doc__)
    parser.add_argument("source", help="a per_prompt file with scores (.jsonl, .json, .parquet, .csv)")
    parser.add_argument("out", type=Path, help="the pairs file to write (.jsonl)")
    parser.add_argument("--column", action="append", default=[], metavar="FIELD=NAME",
                        help="output column name of prompt, chosen, rejected or margin")  # fmt: skip
    parser.add_argument("--max-pairs-per-prompt", type=int, default=0, help="0 = every pair")
    parser.add_argument("--max-prompts", type=int, default=0, help="only the first N records (0 = all)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    names = dict(item.split("=", 1) for item in args.column)
    records, _ = load_records(args.source)
    records = records[: args.max_prompts] if args.max_prompts > 0 else records
    try:
        rows = pairs_from_scores(records, names=names, max_pairs_per_prompt=args.max_pairs_per_prompt, seed=args.seed)
    except ValueError as err:
        logger.error("%s", err)
        return 2
    write_jsonl(rows, args.out)
    logger.info("%s: %d pairs from %d prompts", args.out, len(rows), len(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
