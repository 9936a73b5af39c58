"""SFT and preference runs end to end on a tiny model: they learn, save, and are deterministic."""

from __future__ import annotations

import random
import typing

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from divwrite.core.schema import Method
from divwrite.training.modeling import build_builtin_model, load_causal_lm, lora_config
from divwrite.training.runs import (
    PREFERENCE_METHODS,
    WEIGHT_VARIANTS,
    build_sft_trainer,
    parse_preference_method,
    run_preference,
    run_sft,
)
from divwrite.training.tokenizer import chat_messages, load_tokenizer, train_bpe_tokenizer
from divwrite.weighting.deviation import QG_COLUMNS, WEIGHT_COLUMNS

WORDS = "the a cat dog ran sat on mat night sky star ship sea storm old man woman child said".split()
SFT = dict(epochs=3, learning_rate=1e-2, batch_size=8, warmup_ratio=0.1, seed=0, max_length=96)
PREF = dict(beta=0.1, learning_rate=1e-2, epochs=2, batch_size=8, seed=0, max_length=96)


def text(rng, lo, hi):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


@pytest.fixture(scope="module")
def data():
    rng = random.Random(0)
    responses = pd.DataFrame(
        {"prompt": [text(rng, 2, 5) for _ in range(24)], "response": [text(rng, 5, 15) for _ in range(24)]}
    )
    pairs = pd.DataFrame(
        {
            "prompt": [text(rng, 2, 5) for _ in range(8)],
            "chosen": [text(rng, 5, 15) for _ in range(8)],
            "rejected": [text(rng, 5, 15) for _ in range(8)],
        }
    )
    w = np.random.default_rng(0).uniform(0.2, 2.0, (8, 3))
    pairs["w_chosen_sem"], pairs["w_chosen_sty"], pairs["w_chosen_both"] = w.T
    return responses, pairs


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory, data):
    responses, _ = data
    out = tmp_path_factory.mktemp("tok")
    train_bpe_tokenizer(list(responses["prompt"]) + list(responses["response"]), 320, out)
    return load_tokenizer(out)


def tiny_model(tokenizer):
    return build_builtin_model(
        tokenizer, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, max_position_embeddings=128, seed=0
    )


