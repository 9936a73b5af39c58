"""Causal language models for the generator: a small built-in Llama, or a hub/local model (+ LoRA).

The built-in model is trained from scratch so the whole pipeline runs offline on a CPU. For
hub models the paper fine-tunes with LoRA (r=128, alpha=256); the SFT adapter is then also
the reference policy of DPO/DDPO (METHOD.md, Training), which TRL handles by switching the
adapter off (or to a frozen copy) for the reference forward.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from peft import LoraConfig
from transformers import (
    AutoModelForCausalLM,
    GgufConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from divwrite.core.schema import ModelParams
from divwrite.training.model_source import is_gguf_spec, resolve_model_source

# The `model` params that size the built-in Llama (params.yaml).
BUILTIN_SIZES = ("hidden_size", "intermediate_size", "num_layers", "num_heads", "max_position_embeddings")


def builtin_model_from_params(
    tokenizer: PreTrainedTokenizerBase, model_params: ModelParams, seed: int
) -> LlamaForCausalLM:
    """`build_builtin_model` sized by params.yaml's `model` section."""
    return build_builtin_model(tokenizer, seed=seed, **{k: getattr(model_params, k) for k in BUILTIN_SIZES})


def build_builtin_model(
    tokenizer: PreTrainedTokenizerBase,
    *,
    hidden_size: int,
    intermediate_size: int,
    num_layers: int,
    num_heads: int,
    max_position_embeddings: int,
    seed: int,
) -> LlamaForCausalLM:
    """A freshly initialised Llama sized for CPU training, with tied input/output embeddings.

    Vocabulary size and the BOS/EOS/PAD ids come from `tokenizer`; the weights are drawn under
    `seed`, so the same arguments give the same model.
    """
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size={hidden_size} is not divisible by num_heads={num_heads}")
    if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer needs EOS and PAD tokens (see divwrite.training.tokenizer.load_tokenizer)")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        use_cache=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def is_adapter(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder holding a LoRA adapter (as `run_sft` saves with LoRA)."""
    return (Path(path) / "adapter_config.json").is_file()


def load_causal_lm(
    name_or_path: str | os.PathLike,
    *,
    trust_remote_code: bool = False,
    dtype: torch.dtype | str | None = None,
    is_trainable: bool = False,
) -> PreTrainedModel:
    """Load a causal LM from the hub, a local folder or a GGUF file (`model_source`), in float32
    unless `dtype` says otherwise.

    A folder holding a LoRA adapter (`adapter_config.json`, as `run_sft` saves with LoRA) is
    loaded as a `PeftModel` on its base model, with the adapter trainable if `is_trainable`; a
    GGUF base (recorded under its spec, e.g. `smollm2`) is resolved and dequantised again.
    float32 is the default (not the config's dtype, as transformers 5 would pick) because CPU
    training in bf16 is slow or fails (notes/trl.md, pitfall 1).
    """
    dtype = dtype if dtype is not None else torch.float32
    if is_adapter(name_or_path):
        from peft import AutoPeftModelForCausalLM, PeftConfig, PeftModel

        base = PeftConfig.from_pretrained(str(name_or_path)).base_model_name_or_path
        if base and is_gguf_spec(base):
            model = load_causal_lm(base, trust_remote_code=trust_remote_code, dtype=dtype)
            return PeftModel.from_pretrained(model, str(name_or_path), is_trainable=is_trainable)
        return AutoPeftModelForCausalLM.from_pretrained(
            str(name_or_path), is_trainable=is_trainable, trust_remote_code=trust_remote_code, dtype=dtype
        )
    source = resolve_model_source(name_or_path)
    kwargs = source.from_pretrained_kwargs()
    if source.is_gguf:
        # Unpacked to dense float weights at load (not left in GGUF blocks, which the Trainer
        # refuses to train), so the model is a plain one, the same on every machine.
        kwargs["quantization_config"] = GgufConfig(gguf_file=source.gguf_file, dequantize=True)
    model = AutoModelForCausalLM.from_pretrained(
        source.path, trust_remote_code=trust_remote_code, dtype=dtype, **kwargs
    )
    if source.is_gguf:  # named after the spec, which a LoRA adapter records as its base (`model_source`)
        model.name_or_path = model.config._name_or_path = source.spec
    return model


def lora_config(
    r: int = 128,
    alpha: int = 256,
    target_modules: list[str] | str | None = "all-linear",
    dropout: float = 0.05,
) -> LoraConfig:
    """A causal-LM LoRA config (paper: r=128, alpha=256). `"all-linear"` leaves the LM head out,
    as TRL's DPO trainer requires (it reads `lm_head.weight` directly)."""
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        target_modules=target_modules,
        lora_dropout=dropout,
        bias="none",
        task_type="CAUSAL_LM",
    )
