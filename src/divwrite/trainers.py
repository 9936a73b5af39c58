"""Deviation-weighted DPO (DDPO, METHOD.md Training) on top of TRL 1.16's `DPOTrainer`.

DDPO scales each pair's DPO loss by the deviation weight of its chosen response:
`L = w_chosen * L_DPO`, averaged over the batch. TRL has no per-example weight (its
`use_weighting` is WPO, its `loss_weights` mix loss types), and the per-pair loss exists only
as a local of `DPOTrainer._compute_loss`, so that method is overridden. How the weight reaches
the loss, and the guards on the way (notes/trl.md, "Per-example weights in DPO"):

1. `_prepare_dataset` keeps extra columns; `_set_signature_columns_if_needed` is extended so
   that `remove_unused_columns` keeps the weight column too.
2. `DataCollatorForPreference` ignores unknown keys, so the collator is wrapped
   (`WeightedPreferenceCollator`) to stack the weights into a float tensor.
3. `_compute_loss` takes the weight out of the batch before anything is forwarded to the model
   (TRL forwards unknown keys to `model(**kwargs)`, which Llama silently ignores), computes
   the policy log-probs as TRL does, the reference log-probs with TRL's own
   `compute_ref_log_probs` (separate reference model, or LoRA with the adapter off / a frozen
   copy) or from the precomputed columns, then the weighted loss.

A missing weight column or a NaN, infinite or negative weight raises `ValueError`; nothing
ever falls back to plain DPO. At `w = 1` the loss and its gradients equal stock `DPOTrainer`'s.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset, IterableDataset
from trl import DPOConfig, DPOTrainer

# Batch keys that TRL's `_compute_loss` keeps away from `model(**kwargs)`.
_TRL_NON_MODEL_KEYS = ("completion_mask", "ref_chosen_logps", "ref_rejected_logps")


@dataclass
class DeviationWeightedDPOConfig(DPOConfig):
    """`DPOConfig` for deviation-weighted DPO.

    Args:
        weight_column (`str`, defaults to `"weight"`):
            Dataset column holding each pair's weight (METHOD.md step 4: `w_chosen`). Required in
            the train and eval datasets; values must be finite and non-negative.

    Only the plain sigmoid DPO loss is supported (`loss_type=["sigmoid"]`, reverse-KL, no
    `ld_alpha`, no WPO `use_weighting`): the paper's DDPO weights that loss.
    """

    weight_column: str = field(
        default="weight",
        metadata={"help": "Dataset column holding each pair's weight (w_chosen, METHOD.md step 4)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        loss_types = [self.loss_type] if isinstance(self.loss_type, str) else list(self.loss_type)
        if loss_types != ["sigmoid"]:
            raise ValueError(
                f"DeviationWeightedDPOConfig supports only loss_type=['sigmoid'] (DDPO weights the sigmoid DPO "
                f"loss), got {loss_types}"
            )
        if self.loss_weights not in (None, [1.0]):
            raise ValueError(f"loss_weights={self.loss_weights} is not supported with a single sigmoid loss")
        if self.f_divergence_type != "reverse_kl":
            raise ValueError(f"f_divergence_type={self.f_divergence_type!r} is not supported; use 'reverse_kl'")
        if self.ld_alpha is not None:
            raise ValueError("ld_alpha (LD-DPO) is not supported by DeviationWeightedDPOTrainer")
        if self.use_weighting:
            raise ValueError("use_weighting (WPO) cannot be combined with deviation weights")
        if not self.weight_column:
            raise ValueError("weight_column must be a non-empty column name")


def check_weights(values: Any, where: str) -> np.ndarray:
    """Return `values` as a float64 array; raise `ValueError` if any is missing (None), NaN, infinite or negative."""
    if not isinstance(values, (np.ndarray, torch.Tensor)):
        values = [np.nan if v is None else v for v in values]
    weights = np.asarray(values, dtype=np.float64).reshape(-1)
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        examples = weights[bad][:5].tolist()
        raise ValueError(
            f"{where}: {int(bad.sum())} weight(s) are NaN, infinite or negative (e.g. {examples}); deviation "
            "weights must be finite and >= 0"
        )
    return weights


@dataclass
class WeightedPreferenceCollator:
    """Wraps a preference collator (TRL's `DataCollatorForPreference` by default) and adds the
    examples' weights to the batch as a float32 tensor under `weight_column`."""

    base: Any
    weight_column: str = "weight"

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        missing = [i for i, example in enumerate(examples) if self.weight_column not in example]
        if missing:
            raise ValueError(
                f"{len(missing)} example(s) in the batch have no {self.weight_column!r} field (dropped by "
                "remove_unused_columns, or missing from the dataset); DeviationWeightedDPOTrainer never falls back "
                "to unweighted DPO"
            )
        weights = check_weights([example[self.weight_column] for example in examples], "batch")
        stripped = [{k: v for k, v in example.items() if k != self.weight_column} for example in examples]
        batch = self.base(stripped)
        batch[self.weight_column] = torch.tensor(weights, dtype=torch.float32)
        return batch


def weighted_dpo_loss(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    weights: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Per-pair DDPO loss, METHOD.md Training: `L = w_chosen * L_DPO` with
    `L_DPO = -log sigmoid(beta * [(log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))])`.

    `chosen_logratios` = log pi(y_w) - log ref(y_w), `rejected_logratios` likewise for y_l;
    the trainer averages the returned per-pair losses over the batch.
    """
    return weights * -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))


class DeviationWeightedDPOTrainer(DPOTrainer):
    """`DPOTrainer` whose per-pair sigmoid loss is multiplied by a per-pair weight (DDPO).

    Same arguments as `trl.DPOTrainer`; `args` must be a `DeviationWeightedDPOConfig`. The
    train (and eval) datasets need `args.weight_column`. A model passed without `ref_model` is
    its own reference as in TRL: a PEFT model's reference is the model with the adapter off
    (new adapter) or a frozen copy of it (pretrained adapter, e.g. the SFT adapter).
    Logs TRL's metrics (`rewards/*`, `logps/*`, ...) plus `weights/mean`.
    """

    _tag_names = ["trl", "dpo", "ddpo", "divwrite"]
    _name = "DeviationWeightedDPO"

    def __init__(
        self,
        model: Any,
        ref_model: Any = None,
        args: DeviationWeightedDPOConfig | None = None,
        data_collator: Any = None,
        train_dataset: Dataset | IterableDataset | None = None,
        eval_dataset: Dataset | IterableDataset | Mapping[str, Dataset | IterableDataset] | None = None,
        **kwargs: Any,
    ) -> None:
        if args is None:
            args = DeviationWeightedDPOConfig(output_dir="ddpo-output")
        if not isinstance(args, DeviationWeightedDPOConfig):
            raise TypeError(
                f"args must be a DeviationWeightedDPOConfig (it carries weight_column and rejects unsupported loss "
                f"settings), got {type(args).__name__}"
            )
        self.weight_column = args.weight_column
        if train_dataset is not None:
            _check_dataset_weights(train_dataset, self.weight_column, "train_dataset")
        if eval_dataset is not None:
            named = eval_dataset.items() if isinstance(eval_dataset, Mapping) else [("eval_dataset", eval_dataset)]
            for name, dataset in named:
                _check_dataset_weights(dataset, self.weight_column, str(name))
        super().__init__(
            model,
            ref_model=ref_model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            **kwargs,
        )
        # Wrapped only now: TRL builds its default collator inside __init__, and its reference
        # precompute (also in __init__) needs no weights.
        if not isinstance(self.data_collator, WeightedPreferenceCollator):
            self.data_collator = WeightedPreferenceCollator(self.data_collator, self.weight_column)

    def _set_signature_columns_if_needed(self) -> None:
        """Keep the weight column through `remove_unused_columns`."""
        super()._set_signature_columns_if_needed()
        if self.weight_column not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, self.weight_column]

    def compute_ref_log_probs(self, model: Any, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """TRL's reference log-probs, with the weight kept out of the model's kwargs."""
        inputs = {k: v for k, v in inputs.items() if k != self.weight_column}
        return super().compute_ref_log_probs(model, inputs)

    def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> Any:
        """Weighted sigmoid DPO loss: `mean_i(w_i * -logsigmoid(beta * margin_i))` (see `weighted_dpo_loss`)."""
        mode = "train" if self.model.training else "eval"
        if self.weight_column not in inputs:
            raise ValueError(
                f"the batch has no {self.weight_column!r} tensor; DeviationWeightedDPOTrainer never falls back to "
                "unweighted DPO (was the collator replaced?)"
            )
        weights = inputs[self.weight_column]
        inputs = {k: v for k, v in inputs.items() if k != self.weight_column}
        check_weights(weights.detach().cpu().numpy(), "batch")

        # Policy log-probs, exactly as DPOTrainer._compute_loss computes them.
        model_kwargs = {k: v for k, v in inputs.items() if k not in _TRL_NON_MODEL_KEYS}
        model_kwargs["use_cache"] = False
        if self.aux_loss_enabled:
            model_kwargs["output_router_logits"] = True
        completion_mask = inputs["completion_mask"]
        shift_completion_mask = completion_mask[..., 1:]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        seq_len = shift_completion_mask.size(1)
        per_token_logps = outputs.log_probs[:, -seq_len:]
        chosen_logps, rejected_logps = per_token_logps.sum(dim=1).chunk(2, dim=0)

        # Reference log-probs: precomputed columns, or TRL's own reference forward.
        if self.precompute_ref_logps:
            ref_chosen_logps, ref_rejected_logps = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_model = self.ref_model if self.ref_model is not None else self.model
            ref_chosen_logps, ref_rejected_logps = self.compute_ref_log_probs(ref_model, inputs)

        chosen_logratios = chosen_logps - ref_chosen_logps
        rejected_logratios = rejected_logps - ref_rejected_logps
        weights = weights.to(device=chosen_logratios.device, dtype=chosen_logratios.dtype)
        per_pair_loss = weighted_dpo_loss(chosen_logratios, rejected_logratios, weights, self.beta)
        loss = per_pair_loss.mean()

        if self.aux_loss_enabled:
            aux_loss = outputs.aux_loss
            loss = loss + self.router_aux_loss_coef * aux_loss
            self._metrics[mode]["aux_loss"].append(self.accelerator.gather_for_metrics(aux_loss).mean().item())

        self._log_metrics(
            mode,
            inputs,
            outputs,
            shift_completion_mask,
            chosen_logps,
            rejected_logps,
            chosen_logratios,
            rejected_logratios,
            weights,
        )

        if return_outputs:
            warnings.warn(
                "return_outputs=True recomputes the logits with an extra forward pass (as in TRL).",
                FutureWarning,
                stacklevel=2,
            )
            with torch.no_grad():
                outputs = model(**model_kwargs)
            return loss, outputs
        return loss

    def _log_metrics(
        self,
        mode: str,
        inputs: dict[str, Any],
        outputs: Any,
        shift_completion_mask: torch.Tensor,
        chosen_logps: torch.Tensor,
        rejected_logps: torch.Tensor,
        chosen_logratios: torch.Tensor,
        rejected_logratios: torch.Tensor,
        weights: torch.Tensor,
    ) -> None:
        """Record TRL's DPO metrics under TRL's names, plus `weights/mean`."""
        metrics = self._metrics[mode]
        gather = self.accelerator.gather_for_metrics
        seq_len = shift_completion_mask.size(1)
        mask = shift_completion_mask
        chosen_mask, rejected_mask = mask.chunk(2, dim=0)

        entropy_sum = gather((outputs.entropy[:, -seq_len:].detach() * mask).sum()).sum()
        total_tokens = gather(mask.sum()).sum()
        metrics["entropy"].append((entropy_sum / total_tokens).item() if total_tokens > 0 else 0.0)

        if mode == "train":
            self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item() // self._tp_size
        metrics["num_tokens"] = [self._total_train_tokens]

        chosen_mean_logits, rejected_mean_logits = outputs.mean_logits[:, -seq_len:].detach().chunk(2, dim=0)
        for name, values, m in (
            ("logits/chosen", chosen_mean_logits, chosen_mask),
            ("logits/rejected", rejected_mean_logits, rejected_mask),
        ):
            total = gather(values[m.bool()].sum()).sum().item()
            count = gather(m.sum()).sum().item()
            metrics[name].append(total / count if count > 0 else 0.0)

        chosen_is_top1, _ = outputs.is_top1[:, -seq_len:].chunk(2, dim=0)
        correct = gather((chosen_is_top1 & chosen_mask.bool()).sum()).sum()
        count = gather(chosen_mask.sum()).sum()
        metrics["mean_token_accuracy"].append((correct / count).item() if count > 0 else 0.0)

        chosen_rewards = self.beta * chosen_logratios.detach()
        rejected_rewards = self.beta * rejected_logratios.detach()
        gather_all = self.accelerator.gather
        metrics["rewards/chosen"].append(gather_all(chosen_rewards).mean().item())
        metrics["rewards/rejected"].append(gather_all(rejected_rewards).mean().item())
        metrics["rewards/accuracies"].append(gather_all((chosen_rewards > rejected_rewards).float()).mean().item())
        metrics["rewards/margins"].append(gather_all(chosen_rewards - rejected_rewards).mean().item())
        metrics["logps/chosen"].append(gather_all(chosen_logps.detach()).mean().item())
        metrics["logps/rejected"].append(gather_all(rejected_logps.detach()).mean().item())
        metrics["weights/mean"].append(gather_all(weights.detach()).mean().item())


def _check_dataset_weights(dataset: Any, column: str, name: str) -> None:
    """Fail early if a dataset lacks the weight column or holds a bad weight."""
    if isinstance(dataset, Dataset):
        if column not in dataset.column_names:
            raise ValueError(
                f"{name} has no {column!r} column (columns: {dataset.column_names}); DeviationWeightedDPOTrainer "
                "needs a weight per pair and never falls back to unweighted DPO"
            )
        check_weights(dataset[column], name)
    elif isinstance(dataset, IterableDataset):
        first = next(iter(dataset))
        if column not in first:
            raise ValueError(f"{name} has no {column!r} column; DeviationWeightedDPOTrainer needs a weight per pair")
    else:
        raise TypeError(f"{name} must be a datasets.Dataset or IterableDataset, got {type(dataset).__name__}")
