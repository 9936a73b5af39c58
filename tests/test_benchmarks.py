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


def test_scale_corpus_default_and_paper_shapes(tmp_path):
    import pyarrow.parquet as pq
    import scale_corpus
    import yaml

    from divwrite.data.corpus.generator import generate_corpus

    params = yaml.safe_load((harness.ROOT / "params.yaml").read_text())
    small = scale_corpus.parse_scale("0.04", params["corpus"])  # the default corpus, 20 prompts
    info = scale_corpus.build_corpus(small, params, tmp_path / "small.parquet")
    shape = {k: v for k, v in params["corpus"].items() if k != "n_prompts"}
    expected = generate_corpus(20, seed=params["data_seed"], **shape)
    assert pq.read_table(tmp_path / "small.parquet").to_pylist() == expected.records
    assert info["prompts"] == 20 and info["responses"] == sum(len(r["comment_texts"]) for r in expected.records)

    paper = scale_corpus.parse_scale("paper:0.01", params["corpus"])  # 1,050 prompts + 10 of the tail
    assert paper.draws == ((1050, 3.6, 60), (10, 100.0, 500)) and paper.overrides["filter"]["max_tokens"] == 2048
    info = scale_corpus.build_corpus(paper, params, tmp_path / "paper.parquet")
    records = pq.read_table(tmp_path / "paper.parquet").to_pylist()
    assert info["prompts"] == len(records) == 1060 and len({r["post_title"] for r in records}) == 1060
    assert 400 < info["mean_words"] < 600 and 2 <= info["responses_per_prompt"]["median"] <= 3
    assert info["responses_per_prompt"]["max"] > 60  # the tail: far past the default corpus's 60
    assert scale_corpus.build_corpus(paper, params, tmp_path / "paper.parquet") == info  # reused, not rebuilt
    with pytest.raises(ValueError, match="at least 10"):
        scale_corpus.parse_scale("0.01", params["corpus"])


@pytest.mark.slow  # ~80 s: seven child processes per scale, each with its imports and MLflow run
def test_scale_benchmark_measures_every_stage(tmp_path):
    import bench_scale

    out = tmp_path / "benchmarks.json"
    entry = bench_scale.run(["0.04", "0.08"], out=out, work=tmp_path / "work", semantic_sample=16)
    assert json.loads(out.read_text())["scale"] == json.loads(json.dumps(entry))
    measured = entry["measured"]
    for name, prompts in (("0.04", 20), ("0.08", 40)):
        scale = measured["scales"][name]
        assert scale["corpus"]["prompts"] == prompts
        assert scale["responses"] == scale["corpus"]["responses"]  # ingest keeps every comment
        card = scale["card"]["ingested"]
        assert card["train"]["prompts"] + card["test"]["prompts"] == prompts and scale["pairs"] > 0
        semantic = measured["semantic"][name]
        assert semantic["sample"] == 16 and semantic["seconds_per_1k"] > 0
        assert semantic["extrapolated_seconds"] == pytest.approx(semantic["seconds_per_1k"] * semantic["texts"] / 1000)
    rows = measured["rows"]
    parts = {"gates (5, in their stages)", "card (in filter)", "tokenize (in filter)"}
    assert set(rows) == set(bench_scale.STAGES) | parts
    for row in rows.values():
        assert all(t > 0 for t in row["seconds"].values()) and all(m > 100 for m in row["peak_mib"].values())
        assert isinstance(row["time_exponent"]["0.04-0.08"], float)
        assert row["time_ratio"]["0.04"] == 1.0
    assert set(entry["goals"]) == {"max_time_exponent", "peak_gib"}
    assert not (tmp_path / "work" / "project-0.04").exists()  # scratch projects are removed


@pytest.mark.slow  # ~40 s: three fresh training processes, one beside a busy competitor
def test_the_wait_policy_trains_the_same_bytes_and_the_thread_count_does_not():
    """bench_busy's child, as the benchmark runs it: OpenMP's own wait policy on an idle machine
    and the pipeline's (PASSIVE: decided while the benchmark's competitor runs) give the same
    weights; one thread gives other weights (a sum split otherwise adds in another order), which
    is why the thread count is not left to the load by default."""
    import os

    import bench_busy

    cores = len(os.sched_getaffinity(0))
    idle = bench_busy.measure("openmp", busy=False, threads=cores, steps=3)
    busy = bench_busy.measure("pipeline", busy=True, threads=cores, steps=3)
    assert idle["wait"] == {} and busy["wait"] == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert idle["md5"] == busy["md5"] and idle["step"] > 0 and busy["step"] > 0
    if cores > 1:
        assert bench_busy.measure("pipeline", busy=False, threads=1, steps=3)["md5"] != idle["md5"]
