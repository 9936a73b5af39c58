"""Byte-level BPE tokenizer, its chat template, and chat token counts."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from trl.data_utils import _tokenize

from divwrite.training.tokenizer import (
    BOS_TOKEN,
    EOS_TOKEN,
    PAD_TOKEN,
    chat_messages,
    chat_token_lengths,
    load_tokenizer,
    train_bpe_tokenizer,
)

WORDS = "the a cat dog ran sat on mat night sky star ship sea storm old man woman child said".split()


def corpus(n=300, seed=0):
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))) + rng.choice([".", "!", "?\n"]) for _ in range(n)
    ]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    train_bpe_tokenizer(corpus(), 400, out)
    return out


def test_train_saves_specials_and_is_deterministic(tok_dir, tmp_path):
    assert (tok_dir / "tokenizer.json").is_file()
    tok = load_tokenizer(tok_dir)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (BOS_TOKEN, EOS_TOKEN, PAD_TOKEN)
    assert len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}) == 3
    assert 300 < len(tok) <= 400
    again = train_bpe_tokenizer(corpus(), 400, tmp_path)
    assert again.get_vocab() == tok.get_vocab()
    assert (tmp_path / "tokenizer.json").read_bytes() == (tok_dir / "tokenizer.json").read_bytes()
    with pytest.raises(ValueError, match="too small"):
        train_bpe_tokenizer(corpus(), 100, tmp_path / "small")


def test_byte_level_round_trip(tok_dir):
    tok = load_tokenizer(tok_dir)
    text = "Ünïcode — emoji 🐉 and tabs\tand\nnewlines, never seen."
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_chat_template_prefix_and_eos(tok_dir):
    """notes/trl.md pitfalls 4-5: the generation prompt is a token prefix; the answer ends with EOS."""
    tok = load_tokenizer(tok_dir)
    for prompt, answer in [("the cat\nsat on", "the mat. The end"), ("  spaced ", " leading space"), ("!", "?")]:
        prompt_ids = _tokenize(tok, chat_messages(prompt), add_generation_prompt=True)["input_ids"]
        full_ids = _tokenize(tok, chat_messages(prompt, answer))["input_ids"]
        assert full_ids[: len(prompt_ids)] == prompt_ids
        assert full_ids[0] == tok.bos_token_id
        assert full_ids[-1] == tok.eos_token_id
        assert tok.decode(full_ids[len(prompt_ids) :], skip_special_tokens=True) == answer
        assert full_ids.count(tok.bos_token_id) == 1


def test_load_tokenizer_sets_missing_pad(tok_dir, tmp_path):
    tok = load_tokenizer(tok_dir)
    tok.pad_token = None
    tok.save_pretrained(tmp_path)
    reloaded = load_tokenizer(tmp_path)
    assert reloaded.pad_token == reloaded.eos_token == EOS_TOKEN


def test_chat_token_lengths_match_trl_tokenisation(tok_dir):
    tok = load_tokenizer(tok_dir)
    texts = corpus(50, seed=3)
    prompts, responses = texts[:25], texts[25:]
    lengths = chat_token_lengths(tok, prompts, responses, batch_size=7)
    expected = [len(_tokenize(tok, chat_messages(p, r))["input_ids"]) for p, r in zip(prompts, responses)]
    assert lengths.dtype.kind == "i"
    np.testing.assert_array_equal(lengths, expected)
    assert chat_token_lengths(tok, [], []).shape == (0,)
    with pytest.raises(ValueError):
        chat_token_lengths(tok, ["a"], [])


@pytest.mark.parametrize("offline", ["0", "1"])
def test_saved_tokenizer_does_not_depend_on_hf_hub_offline(tok_dir, tmp_path, monkeypatch, offline):
    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    load_tokenizer(tok_dir).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert "local_files_only" not in saved  # else `make run` and a bare `dvc repro` hash models differently
    assert saved == json.loads((tok_dir / "tokenizer_config.json").read_text()) | {"is_local": saved["is_local"]}
