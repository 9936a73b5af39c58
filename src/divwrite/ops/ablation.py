"""The paper's Figure 3 ablation (METHOD.md, "Ablation") as queued DVC experiments.

The grid comes from the `ablation` section of `params.yaml`: one experiment per
`max_responses` x `variant`, named `abl-mr<N>-<variant>` (`abl-mrall-<variant>` for 0 = all
responses). Each experiment is `dvc exp run --queue` with `-S` overrides:

- the variant's overrides (e.g. `deviate.min_weight=0.5`), flattened to dotted keys
  (`core.params.flatten`) and written by `dvc.override_args`;
- `deviate.max_responses=<N>`;
- `~train.methods.<m>` (Hydra's deletion syntax) for every method that is neither `sft` nor
  in `ablation.methods` (`experiments.methods_to_delete`).

Queueing, running the queue (with the `-C` copies that let the experiments reuse the
baseline) and reading the experiments back are `divwrite.ops.experiments`, which `divwrite
seeds` shares.

`collect` reads the experiments of the current commit from `dvc exp show --json`: state,
params and the `reports/metrics.json` metric (this project commits `reports/`, so experiment
commits carry it), else the metrics recomputed from the experiment's evaluation table
(`experiments.metrics_from_evaluation`). `write_ablation` writes `reports/ablation.json`,
`reports/ablation.csv`, `reports/ablation.md` and the Figure 3 PNG `reports/ablation.png`.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from divwrite.core.files import atomic_path, write_json
from divwrite.core.params import deep_merge, flatten, get_param, load_params, unflatten, validate_params
from divwrite.core.schema import Params
from divwrite.core.vcs import hydra_value, override_args
from divwrite.ops.experiments import (
    EVALUATION_TABLE,
    METRICS_FILE,
    exp_show,
    experiments,
    methods_to_delete,
    metrics_from_evaluation,
    queue_and_run,
)

logger = logging.getLogger(__name__)

PREFIX = "abl"
RESULT_FILES = {
    "json": "reports/ablation.json",
    "csv": "reports/ablation.csv",
    "md": "reports/ablation.md",
    "png": "reports/ablation.png",
}


@dataclass(frozen=True)
class GridPoint:
    """One experiment of the grid: its name and the `-S` overrides that make it."""

    name: str
    max_responses: int
    variant: str
    overrides: tuple[str, ...]


# -- the grid -----------------------------------------------------------------------------


def experiment_name(max_responses: int, variant: str) -> str:
    """`abl-mr4-plain`, `abl-mrall-high-quality` (0 = every response)."""
    return f"{PREFIX}-mr{max_responses if max_responses else 'all'}-{variant}"


def variant_overrides(params: Params) -> dict[str, dict[str, Any]]:
    """`ablation.variants` as flat `key -> value` overrides per variant, each checked: it does
    not set what the grid sets itself, every value can be written as a `-S` override, and
    `params.yaml` with it applied still fits the schema (a misspelt key or a wrong type is a
    `ParamsError` naming the variant)."""
    base = params.model_dump()
    variants: dict[str, dict[str, Any]] = {}
    for name, overrides in params.ablation.variants.items():
        flat = flatten(overrides or {})
        for key, value in flat.items():
            if key == "deviate.max_responses" or key == "train" or key.startswith("train.methods"):
                raise ValueError(f"ablation.variants.{name}: {key} is set by the grid itself")
            hydra_value(value)  # raises on values a -S override cannot carry
        validate_params(deep_merge(base, unflatten(flat)), label=f"ablation.variants.{name}")
        variants[name] = flat
    return variants


def build_grid(
    params: Params,
    max_responses: Sequence[int] | None = None,
    variants: Sequence[str] | None = None,
) -> list[GridPoint]:
    """The grid of `params.ablation`, max_responses-major, in params order; optionally only
    the given `max_responses` values and `variants` (each must be in the grid)."""
    sizes = params.ablation.max_responses
    all_variants = variant_overrides(params)
    deleted = methods_to_delete(params.train.methods, params.ablation.methods, "ablation.methods")
    if max_responses is not None:
        missing = [n for n in max_responses if n not in sizes]
        if missing:
            raise ValueError(f"--max-responses {missing}: not in ablation.max_responses {sizes}")
        sizes = [n for n in sizes if n in set(max_responses)]
    names = list(all_variants)
    if variants is not None:
        missing_names = [v for v in variants if v not in all_variants]
        if missing_names:
            raise ValueError(f"unknown variant(s) {missing_names}; ablation.variants has {names}")
        names = [v for v in names if v in set(variants)]
    points = []
    for n in sizes:
        for variant in names:
            overrides = override_args(all_variants[variant])
            overrides.append(f"deviate.max_responses={n}")
            overrides += [f"~train.methods.{m}" for m in deleted]
            points.append(GridPoint(experiment_name(n, variant), n, variant, tuple(overrides)))
    return points


# -- collecting ---------------------------------------------------------------------------


def collect(
    root: Path,
    points: Sequence[GridPoint],
    show: Sequence[Mapping[str, Any]] | None = None,
    load_metrics: Any = None,
) -> list[dict[str, Any]]:
    """One row per grid point: name, max_responses, variant, state, the experiment's rev and
    deviate params, its methods, and `metrics` (method -> reports/metrics.json entry) for a
    successful experiment. `show` defaults to `dvc exp show --json` of `root`; `load_metrics(rev,
    confidence)` (default `metrics_from_evaluation`) fills in metrics the commit lacks."""
    show = exp_show(root) if show is None else show
    found = experiments(show)
    load = load_metrics or (lambda rev, confidence: metrics_from_evaluation(root, rev, confidence))
    rows = []
    for point in points:
        exp = found.get(point.name)
        row: dict[str, Any] = {
            "name": point.name,
            "max_responses": point.max_responses,
            "variant": point.variant,
            "overrides": list(point.overrides),
            "state": exp.state if exp else "missing",
            "rev": exp.rev if exp else None,
        }
        if exp is not None:
            row["params"] = {
                key: get_param(exp.params, key)
                for key in ("deviate.max_responses", "deviate.min_weight", "deviate.high_quality_first")
            }
            for override in point.overrides:
                key = override.split("=", 1)[0]
                if "=" in override and not key.startswith("~"):
                    row["params"].setdefault(key, get_param(exp.params, key))
            row["trained"] = list(get_param(exp.params, "train.methods") or {})
        if exp is not None and exp.state == "success":
            if exp.metrics is not None:
                metrics, source = exp.metrics, METRICS_FILE
            else:
                confidence = get_param(exp.params, "evaluate.confidence") or 0.95
                metrics, source = load(exp.rev, confidence), f"{EVALUATION_TABLE} (DVC cache)"
            order = [m for m in row["trained"] if m in metrics] + sorted(m for m in metrics if m not in row["trained"])
            row["metrics_source"] = source
            row["metrics"] = {m: metrics[m] for m in order}
        rows.append(row)
    return rows


def _metric_names(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    from divwrite.evaluation.scoring import ALL_METRICS

    present = {k for r in rows for stats in (r.get("metrics") or {}).values() for k in stats}
    return [m for m in ["n_prompts", *ALL_METRICS] if m in present] + sorted(present - {"n_prompts", *ALL_METRICS})


def write_ablation(rows: Sequence[Mapping[str, Any]], root: Path) -> dict[str, Path]:
    """`reports/ablation.json` (the rows), `.csv` (one line per experiment and method), `.md`
    (the same as a table) and `.png` (Figure 3, `figures.plot_ablation`, when any grid point
    has results) under `root`."""
    paths = {k: root / v for k, v in RESULT_FILES.items()}
    write_json(list(rows), paths["json"])
    names = _metric_names(rows)
    lines = [
        [r["name"], r["max_responses"], r["variant"], method, *[stats.get(m, "") for m in names]]
        for r in rows
        for method, stats in (r.get("metrics") or {}).items()
    ]
    header = ["experiment", "max_responses", "variant", "method", *names]
    with atomic_path(paths["csv"]) as tmp, tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(lines)

    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    md = [
        "# Ablation (Figure 3): responses per prompt x variant",
        "",
        "`max_responses` 0 = every response of a prompt. One experiment per line group; "
        "`dvc exp show` has the full params.",
        "",
        "| " + " | ".join(header) + " |",
        "|---|---:|---|---|" + "---:|" * len(names),
    ]
    md += ["| " + " | ".join(cell(v) for v in line) + " |" for line in lines]
    if any(r.get("metrics") for r in rows):
        from divwrite.evaluation.figures import plot_ablation

        plot_ablation(rows, paths["png"])
        md += ["", "![Figure 3: quality and diversity against responses per prompt](ablation.png)"]
    missing = [f"{r['name']} ({r['state']})" for r in rows if not r.get("metrics")]
    if missing:
        md += ["", "No results: " + ", ".join(missing)]
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text("\n".join(md) + "\n", encoding="utf-8")
    return paths


# -- the command --------------------------------------------------------------------------


def run_ablation(
    root: Path | None = None,
    max_responses: Sequence[int] | None = None,
    variants: Sequence[str] | None = None,
    dry_run: bool = False,
    collect_only: bool = False,
    force: bool = False,
) -> int:
    """`divwrite ablate`: queue the grid (or the chosen part of it), run the queue, collect
    `reports/ablation.*`. Returns 0 when every chosen grid point has results."""
    root = (root or Path.cwd()).resolve()
    points = build_grid(load_params(root / "params.yaml"), max_responses, variants)
    if not collect_only:
        queue_and_run(root, points, force=force, dry_run=dry_run)
        if dry_run:
            return 0
    rows = collect(root, points)
    paths = write_ablation(rows, root)
    print(paths["md"].read_text(encoding="utf-8"))  # noqa: T201 - the results table is the command's output
    failed = [r for r in rows if not r.get("metrics")]
    for r in failed:
        logger.warning("%s: %s (see `dvc queue logs %s`)", r["name"], r["state"], r["name"])
    logger.info("%d/%d experiments in %s", len(rows) - len(failed), len(rows), paths["json"])
    return 1 if failed else 0
