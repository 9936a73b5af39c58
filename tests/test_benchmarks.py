"""The benchmark harness and a small run of the pairing benchmark (no timing assertions: the
ratios are what `make bench` reports, not what a test checks)."""

import json
import sys

import pytest

from divwrite.data.pairing import make_pairs

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_pairing  # noqa: E402
import harness  # noqa: E402


def test_interleaved_runs_every_function_each_round_after_warmup():
    calls = []
    times = harness.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=1)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]  # the order rotates every round
    assert [len(t) for t in times.values()] == [3, 3] and all(x >= 0 for t in times.values() for x in t)


@pytest.mark.parametrize(
    "value, op, target, met",
    [(1.01, "<=", 1.02, True), (1.03, "<=", 1.02, False), (120, ">=", 100, True), (99, ">=", 100, False)],
)
def test_goal(value, op, target, met):
    goal = harness.Goal("g", value, op, target)
    assert goal.met is met and goal.as_dict()["goal"] == f"{op} {target:g}"
    assert ("met" if met else "MISSED") in goal.line()


def test_report_merges_sections_into_one_json(tmp_path):
    out = tmp_path / "reports" / "benchmarks.json"
    harness.report("one", {"x": 1}, [harness.Goal("g", 2.0, ">=", 1.0)], out)
    harness.report("two", {"y": 2}, [harness.Goal("h", 2.0, "<=", 1.0)], out)
    data = json.loads(out.read_text())
    assert data["one"] == {"goals": {"g": {"value": 2.0, "goal": ">= 1", "met": True}}, "measured": {"x": 1}}
    assert data["two"]["goals"]["h"]["met"] is False and data["machine"]["cpus"] >= 1
    assert not list(out.parent.glob(".benchmarks.*"))  # written atomically, no temp file left


def test_corpus_responses_are_pairable_real_stories():
    df = harness.corpus_responses(12, seed=0)
    assert df["prompt_id"].nunique() == 12 and df["score"].between(-1, 1).all()
    assert len(make_pairs(df, gap=5, seed=0)) > 0


def test_pairing_benchmark_writes_its_section(tmp_path):
    out = tmp_path / "benchmarks.json"
    entry = bench_pairing.run([4, 50], rounds=1, out=out)
    saved = json.loads(out.read_text())["pairing"]
    assert saved == json.loads(json.dumps(entry))
    for n in ("4", "50"):
        m = saved["measured"][n]
        assert m["same_pairs"] is True and m["speedup"] > 0 and m["prompts"] == bench_pairing.PROMPTS_PER_SIZE[int(n)]
        assert saved["goals"][f"same_pairs_n{n}"]["met"] is True
    assert "speedup_n500" not in saved["goals"]  # that goal needs the 500-response size
