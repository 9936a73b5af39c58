"""The evaluation's figures from `evaluation.summarise` rows (one per method, in the order
they should be shown), each a PNG with stable bytes (Agg canvas, fixed size, no "Software"
metadata): `plot_quality_vs_diversity` (the paper's Figure 2), `plot_lexical_diversity`
(Figures 4-5, with the distinct outputs beside them), `plot_pareto` (the quality-diversity
Pareto front) and `plot_ablation` (Figure 3, from `divwrite ablate`'s rows). The results
files and the figures' captions are `evaluation.reporting`'s.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from divwrite.core.files import atomic_path
from divwrite.evaluation.reporting import DISTINCT_METRICS, LEXICAL_METRICS, PLOT_METRICS, validate_rows

HUMAN_METHODS = {"human", "gold"}
FIG_SIZE_IN = (10.0, 4.2)
FIG_DPI = 100  # -> 1000 x 420 pixels


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
    diversity per method, one bar each with its confidence interval; the human row black.
    A fourth panel holds the distinct outputs (NoveltyBench's distinct_k): semantic as solid
    bars and, where the rows have it, the ground truth's as hatched bars beside them."""
    rows = list(rows)
    validate_rows(rows)
    fig, axes = _figure(4, (12.0, 4.2))
    colours = _colours(rows)
    titles = {
        "compression_ratio": "Compression ratio\n(lower = more diverse)",
        "homogenization": "Homogenization, ROUGE-L\n(lower = more diverse)",
        "ngram_diversity": "N-gram diversity\n(higher = more diverse)",
    }
    for ax, metric in zip(axes, LEXICAL_METRICS):
        _bars(ax, rows, colours, [metric])
        ax.set_title(titles[metric], fontsize=9)
    shown = _bars(axes[3], rows, colours, DISTINCT_METRICS)
    if len(shown) > 1:
        note = "solid: semantic, hatched: truth"
    else:
        note = shown[0].removeprefix("distinct_") if shown else "not in these results"
    axes[3].set_title(f"Distinct outputs (higher = more diverse)\n{note}", fontsize=9)
    fig.suptitle(
        "Lexical diversity and distinct outputs per method (cf. Chung et al. 2025, Figs. 4-5; "
        "NoveltyBench's distinct_k); bars: confidence intervals",
        fontsize=10,
    )
    return _save(fig, path)


def _bars(ax, rows: Sequence[dict[str, Any]], colours: Sequence[str], metrics: Sequence[str]) -> list[str]:
    """Bars with confidence intervals of each of `metrics` that any row has, side by side per
    method (the first solid, the others hatched), methods with none of them left out, the y
    range fitted to the intervals. Returns the metrics drawn."""
    metrics = [m for m in metrics if any(m in r for r in rows)]
    kept = [(r, c) for r, c in zip(rows, colours) if any(m in r for m in metrics)]
    width = 0.8 / max(len(metrics), 1)
    for k, metric in enumerate(metrics):
        shown = [(j, r, c) for j, (r, c) in enumerate(kept) if metric in r]
        offset = (k - (len(metrics) - 1) / 2) * width
        means = [r[metric]["mean"] for _, r, _ in shown]
        err = [
            [r[metric]["mean"] - r[metric]["ci_low"] for _, r, _ in shown],
            [r[metric]["ci_high"] - r[metric]["mean"] for _, r, _ in shown],
        ]
        x, cols = [j + offset for j, _, _ in shown], [c for _, _, c in shown]
        if k == 0:
            ax.bar(x, means, width, yerr=err, color=cols, capsize=3)
        else:
            ax.bar(x, means, width, yerr=err, color="white", edgecolor=cols, hatch="///", capsize=3)
    ax.set_xticks(range(len(kept)), [r["method"] for r, _ in kept], rotation=60, ha="right", fontsize=8)
    stats = [r[m] for r, _ in kept for m in metrics if m in r]
    lo = min(s["ci_low"] for s in stats) if stats else 0.0
    hi = max(s["ci_high"] for s in stats) if stats else 1.0
    pad = 0.1 * (hi - lo or 1.0)
    ax.set_ylim(lo - pad, hi + pad)
    ax.grid(True, axis="y", linewidth=0.4, alpha=0.5)
    return metrics


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
