"""Length-grouped preference trainers on TRL 1.16: stock DPO and ORPO losses, batches of pairs of similar length.

Where the trainers of METHOD.md (Training) live:

- here, `LengthGroupedDPOTrainer` and `LengthGroupedORPOTrainer` ("dpo", "orpo"): TRL's losses,
  only the order of the pairs differs;
- built on these, `training.weighted_dpo.DeviationWeightedDPOTrainer` (DDPO) and
  `training.weighted_orpo.DeviationWeightedORPOTrainer` (DORPO), which share the weight's way
  from the dataset to the loss (`training.weighted`) and keep only their losses
  (`training.losses`, the formulas side by side);
- `training.trl_hooks`: the private TRL hooks all of them override or rely on, checked when a
  trainer is constructed (`trl_hooks` on each class).

## Length-grouped pairs

With `train_sampling_strategy="group_by_length"` a batch holds pairs of similar length
(transformers' `LengthGroupedSampler`: seeded random mega-batches of up to 50 batches, sorted inside),
which the stock trainers cannot do (the sampler infers lengths from an `input_ids` column that
tokenized pairs lack). A pair's length is its prompt plus its longer completion in tokens, the
width it pads its batch to (`pair_lengths`, `PairLengthGrouping`). DPO's reference pass
(`precompute_ref_log_probs`) runs over the pairs sorted by length, and can be cached across runs
(`ref_logps_key`). On the built-in corpus ~28% of a random batch of 8 pairs is padding, ~10% of a
grouped one.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import torch
from datasets import Dataset, Value
from safetensors.numpy import load_file, save_file
from transformers.trainer_pt_utils import LengthGroupedSampler
from trl import DPOTrainer
from trl.import_utils import TRLExperimentalWarning

from divwrite.core.files import atomic_path
from divwrite.training.trl_hooks import (
    LENGTH_GROUPED_DPO_HOOKS,
    LENGTH_GROUPED_ORPO_HOOKS,
    Hook,
    check_trl_attributes,
    check_trl_hooks,
)

with warnings.catch_warnings():
    # ORPO lives only in `trl.experimental` in TRL 1.16; depending on it is deliberate.
    warnings.simplefilter("ignore", TRLExperimentalWarning)
    from trl.experimental.orpo import ORPOTrainer

# The columns TRL's reference pass adds to the dataset (`precompute_ref_log_probs`).
REF_LOGPS_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")


def pair_lengths(dataset: Dataset, summed: tuple[str, ...], longest: tuple[str, ...]) -> list[int]:
    """Tokens of every tokenized pair of `dataset`: the lengths of the `summed` token-id columns
    plus the longest of the `longest` ones (e.g. prompt + longer completion)."""
    table = dataset.select_columns([*summed, *longest]).with_format("arrow")[:]
    counts = {column: pc.list_value_length(table[column]) for column in (*summed, *longest)}
    total = functools.reduce(pc.max_element_wise, [counts[c] for c in longest])
    return functools.reduce(pc.add, [counts[c] for c in summed], total).to_pylist()


class PairLengthGrouping:
    """Mixin for TRL's preference trainers: length-grouped batches of pairs under
    `train_sampling_strategy="group_by_length"` (module docstring, "Length-grouped pairs").
    `pair_length_columns` = (token-id columns summed, columns of which the longest counts)."""

    pair_length_columns: tuple[tuple[str, ...], tuple[str, ...]]

    def _get_train_sampler(self, train_dataset: Dataset | None = None) -> torch.utils.data.Sampler | None:
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or not isinstance(dataset, Dataset):
            return super()._get_train_sampler(train_dataset)
        return LengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            lengths=pair_lengths(dataset, *self.pair_length_columns),
        )


class LengthGroupedDPOTrainer(PairLengthGrouping, DPOTrainer):
    """`trl.DPOTrainer` (its loss unchanged) with length-grouped batches of pairs and the
    reference pass over the pairs sorted by length."""

    pair_length_columns = (("prompt_ids",), ("chosen_ids", "rejected_ids"))
    trl_hooks: tuple[Hook, ...] = LENGTH_GROUPED_DPO_HOOKS  # what of TRL this class relies on (`trl_hooks`)

    def __init__(self, *args: Any, ref_logps_cache_dir: str | os.PathLike | None = None, **kwargs: Any) -> None:
        check_trl_hooks(self.trl_hooks)  # a changed TRL fails here, before anything trains
        self.ref_logps_cache_dir = ref_logps_cache_dir  # read by the reference pass inside TRL's __init__
        super().__init__(*args, **kwargs)
        check_trl_attributes(self, self.trl_hooks)

    def _precompute_ref_logps(self, dataset: Dataset, name: str, batch_size: int) -> Dataset:
        """TRL's reference log-probs, computed over the pairs sorted by length (least padding);
        the dataset comes back in its own order. With `ref_logps_cache_dir` set, they are
        read from / written to a file named after everything that fixes them (see
        `ref_logps_key`), so DPO and the DDPO variants, which share the SFT reference and the
        pairs, compute them once between them."""
        if not isinstance(dataset, Dataset):
            return super()._precompute_ref_logps(dataset, name, batch_size)
        check_trl_attributes(self, LENGTH_GROUPED_DPO_HOOKS)  # runs inside TRL's __init__: `_precompute_model_hash`
        # The pass iterates a DataLoader, which draws a seed from torch's global generator: it must
        # leave that generator as it found it, so training is the same whether the pass ran or was read.
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            return self._reference_pass(dataset, name, batch_size)

    def _reference_pass(self, dataset: Dataset, name: str, batch_size: int) -> Dataset:
        order = np.argsort(pair_lengths(dataset, *self.pair_length_columns), kind="stable")
        path = None
        if self.ref_logps_cache_dir is not None:
            key = ref_logps_key(dataset, self._precompute_model_hash, batch_size, self.pair_length_columns)
            path = Path(self.ref_logps_cache_dir) / f"{key}.safetensors"
            if path.is_file():
                cached = load_file(str(path))
                for column in REF_LOGPS_COLUMNS:  # the dtype TRL's pass wrote, exactly
                    dataset = dataset.add_column(column, cached[column], feature=Value(str(cached[column].dtype)))
                return dataset
        done = super()._precompute_ref_logps(dataset.select(order), name, batch_size).select(np.argsort(order))
        if path is not None and self.accelerator.is_main_process:
            columns = done.select_columns(list(REF_LOGPS_COLUMNS)).with_format("arrow")[:]
            arrays = {c: columns[c].combine_chunks().to_numpy(zero_copy_only=False) for c in REF_LOGPS_COLUMNS}
            with atomic_path(path) as tmp:  # complete or absent, never half-written
                save_file(arrays, str(tmp))
        return done


def ref_logps_key(
    dataset: Dataset, model_hash: str, batch_size: int, pair_length_columns: tuple[tuple[str, ...], ...]
) -> str:
    """What fixes a reference pass bit for bit: the reference model's weights (TRL's content hash),
    the tokenized pairs in order (hence the batches), the batch size, torch's version and thread
    count (which can change float reductions). Not the weights of DDPO: they do not enter it."""
    h = hashlib.sha256(f"{model_hash}|{batch_size}|{torch.__version__}|{torch.get_num_threads()}".encode())
    columns = sorted({c for group in pair_length_columns for c in group})
    table = dataset.select_columns(columns).with_format("arrow")[:]
    for column in columns:
        ids = table[column].combine_chunks()
        h.update(column.encode())
        h.update(pc.list_value_length(ids).to_numpy(zero_copy_only=False).astype(np.int64).tobytes())
        h.update(pc.list_flatten(ids).to_numpy(zero_copy_only=False).astype(np.int64).tobytes())
    return h.hexdigest()[:32]


class LengthGroupedORPOTrainer(PairLengthGrouping, ORPOTrainer):
    """`trl.experimental.orpo.ORPOTrainer` (its loss unchanged) with length-grouped batches of
    pairs (its chosen / rejected input ids include the prompt)."""

    pair_length_columns = ((), ("chosen_input_ids", "rejected_input_ids"))
    trl_hooks: tuple[Hook, ...] = LENGTH_GROUPED_ORPO_HOOKS  # what of TRL this class relies on (`trl_hooks`)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        check_trl_hooks(self.trl_hooks)  # a changed TRL fails here, before anything trains
        super().__init__(*args, **kwargs)
        check_trl_attributes(self, self.trl_hooks)
