"""Dataset card (the paper's Table 3) against hand-computed figures."""

from __future__ import annotations

import pandas as pd

from divwrite.data.card import card_markdown, dataset_card, split_card


def table(counts: dict[str, int]) -> pd.DataFrame:
    """Prompt p has counts[p] responses; prompt text 'w w ...' with len(p) words; response k has k + 1 words."""
    rows = []
    for pid, n in counts.items():
        for k in range(n):
            rows.append({"prompt_id": pid, "prompt": " ".join(["w"] * len(pid)) + "\n", "response": "x " * (k + 1)})
    return pd.DataFrame(rows)


def test_split_card_by_hand() -> None:
    # responses per prompt 2, 3, 5, 10: min 2, q25 2.75, median 4, mean 5, q75 6.25, max 10
    df = table({"a": 2, "bb": 3, "ccc": 5, "dddd": 10})
    card = split_card(df)
    assert card["prompts"] == 4 and card["responses"] == 20
    assert card["mean_prompt_words"] == 2.5  # (1 + 2 + 3 + 4) / 4: each prompt once
    # words: (1+2) + (1+2+3) + (1..5) + (1..10) = 3 + 6 + 15 + 55 = 79 over 20 responses
    assert card["mean_response_words"] == 3.95
    assert card["responses_per_prompt"] == {"min": 2, "q25": 2.75, "median": 4.0, "mean": 5.0, "q75": 6.25, "max": 10}


def test_empty_split_and_markdown() -> None:
    assert split_card(table({}).reindex(columns=["prompt_id", "prompt", "response"]))["prompts"] == 0
    cards = {"filtered": dataset_card({"train": table({"a": 2, "bb": 4}), "test": table({"c": 2})})}
    md = card_markdown(cards, "Card")
    lines = md.splitlines()
    assert lines[0] == "# Card" and lines[2] == "| | filtered train | filtered test |"
    assert "| prompts | 2 | 1 |" in lines
    assert "| responses / prompt: mean | 3 | 2 |" in lines
    assert "| response words (mean) | 2.17 | 1.5 |" in lines  # (1+2+1+2+3+4) / 6 = 2.1667
