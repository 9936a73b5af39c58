"""The paper's claim over several seeds: queued DVC experiments, one per seed, and the test.

`params.yaml` `replicate:` names the seeds, the methods each seed trains (plus `sft`, which
they start from), the claim's comparisons (a weighted method against its unweighted
counterpart) and the quality margin. The seed equal to `params.seed` is the workspace's own
run (`make run`); every other seed is one experiment `seed-<N>`:
`dvc exp run --queue -S seed=<N> -S ~train.methods.<m> ...` (the same queue, copy and
collect machinery as `divwrite ablate`, see `divwrite.ops.experiments`). `seed` seeds the model's
initial weights, the pairs, SFT and preference training, the reward model, sampling and the
human draw; `data_seed` (the corpus and the train/test split) stays, so every seed is
scored on the same test prompts.

`claim_test` reads the per-prompt table of every seed and, for each comparison (a, b):

- per seed: mean difference a - b and a paired t-test over prompts (`metrics.paired_test`);
- over seeds: each prompt's values averaged over the seeds, then the mean difference with a
  Student-t 95% interval and the paired t-test over prompts (the test of record), and in how
  many seeds a was ahead;
- the verdict, decided by rules fixed before any seed ran: a beats b on each of
  `DIVERSITY_CLAIM` (semantic and style diversity, and archetype coverage where the ground
  truth exists) when the seed-averaged difference is positive with p < `alpha`; its quality
  is "within the margin" when the lower end of the interval of the quality difference is
  above `-quality_margin * sd`, sd being the spread over prompts of b's seed-averaged
  quality (a standardised non-inferiority margin; 0.2 is Cohen's "small" effect). The claim
  holds when both do. Where the ground truth exists, the same margin on the true quality
  (sd of b's seed-averaged true quality) decides `true_quality_within_margin`, and a "beats b
  on diversity and true quality together" when the claim holds and that does too.

`write_seeds` writes `reports/seeds.json`, `reports/seeds.md` and `reports/seeds.png` (Figure
2 from the seed-averaged per-prompt values).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from divwrite.core.files import read_json, write_json, write_text
from divwrite.core.params import load_params
from divwrite.core.schema import Params, ReplicateParams
from divwrite.evaluation.metrics import paired_comparison, paired_test
from divwrite.evaluation.premise import premise_over_seeds, premise_seeds_markdown
from divwrite.evaluation.scoring import ALL_METRICS, LOWER_IS_BETTER, summarise
from divwrite.ops.experiments import (
    EVALUATION_TABLE,
    Experiment,
    evaluation_table,
    exp_show,
    experiments,
    methods_to_delete,
    queue_and_run,
)

logger = logging.getLogger(__name__)

PREFIX = "seed"
WORKSPACE = "workspace"
RESULT_FILES = {"json": "reports/seeds.json", "md": "reports/seeds.md", "png": "reports/seeds.png"}
PREMISE_REPORT = "reports/premise.json"  # the premise stage's, one per seed
PREMISE_FILES = {"json": "reports/premise_seeds.json", "md": "reports/premise_seeds.md"}
DIVERSITY_CLAIM = ["semantic_diversity", "style_diversity", "archetype_coverage"]


@dataclass(frozen=True)
class SeedPoint:
    """One seed's experiment: its name and the `-S` overrides that make it."""

    name: str
    seed: int
    overrides: tuple[str, ...]


def seed_points(params: Params) -> list[SeedPoint]:
    """One experiment per seed of `replicate.seeds` other than `params.seed` (the workspace),
    keeping only `sft` and `replicate.methods`."""
    spec = params.replicate
    deleted = methods_to_delete(params.train.methods, spec.methods, "replicate.methods")
    deletions = tuple(f"~train.methods.{m}" for m in deleted)
    return [SeedPoint(f"{PREFIX}-{s}", s, (f"seed={s}", *deletions)) for s in spec.seeds if s != params.seed]


# -- the test -----------------------------------------------------------------------------


