"""DeviationWeightedORPOTrainer (DORPO): the weight reaches both loss terms, and w = 1 is stock ORPO."""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch
from tiny_preference import BETA, N_PAIRS, cfg_kwargs, collate, loss_and_grads, pairs

from divwrite.training.losses import weighted_orpo_loss
from divwrite.training.weighted_orpo import DeviationWeightedORPOConfig, DeviationWeightedORPOTrainer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

TRL_METRICS = (
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
    "logits/chosen",
    "logits/rejected",
    "nll_loss",
    "log_odds_ratio",
    "log_odds_chosen",
)


def make_dorpo(base_model, tokenizer, tmp_path, dataset, eval_dataset=None, **extra):
    return DeviationWeightedORPOTrainer(
        model=copy.deepcopy(base_model),
        args=DeviationWeightedORPOConfig(**cfg_kwargs(tmp_path, **extra)),
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
    )


def hand_terms(model, batch):
    """By hand (no TRL code), differentiable: per pair the summed chosen NLL over every attended token
    after the first (prompt included, as TRL), the batch's NLL token count, and the length-averaged
    completion log-probs log p_w, log p_l."""

    def token_logps(ids, mask):
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        return torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)

    chosen = token_logps(batch["chosen_input_ids"], batch["chosen_attention_mask"])
    rejected = token_logps(batch["rejected_input_ids"], batch["rejected_attention_mask"])
    nll_mask = batch["chosen_attention_mask"][:, 1:].float()
    nll_sums = -(chosen * nll_mask).sum(dim=1)
    chosen_completion = (batch["chosen_labels"][:, 1:] != -100).float()
    rejected_completion = (batch["rejected_labels"][:, 1:] != -100).float()
    logp_w = (chosen * chosen_completion).sum(dim=1) / chosen_completion.sum(dim=1)
    logp_l = (rejected * rejected_completion).sum(dim=1) / rejected_completion.sum(dim=1)
    return nll_sums, nll_mask.sum(), logp_w, logp_l


def log_odds_by_hand(logp_w: float, logp_l: float) -> float:
    """log(p_w / (1 - p_w)) - log(p_l / (1 - p_l)), METHOD.md."""
    p_w, p_l = math.exp(logp_w), math.exp(logp_l)
    return math.log(p_w / (1 - p_w)) - math.log(p_l / (1 - p_l))


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_unit_weights_equal_stock_orpo(base_model, tokenizer, tmp_path):
    dorpo = make_dorpo(base_model, tokenizer, tmp_path, pairs(np.ones(N_PAIRS)))
    stock = ORPOTrainer(
        model=copy.deepcopy(base_model),
        args=ORPOConfig(**cfg_kwargs(tmp_path)),
        train_dataset=pairs(),
        processing_class=tokenizer,
    )
    batch = collate(dorpo)
    stock_batch = {k: v for k, v in batch.items() if k != "weight"}
    assert stock_batch.keys() == collate(stock).keys()
    loss_w, grads_w = loss_and_grads(dorpo, batch)
    loss_s, grads_s = loss_and_grads(stock, stock_batch)
    assert loss_w.item() > 0
    # The loss may differ in the last float32 bits: TRL reduces the chosen NLL with one
    # CrossEntropyLoss token mean (ATen's cascade sum), DORPO sums per pair and then over pairs.
    torch.testing.assert_close(loss_w, loss_s, rtol=1e-6, atol=0)
    # The gradients do not depend on that summation order (d loss / d token NLL is 1/N either
    # way, every other op is TRL's), so they are bitwise equal.
    assert grads_w.keys() == grads_s.keys() and len(grads_w) > 0
    for name in grads_s:
        assert torch.equal(grads_w[name], grads_s[name]), name
    # Same metric names and values as TRL, plus ours.
    for key in TRL_METRICS:
        assert dorpo._stored_metrics["train"][key] == pytest.approx(stock._stored_metrics["train"][key], rel=1e-6)
    assert dorpo._stored_metrics["train"]["weights/mean"] == [1.0]


