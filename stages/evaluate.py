"""evaluate: quality, semantic and style diversity (and the ground truth on the built-in
corpus) of every method's samples and of the human responses; results, table, figure.

Writes reports/results.json (fixed shape), reports/comparisons.json (paired tests over
prompts), reports/results.md (tables, figures, sample generations), reports/metrics.json
(DVC metrics), reports/plots/*.csv (DVC plots) and the figures (Figure 2, Figures 4-5, the
Pareto front) as PNGs, logged to this stage's MLflow run; one nested MLflow run per method
(`eval/<method>`, tag `divwrite.role = method-eval`: `tracking.METHOD_EVAL_FILTER`) so
`mlflow ui` compares methods.
"""

import pandas as pd

from divwrite.core.records import RESPONSE_COLUMNS, write_table
from divwrite.core.schema import Params
from divwrite.core.stage import read_input, run_stage
from divwrite.core.tracking import log_artifact, log_metrics, method_eval_run
from divwrite.evaluation.figures import plot_lexical_diversity, plot_pareto, plot_quality_vs_diversity
from divwrite.evaluation.reporting import FIGURES, write_results
from divwrite.evaluation.reward import SequenceRewardModel
from divwrite.evaluation.scoring import compare_methods, comparison_pairs, evaluate_samples, human_samples, summarise
from divwrite.weighting.embedders import load_embedder


def samples_by_prompt(gen: pd.DataFrame, prompt_ids: set[str]) -> dict[str, list[str]]:
    gen = gen[gen.prompt_id.isin(prompt_ids)].sort_values(["prompt_id", "sample_index"])
    return {pid: list(g["text"]) for pid, g in gen.groupby("prompt_id", sort=True)}


def main(params: Params) -> dict:
    cfg = params.evaluate
    embedders = params.deviate  # jina-embeddings-v3 (the paper's) needs the same opt-in as in `embed`
    test = read_input("data/filtered/test.parquet", RESPONSE_COLUMNS)
    prompts = dict(zip(test.prompt_id, test.prompt))
    truth = read_input("data/truth/prompts.parquet")
    truth_prompts = {pid: list(el) for pid, el in zip(truth.prompt_id, truth.elements)} if len(truth) else None
    scorer = dict(
        reward_model=SequenceRewardModel.load("models/reward"),
        semantic=load_embedder(embedders.semantic_embedder, trust_remote_code=embedders.trust_remote_code),
        style=load_embedder(embedders.style_embedder, trust_remote_code=embedders.trust_remote_code),
        truth_prompts=truth_prompts,
        distinct_threshold=cfg.distinct_threshold,
    )
    generations = {
        m: read_input(f"data/generations/{m}.parquet", ["prompt_id", "sample_index", "text"])
        for m in params.train.methods
    }
    # Every method is scored on the same prompts: those that all of them generated for.
    evaluated = set.intersection(*(set(g.prompt_id) for g in generations.values()))
    sets = {m: samples_by_prompt(g, evaluated) for m, g in generations.items()}
    sets["human"] = human_samples(
        test[test.prompt_id.isin(evaluated)],
        n_samples=params.generate.n_samples,
        min_responses=cfg.min_human_responses,
        seed=params.seed,
    )
    rows, per_prompt = [], []
    for method, samples in sets.items():
        table = evaluate_samples(samples, prompts, **scorer)
        rows.append(summarise(method, table, cfg.confidence))
        per_prompt.append(table.assign(method=method))
        spec = params.train.methods[method].model_dump() if method in params.train.methods else None
        with method_eval_run(method, spec):
            log_metrics({k: v["mean"] for k, v in rows[-1].items() if isinstance(v, dict)})
    table = pd.concat(per_prompt)
    write_table(table, "data/evaluation/per_prompt.parquet")
    pairs = comparison_pairs(params.train.methods) + [(m, "human") for m in generations]
    comparisons = compare_methods(table, pairs, cfg.confidence)
    example = min(sets["human"] or evaluated)  # Table 1: the first prompt (by id) with a human row
    examples = (prompts[example], {m: s[example] for m, s in sets.items() if example in s})
    for name, plot in zip(FIGURES, (plot_quality_vs_diversity, plot_lexical_diversity, plot_pareto)):
        log_artifact(plot(rows, f"reports/{name}"), artifact_path="figures")
    write_results(rows, "reports", comparisons=comparisons, examples=examples, figures=list(FIGURES))
    return {r["method"]: {k: v["mean"] for k, v in r.items() if isinstance(v, dict)} for r in rows}


if __name__ == "__main__":
    run_stage("evaluate", main)
