"""Sampling: shape, determinism for a seed, left padding, decoding without special tokens."""

from __future__ import annotations

import random

import pytest
import torch

from divwrite.evaluation.generation import generate_samples
from divwrite.training.modeling import build_builtin_model
from divwrite.training.tokenizer import ROLE_TOKENS, chat_messages, load_tokenizer, train_bpe_tokenizer

WORDS = "the a cat dog ran sat on mat night sky star ship sea storm old man woman child said".split()
PROMPTS = ["a cat", "the old man and the sea said the storm on the night", "ship", "a dog ran on the mat"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))) for _ in range(200)]
    out = tmp_path_factory.mktemp("tok")
    train_bpe_tokenizer(texts, 320, out)
    tokenizer = load_tokenizer(out)
    model = build_builtin_model(
        tokenizer, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, max_position_embeddings=128, seed=0
    )
    # A few language-modelling steps on chats, so greedy decoding produces words rather than
    # copying the last (special) token as a random tied-embedding model does.
    chats = tokenizer.apply_chat_template(
        [chat_messages(a, b) for a, b in zip(texts[:64], texts[64:128])], tokenize=False
    )
    batch = tokenizer(chats, add_special_tokens=False, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(15):
        optimizer.zero_grad()
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
    return model, tokenizer


def test_shape_and_determinism(setup):
    model, tokenizer = setup
    kwargs = dict(n_samples=3, max_new_tokens=12, batch_size=3, seed=7, show_progress=False)
    torch.manual_seed(0)
    first = generate_samples(model, tokenizer, PROMPTS, **kwargs)
    torch.manual_seed(1)  # the global RNG state does not matter
    second = generate_samples(model, tokenizer, PROMPTS, **kwargs)
    assert first == second
    assert len(first) == len(PROMPTS) and all(len(samples) == 3 for samples in first)
    assert all(isinstance(s, str) for samples in first for s in samples)
    # Sampling really samples: a prompt's samples differ, and another seed gives other samples.
    assert any(len(set(samples)) > 1 for samples in first)
    assert generate_samples(model, tokenizer, PROMPTS, **{**kwargs, "seed": 8}) != first
    # No special tokens in the decoded text; the tokenizer keeps its padding side.
    specials = [tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, *ROLE_TOKENS.values()]
    assert not any(tok in s for samples in first for s in samples for tok in specials)
    assert tokenizer.padding_side == "right"
    assert generate_samples(model, tokenizer, [], **kwargs) == []


def test_left_padding_matches_unbatched(setup):
    """Greedy continuations of a short prompt are the same alone and batched with longer prompts."""
    model, tokenizer = setup
    kwargs = dict(n_samples=1, max_new_tokens=10, temperature=0.0, seed=0, show_progress=False)
    batched = generate_samples(model, tokenizer, PROMPTS, batch_size=len(PROMPTS), **kwargs)
    alone = [generate_samples(model, tokenizer, [p], batch_size=1, **kwargs)[0] for p in PROMPTS]
    assert batched == alone
    assert any(s[0] for s in batched)  # something was generated


def test_load_generator_round_trip(setup, tmp_path):
    from divwrite.evaluation.generation import load_generator

    model, tokenizer = setup
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tok = load_generator(tmp_path)
    kwargs = dict(n_samples=2, max_new_tokens=8, batch_size=4, seed=3, show_progress=False)
    assert not loaded.training
    assert generate_samples(loaded, loaded_tok, PROMPTS, **kwargs) == generate_samples(
        model, tokenizer, PROMPTS, **kwargs
    )


def test_vllm_backend_is_imported_only_when_chosen(tmp_path):
    """`divwrite.evaluation.generation` never imports vLLM; choosing it without the package is a clear
    ImportError; the paper's settings map onto vLLM's SamplingParams names."""
    import subprocess
    import sys

    code = "import sys, divwrite.evaluation.generation; print('vllm' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
    from divwrite.evaluation.generation import generate_samples_vllm, vllm_sampling_kwargs

    settings = dict(
        n_samples=4, max_new_tokens=160, temperature=1.0, top_k=50, top_p=0.95, repetition_penalty=1.1, seed=7
    )
    assert vllm_sampling_kwargs(**settings) == {
        "n": 4, "max_tokens": 160, "temperature": 1.0, "top_k": 50, "top_p": 0.95, "repetition_penalty": 1.1, "seed": 7,
    }  # fmt: skip
    greedy = vllm_sampling_kwargs(**{**settings, "temperature": 0.0})
    assert (greedy["temperature"], greedy["top_k"], greedy["top_p"]) == (0.0, -1, 1.0)
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install vllm"):
            generate_samples_vllm(tmp_path, ["a prompt"], **{k: v for k, v in settings.items()})
