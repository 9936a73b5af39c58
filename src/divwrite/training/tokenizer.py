"""Tokenizers for the generator: a small byte-level BPE trained locally, or a hub tokenizer.

The built-in tokenizer is trained with the `tokenizers` library on the training stories and
carries a chat template with the two properties TRL relies on (notes/trl.md, pitfalls 4-5):

- the prompt rendered with `add_generation_prompt=True` is an exact prefix (as text and as
  token ids) of the prompt followed by the answer;
- every turn, the assistant's included, ends with the EOS token, so generation stops there.

`chat_token_lengths` counts tokens exactly as the trainers see a (prompt, response) pair;
the filter stage uses it for the context-length cut (METHOD.md step 2).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from divwrite.training.model_source import resolve_model_source

BOS_TOKEN = "<|bos|>"
EOS_TOKEN = "<|eos|>"
PAD_TOKEN = "<|pad|>"
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
SPECIAL_TOKENS = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, *ROLE_TOKENS.values()]

# Each turn is `<|role|>content<|eos|>`; the generation prompt is `<|assistant|>`. Role markers
# are special tokens, so the boundary between prompt and answer never merges across tokens.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + eos_token }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | os.PathLike) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts` and save it (with its chat template) to `out_dir`.

    The vocabulary holds the 256 byte symbols, the special tokens (pad, BOS, EOS, one per chat
    role) and merges up to `vocab_size`. Training is deterministic for the same texts in the same
    order. No BOS is added on plain `tokenizer(text)` calls; the chat template adds it.
    """
    min_size = 256 + len(SPECIAL_TOKENS)
    if vocab_size < min_size:
        raise ValueError(f"vocab_size={vocab_size} is too small for byte-level BPE (need at least {min_size})")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_nonempty(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=list(ROLE_TOKENS.values()),
        padding_side="right",
        model_max_length=1_000_000,
    )
    fast.chat_template = CHAT_TEMPLATE
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


def _nonempty(texts: Iterable[str]) -> Iterator[str]:
    for text in texts:
        if text:
            yield text


def load_tokenizer(name_or_path: str | os.PathLike, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """Load a tokenizer with `AutoTokenizer` (from a GGUF file too, `model_source`); give it a pad
    token (EOS) if it has none.

    The padding side is left as saved (right for the built-in one, as training wants);
    `generation.generate_samples` switches to left padding for the duration of a call.
    transformers records `local_files_only` (taken from HF_HUB_OFFLINE) among the kwargs that
    `save_pretrained` writes; it is dropped, so a saved model's bytes (and DVC hash) do not
    depend on the environment it was trained in.
    """
    source = resolve_model_source(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(
        source.path, trust_remote_code=trust_remote_code, **source.from_pretrained_kwargs()
    )
    tokenizer.init_kwargs.pop("local_files_only", None)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"{name_or_path}: the tokenizer has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


# For a hub tokenizer that has no chat template (a base model's, often): plain-text turn headers
# with the same two properties as CHAT_TEMPLATE, using the tokenizer's own BOS / EOS.
FALLBACK_CHAT_TEMPLATE = (
    "{{ bos_token or '' }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ '### Assistant:\\n' + message['content'] + eos_token }}"
    "{% else %}{{ '### ' + message['role'] | capitalize + ':\\n' + message['content'] + '\\n\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\\n' }}{% endif %}"
)


def ensure_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Give `tokenizer` `FALLBACK_CHAT_TEMPLATE` if it has no chat template; True if it did so.

    A hub tokenizer's own template (e.g. an instruct model's) is kept as it is. The trainers
    format every example as a chat (prompt = user turn, story = assistant turn), so the
    template must exist before the filter stage counts tokens.
    """
    if tokenizer.chat_template is not None:
        return False
    if tokenizer.eos_token is None:
        raise ValueError("the tokenizer has no EOS token: an assistant turn could never end")
    tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return True


def chat_messages(prompt: str, response: str | None = None) -> list[dict[str, str]]:
    """The conversation the trainers see: the prompt as the user turn, the response as the assistant turn."""
    messages = [{"role": "user", "content": prompt}]
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    return messages


def chat_token_lengths(
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    responses: list[str],
    batch_size: int = 4096,
) -> np.ndarray:
    """Token count of each full chat (user prompt + assistant response), as SFT/DPO tokenise it.

    TRL tokenises a conversation with `apply_chat_template(tokenize=True)`, i.e. it renders the
    template and encodes the text without adding special tokens; this does the same, rendering
    in batches and encoding with the fast tokenizer's batch encoder. Used by the filter stage
    (METHOD.md step 2: drop responses longer than the training context).
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if tokenizer.chat_template is None:
        raise ValueError("the tokenizer has no chat template; the trainers need one for conversational data")
    lengths = np.zeros(len(prompts), dtype=np.int64)
    for start in range(0, len(prompts), batch_size):
        stop = min(start + batch_size, len(prompts))
        conversations = [chat_messages(p, r) for p, r in zip(prompts[start:stop], responses[start:stop])]
        rendered = tokenizer.apply_chat_template(conversations, tokenize=False)
        encoded = tokenizer(rendered, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        lengths[start:stop] = [len(ids) for ids in encoded]
    return lengths
