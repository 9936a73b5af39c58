"""Results files and the quality-vs-diversity figure."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from divwrite.evaluation import METRIC_COLUMNS, TRUTH_COLUMNS
from divwrite.reporting import FIG_DPI, FIG_SIZE_IN, plot_quality_vs_diversity, validate_rows, write_results


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
    table = [line for line in paths["results_md"].read_text().splitlines() if line.startswith("|")]
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