def _by_prompt(table: pd.DataFrame, method: str, metric: str) -> pd.Series:
    rows = table[table["method"] == method]
    return pd.Series(rows[metric].to_numpy(dtype=np.float64), index=rows["prompt_id"].astype(str)).sort_index()


def seed_averaged(tables: Mapping[Any, pd.DataFrame], methods: Sequence[str]) -> pd.DataFrame:
    """Per method and prompt, each metric averaged over the seeds (prompts every seed
    evaluated for that method); columns `method`, `prompt_id`, the metrics."""
    metrics = [m for m in ALL_METRICS if all(m in t.columns for t in tables.values())]
    stacked = pd.concat([t[t["method"].isin(methods)].assign(_seed=s) for s, t in tables.items()])
    n_seeds = stacked.groupby(["method", "prompt_id"])["_seed"].nunique()
    complete = n_seeds[n_seeds == len(tables)].index
    stacked = stacked.set_index(["method", "prompt_id"]).loc[lambda d: d.index.isin(complete)].reset_index()
    averaged = stacked.groupby(["method", "prompt_id"], sort=True)[metrics].mean().reset_index()
    order = {m: i for i, m in enumerate(methods)}
    return averaged.sort_values(["method", "prompt_id"], key=lambda c: c.map(order) if c.name == "method" else c)


def claim_test(
    tables: Mapping[Any, pd.DataFrame],
    comparisons: Sequence[tuple[str, str]],
    quality_margin: float = 0.2,
    alpha: float = 0.05,
    confidence: float = 0.95,
) -> list[dict[str, Any]]:
    """The claim for each comparison (a, b) over the seeds' per-prompt tables (seed -> the
    `evaluate` stage's `per_prompt.parquet`); see the module docstring for the rules."""
    methods = sorted({m for pair in comparisons for m in pair})
    averaged = seed_averaged(tables, methods)
    metrics = [m for m in ALL_METRICS if m in averaged.columns]
    out = []
    for a, b in comparisons:
        per_metric: dict[str, Any] = {}
        for metric in metrics:
            pooled = paired_comparison(
                _by_prompt(averaged, a, metric), _by_prompt(averaged, b, metric), metric in LOWER_IS_BETTER, confidence
            )
            per_seed = {}
            for seed, table in tables.items():
                x, y = _by_prompt(table, a, metric), _by_prompt(table, b, metric)
                per_seed[str(seed)] = {k: v for k, v in paired_test(x, y).items() if k in ("mean_diff", "p_value")}
            sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
            ahead = sum(sign * r["mean_diff"] > 0 for r in per_seed.values())
            per_metric[metric] = {**pooled, "per_seed": per_seed, "seeds_a_ahead": int(ahead)}
        q_sd = float(_by_prompt(averaged, b, "quality").std(ddof=1))
        margin = quality_margin * q_sd
        quality = per_metric["quality"]
        diversity = {
            m: bool(per_metric[m]["mean_diff"] > 0 and per_metric[m]["p_value"] < alpha)
            for m in DIVERSITY_CLAIM
            if m in per_metric
        }
        within = bool(quality["ci_low"] > -margin)
        verdict = {
            "more_diverse": diversity,
            "quality_within_margin": within,
            "claim_holds": bool(all(diversity.values()) and within),
        }
        if "true_quality" in per_metric:
            true_margin = quality_margin * float(_by_prompt(averaged, b, "true_quality").std(ddof=1))
            verdict["true_quality_margin"] = true_margin
            verdict["true_quality_within_margin"] = bool(per_metric["true_quality"]["ci_low"] > -true_margin)
            verdict["beats_on_diversity_and_true_quality"] = (
                verdict["claim_holds"] and verdict["true_quality_within_margin"]
            )
        out.append(
            {
                "a": a,
                "b": b,
                "n_seeds": len(tables),
                "seeds": [str(s) for s in tables],
                "n_prompts": int(quality["n"]),
                "metrics": per_metric,
                "quality_margin": margin,
                "verdict": verdict,
            }
        )
    return out


