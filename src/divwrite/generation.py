"""Sampling stories from a post-trained model (METHOD.md, Evaluation: 4 responses per prompt,
temperature 1.0, top-k 50, top-p 0.95, repetition penalty 1.1)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from divwrite.modeling import load_causal_lm
from divwrite.tokenizer import chat_messages, load_tokenizer


def load_generator(
    model_dir: str | os.PathLike, *, trust_remote_code: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a trained generator and its tokenizer from `model_dir` (as `training` saves them).

    A LoRA adapter folder is loaded on its base model and merged, so generation runs at the
    speed of a plain model. The model is returned in eval mode, on the GPU when there is one.
    """
    tokenizer = load_tokenizer(model_dir, trust_remote_code=trust_remote_code)
    model = load_causal_lm(model_dir, trust_remote_code=trust_remote_code)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model.eval(), tokenizer


def generate_samples(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    *,
    n_samples: int = 4,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 50,
    top_p: float = 0.95,
    repetition_penalty: float = 1.1,
    batch_size: int = 32,
    seed: int,
    show_progress: bool = True,
) -> list[list[str]]:
    """Sample `n_samples` completions for each prompt; return them per prompt, in prompt order.

    Each prompt is rendered with the chat template as the user turn plus the generation prompt
    (exactly the context the trainers used), left-padded, and `batch_size` prompts go through
    one `generate` call with `num_return_sequences=n_samples`. Prompts are batched in order of
    length to limit padding. Completions are decoded without special tokens and stripped of
    surrounding whitespace. The same `seed` gives the same samples (the global RNG is restored
    afterwards); `temperature <= 0` means greedy decoding.
    """
    if n_samples < 1 or batch_size < 1:
        raise ValueError(f"n_samples and batch_size must be >= 1, got {n_samples} and {batch_size}")
    if not prompts:
        return []
    if tokenizer.chat_template is None:
        raise ValueError("the tokenizer has no chat template (the models are trained on chat-formatted data)")
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_token_id is None:
        raise ValueError("the tokenizer has neither a pad nor an EOS token")

    rendered = tokenizer.apply_chat_template(
        [chat_messages(p) for p in prompts], tokenize=False, add_generation_prompt=True
    )
    lengths = [len(ids) for ids in tokenizer(rendered, add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))

    sampling = temperature > 0
    gen_kwargs = dict(
        max_new_tokens=max_new_tokens,
        do_sample=sampling,
        num_return_sequences=n_samples,
        repetition_penalty=repetition_penalty,
        pad_token_id=pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if sampling:
        gen_kwargs.update(temperature=temperature, top_k=top_k, top_p=top_p)
    else:
        gen_kwargs.update(temperature=None, top_k=None, top_p=None)

    device = model.device
    results: list[list[str]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    rng_devices = [device] if device.type == "cuda" else []
    try:
        with _left_padding(tokenizer), torch.random.fork_rng(devices=rng_devices), torch.inference_mode():
            torch.manual_seed(seed)
            batches = list(_chunks(order, batch_size))
            for batch in tqdm(batches, desc="Generating", unit="batch", disable=not show_progress):
                enc = tokenizer(
                    [rendered[i] for i in batch], add_special_tokens=False, padding=True, return_tensors="pt"
                ).to(device)
                out = model.generate(**enc, **gen_kwargs)
                texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
                for k, i in enumerate(batch):
                    results[i] = [t.strip() for t in texts[k * n_samples : (k + 1) * n_samples]]
    finally:
        model.train(was_training)
    return results


@contextlib.contextmanager
def _left_padding(tokenizer: PreTrainedTokenizerBase) -> Iterator[None]:
    """Pad on the left for decoder-only generation; restore the tokenizer's setting afterwards."""
    previous = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield
    finally:
        tokenizer.padding_side = previous


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
