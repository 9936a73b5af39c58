"""DDPO: deviation-weighted DPO (METHOD.md, Training), `DeviationWeightedDPOConfig` and `DeviationWeightedDPOTrainer`.

`L = w_chosen * L_DPO` per pair (`losses.weighted_dpo_loss`), averaged over the batch. TRL has no
per-example weight (its `use_weighting` is WPO, its `loss_weights` mix loss types), and the
per-pair loss exists only as a local of `DPOTrainer._compute_loss`, so that method is overridden:
it takes the weight out of the batch (`weighted.DeviationWeighting`, which also keeps the weight
column and collates it), computes the policy log-probs as TRL does, the reference log-probs with
TRL's own `compute_ref_log_probs` (separate reference model, or LoRA with the adapter off / a
frozen copy) or from the precomputed columns, then the weighted loss, and logs TRL's metrics plus
`weights/mean`. At `w = 1` the loss and its gradients equal stock `DPOTrainer`'s. Built on
`trainers.LengthGroupedDPOTrainer` (length-grouped batches, sorted and cached reference pass);
the TRL hooks it relies on are `trl_hooks.WEIGHTED_DPO_HOOKS`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from datasets import Dataset, IterableDataset
from trl import DPOConfig

from divwrite.training.losses import weighted_dpo_loss
from divwrite.training.trainers import LengthGroupedDPOTrainer
from divwrite.training.trl_hooks import DPO_NON_MODEL_KEYS, WEIGHTED_DPO_HOOKS, Hook
from divwrite.training.weighted import DeviationWeighting, WeightColumnConfig


@dataclass
class DeviationWeightedDPOConfig(WeightColumnConfig, DPOConfig):
    """`DPOConfig` for deviation-weighted DPO.

    Args:
        weight_column (`str`, defaults to `"weight"`):
            Dataset column holding each pair's weight (METHOD.md step 4: `w_chosen`). Required in
            the train and eval datasets; values must be finite and non-negative.

    Only the plain sigmoid DPO loss is supported (`loss_type=["sigmoid"]`, reverse-KL, no
    `ld_alpha`, no WPO `use_weighting`): the paper's DDPO weights that loss.
    """

    def __post_init__(self) -> None:
        super().__post_init__()  # TRL's checks, then `weight_column`'s (`WeightColumnConfig`)
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


class DeviationWeightedDPOTrainer(DeviationWeighting, LengthGroupedDPOTrainer):
    """`DPOTrainer` whose per-pair sigmoid loss is multiplied by a per-pair weight (DDPO).

    Same arguments as `trl.DPOTrainer`; `args` must be a `DeviationWeightedDPOConfig`. The
    train (and eval) datasets need `args.weight_column`. A model passed without `ref_model` is
    its own reference as in TRL: a PEFT model's reference is the model with the adapter off
    (new adapter) or a frozen copy of it (pretrained adapter, e.g. the SFT adapter).
    Logs TRL's metrics (`rewards/*`, `logps/*`, ...) plus `weights/mean`.
    """

    _tag_names = ["trl", "dpo", "ddpo", "divwrite"]
    _name = "DeviationWeightedDPO"
    trl_hooks: tuple[Hook, ...] = WEIGHTED_DPO_HOOKS
    args_class = DeviationWeightedDPOConfig
    args_role = "it carries weight_column and rejects unsupported loss settings"
    default_output_dir = "ddpo-output"
    unweighted_method = "DPO"

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
        args = self._weighted_args(args)
        self._check_weighted_datasets(train_dataset, eval_dataset)
        super().__init__(
            model,
            ref_model=ref_model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            **kwargs,
        )
        self._wrap_collator()

    def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> Any:
        """Weighted sigmoid DPO loss: `mean_i(w_i * -logsigmoid(beta * margin_i))` (see `weighted_dpo_loss`)."""
        mode = "train" if self.model.training else "eval"
        weights, _, inputs = self._pop_weights(inputs)

        # Policy log-probs, exactly as DPOTrainer._compute_loss computes them.
        model_kwargs = {k: v for k, v in inputs.items() if k not in DPO_NON_MODEL_KEYS}
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
