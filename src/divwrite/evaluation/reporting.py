"""Results files for DVC and readers, and the paper's Figure 2 (quality vs diversity).

Input everywhere: a list of `evaluation.summarise` rows, one per method, in the order
they should be shown. `write_results(rows, out_dir)` writes, under `out_dir` (the
pipeline's `reports/`):

- `results.json` - the rows as they are (sorted keys, method order kept);
- `results.md` - a markdown table, each metric as `mean [ci_low, ci_high]`;
- `metrics.json` - `{"<method>": {"n_prompts": n, "<metric>": mean, ...}}` for `dvc metrics`;
- `plots/quality_vs_diversity.csv` - one line per method: quality, semantic and style
  diversity with their intervals, for a `dvc plots` scatter;
- `plots/lexical_diversity.csv` - one line per method: compression ratio, homogenization and
  n-gram diversity with their intervals (`dvc plots` bars).

With `comparisons` (`evaluation.compare_methods`) and `examples` (method -> samples of one
prompt) results.md also holds the paired tests, the figures and the paper's Table 1.

Figures, each a PNG with stable bytes (Agg canvas, fixed size, no "Software" metadata):
`plot_quality_vs_diversity` (Figure 2), `plot_lexical_diversity` (Figures 4-5),
`plot_pareto` (the quality-diversity Pareto front), `plot_ablation` (Figure 3).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from divwrite.core.files import atomic_path, write_json
from divwrite.evaluation.scoring import ALL_METRICS, METRIC_COLUMNS, TRUTH_COLUMNS

HUMAN_METHODS = {"human", "gold"}
PLOT_METRICS = ["quality", "semantic_diversity", "style_diversity"]
LEXICAL_METRICS = ["compression_ratio", "homogenization", "ngram_diversity"]
FIGURES = {  # file under reports/ -> caption in results.md
    "quality_vs_diversity.png": "Figure 2: quality vs semantic and style diversity",
    "lexical_diversity.png": "Figures 4-5: compression ratio, homogenization, n-gram diversity",
    "pareto.png": "Pareto front of quality vs diversity",
}
EXAMPLE_WORDS = 60  # words of each sample shown in results.md's Table 1
FIG_SIZE_IN = (10.0, 4.2)
FIG_DPI = 100  # -> 1000 x 420 pixels


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
    _write_plot_csv(rows, LEXICAL_METRICS, paths["lexical_csv"])
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


def plot_quality_vs_diversity(rows: Sequence[dict[str, Any]], path: str | os.PathLike, subtitle: str = "") -> Path:
    """The paper's Figure 2 as a PNG: quality (x) against semantic diversity (left) and style
    diversity (right), one point per method with its confidence interval on both axes,
    labelled; the human ("gold") row drawn as a black star with dotted guide lines.

    Uses the Agg canvas directly (no pyplot state), a fixed size (1000 x 420 px) and no
    "Software" metadata, so the same rows give the same bytes.
    """
    rows = list(rows)
    validate_rows(rows)
    fig, axes = _figure(2)
    colours = _colours(rows)
    for ax, metric, title in zip(axes, PLOT_METRICS[1:], ("Semantic diversity", "Style diversity")):
        for row, colour in zip(rows, colours):
            if "quality" not in row or metric not in row:
                continue
            q, d = row["quality"], row[metric]
            human = row["method"].lower() in HUMAN_METHODS
            ax.errorbar(
                q["mean"],
                d["mean"],
                xerr=[[q["mean"] - q["ci_low"]], [q["ci_high"] - q["mean"]]],
                yerr=[[d["mean"] - d["ci_low"]], [d["ci_high"] - d["mean"]]],
                fmt="*" if human else "o",
                markersize=14 if human else 7,
                color=colour,
                ecolor=colour,
                elinewidth=1.2,
                capsize=3,
                label=f"{row['method']} (human)" if human and row["method"].lower() != "human" else row["method"],
            )
            if human:
                ax.axvline(q["mean"], color="black", linestyle=":", linewidth=0.8)
                ax.axhline(d["mean"], color="black", linestyle=":", linewidth=0.8)
            ax.annotate(
                row["method"],
                (q["mean"], d["mean"]),
                xytext=(6, 6),
                textcoords="offset points",
                fontsize=8,
                color=colour,
            )
        ax.set_xlabel("Quality (mean reward)")
        ax.set_ylabel(f"{title} (mean pairwise cosine distance)")
        ax.set_title(title)
        ax.grid(True, linewidth=0.4, alpha=0.5)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(handles, labels, fontsize=7, loc="best")
    fig.suptitle(
        "Quality vs diversity per method (cf. Chung et al. 2025, Fig. 2); bars: confidence intervals over prompts"
        + (f"; {subtitle}" if subtitle else ""),
        fontsize=10,
    )
    return _save(fig, path)


def _figure(panels: int, size: tuple[float, float] = FIG_SIZE_IN):
    """A figure on the Agg canvas (no pyplot state) with `panels` axes side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=FIG_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    return fig, list(axes)


def _save(fig, path: str | os.PathLike) -> Path:
    """Write `fig` as a PNG atomically, without the "Software" metadata (stable bytes)."""
    path = Path(path)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=FIG_DPI, metadata={"Software": None})
    return path


