"""Results files and the figures."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from divwrite.evaluation.figures import (
    FIG_DPI,
    FIG_SIZE_IN,
    pareto_front,
    plot_ablation,
    plot_lexical_diversity,
    plot_pareto,
    plot_quality_vs_diversity,
)
from divwrite.evaluation.reporting import validate_rows, write_results
from divwrite.evaluation.scoring import METRIC_COLUMNS, TRUTH_COLUMNS


def _stat(mean: float, half: float) -> dict[str, float]:
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half}


def make_rows() -> list[dict]:
    rows = []
    for k, method in enumerate(["sft", "dpo", "ddpo-both", "human"]):
        row = {"method": method, "n_prompts": 40 - k}
        for j, m in enumerate([*METRIC_COLUMNS, *TRUTH_COLUMNS]):
            row[m] = _stat(0.1 * (k + 1) + 0.01 * j + 0.00049, 0.02 + 0.001 * k)
        rows.append(row)
    return rows


MD_CELL = re.compile(r"^(-?\d+\.\d+) \[(-?\d+\.\d+), (-?\d+\.\d+)\]$")


def test_write_results_files_and_shapes(tmp_path: Path) -> None:
    rows = make_rows()
    paths = write_results(rows, tmp_path / "reports")
    assert all(p.exists() for p in paths.values())
    assert paths["results_json"] == tmp_path / "reports" / "results.json"

    results = json.loads(paths["results_json"].read_text())
    assert results == rows  # exact shape and values, method order kept
    assert [r["method"] for r in results] == ["sft", "dpo", "ddpo-both", "human"]
    for r in results:
        assert set(r) == {"method", "n_prompts", *METRIC_COLUMNS, *TRUTH_COLUMNS}
        for m in [*METRIC_COLUMNS, *TRUTH_COLUMNS]:
            assert set(r[m]) == {"mean", "ci_low", "ci_high"}

    metrics = json.loads(paths["metrics_json"].read_text())
    assert list(metrics) == sorted(r["method"] for r in rows)
    for r in rows:
        flat = metrics[r["method"]]
        assert flat["n_prompts"] == r["n_prompts"]
        assert all(isinstance(v, (int, float)) for v in flat.values())
        assert flat["quality"] == r["quality"]["mean"]

    with paths["plot_csv"].open() as f:
        plot_rows = list(csv.DictReader(f))
    assert [p["method"] for p in plot_rows] == [r["method"] for r in rows]
    assert float(plot_rows[2]["semantic_diversity_ci_high"]) == rows[2]["semantic_diversity"]["ci_high"]
    assert set(plot_rows[0]) == {"method"} | {
        f"{m}{s}" for m in ("quality", "semantic_diversity", "style_diversity") for s in ("", "_ci_low", "_ci_high")
    }


def test_markdown_one_line_per_method_and_numbers_match_json(tmp_path: Path) -> None:
    rows = make_rows()
    paths = write_results(rows, tmp_path)
    results = json.loads(paths["results_json"].read_text())
    lines = paths["results_md"].read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = [line for line in lines[start:] if line.startswith("|")][: len(rows) + 2]  # the first table
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header == ["method", "n_prompts", *METRIC_COLUMNS, *TRUTH_COLUMNS]
    body = table[2:]
    assert len(body) == len(rows)
    for line, row in zip(body, results):
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        assert cells["method"] == row["method"] and int(cells["n_prompts"]) == row["n_prompts"]
        for m in [*METRIC_COLUMNS, *TRUTH_COLUMNS]:
            match = MD_CELL.match(cells[m])
            assert match, cells[m]
            for value, key in zip(match.groups(), ("mean", "ci_low", "ci_high")):
                assert float(value) == pytest.approx(row[m][key], abs=5e-4)


def test_missing_metric_shows_dash(tmp_path: Path) -> None:
    rows = make_rows()
    for m in TRUTH_COLUMNS:
        del rows[0][m]
    text = write_results(rows, tmp_path)["results_md"].read_text()
    sft_line = next(line for line in text.splitlines() if line.startswith("| sft |"))
    assert sft_line.count(" - ") == len(TRUTH_COLUMNS)


def test_outputs_are_byte_stable(tmp_path: Path) -> None:
    rows = make_rows()
    a = write_results(rows, tmp_path / "a")
    b = write_results(rows, tmp_path / "b")
    for key in a:
        assert a[key].read_bytes() == b[key].read_bytes(), key
    png_a = plot_quality_vs_diversity(rows, tmp_path / "a.png")
    png_b = plot_quality_vs_diversity(rows, tmp_path / "b.png")
    assert png_a.read_bytes() == png_b.read_bytes()


def test_plot_opens_with_expected_size(tmp_path: Path) -> None:
    import matplotlib.image

    path = plot_quality_vs_diversity(make_rows(), tmp_path / "plots" / "quality_vs_diversity.png")
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (round(FIG_SIZE_IN[1] * FIG_DPI), round(FIG_SIZE_IN[0] * FIG_DPI))
    assert b"Software" not in path.read_bytes()[:2000]


def test_validate_rows_rejects_bad_shapes() -> None:
    rows = make_rows()
    with pytest.raises(ValueError):
        validate_rows([])
    with pytest.raises(ValueError):
        validate_rows(rows + [rows[0]])  # duplicate method
    bad = make_rows()
    bad[1]["quality"] = 0.5
    with pytest.raises(ValueError):
        validate_rows(bad)
    bad = make_rows()
    bad[1]["extra"] = {"mean": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    with pytest.raises(ValueError):
        validate_rows(bad)


def test_pareto_front_by_hand() -> None:
    points = {"a": (0.1, 0.9), "b": (0.5, 0.5), "c": (0.4, 0.4), "d": (0.9, 0.1), "e": (0.5, 0.2), "f": (0.1, 0.9)}
    # c is dominated by b, e by b; a and f tie (neither dominates the other)
    assert pareto_front(points) == ["a", "f", "b", "d"]
    assert pareto_front({"only": (0.0, 0.0)}) == ["only"]


def test_results_md_holds_comparisons_figures_and_examples(tmp_path: Path) -> None:
    rows = make_rows()
    comparisons = [
        {"a": "ddpo-both", "b": "dpo", "metric": "quality", "mean_diff": -0.0123, "p_value": 0.2, "ci_low": -0.03,
         "ci_high": 0.01, "t": -1.3, "n": 36, "better": "tie"},
        {"a": "ddpo-both", "b": "dpo", "metric": "semantic_diversity", "mean_diff": 0.031, "p_value": 0.0012,
         "ci_low": 0.01, "ci_high": 0.05, "t": 3.5, "n": 36, "better": "a"},
    ]  # fmt: skip
    story = " ".join(f"w{i}" for i in range(100))
    examples = ("A dragon | a key.", {"dpo": [story, "short one"], "human": ["by a person"]})
    paths = write_results(rows, tmp_path, comparisons=comparisons, examples=examples, figures=["pareto.png"])
    assert json.loads(paths["comparisons_json"].read_text()) == comparisons
    md = paths["results_md"].read_text()
    assert "| ddpo-both vs dpo | -0.012 (p=0.2) | **+0.031 (p=0.0012)** |" in md
    assert "![Pareto front of quality vs diversity](pareto.png)" in md
    assert "Prompt: *A dragon \\| a key.*" in md
    dpo_line = next(line for line in md.splitlines() if line.startswith("| dpo | 1. "))
    assert "w59 ..." in dpo_line and "w60" not in dpo_line and "2. short one" in dpo_line
    assert (
        (tmp_path / "plots" / "lexical_diversity.csv")
        .read_text()
        .splitlines()[0]
        .startswith("method,compression_ratio,compression_ratio_ci_low")
    )


def test_distinct_outputs_in_every_results_file(tmp_path: Path) -> None:
    rows = make_rows()
    assert {"distinct_semantic", "distinct_truth"} <= set(rows[0])
    paths = write_results(rows, tmp_path)
    for m in ("distinct_semantic", "distinct_truth"):
        assert json.loads(paths["results_json"].read_text())[1][m] == rows[1][m]
        assert json.loads(paths["metrics_json"].read_text())["dpo"][m] == rows[1][m]["mean"]
    md = paths["results_md"].read_text()
    assert "| ngram_diversity | distinct_semantic | archetype_coverage |" in md.splitlines()[2]
    assert "| style_entropy | distinct_truth | true_quality |" in md.splitlines()[2]
    assert "- `distinct_truth`: distinct outputs (1..n)" in md
    with paths["lexical_csv"].open() as f:
        lexical = list(csv.DictReader(f))
    assert float(lexical[3]["distinct_truth_ci_low"]) == rows[3]["distinct_truth"]["ci_low"]
    assert float(lexical[0]["distinct_semantic"]) == rows[0]["distinct_semantic"]["mean"]
    for row in rows:  # real data: no ground truth, its cells left empty
        del row["distinct_truth"]
    with write_results(rows, tmp_path / "real")["lexical_csv"].open() as f:
        assert [r["distinct_truth"] for r in csv.DictReader(f)] == [""] * len(rows)


@pytest.mark.parametrize("dropped", [(), ("distinct_truth",), ("distinct_semantic", "distinct_truth")])
def test_lexical_figure_keeps_its_size_with_the_distinct_panel(tmp_path: Path, dropped: tuple[str, ...]) -> None:
    import matplotlib.image

    rows = make_rows()  # both distinct metrics; real data lacks the truth's; older results lack both
    for row in rows:
        for m in dropped:
            del row[m]
    path = plot_lexical_diversity(rows, tmp_path / "lexical_diversity.png")
    assert matplotlib.image.imread(path).shape[:2] == (420, 1200)


@pytest.mark.parametrize("plot", [plot_lexical_diversity, plot_pareto])
def test_more_figures_are_stable_pngs(tmp_path: Path, plot) -> None:
    import matplotlib.image

    a, b = plot(make_rows(), tmp_path / "a.png"), plot(make_rows(), tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes() and a.stat().st_size > 10_000
    assert matplotlib.image.imread(a).ndim == 3


def test_ablation_figure_from_ablation_rows(tmp_path: Path) -> None:
    rows = [
        {"name": f"abl-mr{n or 'all'}-{v}", "max_responses": n, "variant": v, "state": "success",
         "metrics": {m: {"quality": 0.1 * k, "semantic_diversity": 0.5, "style_diversity": 0.2}
                     for k, m in enumerate(["sft", "dpo", "human"])}}
        for n in (4, 0) for v in ("plain", "high-quality")
    ] + [{"name": "abl-mr8-plain", "max_responses": 8, "variant": "plain", "state": "failed"}]  # fmt: skip
    path = plot_ablation(rows, tmp_path / "ablation.png")
    assert path.stat().st_size > 10_000
