"""How far preference training moved the chosen stories' likelihood (premise check P4).

DPO lowers the log-probability of the chosen responses as well as the rejected ones when it
cannot separate them otherwise; on a small model that drift is what breaks its use of the
prompt (notes/findings.md). `chosen_logp_change` measures it directly: the mean over a fixed
set of train pairs of `log pi_after(y_w | x) - log pi_before(y_w | x)`, each summed over the
response's tokens in the chat format the trainers use (the prompt as the user turn, the
story as the assistant turn), for any preference method (DPO and ORPO alike).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch

from divwrite.training.modeling import load_causal_lm
from divwrite.training.tokenizer import chat_messages, load_tokenizer


def completion_logps(
    model: torch.nn.Module, tokenizer, prompts: list[str], completions: list[str], batch_size: int = 16
) -> np.ndarray:
    """Summed log-probability of each completion's tokens given its prompt, in the chat format:
    the tokens of the rendered (prompt, completion) chat after those of the rendered prompt with
    the assistant turn opened."""
    return _completion_logps_and_lengths(model, tokenizer, prompts, completions, batch_size)[0]


def completion_perplexity(
    model: torch.nn.Module, tokenizer, prompts: list[str], completions: list[str], batch_size: int = 16
) -> np.ndarray:
    """Perplexity of each completion given its prompt (tokens as `completion_logps` counts them,
    the end-of-turn token included): exp of the mean negative log-probability per token."""
    logps, lengths = _completion_logps_and_lengths(model, tokenizer, prompts, completions, batch_size)
    return np.exp(-logps / np.maximum(lengths, 1))


def _completion_logps_and_lengths(
    model: torch.nn.Module, tokenizer, prompts: list[str], completions: list[str], batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = np.zeros(len(prompts), dtype=np.float64)
    lengths = np.zeros(len(prompts), dtype=np.int64)
    device = next(model.parameters()).device
    model.eval()
    for start in range(0, len(prompts), batch_size):
        rows = []
        for prompt, completion in zip(prompts[start : start + batch_size], completions[start : start + batch_size]):
            head = tokenizer.apply_chat_template(chat_messages(prompt), add_generation_prompt=True, tokenize=False)
            full = tokenizer.apply_chat_template(chat_messages(prompt, completion), tokenize=False)
            head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
            full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
            if full_ids[: len(head_ids)] != head_ids:
                raise ValueError("the chat template does not render the prompt as a prefix of the full chat")
            rows.append((full_ids, len(head_ids)))
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (ids, _) in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attention[i, : len(ids)] = 1
        with torch.inference_mode():
            logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.float()
        logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:].unsqueeze(-1).to(device))[..., 0]
        for i, (ids, head) in enumerate(rows):
            out[start + i] = float(logps[i, head - 1 : len(ids) - 1].sum())
            lengths[start + i] = len(ids) - head
    return out, lengths


def chosen_logp_change(
    before: str | os.PathLike, after: str | os.PathLike, pairs: pd.DataFrame, n_pairs: int = 256
) -> float:
    """Mean change of the chosen stories' summed log-probability from the model in `before` to
    the one in `after` (folders as the train stage writes them; LoRA adapters load on their
    base) over the first `n_pairs` pairs by `pair_id`."""
    sample = pairs.sort_values("pair_id").head(n_pairs)
    prompts, chosen = sample["prompt"].tolist(), sample["chosen"].tolist()
    tokenizer = load_tokenizer(after)
    values = []
    for folder in (before, after):
        model = load_causal_lm(folder)
        values.append(completion_logps(model, tokenizer, prompts, chosen))
        del model
    return float(np.mean(values[1] - values[0]))
