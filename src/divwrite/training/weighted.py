"""How a deviation weight travels from the dataset to the loss: what DDPO and DORPO share.

METHOD.md (Training): DDPO and DORPO weight each pair by the deviation weight of its chosen
response (`w_chosen`, METHOD.md step 4). The trainers, `weighted_dpo.DeviationWeightedDPOTrainer`
and `weighted_orpo.DeviationWeightedORPOTrainer`, each keep only their loss
(`training.losses`); the weight's way to it is here, in one trainer mixin (`DeviationWeighting`)
and one config mixin (`WeightColumnConfig`), with the guards on the way (notes/trl.md,
"Per-example weights in DPO", "ORPO"):

1. `args.weight_column` names the column (non-empty); the train and eval datasets must have it,
   with valid weights, when the trainer is built. TRL's tokenisation keeps extra columns;
   `_set_signature_columns_if_needed` is extended so that `remove_unused_columns` keeps the
   weight column too (TRL forces `remove_unused_columns=False` for ORPO; kept anyway).
2. TRL's collators drop (DPO's `DataCollatorForPreference`) or pass through as lists (ORPO's)
   unknown keys, so the collator is wrapped (`WeightedPreferenceCollator`) to stack the weights
   into a checked float32 tensor.
3. The weight is taken out of the batch, and checked again, before anything is forwarded to the
   model (`_pop_weights`): TRL forwards unknown keys to `model(**kwargs)`, which Llama silently
   ignores.

A missing weight column or a NaN, infinite or negative weight raises `ValueError`; nothing ever
falls back to plain DPO / ORPO. At `w = 1` the losses and their gradients equal stock TRL's.

Names: `DeviationWeighted*` throughout, never "DDPO..." as a class name, so nothing can be
confused with TRL's unrelated `DDPOTrainer` (denoising diffusion policy optimisation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from datasets import Dataset, IterableDataset

from divwrite.training.losses import check_weights


def check_dataset_weights(dataset: Any, column: str, name: str, trainer_name: str) -> None:
    """Fail early if a dataset lacks the weight column or holds a bad weight."""
    if isinstance(dataset, Dataset):
        if column not in dataset.column_names:
            raise ValueError(
                f"{name} has no {column!r} column (columns: {dataset.column_names}); {trainer_name} needs a weight "
                "per pair and never falls back to unweighted training"
            )
        check_weights(dataset[column], name)
    elif isinstance(dataset, IterableDataset):
        first = next(iter(dataset))
        if column not in first:
            raise ValueError(f"{name} has no {column!r} column; {trainer_name} needs a weight per pair")
    else:
        raise TypeError(f"{name} must be a datasets.Dataset or IterableDataset, got {type(dataset).__name__}")


@dataclass
class WeightedPreferenceCollator:
    """Wraps a preference collator (TRL's `DataCollatorForPreference` by default) and adds the
    examples' weights to the batch as a float32 tensor under `weight_column`."""

    base: Any
    weight_column: str = "weight"
    trainer_name: str = "DeviationWeightedDPOTrainer"

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        missing = [i for i, example in enumerate(examples) if self.weight_column not in example]
        if missing:
            raise ValueError(
                f"{len(missing)} example(s) in the batch have no {self.weight_column!r} field (dropped by "
                f"remove_unused_columns, or missing from the dataset); {self.trainer_name} never falls back to "
                "unweighted training"
            )
        weights = check_weights([example[self.weight_column] for example in examples], "batch")
        stripped = [{k: v for k, v in example.items() if k != self.weight_column} for example in examples]
        batch = self.base(stripped)
        batch[self.weight_column] = torch.tensor(weights, dtype=torch.float32)
        return batch


@dataclass
class WeightColumnConfig:
    """Config mixin of the deviation-weighted trainers, listed before TRL's config in the bases
    (its field comes last, after TRL's).

    Args:
        weight_column (`str`, defaults to `"weight"`):
            Dataset column holding each pair's weight (METHOD.md step 4: `w_chosen`). Required in
            the train and eval datasets; values must be finite and non-negative.
    """

    weight_column: str = field(
        default="weight",
        metadata={"help": "Dataset column holding each pair's weight (w_chosen, METHOD.md step 4)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()  # TRL's config, next in the bases
        if not self.weight_column:
            raise ValueError("weight_column must be a non-empty column name")


class DeviationWeighting:
    """Trainer mixin, listed before the TRL trainer in the bases: the weight column, from the
    datasets to the batch (module docstring, steps 1-3). A trainer sets `args_class` (its config,
    a `WeightColumnConfig`), `args_role` (what that config guarantees, for the `TypeError`),
    `default_output_dir` (for `args=None`) and `unweighted_method` ("DPO", "ORPO": what it never
    falls back to); its `__init__` calls `_weighted_args` and `_check_weighted_datasets` before
    TRL's `__init__`, `_wrap_collator` after it."""

    args_class: type[WeightColumnConfig]
    args_role: str
    default_output_dir: str
    unweighted_method: str
    weight_column: str

    def _weighted_args(self, args: Any) -> Any:
        """`args` (the default config when None), checked to be an `args_class`; sets `weight_column` from it."""
        if args is None:
            args = self.args_class(output_dir=self.default_output_dir)
        if not isinstance(args, self.args_class):
            raise TypeError(f"args must be a {self.args_class.__name__} ({self.args_role}), got {type(args).__name__}")
        self.weight_column = args.weight_column
        return args

    def _check_weighted_datasets(self, train_dataset: Any, eval_dataset: Any) -> None:
        """Fail early if the train dataset or an eval dataset lacks the weight column or holds a bad weight."""
        name = type(self).__name__
        if train_dataset is not None:
            check_dataset_weights(train_dataset, self.weight_column, "train_dataset", name)
        if eval_dataset is not None:
            named = eval_dataset.items() if isinstance(eval_dataset, Mapping) else [("eval_dataset", eval_dataset)]
            for split, dataset in named:
                check_dataset_weights(dataset, self.weight_column, str(split), name)

    def _wrap_collator(self) -> None:
        """Wrap the collator in `WeightedPreferenceCollator`. Called after TRL's `__init__`: TRL builds
        its default collator there, and DPO's reference precompute (also there) needs no weights."""
        if not isinstance(self.data_collator, WeightedPreferenceCollator):
            self.data_collator = WeightedPreferenceCollator(self.data_collator, self.weight_column, type(self).__name__)

    def _set_signature_columns_if_needed(self) -> None:
        """Keep the weight column through `remove_unused_columns`."""
        super()._set_signature_columns_if_needed()
        if self.weight_column not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, self.weight_column]

    def _pop_weights(self, batch: dict[str, Any]) -> tuple[Any, np.ndarray, dict[str, Any]]:
        """`(weights, checked, rest)`: the batch's weights as collated, the same checked as float64
        (`check_weights`), and the batch without them, safe to forward to the model."""
        if self.weight_column not in batch:
            raise ValueError(
                f"the batch has no {self.weight_column!r} tensor; {type(self).__name__} never falls back to "
                f"unweighted {self.unweighted_method} (was the collator replaced?)"
            )
        weights = batch[self.weight_column]
        rest = {k: v for k, v in batch.items() if k != self.weight_column}
        checked = check_weights(weights.detach().cpu().numpy() if torch.is_tensor(weights) else weights, "batch")
        return weights, checked, rest
