"""Analysis of the answers: per question, wins of each method and the exact binomial test
(the paper's Table 2).

Each rater's latest answer per task counts once (a later answer replaces an earlier one).
"A" and "B" are mapped back to methods with the order recorded in the task. Per question:

- `wins_a`, `wins_b`, `similar`, `n` (answers to that question), `decisive` = wins_a + wins_b;
- `win_rate_decisive` = wins_a / decisive: method_a's share of the answers that chose a set
  (the rate the test is about), with its exact (Clopper-Pearson) 95% interval;
- `win_rate_all` = wins_a / n, "similar" counted as not a win, and `similar_rate`;
- `p_value`: two-sided exact binomial test of wins_a out of decisive against p = 0.5
  (`scipy.stats.binomtest`). Answers are pooled over raters and treated as independent, as
  in the paper; `per_rater` gives each rater's counts for a look at agreement.

`write_analysis` writes the result as JSON and a markdown table and logs both, with the
counts and rates as metrics, to an MLflow run `human-eval`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scipy.stats import binomtest

from divwrite.core.files import atomic_path, write_json
from divwrite.core.tracking import file_md5
from divwrite.evaluation.human.answers import is_complete, latest_answers, read_answers
from divwrite.evaluation.human.tasks import QUESTIONS, load_tasks


def question_stats(wins_a: int, wins_b: int, similar: int) -> dict[str, Any]:
    """Counts, rates and the two-sided exact binomial test of one question (see the module
    docstring); rates and the test are None when no answer chose a set."""
    decisive, n = wins_a + wins_b, wins_a + wins_b + similar
    stats: dict[str, Any] = {
        "n": n,
        "wins_a": wins_a,
        "wins_b": wins_b,
        "similar": similar,
        "decisive": decisive,
        "win_rate_decisive": None,
        "win_rate_decisive_ci95": None,
        "win_rate_all": wins_a / n if n else None,
        "similar_rate": similar / n if n else None,
        "p_value": None,
    }
    if decisive:
        test = binomtest(wins_a, decisive, p=0.5, alternative="two-sided")
        interval = test.proportion_ci(confidence_level=0.95, method="exact")
        stats.update(
            win_rate_decisive=wins_a / decisive,
            win_rate_decisive_ci95=[float(interval.low), float(interval.high)],
            p_value=float(test.pvalue),
        )
    return stats


def analyze(tasks_path: str | Path, answers_path: str | Path) -> dict[str, Any]:
    """The human evaluation's result for a task file and its answers file (see the module
    docstring); ValueError when there is no answer or an answer names an unknown task."""
    document = load_tasks(tasks_path)
    tasks = {t["task_id"]: t for t in document["tasks"]}
    method_a, method_b = document["methods"]["method_a"], document["methods"]["method_b"]
    records, torn = read_answers(answers_path, document["digest"])
    latest = latest_answers(records)
    if not latest:
        raise ValueError(f"{answers_path}: no answers yet")
    unknown = sorted({task_id for _, task_id in latest if task_id not in tasks})
    if unknown:
        raise ValueError(f"{answers_path}: answers to task(s) {unknown[:5]} that {tasks_path} does not have")

    def outcome(task_id: str, choice: str) -> str:
        """The answer in terms of methods ("a", "b" or "similar"), through the recorded order."""
        if choice == "similar":
            return "similar"
        return "a" if tasks[task_id]["order"][choice] == method_a else "b"

    counts = {q: {"a": 0, "b": 0, "similar": 0} for q in QUESTIONS}
    per_rater: dict[str, dict[str, Any]] = {}
    for (rater, task_id), record in sorted(latest.items()):
        mine = per_rater.setdefault(
            rater, {"answered": 0, **{q: {"wins_a": 0, "wins_b": 0, "similar": 0} for q in QUESTIONS}}
        )
        mine["answered"] += is_complete(record)
        for q in QUESTIONS:
            if record.get(q) is None:
                continue
            result = outcome(task_id, record[q])
            counts[q][result] += 1
            mine[q]["similar" if result == "similar" else f"wins_{result}"] += 1
    return {
        "method_a": method_a,
        "method_b": method_b,
        "questions": {
            q: {"text": QUESTIONS[q], **question_stats(c["a"], c["b"], c["similar"])} for q, c in counts.items()
        },
        "tasks": len(tasks),
        "raters": len(per_rater),
        "judgments": sum(is_complete(r) for r in latest.values()),
        "incomplete": sum(not is_complete(r) for r in latest.values()),
        "superseded_answers": len(records) - len(latest),
        "torn_lines": torn,
        "per_rater": per_rater,
        "tasks_digest": document["digest"],
        "answers_md5": file_md5(answers_path),
        "test": "two-sided exact binomial test (scipy.stats.binomtest, p=0.5) of method_a's wins among decisive answers",
    }


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def report_markdown(result: Mapping[str, Any]) -> str:
    """The result as a markdown table in the shape of the paper's Table 2."""
    a, b = result["method_a"], result["method_b"]
    lines = [
        f"# Human evaluation: {a} vs {b}",
        "",
        f"{result['judgments']} complete judgments ({result['incomplete']} incomplete) by {result['raters']} rater(s) "
        f"on {result['tasks']} tasks. Win rate of {a}: among decisive answers (A or B chosen) and over all "
        "answers (similar = no win); p: two-sided exact binomial test on the decisive answers (H0: 50%).",
        "",
        f"| question | {a} wins | {b} wins | similar | {a} win rate (decisive) | 95% CI | {a} win rate (all) | p |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for q, s in result["questions"].items():
        ci = s["win_rate_decisive_ci95"]
        interval = "-" if ci is None else f"{_rate(ci[0])} to {_rate(ci[1])}"
        p_value = "-" if s["p_value"] is None else f"{s['p_value']:.4g}"
        lines.append(
            f"| {q}: {s['text']} | {s['wins_a']} | {s['wins_b']} | {s['similar']} | {_rate(s['win_rate_decisive'])} "
            f"| {interval} | {_rate(s['win_rate_all'])} | {p_value} |"
        )
    return "\n".join(lines) + "\n"


def write_analysis(
    tasks_path: str | Path,
    answers_path: str | Path,
    out_json: str | Path,
    out_md: str | Path,
    track: bool = True,
) -> dict[str, Any]:
    """`analyze`, then the JSON report and the markdown table (atomically), logged with the
    counts and rates to the MLflow run `human-eval` when `track`."""
    result = analyze(tasks_path, answers_path)
    write_json(result, out_json)
    with atomic_path(out_md) as tmp:
        tmp.write_text(report_markdown(result), encoding="utf-8")
    if track:
        from divwrite.core import tracking

        params = {
            "method_a": result["method_a"],
            "method_b": result["method_b"],
            "tasks_path": str(tasks_path),
            "answers_path": str(answers_path),
            "tasks_digest": result["tasks_digest"],
            "answers_md5": result["answers_md5"],
        }
        with tracking.stage_run("human-eval", params):
            tracking.log_metrics({q: s for q, s in result["questions"].items()})
            tracking.log_metrics({k: result[k] for k in ("tasks", "raters", "judgments", "incomplete")})
            tracking.log_artifact(out_json, "human_eval")
            tracking.log_artifact(out_md, "human_eval")
    return result