# -- reports ------------------------------------------------------------------------------


def _pm(value: float, digits: int = 3) -> str:
    return f"{value:+.{digits}f}"


def seeds_markdown(rows: Sequence[Mapping[str, Any]], claims: Sequence[Mapping[str, Any]], alpha: float) -> str:
    """Tables of the seed-averaged results and of each comparison, and the verdicts."""
    from divwrite.evaluation.reporting import results_markdown

    seeds = claims[0]["seeds"] if claims else []
    lines = [
        f"# The claim over {len(seeds)} seeds ({', '.join(seeds)})",
        "",
        "## Seed-averaged results",
        "",
        "Each prompt's metric averaged over the seeds; then means with 95% intervals over prompts.",
        "",
        results_markdown(rows),
    ]
    for claim in claims:
        a, b = claim["a"], claim["b"]
        verdict = claim["verdict"]
        lines += [
            f"## {a} vs {b}",
            "",
            f"Difference {a} - {b} of the seed-averaged per-prompt values ({claim['n_prompts']} prompts): "
            "mean [95% interval], paired t-test p; per seed, the mean difference (p).",
            "",
            "| metric | difference | p | better | " + " | ".join(f"seed {s}" for s in claim["seeds"]) + " |",
            "|---|---:|---:|---|" + "---:|" * len(claim["seeds"]),
        ]
        for metric, r in claim["metrics"].items():
            per_seed = [
                f"{_pm(r['per_seed'][s]['mean_diff'])} ({r['per_seed'][s]['p_value']:.2g})" for s in claim["seeds"]
            ]
            better = {"a": a, "b": b, "tie": "-"}[r["better"]]
            lines.append(
                f"| {metric} | {_pm(r['mean_diff'])} [{_pm(r['ci_low'])}, {_pm(r['ci_high'])}] | {r['p_value']:.2g} "
                f"| {better} | " + " | ".join(per_seed) + " |"
            )
        more = ", ".join(f"{m} {'yes' if ok else 'no'}" for m, ok in verdict["more_diverse"].items())
        lines += [
            "",
            f"- more diverse (difference > 0, p < {alpha:g}): {more}",
            f"- quality within the margin (interval's lower end > -{claim['quality_margin']:.3f}): "
            f"{'yes' if verdict['quality_within_margin'] else 'no'}",
            f"- **the claim {'holds' if verdict['claim_holds'] else 'does not hold'}** for {a} vs {b}",
        ]
        if "true_quality_margin" in verdict:
            lines += [
                f"- true quality within the same margin (interval's lower end > -{verdict['true_quality_margin']:.3f}): "
                f"{'yes' if verdict['true_quality_within_margin'] else 'no'}; "
                f"**{a} {'beats' if verdict['beats_on_diversity_and_true_quality'] else 'does not beat'} {b} on "
                "diversity and true quality together**",
            ]
        lines.append("")
    return "\n".join(lines) + "\n"


def write_seeds(
    tables: Mapping[Any, pd.DataFrame], spec: ReplicateParams, root: Path, confidence: float = 0.95
) -> dict[str, Path]:
    """`reports/seeds.{json,md,png}` under `root` from the seeds' per-prompt tables."""
    from divwrite.evaluation.figures import plot_quality_vs_diversity

    shown = ["sft", *spec.methods, "human"]
    present = [m for m in dict.fromkeys(shown) if all((t["method"] == m).any() for t in tables.values())]
    averaged = seed_averaged(tables, present)
    rows = [summarise(m, averaged[averaged["method"] == m].drop(columns="method"), confidence) for m in present]
    claims = claim_test(tables, spec.comparisons, spec.quality_margin, spec.alpha, confidence)
    per_seed_means = {
        str(s): {m: t[t["method"] == m][[c for c in ALL_METRICS if c in t.columns]].mean().to_dict() for m in present}
        for s, t in tables.items()
    }
    paths = {k: root / v for k, v in RESULT_FILES.items()}
    write_json({"rows": rows, "claims": claims, "per_seed_means": per_seed_means}, paths["json"])
    write_text(seeds_markdown(rows, claims, spec.alpha), paths["md"])
    plot_quality_vs_diversity(rows, paths["png"], subtitle=f"seed-averaged over {len(tables)} seeds")
    return paths


