"""Sampling stories from a post-trained model (METHOD.md, Evaluation: 4 responses per prompt,
temperature 1.0, top-k 50, top-p 0.95, repetition penalty 1.1).

Two backends with the same settings: `generate_samples` (transformers' `generate`, batched
across prompts; the default, CPU or GPU) and `generate_samples_vllm` (vLLM, for GPU users;
`generate.backend: vllm`), whose package is imported only when that backend is chosen.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from divwrite.training.modeling import load_causal_lm
from divwrite.training.tokenizer import chat_messages, load_tokenizer


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


BACKENDS = ("transformers", "vllm")


def vllm_sampling_kwargs(
    *,
    n_samples: int,
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float,
    repetition_penalty: float,
    seed: int,
) -> dict[str, Any]:
    """`vllm.SamplingParams` arguments for the paper's settings (vLLM's names: `n`,
    `max_tokens`; temperature 0 is greedy there, with top-k/top-p off)."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    greedy = temperature <= 0
    return {
        "n": n_samples,
        "max_tokens": max_new_tokens,
        "temperature": 0.0 if greedy else float(temperature),
        "top_k": -1 if greedy else int(top_k),
        "top_p": 1.0 if greedy else float(top_p),
        "repetition_penalty": float(repetition_penalty),
        "seed": int(seed),
    }


def generate_samples_vllm(
    model_dir: str | os.PathLike,
    prompts: list[str],
    *,
    n_samples: int = 4,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 50,
    top_p: float = 0.95,
    repetition_penalty: float = 1.1,
    seed: int,
    trust_remote_code: bool = False,
) -> list[list[str]]:
    """`generate_samples` on vLLM: the same chat-templated contexts and sampling settings,
    all prompts in one `LLM.generate` call. A LoRA adapter folder is merged into its base
    model in a temporary folder first (vLLM loads plain checkpoints). Raises ImportError
    with the install hint when vLLM is missing."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError as err:
        raise ImportError(
            "generate.backend: vllm needs the vllm package (a GPU machine: pip install vllm); "
            "the default backend is transformers"
        ) from err
    if not prompts:
        return []
    sampling = SamplingParams(
        **vllm_sampling_kwargs(
            n_samples=n_samples,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
            seed=seed,
        )
    )
    with tempfile.TemporaryDirectory(prefix="divwrite-vllm-") as tmp:
        path = Path(model_dir)
        if (path / "adapter_config.json").exists():
            model, tokenizer = load_generator(path, trust_remote_code=trust_remote_code)
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            path = Path(tmp)
        llm = LLM(model=str(path), seed=seed, trust_remote_code=trust_remote_code)
        tokenizer = llm.get_tokenizer()
        rendered = tokenizer.apply_chat_template(
            [chat_messages(p) for p in prompts], tokenize=False, add_generation_prompt=True
        )
        outputs = llm.generate(rendered, sampling)
    return [[o.text.strip() for o in out.outputs] for out in outputs]
