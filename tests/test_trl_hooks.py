"""The private TRL hooks the trainers rely on (`divwrite.training.trl_hooks`): all present on the
installed TRL, and a missing or changed one stops a trainer when it is built, naming the hook."""

from __future__ import annotations

import copy
import dataclasses
import re
import types

import numpy as np
import pytest
import trl
from tiny_preference import N_PAIRS, cfg_kwargs, pairs
from trl import DPOTrainer

from divwrite.training import trl_hooks
from divwrite.training.trainers import LengthGroupedDPOTrainer, LengthGroupedORPOTrainer
from divwrite.training.trl_hooks import (
    ALL_HOOKS,
    LENGTH_GROUPED_DPO_HOOKS,
    LENGTH_GROUPED_ORPO_HOOKS,
    WEIGHTED_DPO_HOOKS,
    WEIGHTED_ORPO_HOOKS,
    Hook,
    check_trl_attributes,
    check_trl_hooks,
    signature_problem,
)
from divwrite.training.weighted_dpo import DeviationWeightedDPOConfig, DeviationWeightedDPOTrainer
from divwrite.training.weighted_orpo import DeviationWeightedORPOConfig, DeviationWeightedORPOTrainer

CPU = dict(bf16=False, use_cpu=True, report_to="none")


def test_every_hook_is_there_on_the_installed_trl():
    assert {str(hook): signature_problem(hook) for hook in ALL_HOOKS if hook.params is not None} == {
        str(hook): None for hook in ALL_HOOKS if hook.params is not None
    }
    check_trl_hooks(ALL_HOOKS)


def test_each_trainer_checks_its_own_hooks():
    assert LengthGroupedDPOTrainer.trl_hooks == LENGTH_GROUPED_DPO_HOOKS
    assert LengthGroupedORPOTrainer.trl_hooks == LENGTH_GROUPED_ORPO_HOOKS
    assert DeviationWeightedDPOTrainer.trl_hooks == WEIGHTED_DPO_HOOKS
    assert DeviationWeightedORPOTrainer.trl_hooks == WEIGHTED_ORPO_HOOKS
    names = {hook.name for hook in ALL_HOOKS}
    for expected in ("_compute_loss", "_precompute_ref_logps", "compute_ref_log_probs", "_get_train_sampler"):
        assert expected in names
    for expected in ("_set_signature_columns_if_needed", "_precompute_model_hash", "get_batch_loss_metrics"):
        assert expected in names
    for expected in ("concatenated_forward", "log1mexp", "pad_to_length", "_metrics", "_total_train_tokens"):
        assert expected in names


def _on(owner, hooks=WEIGHTED_DPO_HOOKS):
    """`hooks` with `owner` in place of TRL's DPOTrainer."""
    return [dataclasses.replace(hook, owner=owner) if hook.owner is DPOTrainer else hook for hook in hooks]


def test_a_missing_hook_is_named_with_the_trl_version():
    class FakeDPOTrainer(DPOTrainer):
        _compute_loss = None  # gone in some future TRL

    with pytest.raises(
        RuntimeError, match=r"FakeDPOTrainer\._compute_loss\(self, model, inputs, return_outputs\)"
    ) as err:
        check_trl_hooks(_on(FakeDPOTrainer))
    assert "it is missing" in str(err.value) and f"trl {trl.__version__}" in str(err.value)


def test_an_overridden_hook_whose_parameters_changed_fails():
    class FakeDPOTrainer(DPOTrainer):
        def _compute_loss(self, model, inputs, return_outputs, num_items_in_batch=None):
            raise AssertionError("never called")

    with pytest.raises(RuntimeError, match=re.escape("FakeDPOTrainer._compute_loss(")) as err:
        check_trl_hooks(_on(FakeDPOTrainer))
    assert "num_items_in_batch" in str(err.value)

    class Renamed(DPOTrainer):
        def _precompute_ref_logps(self, dataset, split, batch_size):
            raise AssertionError("never called")

    with pytest.raises(RuntimeError, match=re.escape("Renamed._precompute_ref_logps(self, dataset, name, batch_size)")):
        check_trl_hooks(_on(Renamed, LENGTH_GROUPED_DPO_HOOKS))


