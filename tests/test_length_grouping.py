"""Length-grouped preference trainers: lengths counted right, batches of similar length, the
sorted reference pass equal to TRL's own, and the loss left as TRL's."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from datasets import Dataset
from tiny_preference import cfg_kwargs, collate, loss_and_grads, pairs
from transformers.trainer_pt_utils import LengthGroupedSampler
from trl import DPOConfig, DPOTrainer

from divwrite.training.trainers import LengthGroupedDPOTrainer, LengthGroupedORPOTrainer, pair_lengths
from divwrite.training.weighted_dpo import DeviationWeightedDPOConfig, DeviationWeightedDPOTrainer

N = 200  # pairs: 50 batches of 4, in mega-batches of 12 batches (transformers: len // (4 * batch))


def test_pair_lengths_by_hand():
    ds = Dataset.from_dict(
        {
            "prompt_ids": [[1, 2], [1, 2, 3, 4, 5], [7]],
            "chosen_ids": [[1, 2, 3], [1], []],
            "rejected_ids": [[1], [1, 2], [9, 9, 9, 9]],
            "other": [0, 0, 0],
        }
    )
    assert pair_lengths(ds, ("prompt_ids",), ("chosen_ids", "rejected_ids")) == [2 + 3, 5 + 2, 1 + 4]
    assert pair_lengths(ds, (), ("chosen_ids", "rejected_ids")) == [3, 2, 4]
    # An index mapping (select / shuffle) is honoured.
    assert pair_lengths(ds.select([2, 0]), ("prompt_ids",), ("chosen_ids", "rejected_ids")) == [5, 5]


def _padding_share(trainer, sampler) -> float:
    """Share of padded positions over the batches that `sampler` yields, as TRL's collator pads them."""
    ds = trainer.train_dataset
    lengths = np.array(pair_lengths(ds, *trainer.pair_length_columns))
    order = list(iter(sampler))
    bs = trainer.args.train_batch_size
    padded = sum(lengths[order[i : i + bs]].max() * len(order[i : i + bs]) for i in range(0, len(order), bs))
    return 1 - lengths.sum() / padded


def _dpo_trainer(cls, base_model, tokenizer, tmp_path, config_cls=DPOConfig, dataset=None, **extra):
    return cls(
        model=copy.deepcopy(base_model),
        ref_model=copy.deepcopy(base_model),
        args=config_cls(**cfg_kwargs(tmp_path, per_device_train_batch_size=4, **extra)),
        train_dataset=pairs(n=N, seed=3) if dataset is None else dataset,
        processing_class=tokenizer,
    )


def test_dpo_batches_group_similar_lengths(base_model, tokenizer, tmp_path):
    grouped = _dpo_trainer(
        LengthGroupedDPOTrainer, base_model, tokenizer, tmp_path, train_sampling_strategy="group_by_length"
    )
    sampler = grouped._get_train_sampler()
    assert isinstance(sampler, LengthGroupedSampler)
    assert sampler.lengths == pair_lengths(grouped.train_dataset, ("prompt_ids",), ("chosen_ids", "rejected_ids"))
    torch.manual_seed(0)
    order = list(iter(sampler))
    assert sorted(order) == list(range(N))  # every pair once per epoch
    torch.manual_seed(0)
    assert list(iter(sampler)) == order  # seeded
    random_order = torch.utils.data.RandomSampler(range(N), generator=torch.Generator().manual_seed(0))
    assert _padding_share(grouped, sampler) < 0.5 * _padding_share(grouped, random_order)
    # Without the strategy: the stock random sampler.
    plain = _dpo_trainer(LengthGroupedDPOTrainer, base_model, tokenizer, tmp_path)
    assert not isinstance(plain._get_train_sampler(), LengthGroupedSampler)


def test_orpo_batches_group_similar_lengths(base_model, tokenizer, tmp_path):
    from trl.experimental.orpo import ORPOConfig

    trainer = LengthGroupedORPOTrainer(
        model=copy.deepcopy(base_model),
        args=ORPOConfig(
            **cfg_kwargs(tmp_path, per_device_train_batch_size=4, train_sampling_strategy="group_by_length")
        ),
        train_dataset=pairs(n=N, seed=3),
        processing_class=tokenizer,
    )
    sampler = trainer._get_train_sampler()
    ds = trainer.train_dataset
    expected = [max(len(c), len(r)) for c, r in zip(ds["chosen_input_ids"], ds["rejected_input_ids"])]
    assert isinstance(sampler, LengthGroupedSampler) and sampler.lengths == expected
    assert all(len(c) > len(p) for c, p in zip(ds["chosen_input_ids"], ds["prompt_input_ids"]))  # prompt included


def test_sorted_reference_pass_equals_trl_and_keeps_order(base_model, tokenizer, tmp_path):
    kwargs = dict(precompute_ref_log_probs=True, precompute_ref_batch_size=4)
    ours = _dpo_trainer(LengthGroupedDPOTrainer, base_model, tokenizer, tmp_path / "a", **kwargs)
    stock = _dpo_trainer(DPOTrainer, base_model, tokenizer, tmp_path / "b", **kwargs)
    # Same pairs in the same order, with the same reference log-probs (sorted batches pad less,
    # which changes nothing but float rounding).
    assert ours.train_dataset["chosen_ids"] == stock.train_dataset["chosen_ids"]
    for column in ("ref_chosen_logps", "ref_rejected_logps"):
        np.testing.assert_allclose(ours.train_dataset[column], stock.train_dataset[column], rtol=1e-5, atol=1e-5)
        assert np.ptp(ours.train_dataset[column]) > 1.0  # real, differing log-probs


def test_loss_is_trls_dpo_loss(base_model, tokenizer, tmp_path):
    ours = _dpo_trainer(LengthGroupedDPOTrainer, base_model, tokenizer, tmp_path / "a", dataset=pairs())
    stock = _dpo_trainer(DPOTrainer, base_model, tokenizer, tmp_path / "b", dataset=pairs())
    batch = collate(ours)
    loss_o, grads_o = loss_and_grads(ours, batch)
    loss_s, grads_s = loss_and_grads(stock, batch)
    torch.testing.assert_close(loss_o, loss_s, rtol=0, atol=0)
    for name in grads_s:
        torch.testing.assert_close(grads_o[name], grads_s[name], rtol=0, atol=0)


def test_weighted_trainer_groups_too(base_model, tokenizer, tmp_path):
    trainer = _dpo_trainer(
        DeviationWeightedDPOTrainer,
        base_model,
        tokenizer,
        tmp_path,
        config_cls=DeviationWeightedDPOConfig,
        dataset=pairs(np.ones(N), n=N, seed=3),
        train_sampling_strategy="group_by_length",
    )
    assert isinstance(trainer._get_train_sampler(), LengthGroupedSampler)


@pytest.mark.parametrize("strategy", ["random", "group_by_length"])
def test_training_runs_with_either_order(base_model, tokenizer, tmp_path, strategy):
    trainer = _dpo_trainer(
        LengthGroupedDPOTrainer, base_model, tokenizer, tmp_path, train_sampling_strategy=strategy, max_steps=3
    )
    result = trainer.train()
    assert result.global_step == 3 and np.isfinite(result.training_loss)
