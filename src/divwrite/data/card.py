"""The dataset card: the paper's Table 3 for whatever data ran.

Per split: prompts, responses, mean words per prompt (each prompt once) and per response
(whitespace-separated, as the gates count them), and responses per prompt as min, 25th
percentile, median, mean, 75th percentile and max. The paper's post-training data, for
comparison: train 95,805 prompts / 421,330 responses, ~32 prompt words, ~500 response
words, responses per prompt mean 4.4, min 2, median 2, 75th pct 4, max 500.

For the pairs layout (`divwrite.data.pairs`) the card also counts the given pairs per split
(`with_given_pairs`): at ingest all of them, after the filter those whose two responses it kept.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from divwrite.core.params import get_param
from divwrite.data.expectations import count_words
from divwrite.data.given_pairs import through_filter

CARD_FIELDS = (
    ("prompts", "prompts"),
    ("responses", "responses"),
    ("mean_prompt_words", "prompt words (mean)"),
    ("mean_response_words", "response words (mean)"),
    ("responses_per_prompt.mean", "responses / prompt: mean"),
    ("responses_per_prompt.min", "responses / prompt: min"),
    ("responses_per_prompt.q25", "responses / prompt: 25th pct"),
    ("responses_per_prompt.median", "responses / prompt: median"),
    ("responses_per_prompt.q75", "responses / prompt: 75th pct"),
    ("responses_per_prompt.max", "responses / prompt: max"),
)


PAIR_CARD_FIELDS = (
    ("given_pairs.pairs", "given pairs"),
    ("given_pairs.prompts", "prompts with given pairs"),
    ("given_pairs.pairs_per_prompt.mean", "given pairs / prompt: mean"),
    ("given_pairs.pairs_per_prompt.min", "given pairs / prompt: min"),
    ("given_pairs.pairs_per_prompt.median", "given pairs / prompt: median"),
    ("given_pairs.pairs_per_prompt.max", "given pairs / prompt: max"),
    ("given_pairs.responses_per_pair", "given pairs / distinct response"),
)


def pairs_card(pairs: pd.DataFrame) -> dict:
    """The given pairs of one split: `pairs`, `prompts` with pairs, `pairs_per_prompt` (min,
    median, mean, max) and `responses_per_pair`, the pairs per distinct response in them (how
    often a response is compared; 0.5 when each is in one pair). An empty table gives zeros."""
    per_prompt = pairs.groupby("prompt_id", sort=True).size().to_numpy()
    if per_prompt.size == 0:
        return {"pairs": 0, "prompts": 0, "pairs_per_prompt": dict.fromkeys(("min", "median", "mean", "max"), 0),
                "responses_per_pair": 0.0}  # fmt: skip
    responses = pd.concat([pairs["chosen_id"], pairs["rejected_id"]]).nunique()
    return {
        "pairs": int(len(pairs)),
        "prompts": int(per_prompt.size),
        "pairs_per_prompt": {
            "min": int(per_prompt.min()),
            "median": float(np.median(per_prompt)),
            "mean": round(float(per_prompt.mean()), 3),
            "max": int(per_prompt.max()),
        },
        "responses_per_pair": round(len(pairs) / responses, 3),
    }


def with_given_pairs(
    cards: dict[str, dict[str, dict]], given: Mapping[str, pd.DataFrame], kept: Mapping[str, pd.DataFrame]
) -> dict[str, dict[str, dict]]:
    """`cards` (`{"ingested": {split: ...}, "filtered": {split: ...}}`) with `given_pairs`
    (`pairs_card`) in each split: the `given` pairs at ingest, after the filter those whose
    chosen and rejected are both among the `kept` responses of the split."""
    out = {stage: {split: dict(card) for split, card in splits.items()} for stage, splits in cards.items()}
    for split, pairs in given.items():
        out["ingested"][split]["given_pairs"] = pairs_card(pairs)
        out["filtered"][split]["given_pairs"] = pairs_card(through_filter(pairs, kept[split])[0])
    return out


def split_card(df: pd.DataFrame) -> dict:
    """Table 3 figures of one responses table (columns prompt_id, prompt, response).

    Quartiles use numpy's default (linear) interpolation; an empty table gives zeros.
    """
    if df.empty:
        zeros = {k: 0.0 for k in ("min", "q25", "median", "mean", "q75", "max")}
        return {"prompts": 0, "responses": 0, "mean_prompt_words": 0.0, "mean_response_words": 0.0,
                "responses_per_prompt": zeros}  # fmt: skip
    per_prompt = df.groupby("prompt_id", sort=True).size().to_numpy()
    prompts = df.drop_duplicates("prompt_id")["prompt"]
    q25, median, q75 = np.percentile(per_prompt, [25, 50, 75])
    return {
        "prompts": int(per_prompt.size),
        "responses": int(len(df)),
        "mean_prompt_words": round(float(np.mean(count_words(prompts))), 2),
        "mean_response_words": round(float(np.nanmean(count_words(df["response"]))), 2),
        "responses_per_prompt": {
            "min": int(per_prompt.min()),
            "q25": float(q25),
            "median": float(median),
            "mean": round(float(per_prompt.mean()), 3),
            "q75": float(q75),
            "max": int(per_prompt.max()),
        },
    }


def dataset_card(splits: Mapping[str, pd.DataFrame]) -> dict:
    """`{split: split_card(table)}` for each split, in the given order."""
    return {name: split_card(df) for name, df in splits.items()}


def card_markdown(cards: Mapping[str, Mapping[str, dict]], title: str) -> str:
    """Table 3 as Markdown: one column per (stage, split), e.g. `{"filtered": {"train": ...}}`."""
    columns = [(stage, split) for stage, splits in cards.items() for split in splits]
    header = "| | " + " | ".join(f"{stage} {split}" for stage, split in columns) + " |"
    lines = [f"# {title}", "", header, "|---" * (len(columns) + 1) + "|"]
    with_pairs = all("given_pairs" in cards[stage][split] for stage, split in columns)
    for key, label in CARD_FIELDS + (PAIR_CARD_FIELDS if with_pairs else ()):
        cells = []
        for stage, split in columns:
            value = get_param(cards[stage][split], key)
            cells.append(f"{value:,}" if isinstance(value, int) else f"{value:,.2f}".rstrip("0").rstrip("."))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
