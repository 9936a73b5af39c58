"""DORPO: deviation-weighted ORPO (METHOD.md, Training), `DeviationWeightedORPOConfig` and `DeviationWeightedORPOTrainer`.

`L = w_chosen * NLL(y_w) - lambda * log sigmoid(w_chosen * log_odds)` per pair, lambda = TRL's
`beta`, reduced as TRL's ORPO reduces (`losses.weighted_orpo_loss`, whose docstring gives the
reduction). TRL's ORPO chain is `get_batch_loss_metrics` -> `concatenated_forward` (one forward
pass; length-averaged completion log-probs and the chosen NLL) -> `odds_ratio_loss`. Only
`get_batch_loss_metrics` is overridden: it is the one method that sees both loss terms, and the
weight has to enter both (`odds_ratio_loss` returns the unweighted per-pair term, and
`concatenated_forward` returns the NLL already reduced to a scalar). It still calls TRL's
`concatenated_forward` for the logits and log-probs, and recomputes the chosen NLL per pair
(`_chosen_nll_sums`) on exactly TRL's tokens.

ORPO's default collator passes unknown keys through as lists and TRL forces
`remove_unused_columns=False`; the collator is still wrapped so that the weight is a checked float
tensor, and the weight is taken out of the batch before TRL's forward (`weighted.DeviationWeighting`).
Same guards as DDPO: no weight or a bad weight is a `ValueError`, never plain ORPO. Built on
`trainers.LengthGroupedORPOTrainer`; the TRL hooks it relies on are `trl_hooks.WEIGHTED_ORPO_HOOKS`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset
from trl.import_utils import TRLExperimentalWarning

from divwrite.training.losses import weighted_orpo_loss
from divwrite.training.trainers import LengthGroupedORPOTrainer
from divwrite.training.trl_hooks import WEIGHTED_ORPO_HOOKS, Hook
from divwrite.training.weighted import DeviationWeighting, WeightColumnConfig

with warnings.catch_warnings():
    # ORPO lives only in `trl.experimental` in TRL 1.16; depending on it is deliberate.
    warnings.simplefilter("ignore", TRLExperimentalWarning)
    from trl.experimental.orpo import ORPOConfig
    from trl.experimental.utils import pad_to_length

# Column names TRL's ORPO pipeline owns: a weight column must not collide with them (the collator
# pads `*_input_ids`-style keys and `concatenated_inputs` concatenates every `chosen*`/`rejected*` key).
_ORPO_RESERVED_PREFIXES = ("prompt", "chosen", "rejected", "concatenated")


@dataclass
class DeviationWeightedORPOConfig(WeightColumnConfig, ORPOConfig):
    """`ORPOConfig` for deviation-weighted ORPO (DORPO).

    Args:
        weight_column (`str`, defaults to `"weight"`):
            Dataset column holding each pair's weight (METHOD.md step 4: `w_chosen`). Required in
            the train and eval datasets; values must be finite and non-negative.

    `beta` is METHOD.md's lambda (0.1). Decoder-only models only (the paper's Llama/Mistral).
    """

    def __post_init__(self) -> None:
        super().__post_init__()  # TRL's checks, then `weight_column`'s (`WeightColumnConfig`)
        if self.weight_column.startswith(_ORPO_RESERVED_PREFIXES):
            raise ValueError(
                f"weight_column={self.weight_column!r} collides with TRL's ORPO columns (names starting with "
                f"{_ORPO_RESERVED_PREFIXES} are tokenised, padded or fed to the model); rename it"
            )


class DeviationWeightedORPOTrainer(DeviationWeighting, LengthGroupedORPOTrainer):
    """`ORPOTrainer` whose NLL and odds-ratio terms are weighted per pair (DORPO).

    Same arguments as `trl.experimental.orpo.ORPOTrainer`; `args` must be a
    `DeviationWeightedORPOConfig`. The train (and eval) datasets need `args.weight_column`.
    Logs TRL's ORPO metrics under TRL's names (`nll_loss` and `log_odds_ratio` are the weighted
    terms that enter the loss, `log_odds_chosen` the unweighted mean log-odds) plus `weights/mean`.
    """

    _tag_names = ["trl", "orpo", "dorpo", "divwrite"]
    _name = "DeviationWeightedORPO"
    trl_hooks: tuple[Hook, ...] = WEIGHTED_ORPO_HOOKS
    args_class = DeviationWeightedORPOConfig
    args_role = "it carries weight_column"
    default_output_dir = "dorpo-output"
    unweighted_method = "ORPO"

    def __init__(
        self,
        model: Any = None,
        args: DeviationWeightedORPOConfig | None = None,
        data_collator: Any = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | Mapping[str, Dataset] | None = None,
        **kwargs: Any,
    ) -> None:
        args = self._weighted_args(args)
        if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
            raise ValueError("DeviationWeightedORPOTrainer supports decoder-only models only")
        self._check_weighted_datasets(train_dataset, eval_dataset)
        super().__init__(
            model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            **kwargs,
        )
        if self.is_encoder_decoder:
            raise ValueError("DeviationWeightedORPOTrainer supports decoder-only models only")
        self._wrap_collator()

    def get_batch_loss_metrics(
        self,
        model: Any,
        batch: dict[str, Any],
        train_eval: str = "train",
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """DORPO loss (see `weighted_orpo_loss`) and TRL's ORPO metrics plus `weights/mean`."""
        _, checked, batch = self._pop_weights(batch)
        weights = torch.as_tensor(checked)

        forward_output = self.concatenated_forward(model, batch)
        chosen_logps, rejected_logps, chosen_logits, rejected_logits = forward_output[:4]
        aux_loss = forward_output[5] if self.aux_loss_enabled else None
        # TRL's scalar NLL (forward_output[4]) is replaced by the weighted one; dropping it frees its graph.
        del forward_output

        chosen_nll_sums, num_tokens = self._chosen_nll_sums(chosen_logits, batch)
        weights = weights.to(device=chosen_logps.device, dtype=torch.float32)
        loss, nll, log_odds, log_sigmoid = weighted_orpo_loss(
            chosen_nll_sums, num_tokens, chosen_logps, rejected_logps, weights, self.beta
        )

        # TRL's metrics, as `ORPOTrainer.get_batch_loss_metrics` computes them.
        gather = self.accelerator.gather_for_metrics
        chosen_rewards = self.beta * chosen_logps.float().detach()
        rejected_rewards = self.beta * rejected_logps.float().detach()
        prefix = "eval_" if train_eval == "eval" else ""
        metrics = {
            "rewards/chosen": gather(chosen_rewards).mean(),
            "rewards/rejected": gather(rejected_rewards).mean(),
            "rewards/accuracies": gather((chosen_rewards > rejected_rewards).float()).mean(),
            "rewards/margins": gather(chosen_rewards - rejected_rewards).mean(),
            "logps/rejected": gather(rejected_logps).detach().mean(),
            "logps/chosen": gather(chosen_logps).detach().mean(),
            "logits/rejected": gather(rejected_logits.detach().mean()).mean(),
            "logits/chosen": gather(chosen_logits.detach().mean()).mean(),
            "nll_loss": gather(nll).detach().mean(),
            "log_odds_ratio": gather(log_sigmoid.detach().mean()).mean(),
            "log_odds_chosen": gather(log_odds.detach().mean()).mean(),
            "weights/mean": gather(weights).mean(),
        }
        metrics = {f"{prefix}{k}": v.item() for k, v in metrics.items()}
        if aux_loss is not None:
            loss = loss + self.aux_loss_coef * aux_loss
        return loss, metrics

    def _chosen_nll_sums(self, chosen_logits: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pair summed NLL of the chosen sequences and the batch's token count, on exactly the tokens of
        TRL's `concatenated_forward` NLL (every attended token after the first, prompt included).

        `chosen_logits` is TRL's `all_logits[:B, :-1]`, padded to the longer of chosen/rejected.
        """
        length = chosen_logits.shape[1] + 1
        input_ids = pad_to_length(batch["chosen_input_ids"], length, self.padding_value)
        attention_mask = pad_to_length(batch["chosen_attention_mask"], length, 0)
        labels = torch.where(attention_mask == 1, input_ids, -100)[:, 1:].to(chosen_logits.device)
        per_token = F.cross_entropy(
            chosen_logits.reshape(-1, chosen_logits.shape[-1]), labels.reshape(-1), reduction="none"
        ).view_as(labels)
        return per_token.sum(dim=1), (labels != -100).sum()
