"""Results files for DVC and readers (the figures: `divwrite.evaluation.figures`).

Input everywhere: a list of `evaluation.summarise` rows, one per method, in the order
they should be shown. `write_results(rows, out_dir)` writes, under `out_dir` (the
pipeline's `reports/`):

- `results.json` - the rows as they are (sorted keys, method order kept);
- `results.md` - a markdown table, each metric as `mean [ci_low, ci_high]`;
- `metrics.json` - `{"<method>": {"n_prompts": n, "<metric>": mean, ...}}` for `dvc metrics`;
- `plots/quality_vs_diversity.csv` - one line per method: quality, semantic and style
  diversity with their intervals, for a `dvc plots` scatter;
- `plots/lexical_diversity.csv` - one line per method: compression ratio, homogenization,
  n-gram diversity and the distinct outputs (semantic, and truth where known) with their
  intervals (`dvc plots` bars).

With `comparisons` (`evaluation.compare_methods`) and `examples` (method -> samples of one
prompt) results.md also holds the paired tests, the figures (`FIGURES`, drawn by
`evaluation.figures`) and the paper's Table 1.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from divwrite.core.files import atomic_path, write_json
from divwrite.evaluation.scoring import ALL_METRICS, METRIC_COLUMNS, TRUTH_COLUMNS

PLOT_METRICS = ["quality", "semantic_diversity", "style_diversity"]
LEXICAL_METRICS = ["compression_ratio", "homogenization", "ngram_diversity"]
DISTINCT_METRICS = ["distinct_semantic", "distinct_truth"]  # NoveltyBench's distinct outputs
FIGURES = {  # file under reports/ -> caption in results.md
    "quality_vs_diversity.png": "Figure 2: quality vs semantic and style diversity",
    "lexical_diversity.png": "Figures 4-5: compression ratio, homogenization, n-gram diversity; distinct outputs",
    "pareto.png": "Pareto front of quality vs diversity",
}
EXAMPLE_WORDS = 60  # words of each sample shown in results.md's Table 1


def _metric_names(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Metrics present in any row, in `ALL_METRICS` order."""
    return [m for m in ALL_METRICS if any(m in r for r in rows)]


def validate_rows(rows: Sequence[dict[str, Any]]) -> None:
    """Check the fixed row shape of `evaluation.summarise`; raise ValueError if broken."""
    if not rows:
        raise ValueError("no result rows")
    seen: set[str] = set()
    for row in rows:
        method = row.get("method")
        if not isinstance(method, str) or not method:
            raise ValueError(f"row without a method name: {row}")
        if method in seen:
            raise ValueError(f"method {method!r} appears twice")
        seen.add(method)
        if not isinstance(row.get("n_prompts"), int):
            raise ValueError(f"{method}: n_prompts must be an int")
        for key, value in row.items():
            if key in ("method", "n_prompts"):
                continue
            if key not in ALL_METRICS:
                raise ValueError(f"{method}: unknown key {key!r}")
            if not isinstance(value, dict) or set(value) != {"mean", "ci_low", "ci_high"}:
                raise ValueError(f"{method}.{key}: expected {{mean, ci_low, ci_high}}, got {value}")
            if not all(isinstance(v, (int, float)) for v in value.values()):
                raise ValueError(f"{method}.{key}: values must be numbers")


def format_cell(stat: dict[str, float] | None, digits: int = 3) -> str:
    """`mean [ci_low, ci_high]`, or "-" for a metric a method lacks."""
    if stat is None:
        return "-"
    return f"{stat['mean']:.{digits}f} [{stat['ci_low']:.{digits}f}, {stat['ci_high']:.{digits}f}]"


