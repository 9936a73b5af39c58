"""Scale of the data stages: ingest, filter, pair, embed, deviate and divpo (with their gates and
the dataset card) on the built-in corpus at 1x, 10x and the paper's size; wall seconds and peak
memory per stage, each relative to the first scale of the same run, and the growth exponents.

Each stage runs as the pipeline runs it, `core.stage.run_stage` around the stage script's `main`
(params, MLflow run, gate, outputs), in a fresh child process in a scratch project under `--work`,
so its peak memory is the child's peak RSS. The gates (`check_responses`, `check_pairs`), the
dataset card and the filter's tokenizing are timed inside their stage. `embed` runs the stylometric
embedder through the embedding cache as the stage does; the semantic MiniLM is not run on every
text: its seconds per 1k texts are measured on a sample of the same texts and extrapolated, and
deviate / divpo read a stand-in semantic table (the stylometric vectors through a fixed random
projection to MiniLM's 384 dimensions: the same shape and dtype as MiniLM's table). The corpus
of each scale is `scale_corpus.py`'s (`1`, `10`: the default corpus times that; `paper`,
`paper:0.1`: the paper's size and shape, or a tenth of it).

Growth exponent: the least-squares slope of log(seconds) against log(ingested responses) among
the scales of one shape (`1` to `10`; `paper:0.1` to `paper`), so that prompts, responses and
words grow alike; a stage is super-linear above 1.15. Memory: the same slope of the peak above
the process's start-up (Python, the stage's imports).

    python benchmarks/bench_scale.py [--scales 1 10 paper:0.1 paper] [--out reports/benchmarks.json]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml
from harness import RESULTS, ROOT, Goal, report
from scale_corpus import Scale, build_corpus, parse_scale

STAGES = ("ingest", "filter", "pair", "embed", "deviate", "divpo")
# Library calls timed inside a stage (the name in the stage module -> the part it counts for).
PARTS = {"check_responses": "gate", "check_pairs": "gate", "dataset_card": "card", "card_markdown": "card",
         "chat_token_lengths": "tokenize"}  # fmt: skip
SEMANTIC_SAMPLE = 512  # texts MiniLM embeds to measure its seconds per 1k texts
SUPER_LINEAR, MAX_PEAK_GIB = 1.15, 8.0
SEM_DIM = 384  # all-MiniLM-L6-v2's dimension: the stand-in semantic table has it too


# --------------------------------------------------------------------------- the child processes


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _timed(fn, part: str, parts: dict, peaks: dict):
    def call(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            parts[part] += time.perf_counter() - start
            peaks[part] = max(peaks.get(part, 0.0), _maxrss_mib())

    return call


def embed_main(params) -> dict:
    """stages/embed.py with the stylometric embedder only (through the embedding cache, as the
    stage runs it); the semantic table is a stand-in of MiniLM's shape (module docstring)."""
    from divwrite.core.files import write_json
    from divwrite.core.records import RESPONSE_COLUMNS
    from divwrite.core.stage import read_input
    from divwrite.weighting.embedders import StylometricEmbedder
    from divwrite.weighting.embedding_cache import EmbeddingTable, cached, embed_table, save_table

    train = read_input("data/filtered/train.parquet", RESPONSE_COLUMNS)
    model = cached(StylometricEmbedder(), enabled=params.deviate.embedding_cache)
    table = embed_table(model, train["response"].tolist(), batch_size=params.deviate.batch_size)
    save_table(table, "data/embeddings/sty.safetensors")
    projection = np.random.default_rng(0).normal(size=(table.vectors.shape[1], SEM_DIM)).astype(np.float32)
    sem = np.empty((len(table.vectors), SEM_DIM), dtype=np.float32)  # what MiniLM's table holds, no more
    for i in range(0, len(sem), 65_536):
        block = table.vectors[i : i + 65_536] @ projection
        sem[i : i + 65_536] = block / np.linalg.norm(block, axis=1, keepdims=True)
    save_table(EmbeddingTable(table.keys, sem, "stand-in", "stylometric@random-384"), "data/embeddings/sem.safetensors")
    stats = {"sty": {"texts": len(table), "dim": int(table.vectors.shape[1])}, "sem_stand_in": {"dim": SEM_DIM}}
    write_json(stats, "reports/stages/embed.json")
    return stats


