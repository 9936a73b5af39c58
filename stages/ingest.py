"""ingest: read the source, build prompts, transform scores, split by prompt (METHOD.md step 1).

Outputs data/ingested/{train,test}.parquet (one row per response), the given pairs of the
pairs layout in data/given_pairs/{train,test}.parquet (`divwrite.data.pairs`; no rows for
the score layouts) and, for the built-in corpus, its ground truth in data/truth/ (read by
evaluation only). A Great Expectations gate checks the table before anything is written.
"""

import logging
from pathlib import Path

import pandas as pd

from divwrite.core.files import write_json
from divwrite.core.records import write_table
from divwrite.core.schema import Params
from divwrite.core.stage import run_stage
from divwrite.data.gates import check_responses, gate_docs_dir, report_gate
from divwrite.data.given_pairs import given_pair_stats
from divwrite.data.ingest import ingest
from divwrite.data.pairs import empty_given_pairs, ingest_pairs
from divwrite.data.raw_dir import untracked_note
from divwrite.data.sources import load_records_from_spec, source_stats

logger = logging.getLogger("divwrite.stages.ingest")


def main(params: Params) -> dict:
    note = untracked_note(params.data.source, Path.cwd())  # DVC re-runs ingest for data/raw/ only
    if note:
        logger.warning(note)
    records, corpus = load_records_from_spec(params.data, corpus=params.corpus.model_dump(), seed=params.data_seed)
    if params.data.layout == "pairs":  # judged pairs, no scores: upvotes derived from the pairs
        train, test, given = ingest_pairs(records, test_fraction=params.ingest.test_fraction, seed=params.data_seed)
    else:
        train, test = ingest(
            records,
            test_fraction=params.ingest.test_fraction,
            transform_iterations=params.ingest.transform_iterations,
            seed=params.data_seed,
        )
        given = {"train": empty_given_pairs(), "test": empty_given_pairs()}
    gate = check_responses(
        pd.concat([train, test]),
        params.gates,
        name="ingest",
        before_filter=True,
        docs_dir=gate_docs_dir(params.gates, "ingest"),
    )
    write_table(train, "data/ingested/train.parquet")
    write_table(test, "data/ingested/test.parquet")
    for split, pairs in given.items():
        write_table(pairs, f"data/given_pairs/{split}.parquet")
    truth_responses = corpus.truth_responses if corpus else pd.DataFrame({"prompt_id": [], "response_id": []})
    truth_prompts = corpus.truth_prompts if corpus else pd.DataFrame({"prompt_id": [], "elements": []})
    write_table(truth_responses, "data/truth/responses.parquet")
    write_table(truth_prompts, "data/truth/prompts.parquet")
    stats = {
        "source": source_stats(records),
        "prompts": {"train": int(train.prompt_id.nunique()), "test": int(test.prompt_id.nunique())},
        "responses": {"train": len(train), "test": len(test)},
        "gate": report_gate(gate),
    }
    if params.data.layout == "pairs":
        stats["given_pairs"] = {split: given_pair_stats(pairs) for split, pairs in given.items()}
    write_json(stats, "reports/stages/ingest.json")
    return stats


if __name__ == "__main__":
    run_stage("ingest", main)
