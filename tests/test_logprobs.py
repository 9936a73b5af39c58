"""The chosen stories' log-probability change over training (`training.logprobs`, premise P4)."""

import pandas as pd
import pytest
import torch

from divwrite.training.logprobs import chosen_logp_change, completion_logps
from divwrite.training.tokenizer import chat_messages


def _by_hand(model, tokenizer, prompt: str, completion: str) -> float:
    """One chat, no padding: the completion's tokens' log-probabilities, summed."""
    head = tokenizer(tokenizer.apply_chat_template(chat_messages(prompt), add_generation_prompt=True, tokenize=False),
                     add_special_tokens=False)["input_ids"]  # fmt: skip
    full = tokenizer(tokenizer.apply_chat_template(chat_messages(prompt, completion), tokenize=False),
                     add_special_tokens=False)["input_ids"]  # fmt: skip
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([full])).logits[0]
    logp = torch.log_softmax(logits.float(), dim=-1)
    return float(sum(logp[t - 1, full[t]] for t in range(len(head), len(full))))


def test_completion_logps_are_the_completions_tokens_only_whatever_the_padding(base_model, tokenizer):
    prompts = ["the cat sat", "a dog ran far away over the hill"]
    completions = ["on the mat and slept", "home"]
    got = completion_logps(base_model, tokenizer, prompts, completions, batch_size=2)  # padded to one width
    expected = [_by_hand(base_model, tokenizer, p, c) for p, c in zip(prompts, completions)]
    assert got == pytest.approx(expected, rel=1e-5)
    assert (got < 0).all()


def test_the_change_is_zero_between_one_model_and_itself_and_signed(base_model, tokenizer, tmp_path):
    before, after = tmp_path / "before", tmp_path / "after"
    base_model.save_pretrained(before)
    tokenizer.save_pretrained(before)
    pairs = pd.DataFrame({"pair_id": ["b", "a"], "prompt": ["the cat", "a dog"], "chosen": ["sat down", "ran"]})
    assert chosen_logp_change(before, before, pairs) == 0.0
    changed = type(base_model)(base_model.config)
    changed.load_state_dict(base_model.state_dict())
    with torch.no_grad():  # scale the output layer: the same ranking, sharper or flatter distributions
        changed.get_output_embeddings().weight.mul_(0.0)
    changed.save_pretrained(after)
    tokenizer.save_pretrained(after)
    flat = completion_logps(changed, tokenizer, ["a dog", "the cat"], ["ran", "sat down"])
    sharp = completion_logps(base_model, tokenizer, ["a dog", "the cat"], ["ran", "sat down"])
    assert chosen_logp_change(before, after, pairs) == pytest.approx(float((flat - sharp).mean()))