def completion_nll(model, tokenizer, prompts, responses) -> float:
    """Mean per-token NLL of the responses given the chat-formatted prompts."""
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for p, r in zip(prompts, responses):
            prompt_ids = tokenizer.apply_chat_template(
                chat_messages(p), add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
            full = tokenizer.apply_chat_template(chat_messages(p, r), tokenize=True, return_dict=True)["input_ids"]
            ids = torch.tensor([full])
            labels = ids.clone()
            labels[:, : len(prompt_ids)] = -100
            n = len(full) - len(prompt_ids)
            total += model(input_ids=ids, labels=labels).loss.item() * n
            count += n
    return total / count


@pytest.fixture(scope="module")
def sft_dir(tmp_path_factory, data, tokenizer):
    responses, _ = data
    out = tmp_path_factory.mktemp("sft")
    metrics = run_sft(tiny_model(tokenizer), tokenizer, responses, out, **SFT)
    return out, metrics


def test_sft_learns_saves_and_is_deterministic(sft_dir, data, tokenizer, tmp_path):
    out, metrics = sft_dir
    responses, _ = data
    assert {"train_loss", "runtime", "tokens", "steps"} <= metrics.keys()
    assert metrics["steps"] == 9 and metrics["tokens"] > 0 and np.isfinite(metrics["train_loss"])
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not (out / "trainer").exists() and not list(out.glob("*.bin"))  # no pickles
    trained = load_causal_lm(out)
    before = completion_nll(tiny_model(tokenizer), tokenizer, responses["prompt"], responses["response"])
    after = completion_nll(trained, tokenizer, responses["prompt"], responses["response"])
    assert after < before - 0.5  # it learned the responses
    assert load_tokenizer(out).chat_template == tokenizer.chat_template
    # Same seed, same weights.
    run_sft(tiny_model(tokenizer), tokenizer, responses, tmp_path, **SFT)
    a, b = load_file(out / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_weight_variants_agree_everywhere():
    """Every `weights:` a method may name has a trainer method and a `w_chosen_<variant>` column
    written by the deviate stage (`weight_pairs`), and vice versa."""
    allowed = set(typing.get_args(typing.get_args(Method.model_fields["weights"].annotation)[0]))
    columns = {c.removeprefix("w_chosen_") for c in WEIGHT_COLUMNS + QG_COLUMNS if c.startswith("w_chosen_")}
    assert allowed == set(WEIGHT_VARIANTS) == columns == {"sem", "sty", "both", "qg"}
    for v in WEIGHT_VARIANTS:
        assert {f"ddpo-{v}", f"dorpo-{v}"} <= set(PREFERENCE_METHODS)
        assert parse_preference_method(f"ddpo-{v}") == ("dpo", f"w_chosen_{v}")
        assert parse_preference_method(f"dorpo-{v}") == ("orpo", f"w_chosen_{v}")


def test_preference_methods(sft_dir, data, tmp_path):
    sft, _ = sft_dir
    _, pairs = data
    full_batch = {**PREF, "batch_size": len(pairs)}  # one step per epoch: last log covers every pair
    dpo = run_preference("dpo", sft, pairs, tmp_path / "dpo", **full_batch)
    ddpo = run_preference("ddpo-both", sft, pairs, tmp_path / "ddpo", **full_batch)
    for m in (dpo, ddpo):
        assert m["steps"] == 2 and m["tokens"] > 0
        assert m["rewards/margins"] > 0 and m["rewards/accuracies"] > 0.5  # the second step has learned
    assert "weights/mean" not in dpo
    assert ddpo["weights/mean"] == pytest.approx(pairs["w_chosen_both"].mean(), rel=1e-5)
    assert (tmp_path / "ddpo" / "model.safetensors").is_file()
    # All weights 1: DDPO trains exactly the same model as stock DPO.
    ones = pairs.assign(w_chosen_sem=1.0)
    run_preference("ddpo-sem", sft, ones, tmp_path / "ones", **full_batch)
    a, b = load_file(tmp_path / "dpo" / "model.safetensors"), load_file(tmp_path / "ones" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)
    # ... but real weights change the result.
    c = load_file(tmp_path / "ddpo" / "model.safetensors")
    assert any(not torch.allclose(a[k], c[k], atol=1e-6) for k in a)


def test_orpo_methods(sft_dir, data, tokenizer, tmp_path):
    """ORPO and DORPO start from the SFT model, learn the chosen responses, save, and log ORPO's metrics."""
    sft, _ = sft_dir
    _, pairs = data
    full_batch = {**PREF, "batch_size": len(pairs)}
    orpo = run_preference("orpo", sft, pairs, tmp_path / "orpo", **full_batch)
    dorpo = run_preference("dorpo-both", sft, pairs, tmp_path / "dorpo", **full_batch)
    before = completion_nll(load_causal_lm(sft), tokenizer, pairs["prompt"], pairs["chosen"])
    for name, m in (("orpo", orpo), ("dorpo", dorpo)):
        assert m["steps"] == 2 and m["epochs"] == 2
        for key in ("train_loss", "nll_loss", "log_odds_ratio", "log_odds_chosen", "rewards/margins", "logps/chosen"):
            assert np.isfinite(m[key]), (name, key)
        assert m["nll_loss"] > 0 and m["log_odds_ratio"] < 0  # NLL term and log sigmoid(log odds)
        out = tmp_path / name
        assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
        assert not (out / "trainer").exists() and not [f for f in out.iterdir() if f.suffix in (".bin", ".pt", ".pkl")]
        after = completion_nll(load_causal_lm(out), tokenizer, pairs["prompt"], pairs["chosen"])
        assert after < before  # the NLL term trained the chosen responses further
    assert "weights/mean" not in orpo
    assert dorpo["weights/mean"] == pytest.approx(pairs["w_chosen_both"].mean(), rel=1e-5)
    # The weights reach training: DORPO ends elsewhere than ORPO.
    a, c = load_file(tmp_path / "orpo" / "model.safetensors"), load_file(tmp_path / "dorpo" / "model.safetensors")
    assert any(not torch.allclose(a[k], c[k], atol=1e-6) for k in a)


def test_preference_rejects_bad_input(sft_dir, data, tmp_path):
    sft, _ = sft_dir
    _, pairs = data
    with pytest.raises(ValueError, match=r"unknown preference method 'ipo'.*'dpo'.*'ddpo-both'.*'orpo'.*'dorpo-sem'"):
        run_preference("ipo", sft, pairs, tmp_path, **PREF)
    with pytest.raises(ValueError, match="w_chosen_sty"):
        run_preference("ddpo-sty", sft, pairs.drop(columns=["w_chosen_sty"]), tmp_path, **PREF)
    with pytest.raises(ValueError, match=r"lacks columns \['w_chosen_sem'\]"):
        run_preference("dorpo-sem", sft, pairs.drop(columns=["w_chosen_sem"]), tmp_path, **PREF)
    with pytest.raises(ValueError, match="NaN"):
        run_preference("dorpo-both", sft, pairs.assign(w_chosen_both=np.nan), tmp_path, **PREF)
    with pytest.raises(ValueError, match="NaN"):
        run_preference("ddpo-sty", sft, pairs.assign(w_chosen_sty=np.nan), tmp_path, **PREF)


def test_lora_sft_adapter_is_trained_and_is_the_reference(data, tokenizer, tmp_path):
    """Hub-model path: SFT trains a LoRA adapter; DDPO continues it with a frozen copy as reference."""
    responses, pairs = data
    base = tmp_path / "base"
    tiny_model(tokenizer).save_pretrained(base)
    tokenizer.save_pretrained(base)
    peft = lora_config(r=4, alpha=8, target_modules=["q_proj", "v_proj"], dropout=0.0)
    run_sft(str(base), tokenizer, responses, tmp_path / "sft", **{**SFT, "epochs": 1}, peft_config=peft)
    assert (tmp_path / "sft" / "adapter_config.json").is_file()
    metrics = run_preference("ddpo-both", tmp_path / "sft", pairs, tmp_path / "ddpo", **{**PREF, "batch_size": 8})
    assert (tmp_path / "ddpo" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "ddpo" / "ref").exists()  # the frozen reference copy is not saved
    assert metrics["weights/mean"] == pytest.approx(pairs["w_chosen_both"].mean(), rel=1e-5)
    sft_adapter = load_file(tmp_path / "sft" / "adapter_model.safetensors")
    ddpo_adapter = load_file(tmp_path / "ddpo" / "adapter_model.safetensors")
    assert sft_adapter.keys() == ddpo_adapter.keys()
    assert any(not torch.allclose(sft_adapter[k], ddpo_adapter[k]) for k in sft_adapter)


def test_sft_loss_is_on_the_response_only(data, tokenizer, tmp_path):
    responses, _ = data
    trainer = build_sft_trainer(tiny_model(tokenizer), tokenizer, responses.iloc[:4], tmp_path, **SFT)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    for row, (p, r) in enumerate(zip(responses["prompt"][:4], responses["response"][:4])):
        prompt_len = len(
            tokenizer.apply_chat_template(
                chat_messages(p), add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
        )
        labels = batch["labels"][row]
        trained = labels[labels != -100].tolist()
        assert (labels[:prompt_len] == -100).all()
        assert trained[-1] == tokenizer.eos_token_id  # the model learns to stop
        assert tokenizer.decode(trained, skip_special_tokens=True) == r