def test_random_weights_match_hand_formula(base_model, tokenizer, tmp_path):
    weights = np.random.default_rng(0).uniform(0.0, 3.0, N_PAIRS)
    trainer = make_dorpo(base_model, tokenizer, tmp_path, pairs(weights))
    batch = collate(trainer)
    loss, _ = loss_and_grads(trainer, batch)

    with torch.no_grad():
        nll_sums, n_tokens, logp_w, logp_l = hand_terms(trainer.model, batch)
    log_odds = [log_odds_by_hand(a, b) for a, b in zip(logp_w.tolist(), logp_l.tolist())]
    nll = sum(w * s for w, s in zip(weights, nll_sums.tolist())) / n_tokens.item()
    odds_term = np.mean([log_sigmoid(w * lo) for w, lo in zip(weights, log_odds)])
    expected = nll - BETA * odds_term  # L = w NLL(y_w) - lambda log sigmoid(w log_odds), averaged as TRL
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # The weights were not ignored: plain ORPO on the same batch differs.
    plain = nll_sums.sum().item() / n_tokens.item() - BETA * np.mean([log_sigmoid(lo) for lo in log_odds])
    assert abs(loss.item() - plain) > 1e-3
    metrics = trainer._stored_metrics["train"]
    assert metrics["weights/mean"][-1] == pytest.approx(weights.mean(), rel=1e-6)
    assert metrics["nll_loss"][-1] == pytest.approx(nll, rel=1e-5)
    assert metrics["log_odds_chosen"][-1] == pytest.approx(np.mean(log_odds), rel=1e-4, abs=1e-6)


def test_weighted_orpo_loss_formula():
    nll_sums = torch.tensor([6.0, 10.0])
    logp_w, logp_l = torch.tensor([-0.5, -2.0]), torch.tensor([-1.0, -0.2])
    w = torch.tensor([2.0, 0.5])
    loss, nll, log_odds, ls = weighted_orpo_loss(nll_sums, 8, logp_w, logp_l, w, beta=0.25)
    lo = [log_odds_by_hand(-0.5, -1.0), log_odds_by_hand(-2.0, -0.2)]
    assert nll.item() == pytest.approx((2.0 * 6.0 + 0.5 * 10.0) / 8)
    assert log_odds.tolist() == pytest.approx(lo, rel=1e-5)
    assert ls.tolist() == pytest.approx([log_sigmoid(2.0 * lo[0]), log_sigmoid(0.5 * lo[1])], rel=1e-5)
    expected = (2.0 * 6.0 + 0.5 * 10.0) / 8 - 0.25 * (log_sigmoid(2.0 * lo[0]) + log_sigmoid(0.5 * lo[1])) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_zero_weight_removes_gradient_contribution(base_model, tokenizer, tmp_path):
    weights = np.array([1.0, 0.5, 2.0, 1.5, 0.7, 1.2])
    drop = 2
    zeroed = weights.copy()
    zeroed[drop] = 0.0
    trainer = make_dorpo(base_model, tokenizer, tmp_path, pairs(zeroed))
    batch = collate(trainer)

    # (a) The loss does not depend on example `drop` at all: the gradient w.r.t. its input
    # embeddings (rows drop and B + drop of TRL's concatenated chosen+rejected forward) is exactly 0.
    def embedding_row_grads(weight_batch):
        captured: list[torch.Tensor] = []

        def keep(module, args, out):
            out.retain_grad()
            captured.append(out)

        hook = trainer.model.get_input_embeddings().register_forward_hook(keep)
        try:
            loss_and_grads(trainer, weight_batch)
        finally:
            hook.remove()
        (emb,) = captured
        return emb.grad.abs().sum(dim=(1, 2))

    rows = embedding_row_grads(batch)
    assert rows.shape[0] == 2 * N_PAIRS
    dropped = [drop, N_PAIRS + drop]
    assert torch.count_nonzero(rows[dropped]) == 0
    assert all(rows[i] > 0 for i in range(2 * N_PAIRS) if i not in dropped)
    # With its weight back, the same example does reach the gradient.
    rows_on = embedding_row_grads(dict(batch, weight=torch.tensor(weights, dtype=torch.float32)))
    assert all(rows_on[i] > 0 for i in dropped)

    # (b) The parameter gradients equal those of the DORPO loss written by hand over the batch
    # *without* that example (it never enters this forward), with TRL's normalisers of the full
    # batch: its chosen-token count and batch size.
    _, grads_full = loss_and_grads(trainer, batch)
    keep = [i for i in range(N_PAIRS) if i != drop]
    sub = collate(trainer, trainer.train_dataset.select(keep))
    n_tokens_full = batch["chosen_attention_mask"][:, 1:].sum()
    model = trainer.model
    model.zero_grad()
    nll_sums, _, logp_w, logp_l = hand_terms(model, sub)
    w = torch.tensor(weights[keep], dtype=torch.float32)
    log_odds = (logp_w - torch.log1p(-logp_w.exp())) - (logp_l - torch.log1p(-logp_l.exp()))
    hand = (w * nll_sums).sum() / n_tokens_full - BETA * torch.nn.functional.logsigmoid(w * log_odds).sum() / N_PAIRS
    hand.backward()
    grads_hand = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    assert grads_hand.keys() == grads_full.keys()
    for name in grads_hand:
        torch.testing.assert_close(grads_full[name], grads_hand[name], rtol=1e-5, atol=1e-8, msg=name)


