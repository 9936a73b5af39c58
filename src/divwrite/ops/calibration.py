"""Calibrating the testbed against its premise (README "The premise"), with method-neutral
levers only and with `sft`, `dpo` and `orpo` alone.

`divwrite calibrate NAME -S key=value ...` runs one configuration: `params.yaml` with the
overrides applied, every method but `sft`, `dpo` and `orpo` deleted, checked against the
schema, in a scratch copy of the project that persists between configurations
(`.calibration/` by default), so DVC re-runs only what a configuration changes (a new DPO
learning rate re-trains DPO, not SFT). The pipeline runs up to the `premise` stage under
MLflow; the configuration's premise checks and the three methods' ground-truth results are
logged to the project's MLflow experiment `calibration` (a run per configuration, its
overrides as params) and appended to `docs/calibration.jsonl`, from which
`docs/calibration.md`, the table of every configuration tried, is rewritten (its `## Notes`
section, written by hand, is kept).

Levers are refused when they are not method-neutral: the deviation weighting (`deviate`,
`divpo`), the methods themselves (`train.methods`), the premise's own thresholds
(`premise`) and the experiments' settings (`ablation`, `replicate`). Everything else (the
corpus's generative constants, the data sizes, the model, the tokenizer, SFT, the settings
every DPO-family or ORPO-family method shares, the reward model) may be calibrated.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from divwrite.core.files import read_json, write_text
from divwrite.core.params import flatten, parse_yaml, read_params, set_param, validate_params
from divwrite.core.tracking import configure
from divwrite.ops.pipeline import prepare_smoke_copy, run_pipeline

logger = logging.getLogger(__name__)

KEPT_METHODS = ("sft", "dpo", "orpo")
REFUSED = ("deviate", "divpo", "train.methods", "premise", "ablation", "replicate")
EXPERIMENT = "calibration"
LOG = Path("docs/calibration.jsonl")
TABLE = Path("docs/calibration.md")
NOTES = "## Notes"  # what follows this heading in docs/calibration.md is kept when the table is rewritten
RESULT_METRICS = ("true_quality", "on_topic", "archetype_entropy", "style_entropy", "quality")


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """`key=value` strings (the value read as YAML: `0.2`, `true`, `[1, 2]`) as a flat mapping;
    ValueError for a malformed one or a lever that is not method-neutral (`REFUSED`)."""
    flat: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"override {item!r}: expected key=value (e.g. dpo.learning_rate=5e-5)")
        if any(key == r or key.startswith(f"{r}.") for r in REFUSED):
            raise ValueError(f"{key}: not a method-neutral lever; calibration may not set {', '.join(REFUSED)}")
        flat[key] = parse_yaml(value)  # YAML, as params.yaml is read: 5e-5 is a number
    return flat


def calibration_params(root: Path, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`root/params.yaml` with `overrides` (flat, dotted) applied and only `KEPT_METHODS`
    trained, checked against the schema (`ParamsError` naming a bad key)."""
    params = read_params(Path(root) / "params.yaml")
    for key, value in overrides.items():
        params = set_param(params, key, value)
    params["train"]["methods"] = {m: s for m, s in params["train"]["methods"].items() if m in KEPT_METHODS}
    validate_params(params, label=f"calibration overrides {dict(overrides)}")
    return params


def summary_row(name: str, overrides: Mapping[str, Any], workdir: Path, seconds: float) -> dict[str, Any]:
    """One configuration's record: its overrides, premise report and the methods' results."""
    results = {r["method"]: r for r in read_json(workdir / "reports/results.json")}
    means = {m: {k: results[m][k]["mean"] for k in RESULT_METRICS if k in results[m]} for m in results}
    return {
        "name": name,
        "overrides": dict(overrides),
        "premise": read_json(workdir / "reports/premise.json"),
        "results": means,
        "seconds": round(seconds),
    }