def _colours(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Black for the human row, the tab10 cycle for the methods in order."""
    out, k = [], 0
    for row in rows:
        if row["method"].lower() in HUMAN_METHODS:
            out.append("black")
        else:
            out.append(f"C{k % 10}")
            k += 1
    return out


def plot_lexical_diversity(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """The paper's Figures 4-5: compression ratio, homogenization (ROUGE-L) and n-gram
    diversity per method, one bar each with its confidence interval; the human row black."""
    rows = list(rows)
    validate_rows(rows)
    fig, axes = _figure(3, (12.0, 4.2))
    colours = _colours(rows)
    titles = {
        "compression_ratio": "Compression ratio (lower = more diverse)",
        "homogenization": "Homogenization, ROUGE-L (lower = more diverse)",
        "ngram_diversity": "N-gram diversity (higher = more diverse)",
    }
    for ax, metric in zip(axes, LEXICAL_METRICS):
        shown = [(r, c) for r, c in zip(rows, colours) if metric in r]
        means = [r[metric]["mean"] for r, _ in shown]
        err = [
            [r[metric]["mean"] - r[metric]["ci_low"] for r, _ in shown],
            [r[metric]["ci_high"] - r[metric]["mean"] for r, _ in shown],
        ]
        ax.bar(range(len(shown)), means, yerr=err, color=[c for _, c in shown], capsize=3)
        ax.set_xticks(range(len(shown)), [r["method"] for r, _ in shown], rotation=60, ha="right", fontsize=8)
        ax.set_title(titles[metric], fontsize=9)
        lo = min(r[metric]["ci_low"] for r, _ in shown) if shown else 0.0
        hi = max(r[metric]["ci_high"] for r, _ in shown) if shown else 1.0
        pad = 0.1 * (hi - lo or 1.0)
        ax.set_ylim(lo - pad, hi + pad)
        ax.grid(True, axis="y", linewidth=0.4, alpha=0.5)
    fig.suptitle(
        "Lexical diversity per method (cf. Chung et al. 2025, Figs. 4-5); bars: confidence intervals", fontsize=10
    )
    return _save(fig, path)


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """The names whose (quality, diversity) no other point dominates (at least as high on
    both, higher on one), in order of increasing quality."""
    front = [
        name
        for name, (q, d) in points.items()
        if not any(q2 >= q and d2 >= d and (q2 > q or d2 > d) for other, (q2, d2) in points.items() if other != name)
    ]
    return sorted(front, key=lambda n: (points[n][0], -points[n][1]))


def plot_pareto(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Quality vs semantic and vs style diversity with each panel's Pareto front over the
    methods (human excluded, drawn as a black star for reference): front members coloured and
    joined, dominated methods grey."""
    rows = list(rows)
    validate_rows(rows)
    fig, axes = _figure(2)
    for ax, metric in zip(axes, PLOT_METRICS[1:]):
        shown = [r for r in rows if "quality" in r and metric in r]
        points = {
            r["method"]: (r["quality"]["mean"], r[metric]["mean"])
            for r in shown
            if r["method"].lower() not in HUMAN_METHODS
        }
        front = pareto_front(points)
        for r in shown:
            q, d = r["quality"]["mean"], r[metric]["mean"]
            if r["method"].lower() in HUMAN_METHODS:
                ax.plot(q, d, "*", color="black", markersize=13)
            else:
                ax.plot(q, d, "o", color="C3" if r["method"] in front else "0.6", markersize=7)
            ax.annotate(r["method"], (q, d), xytext=(5, 5), textcoords="offset points", fontsize=8)
        if front:
            ax.plot([points[n][0] for n in front], [points[n][1] for n in front], "-", color="C3", linewidth=1.2)
        ax.set_xlabel("Quality (mean reward)")
        ax.set_ylabel(f"{metric.replace('_', ' ').capitalize()} (mean pairwise cosine distance)")
        ax.set_title(f"Pareto front: {', '.join(front) or '-'}", fontsize=9)
        ax.grid(True, linewidth=0.4, alpha=0.5)
    fig.suptitle("Quality-diversity Pareto front over methods (red); human row: black star", fontsize=10)
    return _save(fig, path)


def plot_ablation(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """The paper's Figure 3 from `divwrite ablate`'s rows (`reports/ablation.json`): quality,
    semantic and style diversity against the maximum responses per prompt, one line per
    method and variant ("all" responses drawn right of the largest cap)."""
    done = [r for r in rows if r.get("metrics")]
    sizes = sorted({r["max_responses"] for r in done if r["max_responses"]})
    x_of = {n: i for i, n in enumerate(sizes)}
    x_all = len(sizes)
    fig, axes = _figure(3, (13.0, 4.2))
    series: dict[tuple[str, str], list[tuple[int, dict[str, float]]]] = {}
    for r in done:
        for method, stats in r["metrics"].items():
            if method == "human":
                continue
            x = x_of[r["max_responses"]] if r["max_responses"] else x_all
            series.setdefault((method, r["variant"]), []).append((x, stats))
    for ax, metric in zip(axes, PLOT_METRICS):
        for k, ((method, variant), points) in enumerate(sorted(series.items())):
            points = sorted((x, st[metric]) for x, st in points if metric in st)
            style = "-" if variant == "plain" else "--" if k % 2 else ":"
            ax.plot([p[0] for p in points], [p[1] for p in points], style, marker="o", label=f"{method} / {variant}")
        ax.set_xticks(range(x_all + 1), [str(n) for n in sizes] + ["all"])
        ax.set_xlabel("Maximum responses per prompt")
        ax.set_title(metric.replace("_", " ").capitalize(), fontsize=9)
        ax.grid(True, linewidth=0.4, alpha=0.5)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(handles, labels, fontsize=7, loc="best")
    fig.suptitle("Ablation (cf. Chung et al. 2025, Fig. 3): responses per prompt x variant", fontsize=10)
    return _save(fig, path)
