"""DeviationWeightedDPOTrainer: the weight reaches the loss, and w = 1 is stock DPO."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_preference import N_PAIRS, cfg_kwargs, collate, loss_and_grads, pairs
from trl import DPOConfig, DPOTrainer

from divwrite.training.losses import weighted_dpo_loss
from divwrite.training.weighted_dpo import DeviationWeightedDPOConfig, DeviationWeightedDPOTrainer


def make_ddpo(base_model, tokenizer, tmp_path, dataset, eval_dataset=None, **extra):
    return DeviationWeightedDPOTrainer(
        model=copy.deepcopy(base_model),
        ref_model=_perturbed_copy(base_model),
        args=DeviationWeightedDPOConfig(**cfg_kwargs(tmp_path, **extra)),
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
    )


def _perturbed_copy(model):
    """A reference that differs from the policy, so log-ratios (and margins) are non-zero."""
    ref = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return ref


def logps(model, batch):
    """Summed completion log-probs of every row, by hand (no TRL code)."""
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets = batch["input_ids"][:, 1:]
    token_logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (token_logps * batch["completion_mask"][:, 1:]).sum(dim=1)


def test_unit_weights_equal_stock_dpo(base_model, tokenizer, tmp_path):
    ref = _perturbed_copy(base_model)
    ddpo = DeviationWeightedDPOTrainer(
        model=copy.deepcopy(base_model),
        ref_model=copy.deepcopy(ref),
        args=DeviationWeightedDPOConfig(**cfg_kwargs(tmp_path)),
        train_dataset=pairs(np.ones(N_PAIRS)),
        processing_class=tokenizer,
    )
    stock = DPOTrainer(
        model=copy.deepcopy(base_model),
        ref_model=copy.deepcopy(ref),
        args=DPOConfig(**cfg_kwargs(tmp_path)),
        train_dataset=pairs(),
        processing_class=tokenizer,
    )
    batch = collate(ddpo)
    stock_batch = {k: v for k, v in batch.items() if k != "weight"}
    loss_w, grads_w = loss_and_grads(ddpo, batch)
    loss_s, grads_s = loss_and_grads(stock, stock_batch)
    assert loss_w.item() > 0
    torch.testing.assert_close(loss_w, loss_s, rtol=0, atol=1e-7)
    assert grads_w.keys() == grads_s.keys() and len(grads_w) > 0
    for name in grads_s:
        torch.testing.assert_close(grads_w[name], grads_s[name], rtol=1e-6, atol=1e-9, msg=name)
    # Same metric names as TRL, plus ours.
    for key in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen"):
        assert ddpo._metrics["train"][key] == pytest.approx(stock._metrics["train"][key], abs=1e-6)
    assert ddpo._metrics["train"]["weights/mean"] == [1.0]


def test_random_weights_match_hand_formula(base_model, tokenizer, tmp_path):
    weights = np.random.default_rng(0).uniform(0.0, 3.0, N_PAIRS)
    trainer = make_ddpo(base_model, tokenizer, tmp_path, pairs(weights))
    batch = collate(trainer)
    loss, _ = loss_and_grads(trainer, batch)

    pi = logps(trainer.model, batch)
    ref = logps(trainer.ref_model, batch)
    pi_w, pi_l = pi.chunk(2)
    ref_w, ref_l = ref.chunk(2)
    beta = 0.1
    expected = np.mean(
        [
            w * -math.log(1 / (1 + math.exp(-beta * ((a - b) - (c - d)))))
            for w, a, b, c, d in zip(weights, pi_w.tolist(), ref_w.tolist(), pi_l.tolist(), ref_l.tolist())
        ]
    )
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # And differs from the unweighted loss (the weights were not ignored).
    unweighted = np.mean(-F.logsigmoid(beta * ((pi_w - ref_w) - (pi_l - ref_l))).numpy())
    assert abs(loss.item() - unweighted) > 1e-3
    assert trainer._metrics["train"]["weights/mean"][-1] == pytest.approx(weights.mean(), rel=1e-6)


def test_weighted_dpo_loss_formula():
    cw, cl = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
    w = torch.tensor([2.0, 0.5])
    out = weighted_dpo_loss(cw, cl, w, beta=0.5)
    expected = [2.0 * math.log1p(math.exp(-0.25)), 0.5 * math.log1p(math.exp(2.5))]
    assert out.tolist() == pytest.approx(expected, rel=1e-6)


def test_zero_weight_removes_gradient_contribution(base_model, tokenizer, tmp_path):
    weights = np.array([1.0, 0.5, 2.0, 1.5, 0.7, 1.2])
    drop = 2
    zeroed = weights.copy()
    zeroed[drop] = 0.0
    full = make_ddpo(base_model, tokenizer, tmp_path, pairs(zeroed))
    batch = collate(full)
    loss_full, grads_full = loss_and_grads(full, batch)

    keep = [i for i in range(N_PAIRS) if i != drop]
    sub = make_ddpo(base_model, tokenizer, tmp_path, pairs(weights).select(keep))
    loss_sub, grads_sub = loss_and_grads(sub, collate(sub))

    scale = (N_PAIRS - 1) / N_PAIRS  # the batch mean divides by N, the sub-batch mean by N - 1
    assert loss_full.item() == pytest.approx(loss_sub.item() * scale, rel=1e-5)
    for name in grads_sub:
        torch.testing.assert_close(grads_full[name], grads_sub[name] * scale, rtol=1e-4, atol=1e-7, msg=name)
    # Non-zero weight on the same example does change the gradient.
    other = make_ddpo(base_model, tokenizer, tmp_path, pairs(weights))
    _, grads_other = loss_and_grads(other, collate(other))
    assert any(not torch.allclose(grads_other[n], grads_full[n], atol=1e-6) for n in grads_full)


def test_missing_or_bad_weights_raise(base_model, tokenizer, tmp_path):
    with pytest.raises(ValueError, match="no 'weight' column"):
        make_ddpo(base_model, tokenizer, tmp_path, pairs())
    with pytest.raises(ValueError, match="NaN, infinite or negative"):
        make_ddpo(base_model, tokenizer, tmp_path, pairs([1.0, float("nan"), 1, 1, 1, 1]))
    with pytest.raises(ValueError, match="NaN, infinite or negative"):
        make_ddpo(base_model, tokenizer, tmp_path, pairs([1.0, -0.1, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match="no 'weight' column"):  # eval datasets too
        make_ddpo(base_model, tokenizer, tmp_path, pairs(np.ones(N_PAIRS)), eval_dataset=pairs())
    with pytest.raises(ValueError, match="sigmoid"):
        DeviationWeightedDPOConfig(**cfg_kwargs(tmp_path, loss_type=["hinge"]))
    with pytest.raises(TypeError, match="DeviationWeightedDPOConfig"):
        DeviationWeightedDPOTrainer(
            model=copy.deepcopy(base_model),
            ref_model=copy.deepcopy(base_model),
            args=DPOConfig(**cfg_kwargs(tmp_path)),
            train_dataset=pairs(np.ones(N_PAIRS)),
            processing_class=tokenizer,
        )
    # A batch that lost its weight (e.g. a replaced collator) is an error, not plain DPO.
    trainer = make_ddpo(base_model, tokenizer, tmp_path, pairs(np.ones(N_PAIRS)))
    batch = collate(trainer)
    batch.pop("weight")
    with pytest.raises(ValueError, match="never falls back"):
        trainer.compute_loss(trainer.model, batch)


def test_weight_survives_preparation_and_collation(base_model, tokenizer, tmp_path):
    weights = np.array([0.25, 1.0, 1.75, 0.0, 3.0, 0.5])
    trainer = make_ddpo(base_model, tokenizer, tmp_path, pairs(weights), eval_dataset=pairs(weights, seed=2))
    # Tokenisation and remove_unused_columns keep it ...
    assert "weight" in trainer.train_dataset.column_names
    kept = trainer._remove_unused_columns(trainer.train_dataset, description="training")
    assert set(kept.column_names) == {"prompt_ids", "chosen_ids", "rejected_ids", "weight"}
    # ... the real training dataloader collates it as a float tensor ...
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["weight"].dtype == torch.float32
    assert sorted(batch["weight"].tolist()) == pytest.approx(sorted(weights.tolist()))
    # ... it is never forwarded to the model ...
    seen: list[set[str]] = []
    hook = trainer.model.register_forward_pre_hook(lambda m, a, kw: seen.append(set(kw)), with_kwargs=True)
    try:
        loss = trainer.compute_loss(trainer.model, batch)
    finally:
        hook.remove()
    assert seen and all("weight" not in keys for keys in seen)
    # ... and it reaches the loss: doubling every weight doubles the loss.
    batch2 = dict(batch, weight=batch["weight"] * 2)
    loss2 = trainer.compute_loss(trainer.model, batch2)
    assert loss2.item() == pytest.approx(2 * loss.item(), rel=1e-6)
    # Evaluation uses the weights too.
    metrics = trainer.evaluate()
    assert metrics["eval_weights/mean"] == pytest.approx(weights.mean(), rel=1e-6)


def test_precomputed_reference_and_peft_reference(base_model, tokenizer, tmp_path):
    from divwrite.training.modeling import lora_config

    weights = np.random.default_rng(1).uniform(0.1, 2.0, N_PAIRS)
    # Precomputed reference log-probs (no reference model kept): policy == reference at start,
    # so every margin is 0 and the loss is mean(w) * log 2.
    pre = DeviationWeightedDPOTrainer(
        model=copy.deepcopy(base_model),
        args=DeviationWeightedDPOConfig(**cfg_kwargs(tmp_path, precompute_ref_log_probs=True)),
        train_dataset=pairs(weights),
        processing_class=tokenizer,
    )
    assert {"ref_chosen_logps", "weight"} <= set(pre.train_dataset.column_names)
    loss_pre = pre.compute_loss(pre.model, collate(pre))
    assert loss_pre.item() == pytest.approx(weights.mean() * math.log(2), rel=1e-5)
    # LoRA with ref_model=None: the adapter switched off is the reference.
    lora = DeviationWeightedDPOTrainer(
        model=copy.deepcopy(base_model),
        args=DeviationWeightedDPOConfig(**cfg_kwargs(tmp_path)),
        train_dataset=pairs(weights),
        processing_class=tokenizer,
        peft_config=lora_config(r=4, alpha=8, target_modules=["q_proj", "v_proj"], dropout=0.0),
    )
    assert lora.ref_model is None
    loss_lora, grads = loss_and_grads(lora, collate(lora))
    assert loss_lora.item() == pytest.approx(weights.mean() * math.log(2), rel=1e-5)
    assert grads and all("lora" in name for name in grads)


def test_reference_pass_is_cached_across_dpo_and_ddpo(base_model, tokenizer, tmp_path):
    """dpo and ddpo-* share the SFT reference and the pairs: the second trainer reads the first's
    reference log-probs from the cache, bit for bit what it would have computed itself."""
    from divwrite.training.trainers import REF_LOGPS_COLUMNS, LengthGroupedDPOTrainer

    cache = tmp_path / "ref_logps"

    def make(cls, dataset, cache_dir, **extra):
        return cls(
            model=copy.deepcopy(base_model),
            args=(DeviationWeightedDPOConfig if cls is DeviationWeightedDPOTrainer else DPOConfig)(
                **cfg_kwargs(tmp_path, precompute_ref_log_probs=True, precompute_ref_batch_size=4, **extra)
            ),
            train_dataset=dataset,
            processing_class=tokenizer,
            ref_logps_cache_dir=cache_dir,
        )

    def ref_columns(trainer):
        table = trainer.train_dataset.select_columns(list(REF_LOGPS_COLUMNS)).with_format("arrow")[:]
        return {c: (str(table[c].type), table[c].to_pylist()) for c in REF_LOGPS_COLUMNS}

    weights = np.random.default_rng(2).uniform(0.5, 2.0, N_PAIRS)
    fresh = ref_columns(make(LengthGroupedDPOTrainer, pairs(), None))  # no cache: TRL's own pass
    first = make(LengthGroupedDPOTrainer, pairs(), cache)  # dpo: computes and writes
    rng_after_pass = torch.get_rng_state()
    assert len(list(cache.glob("*.safetensors"))) == 1 and not list(cache.glob(".*tmp"))
    second = make(DeviationWeightedDPOTrainer, pairs(weights), cache)  # ddpo: reads (its weights do not matter)
    # The pass (a DataLoader draws a seed from torch's generator) leaves the generator as a cache hit does:
    # training draws the same batches and dropout either way.
    assert torch.equal(torch.get_rng_state(), rng_after_pass)
    assert ref_columns(first) == ref_columns(second) == fresh
    assert fresh["ref_chosen_logps"][0] == "float" and len(list(cache.glob("*.safetensors"))) == 1
    assert second.train_dataset["weight"] == pytest.approx(list(weights))
    batch = collate(second)  # the cached columns train as the computed ones do
    assert torch.equal(
        batch["ref_chosen_logps"], collate(make(DeviationWeightedDPOTrainer, pairs(weights), None))["ref_chosen_logps"]
    )

    # Other pairs, another batch size or another reference: another entry, never a stale hit.
    make(LengthGroupedDPOTrainer, pairs(seed=3), cache)
    other_ref = copy.deepcopy(base_model)
    with torch.no_grad():
        next(other_ref.parameters()).add_(0.01)
    LengthGroupedDPOTrainer(
        model=other_ref,
        args=DPOConfig(**cfg_kwargs(tmp_path, precompute_ref_log_probs=True, precompute_ref_batch_size=4)),
        train_dataset=pairs(),
        processing_class=tokenizer,
        ref_logps_cache_dir=cache,
    )
    assert len(list(cache.glob("*.safetensors"))) == 3
