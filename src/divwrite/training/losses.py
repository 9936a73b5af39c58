"""The deviation-weighted losses of METHOD.md (Training), side by side: DDPO and DORPO.

Pure tensor functions, no trainer state: the trainers (`training.weighted_dpo`,
`training.weighted_orpo`) compute the log-probs as TRL does and hand them here, so each formula
can be checked by hand (tests) and read next to the paper's.

- DDPO, `weighted_dpo_loss`: `L = w_chosen * L_DPO` per pair, with
  `L_DPO = -log sigmoid(beta * [(log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))])`;
  the trainer averages over the batch. At `w = 1` it is stock `DPOTrainer`'s sigmoid loss.
- DORPO, `weighted_orpo_loss`: `L = w_chosen * NLL(y_w) - lambda * log sigmoid(w_chosen * log_odds)`,
  `log_odds = log(p_w / (1 - p_w)) - log(p_l / (1 - p_l))`, p the length-averaged sequence
  probability, lambda = TRL's `beta`.

DORPO's reduction, as TRL averages: TRL's chosen NLL is one token mean over the whole batch
(prompt tokens included). DORPO weights every token of pair i by `w_i`:
`NLL_w = sum_i w_i * S_i / sum_i n_i` (`S_i` summed token NLL of chosen sequence i, `n_i` its
tokens), so `w = 1` is stock ORPO. (The authors' released code instead multiplies the batch-mean
NLL by each pair's weight, i.e. scales it by the batch's mean weight; METHOD.md and the paper
describe per-example weighting, which is what this does; notes/trl.md, "ORPO".) The odds-ratio
term is `-beta * mean_i log sigmoid(w_i * log_odds_i)`.

`check_weights` is the one validation of weights, wherever they enter (dataset, collator, batch):
a missing, NaN, infinite or negative weight is a `ValueError`, never a silent fallback.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from trl.import_utils import TRLExperimentalWarning

with warnings.catch_warnings():
    # ORPO lives only in `trl.experimental` in TRL 1.16; depending on it is deliberate.
    warnings.simplefilter("ignore", TRLExperimentalWarning)
    from trl.experimental.orpo.orpo_trainer import log1mexp


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


def weighted_orpo_loss(
    chosen_nll_sums: torch.Tensor,
    num_nll_tokens: torch.Tensor | int,
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    weights: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch DORPO loss, METHOD.md Training:
    `L = w_chosen * NLL(y_w) - lambda * log sigmoid(w_chosen * log_odds)`, averaged as TRL's ORPO averages.

    Args:
        chosen_nll_sums: `(B,)` summed token NLL of each chosen sequence (TRL: prompt and response tokens).
        num_nll_tokens: number of tokens in all `chosen_nll_sums` (TRL's token-mean denominator).
        chosen_logps, rejected_logps: `(B,)` length-averaged completion log-probs `log p_w`, `log p_l`.
        weights: `(B,)` per-pair weights `w_chosen`.
        beta: lambda.

    Returns `(loss, nll, log_odds, log_sigmoid)`: the scalar loss
    `sum_i w_i S_i / num_nll_tokens - beta * mean_i log sigmoid(w_i * log_odds_i)`, its weighted NLL
    term, the per-pair `log_odds_i = log(p_w/(1-p_w)) - log(p_l/(1-p_l))` and `log sigmoid(w_i * log_odds_i)`.
    At `w = 1` every operation is TRL's (`ORPOTrainer.odds_ratio_loss`, `get_batch_loss_metrics`).
    """
    nll = (weights.to(chosen_nll_sums.dtype) * chosen_nll_sums).sum() / num_nll_tokens
    chosen_logps = chosen_logps.float()
    rejected_logps = rejected_logps.float()
    log_odds = (chosen_logps - rejected_logps) - (log1mexp(chosen_logps) - log1mexp(rejected_logps))
    log_sigmoid = F.logsigmoid(weights.to(log_odds.dtype) * log_odds)
    loss = nll - (beta * log_sigmoid).mean()
    return loss, nll, log_odds, log_sigmoid
