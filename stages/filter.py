"""filter: drop moderation text, deleted/empty bodies, over-long responses, thin prompts
(METHOD.md step 2), report per rule and split what went (share, mean score of removed vs
kept), gate the result (warning when a rule removes too much or the better-scored), and
write the dataset card (the paper's Table 3)."""

import pandas as pd

from divwrite.core.files import write_json, write_text
from divwrite.core.records import GIVEN_PAIR_COLUMNS, RESPONSE_COLUMNS, write_table
from divwrite.core.schema import Params
from divwrite.core.stage import read_input, run_stage
from divwrite.core.tracking import log_artifact
from divwrite.data.card import card_markdown, dataset_card, with_given_pairs
from divwrite.data.filtering import apply_removals, removal_reasons, removal_stats
from divwrite.data.gates import check_responses, gate_docs_dir, report_gate
from divwrite.training.tokenizer import chat_token_lengths, load_tokenizer

SPLITS = ("train", "test")


def main(params: Params) -> dict:
    cfg = params.filter
    tokenizer = load_tokenizer("models/base")
    ingested, kept, removed, removal = {}, {}, {}, {}
    for split in SPLITS:
        ingested[split] = df = read_input(f"data/ingested/{split}.parquet", RESPONSE_COLUMNS)
        lengths = chat_token_lengths(tokenizer, list(df["prompt"]), list(df["response"]))
        reasons = removal_reasons(
            df,
            token_lengths=lengths,
            max_tokens=cfg.max_tokens,
            min_responses=cfg.min_responses,
            drop_duplicates=cfg.drop_duplicates,
        )
        kept[split], removed[split] = apply_removals(df, reasons)
        removal[split] = removal_stats(df, reasons)
        if kept[split].empty:
            raise ValueError(f"filter removed every {split} response: {removed[split]}")
    gate = check_responses(
        pd.concat(kept.values()),
        params.gates,
        name="filter",
        min_responses_per_prompt=cfg.min_responses,
        removal=removal,
        docs_dir=gate_docs_dir(params.gates, "filter"),
    )
    for split in SPLITS:
        write_table(kept[split], f"data/filtered/{split}.parquet")
    card = {"ingested": dataset_card(ingested), "filtered": dataset_card(kept)}
    if params.data.layout == "pairs":  # the card also counts the given pairs, before and after the filter
        given = {split: read_input(f"data/given_pairs/{split}.parquet", GIVEN_PAIR_COLUMNS) for split in SPLITS}
        card = with_given_pairs(card, given, kept)
    write_json(card, "reports/dataset_card.json")
    write_text(card_markdown(card, "Dataset card (the paper's Table 3)"), "reports/dataset_card.md")
    log_artifact("reports/dataset_card.md")
    stats = {"removed": removed, "removal": removal, "gate": report_gate(gate), "card": card}
    write_json({"removed": removed, "removal": removal, "gate": stats["gate"]}, "reports/stages/filter.json")
    return stats


if __name__ == "__main__":
    run_stage("filter", main)