def test_a_called_hook_may_gain_defaults_but_not_required_parameters():
    hook = Hook(types.SimpleNamespace(__name__="fake", f=lambda tensor, length, pad_value, dim=-1: None), "f",
                ("tensor", "length", "pad_value"), "a test")  # fmt: skip
    assert signature_problem(hook) is None
    required = dataclasses.replace(
        hook, owner=types.SimpleNamespace(__name__="fake", f=lambda tensor, length, pad, dim: None)
    )
    assert "expected the parameters (tensor, length, pad_value)" in signature_problem(required)
    extra = dataclasses.replace(
        hook, owner=types.SimpleNamespace(__name__="fake", f=lambda tensor, length, pad_value, dim: None)
    )
    assert "called with (tensor, length, pad_value) only" in signature_problem(extra)


def test_a_monkeypatched_trl_stops_the_trainer_when_built(monkeypatch, tmp_path):
    monkeypatch.setattr(DPOTrainer, "_compute_loss", lambda self, model, inputs: None)
    with pytest.raises(RuntimeError, match=re.escape("DPOTrainer._compute_loss(self, model, inputs, return_outputs)")):
        DeviationWeightedDPOTrainer(model=None, args=DeviationWeightedDPOConfig(output_dir=str(tmp_path), **CPU))
    check_trl_hooks(LengthGroupedDPOTrainer.trl_hooks)  # plain DPO does not rely on it

    monkeypatch.delattr(DPOTrainer, "_precompute_ref_logps")
    with pytest.raises(RuntimeError, match=r"DPOTrainer\._precompute_ref_logps.*it is missing"):
        LengthGroupedDPOTrainer(model=None, args=DeviationWeightedDPOConfig(output_dir=str(tmp_path), **CPU))


def test_a_changed_orpo_stops_the_dorpo_trainer(monkeypatch, tmp_path):
    args = DeviationWeightedORPOConfig(output_dir=str(tmp_path), **CPU)
    orpo_trainer = trl_hooks.orpo_trainer
    monkeypatch.setattr(orpo_trainer, "log1mexp", lambda x, eps: x)
    with pytest.raises(RuntimeError, match=re.escape("orpo_trainer.log1mexp(x)")):
        DeviationWeightedORPOTrainer(model=None, args=args)
    monkeypatch.undo()

    monkeypatch.delattr(orpo_trainer.ORPOTrainer, "get_batch_loss_metrics")
    with pytest.raises(RuntimeError, match=r"ORPOTrainer\.get_batch_loss_metrics.*it is missing"):
        DeviationWeightedORPOTrainer(model=None, args=args)


def test_instance_attributes_are_checked_after_trls_init(base_model, tokenizer, tmp_path):
    trainer = DeviationWeightedDPOTrainer(  # its __init__ ran check_trl_attributes
        model=copy.deepcopy(base_model),
        ref_model=copy.deepcopy(base_model),
        args=DeviationWeightedDPOConfig(**cfg_kwargs(tmp_path)),
        train_dataset=pairs(np.ones(N_PAIRS)),
        processing_class=tokenizer,
    )
    check_trl_attributes(trainer, WEIGHTED_DPO_HOOKS)
    del trainer._metrics  # as if TRL's __init__ no longer set it
    with pytest.raises(RuntimeError, match=r"DPOTrainer\._metrics \(instance attribute\).*no attribute '_metrics'"):
        check_trl_attributes(trainer, WEIGHTED_DPO_HOOKS)
    with pytest.raises(RuntimeError, match="_precompute_model_hash"):
        check_trl_attributes(types.SimpleNamespace(), LENGTH_GROUPED_DPO_HOOKS)