def log_to_mlflow(root: Path, row: Mapping[str, Any]) -> None:
    """A run in the project's MLflow experiment `calibration`: overrides as params, the
    premise values and the results as metrics."""
    import mlflow

    experiment_id = configure(EXPERIMENT, root)
    checks = row["premise"]["checks"]
    metrics = {
        f"premise.{k}": v for k, v in flatten(checks).items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    metrics |= {f"premise.{k}.met": float(v) for k, v in flatten(checks).items() if k.endswith("met")}
    metrics |= {f"results.{k}": v for k, v in flatten(row["results"]).items()}
    metrics |= {"premise.all_met": float(row["premise"]["all_met"]), "seconds": float(row["seconds"])}
    with mlflow.start_run(experiment_id=experiment_id, run_name=row["name"], tags={"divwrite.kind": "calibration"}):
        mlflow.log_params({k: str(v) for k, v in row["overrides"].items()} or {"overrides": "none"})
        mlflow.log_metrics({k.replace("/", "_"): float(v) for k, v in metrics.items()})


def _cell(check: Mapping[str, Any], digits: int = 3) -> str:
    if "value" not in check or check["value"] is None:
        return "-"
    value = f"{check['value']:.{digits}f}"
    if check.get("ci"):
        value += f" [{check['ci'][0]:.{digits}f}, {check['ci'][1]:.{digits}f}]"
    return value + ("" if check["met"] else " ✗")


def table_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """Every configuration tried, one line each: its overrides and each premise check (✗ = not met)."""
    header = [
        "config", "overrides", "P1 signal", "P2 reward acc.", "P3 on topic", "P3 recognised",
        "P4 dpo quality gain", "P4 dpo on-topic drop", "P4 orpo quality gain", "P4 orpo on-topic drop",
        "P5 dpo arch. entropy", "P5 dpo style entropy", "chosen logp change", "all met", "minutes",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        c = row["premise"]["checks"]
        p4, p5 = c["P4_preference_tuning"], c["P5_narrowing"]
        cells = [
            row["name"],
            ", ".join(f"`{k}={v}`" for k, v in row["overrides"].items()) or "(params.yaml)",
            _cell(c["P1_signal"]),
            _cell(c["P2_reward_model"]) + f" (ρ {c['P2_reward_model']['truth_spearman']:.2f})",
            _cell(c["P3_base_on_topic"]),
            _cell(c["P3_base_recognised"]),
            *(_cell(p4.get(m, {}).get(k, {})) for m in ("dpo", "orpo") for k in ("true_quality_gain", "on_topic_drop")),
            *(_cell(p5.get(k, {}), 2) for k in ("archetype_entropy", "style_entropy")),
            ", ".join(f"{m} {v:+.1f}" for m, v in row["premise"]["chosen_logp_change"].items()),
            "yes" if row["premise"]["all_met"] else "no",
            f"{row['seconds'] / 60:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    intro = (
        '# Calibration of the testbed (README "The premise")\n\n'
        "Every configuration tried, in order, with `sft`, `dpo` and `orpo` only (`divwrite calibrate`; the log is\n"
        "`calibration.jsonl`, each run also in the MLflow experiment `calibration`). Overrides are on top of the\n"
        "`params.yaml` of the commit that ran them. ✗ marks a premise check not met; intervals are 95% over prompts.\n\n"
    )
    return intro + "\n".join(lines) + "\n"


def run_config(root: Path, name: str, overrides: Sequence[str], workdir: Path | None = None) -> int:
    """`divwrite calibrate`: one configuration through the premise stage, logged and tabled."""
    root = Path(root).resolve()
    workdir = (workdir or root / ".calibration").resolve()
    flat = parse_overrides(overrides)
    params = calibration_params(root, flat)
    if not (workdir / "dvc.yaml").is_file():
        prepare_smoke_copy(root, workdir, profile=None)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    start = time.perf_counter()
    code = run_pipeline(["premise"], root=workdir)
    if code != 0:
        logger.error("calibration %s: the pipeline failed (dvc exit code %s); nothing logged", name, code)
        return code
    row = summary_row(name, flat, workdir, time.perf_counter() - start)
    log_to_mlflow(root, row)
    log = root / LOG
    rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.is_file() else []
    rows.append(row)
    write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), log)
    notes = (root / TABLE).read_text(encoding="utf-8").partition(NOTES)[2] if (root / TABLE).is_file() else ""
    write_text(table_markdown(rows) + (f"\n{NOTES}{notes}" if notes else ""), root / TABLE)
    print(table_markdown([row]).split("\n\n", 1)[1])  # noqa: T201 - this configuration's line is the command's output
    return 0