# -- the command --------------------------------------------------------------------------


def collect_tables(
    root: Path, params: Params, points: Sequence[SeedPoint], found: Mapping[str, Experiment]
) -> dict[str, pd.DataFrame]:
    """seed -> per-prompt table: the workspace's `data/evaluation/per_prompt.parquet` for
    `params.seed`, each successful experiment's (from the DVC cache) for the others, looked
    up in `found` (`experiments(exp_show(...))` of the commit they were queued on). Raises
    RuntimeError naming the seeds without results."""
    tables: dict[str, pd.DataFrame] = {}
    workspace_table = root / EVALUATION_TABLE
    if workspace_table.exists():
        tables[str(params.seed)] = pd.read_parquet(workspace_table)
    missing = [] if workspace_table.exists() else [f"{params.seed} (the workspace: run `make run`)"]
    for point in points:
        exp = found.get(point.name)
        if exp is None or exp.state != "success":
            missing.append(f"{point.seed} ({exp.state if exp else 'not run'})")
            continue
        tables[str(point.seed)] = evaluation_table(root, exp.rev)
    if missing:
        hint = " (committed since they were queued? --collect-only --baseline <that commit>)" if not found else ""
        raise RuntimeError(f"no results for seed(s) {', '.join(missing)}{hint}")
    return dict(sorted(tables.items(), key=lambda kv: int(kv[0])))


def run_seeds(
    root: Path | None = None,
    dry_run: bool = False,
    collect_only: bool = False,
    force: bool = False,
    baseline: str | None = None,
) -> int:
    """`divwrite seeds`: queue one experiment per extra seed, run the queue, then test the
    claim into `reports/seeds.*`. Returns 0 when every seed has results."""
    root = (root or Path.cwd()).resolve()
    params = load_params(root / "params.yaml")
    points = seed_points(params)
    if not collect_only:
        queue_and_run(root, points, force=force, dry_run=dry_run)
        if dry_run:
            return 0
    found = experiments(exp_show(root, baseline))
    try:
        tables = collect_tables(root, params, points, found)
    except RuntimeError as err:
        logger.error("%s (see `dvc queue logs seed-<N>`)", err)
        return 1
    paths = write_seeds(tables, params.replicate, root, params.evaluate.confidence)
    premises = collect_premises(root, params, points, found)
    if premises:
        summary = premise_over_seeds(premises)
        write_json(summary, root / PREMISE_FILES["json"])
        write_text(premise_seeds_markdown(summary), root / PREMISE_FILES["md"])
        print(premise_seeds_markdown(summary))  # noqa: T201 - the premise over the seeds is the command's output too
    print(paths["md"].read_text(encoding="utf-8"))  # noqa: T201 - the claim's tables are the command's output
    return 0


def collect_premises(
    root: Path, params: Params, points: Sequence[SeedPoint], found: Mapping[str, Experiment]
) -> dict[str, dict[str, Any]]:
    """seed -> its `reports/premise.json` (the workspace's for `params.seed`, each successful
    experiment's in `found` from its commit); seeds without one are left out."""
    import dvc.api

    premises: dict[str, dict[str, Any]] = {}
    workspace = root / PREMISE_REPORT
    if workspace.exists() and read_json(workspace).get("ground_truth"):
        premises[str(params.seed)] = read_json(workspace)
    for point in points:
        exp = found.get(point.name)
        if exp is None or exp.state != "success":
            continue
        try:
            report = json.loads(dvc.api.read(PREMISE_REPORT, repo=str(root), rev=exp.rev))
        except (FileNotFoundError, OSError, ValueError):  # an experiment from before the premise stage
            continue
        if report.get("ground_truth"):
            premises[str(point.seed)] = report
    return premises
