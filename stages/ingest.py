"""ingest: read the source, build prompts, transform scores, split by prompt (METHOD.md step 1).

Outputs data/ingested/{train,test}.parquet (one row per response) and, for the built-in
corpus, its ground truth in data/truth/ (read by evaluation only). A Great Expectations
gate checks the table before anything is written.
"""

import sys
from pathlib import Path

import pandas as pd

from divwrite.core.files import write_json
from divwrite.core.records import write_table
from divwrite.core.stage import run_stage
from divwrite.data.gates import GateBounds, check_responses, gate_docs_dir, report_gate
from divwrite.data.ingest import SourceSpec, ingest, load_records_from_spec, source_stats


def warn_if_untracked(source: str) -> None:
    """DVC only notices changes to a local source under data/raw/ (a dependency of ingest)."""
    if source == "builtin" or source.startswith("hf:"):
        return
    if not Path(source).resolve().is_relative_to(Path("data/raw").resolve()):
        print(f"ingest: note: {source} is outside data/raw/, so DVC will not re-run when it changes", file=sys.stderr)


def main(params: dict) -> dict:
    spec = SourceSpec.from_params(params["data"])
    warn_if_untracked(spec.source)
    records, corpus = load_records_from_spec(spec, corpus=params["corpus"], seed=params["data_seed"])
    cfg = params["ingest"]
    train, test = ingest(
        records,
        test_fraction=cfg["test_fraction"],
        transform_iterations=cfg["transform_iterations"],
        seed=params["data_seed"],
    )
    bounds = GateBounds.from_params(params["gates"])
    gate = check_responses(
        pd.concat([train, test]), bounds, name="ingest", before_filter=True, docs_dir=gate_docs_dir(params, "ingest")
    )
    write_table(train, "data/ingested/train.parquet")
    write_table(test, "data/ingested/test.parquet")
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
    write_json(stats, "reports/stages/ingest.json")
    return stats


if __name__ == "__main__":
    run_stage("ingest", main, ["data_seed", "data", "ingest", "corpus", "gates"])