def results_markdown(rows: Sequence[dict[str, Any]], digits: int = 3) -> str:
    """The results table in markdown, one line per method, then a legend of the columns."""
    names = _metric_names(rows)
    lines = [
        "| method | n_prompts | " + " | ".join(names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for row in rows:
        cells = [format_cell(row.get(m), digits) for m in names]
        lines.append(f"| {row['method']} | {row['n_prompts']} | " + " | ".join(cells) + " |")
    described = {**METRIC_COLUMNS, **TRUTH_COLUMNS}
    lines += ["", "Means over prompts with Student-t confidence intervals over prompts.", ""]
    lines += [f"- `{m}`: {described[m]}" for m in names]
    return "\n".join(lines) + "\n"


def _write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def comparisons_markdown(comparisons: Sequence[dict[str, Any]], alpha: float = 0.05, digits: int = 3) -> str:
    """One line per compared pair (a vs b), one column per metric: the mean difference
    a - b over prompts and its paired-test p; bold where p < `alpha`."""
    if not comparisons:
        return ""
    metrics = list(dict.fromkeys(c["metric"] for c in comparisons))
    pairs = list(dict.fromkeys((c["a"], c["b"]) for c in comparisons))
    cell = {(c["a"], c["b"], c["metric"]): c for c in comparisons}
    lines = [
        "| a vs b | " + " | ".join(metrics) + " |",
        "|---|" + "---:|" * len(metrics),
    ]
    for a, b in pairs:
        cells = []
        for m in metrics:
            c = cell.get((a, b, m))
            if c is None:
                cells.append("-")
                continue
            text = f"{c['mean_diff']:+.{digits}f} (p={c['p_value']:.2g})"
            cells.append(f"**{text}**" if c["p_value"] < alpha else text)
        lines.append(f"| {a} vs {b} | " + " | ".join(cells) + " |")
    lines += ["", f"Mean difference a - b over prompts, paired t-test p (bold: p < {alpha:g})."]
    return "\n".join(lines) + "\n"


def _excerpt(text: str, words: int = EXAMPLE_WORDS) -> str:
    tokens = text.split()
    short = " ".join(tokens[:words]) + (" ..." if len(tokens) > words else "")
    return short.replace("|", "\\|")


def examples_markdown(prompt: str, examples: dict[str, Sequence[str]]) -> str:
    """The paper's Table 1: the samples of each method for one prompt (first words each)."""
    lines = [f"Prompt: *{_excerpt(prompt, 80)}*", "", "| method | samples |", "|---|---|"]
    for method, samples in examples.items():
        cells = "<br><br>".join(f"{i + 1}. {_excerpt(t)}" for i, t in enumerate(samples))
        lines.append(f"| {method} | {cells} |")
    return "\n".join(lines) + "\n"


def write_results(
    rows: Sequence[dict[str, Any]],
    out_dir: str | os.PathLike,
    comparisons: Sequence[dict[str, Any]] | None = None,
    examples: tuple[str, dict[str, Sequence[str]]] | None = None,
    figures: Sequence[str] = (),
) -> dict[str, Path]:
    """Write results.json, results.md, metrics.json, plots/quality_vs_diversity.csv and
    plots/lexical_diversity.csv under `out_dir` (see the module docstring); with
    `comparisons` also comparisons.json. results.md: the table, then the paired tests, the
    `figures` (file names under `out_dir`, see `FIGURES`) and `examples` = (prompt, method ->
    samples). Returns the paths by short name."""
    rows = list(rows)
    validate_rows(rows)
    out = Path(out_dir)
    paths = {
        "results_json": out / "results.json",
        "results_md": out / "results.md",
        "metrics_json": out / "metrics.json",
        "plot_csv": out / "plots" / "quality_vs_diversity.csv",
        "lexical_csv": out / "plots" / "lexical_diversity.csv",
    }
    write_json(rows, paths["results_json"])
    md = "# Results\n\n" + results_markdown(rows)
    if comparisons:
        paths["comparisons_json"] = out / "comparisons.json"
        write_json(list(comparisons), paths["comparisons_json"])
        md += "\n## Paired comparisons over prompts\n\n" + comparisons_markdown(comparisons)
    if figures:
        md += "\n## Figures\n\n" + "\n\n".join(f"![{FIGURES.get(f, f)}]({f})" for f in figures) + "\n"
    if examples:
        md += "\n## Sample generations (cf. the paper's Table 1)\n\n" + examples_markdown(*examples)
    _write_text(md, paths["results_md"])
    flat = {
        r["method"]: {"n_prompts": r["n_prompts"], **{m: r[m]["mean"] for m in ALL_METRICS if m in r}} for r in rows
    }
    write_json(flat, paths["metrics_json"])

    _write_plot_csv(rows, PLOT_METRICS, paths["plot_csv"])
    _write_plot_csv(rows, LEXICAL_METRICS + DISTINCT_METRICS, paths["lexical_csv"])
    return paths


def _write_plot_csv(rows: Sequence[dict[str, Any]], metrics: Sequence[str], path: Path) -> None:
    """One line per method: each metric's mean, ci_low, ci_high (empty when missing)."""
    header = ["method"] + [f"{m}{s}" for m in metrics for s in ("", "_ci_low", "_ci_high")]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for r in rows:
            cells: list[Any] = [r["method"]]
            for m in metrics:
                stat = r.get(m)
                cells += [repr(float(stat[k])) if stat else "" for k in ("mean", "ci_low", "ci_high")]
            writer.writerow(cells)
