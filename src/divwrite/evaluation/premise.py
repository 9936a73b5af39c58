"""The testbed's premise checks: does preference tuning behave here as it does on real LLMs?

A null or positive result for deviation weighting says something only where the setting
has the problem the paper fixes: a clean enough preference signal, a base model that writes
on topic, preference tuning that raises quality, and preference tuning that narrows the
output. The thresholds are params (`premise:`), fixed before any deviation-weighted result
was looked at. Each check on the built-in corpus's ground truth (`data.corpus.detectors`):

- P1 signal: share of the train pairs whose chosen story has the higher noise-free quality
  (`true_quality`, a tie counts against) >= `min_signal`;
- P2 reward model: held-out pairwise accuracy on upvote order (the reward stage's
  `val_pairwise_accuracy`) >= `min_reward_accuracy`; its Spearman correlation with the
  noise-free quality on the same held-out stories is reported beside it;
- P3 base: the SFT samples' on-topic share >= `min_on_topic`, and the share whose archetype
  AND style the detectors recognise >= `min_recognised`;
- P4 preference tuning works: for every method of `premise.methods`, the 95% interval of
  its paired difference in true quality over SFT (over prompts) above 0, and its on-topic
  share at most `max_on_topic_drop` below SFT's; each preference method's change of the
  chosen stories' log-probability over training is reported (`chosen_logp_change`);
- P5 the problem exists: `narrowing_method`'s archetype and style entropy among a prompt's
  samples below both SFT's and the human row's, with the 95% intervals apart (its upper
  end below their lower ends).

`premise_report` returns one JSON-able dict (`reports/premise.json`): per check the values,
thresholds and `met`, and `all_met`. `premise_markdown` renders it as a table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from divwrite.core.schema import PremiseParams
from divwrite.data.corpus import detectors
from divwrite.evaluation.metrics import mean_ci, paired_comparison

NONE = "none"


def signal_share(pairs: pd.DataFrame, elements: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """P1: the share of pairs (PAIR_COLUMNS) whose chosen text has the strictly higher
    noise-free quality (`detectors.true_quality` with the prompt's elements); ties count
    against. Also the share of ties."""
    if pairs.empty:
        raise ValueError("signal_share: no pairs")
    chosen = np.array([detectors.true_quality(t, elements[p]) for p, t in zip(pairs.prompt_id, pairs.chosen)])
    rejected = np.array([detectors.true_quality(t, elements[p]) for p, t in zip(pairs.prompt_id, pairs.rejected)])
    return {
        "value": float(np.mean(chosen > rejected)),
        "ties": float(np.mean(chosen == rejected)),
        "n_pairs": len(pairs),
    }


def recognised_share(texts: Sequence[str]) -> float:
    """Share of texts whose archetype AND style the detectors recognise (neither is "none")."""
    if not texts:
        raise ValueError("recognised_share: no texts")
    return float(np.mean([detectors.detect_archetype(t) != NONE and detectors.detect_style(t) != NONE for t in texts]))


def _by_prompt(table: pd.DataFrame, method: str, metric: str) -> pd.Series:
    rows = table[table["method"] == method]
    if rows.empty:
        raise ValueError(f"no per-prompt rows for method {method!r}")
    return pd.Series(rows[metric].to_numpy(dtype=np.float64), index=rows["prompt_id"].astype(str)).sort_index()


def _check(value: float, threshold: float, met: bool, **extra: Any) -> dict[str, Any]:
    return {"value": value, "threshold": threshold, "met": bool(met), **extra}


def preference_checks(table: pd.DataFrame, cfg: PremiseParams, confidence: float) -> dict[str, Any]:
    """P4 from the per-prompt table (method, prompt_id, true_quality, on_topic): per method of
    `cfg.methods`, the paired true-quality difference over SFT and the on-topic drop."""
    out: dict[str, Any] = {}
    for method in cfg.methods:
        if not (table["method"] == method).any():  # not trained in this run (an experiment deleted it)
            out[method] = {"not_run": {"value": None, "threshold": None, "met": False}}
            continue
        quality = paired_comparison(
            _by_prompt(table, method, "true_quality"), _by_prompt(table, "sft", "true_quality"), confidence=confidence
        )
        drop = float(_by_prompt(table, "sft", "on_topic").mean() - _by_prompt(table, method, "on_topic").mean())
        out[method] = {
            "true_quality_gain": _check(
                quality["mean_diff"], 0.0, quality["ci_low"] > 0, ci=[quality["ci_low"], quality["ci_high"]]
            ),
            "on_topic_drop": _check(drop, cfg.max_on_topic_drop, drop <= cfg.max_on_topic_drop),
        }
    return out


def narrowing_checks(table: pd.DataFrame, method: str, confidence: float) -> dict[str, Any]:
    """P5: `method`'s archetype and style entropy against SFT's and the human row's, each as
    {value, ci, others: {sft: ci, human: ci}, met: upper end below both lower ends}."""
    out: dict[str, Any] = {}
    if not (table["method"] == method).any():
        return {"not_run": {"value": None, "ci": None, "others": {}, "met": False}}
    for metric in ("archetype_entropy", "style_entropy"):
        own = mean_ci(_by_prompt(table, method, metric), confidence)
        others = {m: mean_ci(_by_prompt(table, m, metric), confidence) for m in ("sft", "human")}
        out[metric] = {
            "value": own["mean"],
            "ci": [own["ci_low"], own["ci_high"]],
            "others": {m: {"value": ci["mean"], "ci": [ci["ci_low"], ci["ci_high"]]} for m, ci in others.items()},
            "met": bool(all(own["ci_high"] < ci["ci_low"] for ci in others.values())),
        }
    return out


def premise_report(
    cfg: PremiseParams,
    *,
    signal: Mapping[str, Any],
    reward_accuracy: float,
    reward_truth_spearman: float,
    sft_samples: Sequence[str],
    table: pd.DataFrame,
    chosen_logp_change: Mapping[str, float],
    confidence: float = 0.95,
) -> dict[str, Any]:
    """The five checks (module docstring) as one JSON-able dict with `all_met`."""
    sft_on_topic = float(_by_prompt(table, "sft", "on_topic").mean())
    recognised = recognised_share(sft_samples)
    checks = {
        "P1_signal": _check(
            signal["value"],
            cfg.min_signal,
            signal["value"] >= cfg.min_signal,
            ties=signal["ties"],
            n_pairs=signal["n_pairs"],
        ),  # fmt: skip
        "P2_reward_model": _check(
            reward_accuracy,
            cfg.min_reward_accuracy,
            reward_accuracy >= cfg.min_reward_accuracy,
            truth_spearman=reward_truth_spearman,
        ),  # fmt: skip
        "P3_base_on_topic": _check(sft_on_topic, cfg.min_on_topic, sft_on_topic >= cfg.min_on_topic),
        "P3_base_recognised": _check(recognised, cfg.min_recognised, recognised >= cfg.min_recognised),
        "P4_preference_tuning": preference_checks(table, cfg, confidence),
        "P5_narrowing": narrowing_checks(table, cfg.narrowing_method, confidence),
    }
    met = [
        checks["P1_signal"]["met"],
        checks["P2_reward_model"]["met"],
        checks["P3_base_on_topic"]["met"],
        checks["P3_base_recognised"]["met"],
        *(c["met"] for m in checks["P4_preference_tuning"].values() for c in m.values()),
        *(c["met"] for c in checks["P5_narrowing"].values()),
    ]
    return {"checks": checks, "all_met": bool(all(met)), "chosen_logp_change": dict(chosen_logp_change)}


def _yes(met: bool) -> str:
    return "met" if met else "**not met**"


def premise_markdown(report: Mapping[str, Any], digits: int = 3) -> str:
    """The checks as a Markdown table: check, value, threshold, met."""
    c = report["checks"]
    f = f"{{:.{digits}f}}"
    rows = [
        ("P1 signal: chosen has the higher noise-free quality", f.format(c["P1_signal"]["value"])
         + f" (ties {f.format(c['P1_signal']['ties'])})", f">= {c['P1_signal']['threshold']}", c["P1_signal"]["met"]),
        ("P2 reward model: held-out pairwise accuracy", f.format(c["P2_reward_model"]["value"])
         + f" (Spearman with true quality {f.format(c['P2_reward_model']['truth_spearman'])})",
         f">= {c['P2_reward_model']['threshold']}", c["P2_reward_model"]["met"]),
        ("P3 SFT samples on topic", f.format(c["P3_base_on_topic"]["value"]), f">= {c['P3_base_on_topic']['threshold']}",
         c["P3_base_on_topic"]["met"]),
        ("P3 SFT samples with archetype and style recognised", f.format(c["P3_base_recognised"]["value"]),
         f">= {c['P3_base_recognised']['threshold']}", c["P3_base_recognised"]["met"]),
    ]  # fmt: skip
    for method, checks in c["P4_preference_tuning"].items():
        if "not_run" in checks:
            rows.append((f"P4 {method}", "not trained in this run", "", False))
            continue
        gain, drop = checks["true_quality_gain"], checks["on_topic_drop"]
        lo, hi = gain["ci"]
        rows.append((f"P4 {method} - sft: true quality", f"{gain['value']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]",
                     "95% CI above 0", gain["met"]))  # fmt: skip
        rows.append((f"P4 {method}: on-topic drop from sft", f"{drop['value']:+.{digits}f}",
                     f"<= {drop['threshold']}", drop["met"]))  # fmt: skip
    for metric, check in c["P5_narrowing"].items():
        if metric == "not_run":
            rows.append(("P5", "the narrowing method was not trained in this run", "", False))
            continue
        lo, hi = check["ci"]
        others = ", ".join(
            f"{m} [{o['ci'][0]:.{digits}f}, {o['ci'][1]:.{digits}f}]" for m, o in check["others"].items()
        )
        rows.append((f"P5 {metric}", f"{f.format(check['value'])} [{lo:.{digits}f}, {hi:.{digits}f}]",
                     f"CI below {others}", check["met"]))  # fmt: skip
    lines = ["| check | value | threshold | |", "|---|---|---|---|"]
    lines += [f"| {name} | {value} | {threshold} | {_yes(met)} |" for name, value, threshold, met in rows]
    changes = ", ".join(f"{m} {v:+.2f}" for m, v in report["chosen_logp_change"].items())
    lines += ["", f"Change of the chosen stories' log-probability over training (nats per story): {changes}."]
    verdict = "all met" if report["all_met"] else "NOT all met"
    return "\n".join([f"Premise checks: **{verdict}**.", "", *lines]) + "\n"


def _flat_checks(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Check name -> {value, met} of one report (P4 per method and part, P5 per metric)."""
    c = report["checks"]
    flat = {k: c[k] for k in ("P1_signal", "P2_reward_model", "P3_base_on_topic", "P3_base_recognised")}
    flat |= {f"P4_{m}_{part}": v for m, parts in c["P4_preference_tuning"].items() for part, v in parts.items()}
    flat |= {f"P5_{metric}": v for metric, v in c["P5_narrowing"].items()}
    return {name: {"value": check.get("value"), "met": bool(check["met"])} for name, check in flat.items()}


def premise_over_seeds(reports: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The premise over seeds (seed -> `premise_report`): per check, each seed's value and
    verdict and in how many seeds it was met; `all_met_seeds`, the seeds where every check was."""
    seeds = sorted(reports, key=int)
    per_seed = {s: _flat_checks(reports[s]) for s in seeds}
    names = list(dict.fromkeys(n for s in seeds for n in per_seed[s]))
    checks = {
        name: {
            "values": {s: per_seed[s].get(name, {}).get("value") for s in seeds},
            "met": {s: per_seed[s].get(name, {}).get("met", False) for s in seeds},
        }
        for name in names
    }
    for check in checks.values():
        check["met_in"] = sum(check["met"].values())
    return {
        "seeds": seeds,
        "checks": checks,
        "all_met_seeds": [s for s in seeds if reports[s]["all_met"]],
        "chosen_logp_change": {s: dict(reports[s]["chosen_logp_change"]) for s in seeds},
    }


def premise_seeds_markdown(summary: Mapping[str, Any], digits: int = 3) -> str:
    """One row per check, one column per seed (value, ✗ where not met), and how many seeds met it."""
    seeds = summary["seeds"]
    lines = [
        "| check | " + " | ".join(f"seed {s}" for s in seeds) + " | met in |",
        "|---|" + "---:|" * (len(seeds) + 1),
    ]
    for name, check in summary["checks"].items():
        cells = []
        for s in seeds:
            value = check["values"][s]
            text = "-" if value is None else f"{value:.{digits}f}"
            cells.append(text + ("" if check["met"][s] else " ✗"))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {check['met_in']}/{len(seeds)} |")
    met = summary["all_met_seeds"]
    head = f"Premise over {len(seeds)} seeds: every check met in {len(met)} ({', '.join(met) or 'none'})."
    return "\n".join([head, "", *lines]) + "\n"