def semantic_cost(sample: int) -> dict:
    """MiniLM's seconds per 1k texts on a sample of the filtered train responses (after a warm-up
    batch), and the seconds it would take on all of them."""
    import pandas as pd

    from divwrite.core.params import load_params
    from divwrite.weighting.embedders import load_embedder

    params = load_params()
    texts = list(dict.fromkeys(pd.read_parquet("data/filtered/train.parquet")["response"]))
    picked = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))[:sample]]
    model = load_embedder(params.deviate.semantic_embedder, device="cpu")
    model.encode(picked[:32], batch_size=params.deviate.batch_size, show_progress=False)
    start = time.perf_counter()
    model.encode(picked, batch_size=params.deviate.batch_size, show_progress=False)
    per_1k = (time.perf_counter() - start) / len(picked) * 1000
    return {"texts": len(texts), "sample": len(picked), "seconds_per_1k": per_1k,
            "extrapolated_seconds": per_1k * len(texts) / 1000}  # fmt: skip


def child(stage: str, workdir: Path) -> None:
    """Run one stage in this process (cwd `workdir`) and write its timings to timings/<stage>.json."""
    os.chdir(workdir)
    parts: dict[str, float] = defaultdict(float)
    peaks: dict[str, float] = {}
    result: dict = {}
    if stage == "semantic":
        result = semantic_cost(int(os.environ.get("BENCH_SCALE_SEMANTIC_SAMPLE", SEMANTIC_SAMPLE)))
    else:
        from divwrite.core.stage import run_stage

        if stage == "embed":
            body = embed_main
        else:
            spec = importlib.util.spec_from_file_location(f"stage_{stage}", ROOT / "stages" / f"{stage}.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            for name, part in PARTS.items():
                if hasattr(module, name):
                    setattr(module, name, _timed(getattr(module, name), part, parts, peaks))
            body = module.main

        def timed(params):
            result["start_mib"] = _maxrss_mib()
            start = time.perf_counter()
            out = body(params)
            result["seconds"] = time.perf_counter() - start
            return out

        run_stage(stage, timed)
    result |= {"peak_mib": _maxrss_mib(), "parts": dict(parts), "part_peak_mib": peaks}
    Path("timings").mkdir(exist_ok=True)
    Path("timings", f"{stage}.json").write_text(json.dumps(result))


# --------------------------------------------------------------------------- the parent


def _run_child(stage: str, workdir: Path, semantic_sample: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_ROOT", "MLFLOW_TRACKING_URI", "PYTHONPATH")}
    env |= {"DIVWRITE_CACHE_DIR": str(workdir / ".cache" / "embeddings"), "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "DIVWRITE_LOG_LEVEL": "WARNING",
            "BENCH_SCALE_SEMANTIC_SAMPLE": str(semantic_sample)}  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", stage, "--work", str(workdir)],
                          env=env, capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{stage} failed in {workdir} (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads((workdir / "timings" / f"{stage}.json").read_text()) | {"wall": time.perf_counter() - start}


def run_scale(scale: Scale, params: dict, work: Path, semantic_sample: int = SEMANTIC_SAMPLE) -> dict:
    """Build the scale's corpus and run every stage on it in a fresh scratch project under `work`."""
    tag = hashlib.sha256(scale.name.encode()).hexdigest()[:8]
    corpus_file = work / f"corpus-{scale.name.replace(':', '_')}-{tag}.parquet"
    corpus = build_corpus(scale, params, corpus_file)
    print(f"  [{scale.name}] corpus: {corpus['prompts']:,} prompts, {corpus['responses']:,} responses, "
          f"{corpus['mean_words']} words/response, responses/prompt {corpus['responses_per_prompt']} "
          f"(built in {corpus['build_seconds']} s)", flush=True)  # fmt: skip
    project = work / f"project-{scale.name.replace(':', '_')}"
    shutil.rmtree(project, ignore_errors=True)
    (project / "data" / "raw").mkdir(parents=True)
    (project / "models").mkdir()
    linked = (ROOT / "models" / "base").is_dir()  # the project's tokenizer; a fresh clone has none yet
    if linked:
        (project / "models" / "base").symlink_to(ROOT / "models" / "base")
    shutil.copy(corpus_file, project / "data" / "raw" / "scale.parquet")
    run_params = json.loads(json.dumps(params))
    run_params["data"] |= {"source": "data/raw/scale.parquet", "layout": "per_prompt"}
    for section, values in scale.overrides.items():
        run_params[section] |= values
    (project / "params.yaml").write_text(yaml.safe_dump(run_params, sort_keys=False))
    stages = {}
    for stage in (*STAGES, "semantic"):
        if stage == "semantic" and not semantic_sample:
            continue
        stages[stage] = _run_child(stage, project, semantic_sample)
        if stage == "ingest" and not linked:  # the `base` stage on this corpus (not timed): filter needs its tokenizer
            _run_child("base", project, semantic_sample)
        s = stages[stage]
        what = (f"{s['seconds_per_1k']:.1f} s per 1k texts -> {s['extrapolated_seconds']:.0f} s for {s['texts']:,}"
                if stage == "semantic" else f"{s['seconds']:.1f} s, peak {s['peak_mib']:,.0f} MiB")  # fmt: skip
        print(f"  [{scale.name}] {stage}: {what} (process {s['wall']:.1f} s)", flush=True)
    card = json.loads((project / "reports" / "dataset_card.json").read_text())
    ingested = card["ingested"].values()
    return {"corpus": corpus, "card": card, "stages": stages,
            "responses": sum(c["responses"] for c in ingested),
            "words": sum(c["responses"] * c["mean_response_words"] for c in ingested),
            "pairs": json.loads((project / "reports" / "stages" / "pair.json").read_text())["pairs"],
            "project": str(project)}  # fmt: skip


def rows_of(point: dict) -> dict[str, tuple[float, float, float]]:
    """(seconds, peak MiB, MiB above the process's start-up) per table row of one scale point."""
    st = point["stages"]
    rows = {s: (st[s]["seconds"], st[s]["peak_mib"], st[s]["peak_mib"] - st[s]["start_mib"]) for s in STAGES}
    gate = [(st[s]["parts"]["gate"], st[s]["part_peak_mib"]["gate"], st[s]["start_mib"]) for s in STAGES
            if "gate" in st[s]["parts"]]  # fmt: skip
    rows["gates (5, in their stages)"] = (sum(g[0] for g in gate), max(g[1] for g in gate),
                                          max(g[1] - g[2] for g in gate))  # fmt: skip
    f = st["filter"]
    for part in ("card", "tokenize"):
        rows[f"{part} (in filter)"] = (
            f["parts"][part],
            f["part_peak_mib"][part],
            f["part_peak_mib"][part] - f["start_mib"],
        )
    return rows


def slope(x: list[float], y: list[float]) -> float | None:
    if len(x) < 2 or min(x) <= 0 or min(y) <= 0:
        return None
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def shapes(names: list[str]) -> dict[str, list[str]]:
    """The scales of each corpus shape with at least two points, e.g. `{"1-10": ["1", "10"]}`."""
    groups: dict[str, list[str]] = defaultdict(list)
    for name in names:
        groups["paper" if name.startswith("paper") else "builtin"].append(name)
    return {f"{g[0]}-{g[-1]}": g for g in groups.values() if len(g) >= 2}


def summarise(points: dict[str, dict]) -> dict:
    """Per row: seconds and peaks per scale, ratios to the first scale, and the growth exponents."""
    names = list(points)
    n = {s: points[s]["responses"] for s in names}
    table = {}
    for row in rows_of(points[names[0]]):
        vals = {s: rows_of(points[s])[row] for s in names}
        secs, peak, above = ({s: v[i] for s, v in vals.items()} for i in range(3))
        t_exp = {k: slope([n[s] for s in g], [secs[s] for s in g]) for k, g in shapes(names).items()}
        m_exp = {k: slope([n[s] for s in g], [max(above[s], 1.0) for s in g]) for k, g in shapes(names).items()}
        table[row] = {"seconds": secs, "peak_mib": peak, "above_start_mib": above,
                      "time_ratio": {s: secs[s] / secs[names[0]] for s in names},
                      "peak_ratio": {s: peak[s] / peak[names[0]] for s in names},
                      "time_exponent": t_exp, "memory_exponent": m_exp,
                      "super_linear": any(e is not None and e > SUPER_LINEAR for e in t_exp.values()),
                      "over_8_gib": max(peak.values()) / 1024 > MAX_PEAK_GIB}  # fmt: skip
    sem = {s: points[s]["stages"].get("semantic") for s in names}
    words = {s: points[s]["words"] for s in names}
    return {"rows": table, "semantic": sem, "responses": n, "words": words, "shapes": shapes(names)}


def print_table(summary: dict) -> None:
    names, groups = list(summary["responses"]), list(summary["shapes"])
    head = " | ".join(f"{s}: s, peak MiB" + (f" (x vs {names[0]})" if i else "") for i, s in enumerate(names))
    exps = " | ".join(f"exp. {g} (time, memory)" for g in groups)
    print(f"\n| stage | {head} | {exps} |")
    print("|---" * (len(names) + len(groups) + 1) + "|")
    fmt = lambda e: f"{e:.2f}" if e is not None else "-"  # noqa: E731
    for row, r in summary["rows"].items():
        cells = []
        for i, s in enumerate(names):
            ratio = f" (x{r['time_ratio'][s]:.1f}, x{r['peak_ratio'][s]:.1f})" if i else ""
            cells.append(f"{r['seconds'][s]:,.2f} s, {r['peak_mib'][s]:,.0f}{ratio}")
        cells += [f"{fmt(r['time_exponent'][g])}, {fmt(r['memory_exponent'][g])}" for g in groups]
        flag = " **super-linear**" if r["super_linear"] else ""
        flag += " **> 8 GiB**" if r["over_8_gib"] else ""
        print(f"| {row}{flag} | " + " | ".join(cells) + " |")
    sem = summary["semantic"]
    if all(sem.values()):
        cells = [f"{sem[s]['seconds_per_1k']:.1f} s/1k -> {sem[s]['extrapolated_seconds']:,.0f} s" for s in names]
        print("| embed: MiniLM (sample, extrapolated) | " + " | ".join(cells) + " |" + " |" * len(groups))
    sizes = ", ".join(f"{s}: {summary['responses'][s]:,} responses, {summary['words'][s]:,.0f} words" for s in names)
    print(f"(ingested: {sizes})")


def run(scales: list[str], out: Path | None = RESULTS, work: Path | None = None, keep: bool = False,
        semantic_sample: int = SEMANTIC_SAMPLE) -> dict:  # fmt: skip
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    work = work or Path(os.environ.get("TMPDIR", "/tmp")) / "divwrite-bench-scale"
    work.mkdir(parents=True, exist_ok=True)
    start, points = time.perf_counter(), {}
    for name in scales:
        print(f"== scale {name}", flush=True)
        points[name] = run_scale(parse_scale(name, params["corpus"]), params, work, semantic_sample)
        if not keep:
            shutil.rmtree(points[name]["project"], ignore_errors=True)
    summary = summarise(points)
    print_table(summary)
    rows = summary["rows"]
    exps = [e for r in rows.values() for e in r["time_exponent"].values() if e is not None]
    measured = {"scales": {s: {k: p[k] for k in ("corpus", "responses", "words", "pairs")} | {"card": p["card"]}
                           for s, p in points.items()},
                **summary, "seconds_total": time.perf_counter() - start}  # fmt: skip
    goals = [Goal("peak_gib", max(max(r["peak_mib"].values()) for r in rows.values()) / 1024, "<=", MAX_PEAK_GIB)]
    if exps:
        goals.insert(0, Goal("max_time_exponent", max(exps), "<=", SUPER_LINEAR))
    print(f"(scale benchmark: {measured['seconds_total']:.0f} s)")
    return report("scale", measured, goals, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="+", default=["1", "10", "paper:0.1", "paper"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default $TMPDIR/divwrite-bench-scale)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch projects")
    parser.add_argument("--semantic-sample", type=int, default=SEMANTIC_SAMPLE, help="texts MiniLM embeds (0: skip)")
    parser.add_argument("--child", choices=[*STAGES, "base", "semantic"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.work)
    else:
        run(args.scales, args.out, args.work, args.keep, args.semantic_sample)


if __name__ == "__main__":
    main()
