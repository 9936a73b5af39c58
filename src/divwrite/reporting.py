"""Results files for DVC and readers, and the paper's Figure 2 (quality vs diversity).

Input everywhere: a list of `evaluation.summarise` rows, one per method, in the order
they should be shown. `write_results(rows, out_dir)` writes, under `out_dir` (the
pipeline's `reports/`):

- `results.json` - the rows as they are (sorted keys, method order kept);
- `results.md` - a markdown table, each metric as `mean [ci_low, ci_high]`;
- `metrics.json` - `{"<method>": {"n_prompts": n, "<metric>": mean, ...}}` for `dvc metrics`;
- `plots/quality_vs_diversity.csv` - one line per method: quality, semantic and style
  diversity with their intervals, for a `dvc plots` scatter.

`plot_quality_vs_diversity(rows, path)` draws Figure 2 as a PNG with stable bytes.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from divwrite.evaluation import ALL_METRICS, METRIC_COLUMNS, TRUTH_COLUMNS
from divwrite.records import atomic_path, write_json

HUMAN_METHODS = {"human", "gold"}
PLOT_METRICS = ["quality", "semantic_diversity", "style_diversity"]
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


def write_results(rows: Sequence[dict[str, Any]], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write results.json, results.md, metrics.json and plots/quality_vs_diversity.csv under
    `out_dir` (see the module docstring); returns their paths by short name."""
    rows = list(rows)
    validate_rows(rows)
    out = Path(out_dir)
    paths = {
        "results_json": out / "results.json",
        "results_md": out / "results.md",
        "metrics_json": out / "metrics.json",
        "plot_csv": out / "plots" / "quality_vs_diversity.csv",
    }
    write_json(rows, paths["results_json"])
    _write_text(results_markdown(rows), paths["results_md"])
    flat = {
        r["method"]: {"n_prompts": r["n_prompts"], **{m: r[m]["mean"] for m in ALL_METRICS if m in r}} for r in rows
    }
    write_json(flat, paths["metrics_json"])

    header = ["method"] + [f"{m}{s}" for m in PLOT_METRICS for s in ("", "_ci_low", "_ci_high")]
    paths["plot_csv"].parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(paths["plot_csv"]) as tmp:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            for r in rows:
                cells: list[Any] = [r["method"]]
                for m in PLOT_METRICS:
                    stat = r.get(m)
                    cells += [repr(float(stat[k])) if stat else "" for k in ("mean", "ci_low", "ci_high")]
                writer.writerow(cells)
    return paths


def plot_quality_vs_diversity(rows: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """The paper's Figure 2 as a PNG: quality (x) against semantic diversity (left) and style
    diversity (right), one point per method with its confidence interval on both axes,
    labelled; the human ("gold") row drawn as a black star with dotted guide lines.

    Uses the Agg canvas directly (no pyplot state), a fixed size (1000 x 420 px) and no
    "Software" metadata, so the same rows give the same bytes.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = list(rows)
    validate_rows(rows)
    path = Path(path)
    fig = Figure(figsize=FIG_SIZE_IN, dpi=FIG_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    palette = [f"C{i}" for i in range(10)]
    for ax, metric, title in zip(axes, PLOT_METRICS[1:], ("Semantic diversity", "Style diversity")):
        colour_index = 0
        for row in rows:
            if "quality" not in row or metric not in row:
                continue
            q, d = row["quality"], row[metric]
            human = row["method"].lower() in HUMAN_METHODS
            colour = "black" if human else palette[colour_index % len(palette)]
            colour_index += 0 if human else 1
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
        + (f"; {title}" if title else ""),
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=FIG_DPI, metadata={"Software": None})
    return path