def test_missing_or_bad_weights_raise(base_model, tokenizer, tmp_path):
    with pytest.raises(ValueError, match="no 'weight' column"):
        make_dorpo(base_model, tokenizer, tmp_path, pairs())
    for bad in (float("nan"), -0.1, float("inf")):
        with pytest.raises(ValueError, match="NaN, infinite or negative"):
            make_dorpo(base_model, tokenizer, tmp_path, pairs([1.0, bad, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match="no 'weight' column"):  # eval datasets too
        make_dorpo(base_model, tokenizer, tmp_path, pairs(np.ones(N_PAIRS)), eval_dataset=pairs())
    with pytest.raises(ValueError, match="collides"):
        DeviationWeightedORPOConfig(**cfg_kwargs(tmp_path, weight_column="chosen_weight"))
    with pytest.raises(TypeError, match="DeviationWeightedORPOConfig"):
        DeviationWeightedORPOTrainer(
            model=copy.deepcopy(base_model),
            args=ORPOConfig(**cfg_kwargs(tmp_path)),
            train_dataset=pairs(np.ones(N_PAIRS)),
            processing_class=tokenizer,
        )
    trainer = make_dorpo(base_model, tokenizer, tmp_path, pairs(np.ones(N_PAIRS)))
    # A batch that lost its weight (e.g. a replaced collator) is an error, not plain ORPO ...
    batch = collate(trainer)
    batch.pop("weight")
    with pytest.raises(ValueError, match="never falls back"):
        trainer.compute_loss(trainer.model, batch)
    # ... and so is a bad weight that reaches the loss, or an example without one at collation.
    with pytest.raises(ValueError, match="NaN, infinite or negative"):
        trainer.compute_loss(trainer.model, dict(collate(trainer), weight=torch.full((N_PAIRS,), -1.0)))
    examples = [trainer.train_dataset[i] for i in range(2)]
    del examples[1]["weight"]
    with pytest.raises(ValueError, match="never falls back"):
        trainer.data_collator(examples)


def test_weight_survives_preparation_collation_and_is_logged(base_model, tokenizer, tmp_path):
    weights = np.array([0.25, 1.0, 1.75, 0.0, 3.0, 0.5])
    eval_weights = np.array([0.5, 0.5, 2.0, 1.0, 1.0, 1.0])
    trainer = make_dorpo(
        base_model,
        tokenizer,
        tmp_path,
        pairs(weights),
        eval_dataset=pairs(eval_weights, seed=2),
        max_steps=1,
        logging_steps=1,
        save_strategy="no",
    )
    assert "weight" in trainer.train_dataset.column_names
    # The real training dataloader collates it as a float tensor ...
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["weight"].dtype == torch.float32
    assert sorted(batch["weight"].tolist()) == pytest.approx(sorted(weights.tolist()))
    # ... it is never forwarded to the model ...
    seen: list[set[str]] = []
    hook = trainer.model.register_forward_pre_hook(lambda m, a, kw: seen.append(set(kw)), with_kwargs=True)
    try:
        trainer.compute_loss(trainer.model, batch)
    finally:
        hook.remove()
    assert seen and all("weight" not in keys for keys in seen)
    trainer._stored_metrics.clear()
    # ... and a real training step and an evaluation log its mean.
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged and logged[0]["weights/mean"] == pytest.approx(weights.mean(), rel=1e-6)
    metrics = trainer.evaluate()
    assert metrics["eval_weights/mean"] == pytest.approx(eval_weights.mean(), rel=1e-6)
    assert math.isfinite(metrics["eval_loss"])
