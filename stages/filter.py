"""filter: drop moderation text, deleted/empty bodies, over-long responses, thin prompts (METHOD.md step 2)."""

from divwrite.filtering import filter_responses
from divwrite.records import RESPONSE_COLUMNS, write_json, write_table
from divwrite.stage import read_input, run_stage
from divwrite.tokenizer import chat_token_lengths, load_tokenizer


def main(params: dict) -> dict:
    cfg = params["filter"]
    tokenizer = load_tokenizer("models/base")
    stats = {}
    for split in ("train", "test"):
        df = read_input(f"data/ingested/{split}.parquet", RESPONSE_COLUMNS)
        lengths = chat_token_lengths(tokenizer, list(df["prompt"]), list(df["response"]))
        kept, stats[split] = filter_responses(
            df, token_lengths=lengths, max_tokens=cfg["max_tokens"], min_responses=cfg["min_responses"]
        )
        if kept.empty:
            raise ValueError(f"filter removed every {split} response: {stats[split]}")
        write_table(kept, f"data/filtered/{split}.parquet")
    write_json(stats, "reports/stages/filter.json")
    return stats


if __name__ == "__main__":
    run_stage("filter", main, ["filter"])
