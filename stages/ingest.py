"""ingest: read the source, build prompts, transform scores, split by prompt (METHOD.md step 1).

Outputs data/ingested/{train,test}.parquet (one row per response) and, for the built-in
corpus, its ground truth in data/truth/ (read by evaluation only). A Great Expectations
gate checks the table before anything is written.
"""

import pandas as pd

from divwrite.gates import GateBounds, check_responses, write_summary
from divwrite.ingest import ingest, load_records
from divwrite.records import write_json, write_table
from divwrite.stage import run_stage


def main(params: dict) -> dict:
    cfg = params["ingest"]
    records, corpus = load_records(cfg["source"], hf_split=cfg["hf_split"], corpus=params["corpus"], seed=params["seed"])
    train, test = ingest(records, test_fraction=cfg["test_fraction"], transform_iterations=cfg["transform_iterations"], seed=params["seed"])
    # Empty bodies are still here (filter removes them), hence allow_empty.
    gate = check_responses(
        pd.concat([train, test]), GateBounds.from_params(params["gates"]), name="ingest", allow_empty=True
    )
    write_table(train, "data/ingested/train.parquet")
    write_table(test, "data/ingested/test.parquet")
    truth_responses = corpus.truth_responses if corpus else pd.DataFrame({"prompt_id": [], "response_id": []})
    truth_prompts = corpus.truth_prompts if corpus else pd.DataFrame({"prompt_id": [], "elements": []})
    write_table(truth_responses, "data/truth/responses.parquet")
    write_table(truth_prompts, "data/truth/prompts.parquet")
    stats = {
        "records": len(records),
        "prompts": {"train": int(train.prompt_id.nunique()), "test": int(test.prompt_id.nunique())},
        "responses": {"train": len(train), "test": len(test)},
        "gate": {"success": gate["success"], "expectations": len(gate["expectations"])},
    }
    write_json(stats, "reports/stages/ingest.json")
    write_summary(gate, "reports/gates/ingest.json")
    return stats


if __name__ == "__main__":
    run_stage("ingest", main, ["seed", "ingest", "corpus", "gates"])
