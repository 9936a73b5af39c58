"""Deviation-weighted DPO and ORPO (DDPO and DORPO, METHOD.md Training) on top of TRL 1.16.

Names: `DeviationWeighted*` throughout, never "DDPO..." as a class name, so nothing can be
confused with TRL's unrelated `DDPOTrainer` (denoising diffusion policy optimisation).

## DDPO (`DeviationWeightedDPOTrainer`, on `trl.DPOTrainer`)

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

## DORPO (`DeviationWeightedORPOTrainer`, on `trl.experimental.orpo.ORPOTrainer`)

METHOD.md: `L = w_chosen * NLL(y_w) - lambda * log sigmoid(w_chosen * log_odds)` per pair, with
`log_odds = log(p_w / (1 - p_w)) - log(p_l / (1 - p_l))`, p the length-averaged sequence probability,
lambda = TRL's `beta`. TRL's ORPO chain is `get_batch_loss_metrics` -> `concatenated_forward` (one
forward pass; length-averaged completion log-probs and the chosen NLL) -> `odds_ratio_loss`. Only
`get_batch_loss_metrics` is overridden: it is the one method that sees both loss terms, and the
weight has to enter both (`odds_ratio_loss` returns the unweighted per-pair term, and
`concatenated_forward` returns the NLL already reduced to a scalar). It still calls TRL's
`concatenated_forward` for the logits and log-probs and TRL's `log1mexp` for the odds.

Reduction, as TRL averages: TRL's chosen NLL is one token mean over the whole batch (prompt
tokens included). DORPO weights every token of pair i by `w_i`:
`NLL_w = sum_i w_i * S_i / sum_i n_i` (`S_i` summed token NLL of chosen sequence i, `n_i` its
tokens), so `w = 1` is stock ORPO. (The authors' released code instead multiplies the batch-mean
NLL by each pair's weight, i.e. scales it by the batch's mean weight; METHOD.md and the paper
describe per-example weighting, which is what this does; notes/trl.md, "ORPO".) The odds-ratio
term is `-beta * mean_i log sigmoid(w_i * log_odds_i)`.

ORPO's default collator passes unknown keys through as lists and TRL forces
`remove_unused_columns=False`; the collator is still wrapped (`WeightedPreferenceCollator`) so that
the weight is a checked float tensor, and the weight is taken out of the batch before TRL's forward.
Same guards as DDPO: no weight or a bad weight is a `ValueError`, never plain ORPO.

## Length-grouped pairs (`LengthGroupedDPOTrainer`, `LengthGroupedORPOTrainer`)

Stock DPO and ORPO losses; only the order of the pairs differs. With
`train_sampling_strategy="group_by_length"` a batch holds pairs of similar length
(transformers' `LengthGroupedSampler`: seeded random mega-batches of up to 50 batches, sorted inside),
which the stock trainers cannot do (the sampler infers lengths from an `input_ids` column that
tokenized pairs lack). A pair's length is its prompt plus its longer completion in tokens, the
width it pads its batch to. DPO's reference pass (`precompute_ref_log_probs`) runs over the
pairs sorted by length. On the built-in corpus ~28% of a random batch of 8 pairs is padding,
~10% of a grouped one. The deviation-weighted trainers are built on these.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import torch
import torch.nn.functional as F
from datasets import Dataset, IterableDataset, Value
from safetensors.numpy import load_file, save_file
from transformers.trainer_pt_utils import LengthGroupedSampler
from trl import DPOConfig, DPOTrainer
from trl.import_utils import TRLExperimentalWarning

from divwrite.core.files import atomic_path

with warnings.catch_warnings():
    # ORPO lives only in `trl.experimental` in TRL 1.16; depending on it is deliberate.
    warnings.simplefilter("ignore", TRLExperimentalWarning)
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    from trl.experimental.orpo.orpo_trainer import log1mexp
    from trl.experimental.utils import pad_to_length

# The columns TRL's reference pass adds to the dataset (`precompute_ref_log_probs`).
REF_LOGPS_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")

# Batch keys that TRL's `_compute_loss` keeps away from `model(**kwargs)`.
_TRL_NON_MODEL_KEYS = ("completion_mask", "ref_chosen_logps", "ref_rejected_logps")


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

    def __init__(self, *args: Any, ref_logps_cache_dir: str | os.PathLike | None = None, **kwargs: Any) -> None:
        self.ref_logps_cache_dir = ref_logps_cache_dir  # read by the reference pass inside TRL's __init__
        super().__init__(*args, **kwargs)

    def _precompute_ref_logps(self, dataset: Dataset, name: str, batch_size: int) -> Dataset:
        """TRL's reference log-probs, computed over the pairs sorted by length (least padding);
        the dataset comes back in its own order. With `ref_logps_cache_dir` set, they are
        read from / written to a file named after everything that fixes them (see
        `ref_logps_key`), so DPO and the DDPO variants, which share the SFT reference and the
        pairs, compute them once between them."""
        if not isinstance(dataset, Dataset):
            return super()._precompute_ref_logps(dataset, name, batch_size)
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


class DeviationWeightedDPOTrainer(LengthGroupedDPOTrainer):
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


def _check_dataset_weights(
    dataset: Any, column: str, name: str, trainer_name: str = "DeviationWeightedDPOTrainer"
) -> None:
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


# --------------------------------------------------------------------------------------------
# DORPO: deviation-weighted ORPO
# --------------------------------------------------------------------------------------------

# Column names TRL's ORPO pipeline owns: a weight column must not collide with them (the collator
# pads `*_input_ids`-style keys and `concatenated_inputs` concatenates every `chosen*`/`rejected*` key).
_ORPO_RESERVED_PREFIXES = ("prompt", "chosen", "rejected", "concatenated")


@dataclass
class DeviationWeightedORPOConfig(ORPOConfig):
    """`ORPOConfig` for deviation-weighted ORPO (DORPO).

    Args:
        weight_column (`str`, defaults to `"weight"`):
            Dataset column holding each pair's weight (METHOD.md step 4: `w_chosen`). Required in
            the train and eval datasets; values must be finite and non-negative.

    `beta` is METHOD.md's lambda (0.1). Decoder-only models only (the paper's Llama/Mistral).
    """

    weight_column: str = field(
        default="weight",
        metadata={"help": "Dataset column holding each pair's weight (w_chosen, METHOD.md step 4)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.weight_column:
            raise ValueError("weight_column must be a non-empty column name")
        if self.weight_column.startswith(_ORPO_RESERVED_PREFIXES):
            raise ValueError(
                f"weight_column={self.weight_column!r} collides with TRL's ORPO columns (names starting with "
                f"{_ORPO_RESERVED_PREFIXES} are tokenised, padded or fed to the model); rename it"
            )


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


class DeviationWeightedORPOTrainer(LengthGroupedORPOTrainer):
    """`ORPOTrainer` whose NLL and odds-ratio terms are weighted per pair (DORPO).

    Same arguments as `trl.experimental.orpo.ORPOTrainer`; `args` must be a
    `DeviationWeightedORPOConfig`. The train (and eval) datasets need `args.weight_column`.
    Logs TRL's ORPO metrics under TRL's names (`nll_loss` and `log_odds_ratio` are the weighted
    terms that enter the loss, `log_odds_chosen` the unweighted mean log-odds) plus `weights/mean`.
    """

    _tag_names = ["trl", "orpo", "dorpo", "divwrite"]
    _name = "DeviationWeightedORPO"

    def __init__(
        self,
        model: Any = None,
        args: DeviationWeightedORPOConfig | None = None,
        data_collator: Any = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | Mapping[str, Dataset] | None = None,
        **kwargs: Any,
    ) -> None:
        if args is None:
            args = DeviationWeightedORPOConfig(output_dir="dorpo-output")
        if not isinstance(args, DeviationWeightedORPOConfig):
            raise TypeError(
                f"args must be a DeviationWeightedORPOConfig (it carries weight_column), got {type(args).__name__}"
            )
        if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
            raise ValueError("DeviationWeightedORPOTrainer supports decoder-only models only")
        self.weight_column = args.weight_column
        name = type(self).__name__
        if train_dataset is not None:
            _check_dataset_weights(train_dataset, self.weight_column, "train_dataset", name)
        if eval_dataset is not None:
            named = eval_dataset.items() if isinstance(eval_dataset, Mapping) else [("eval_dataset", eval_dataset)]
            for split, dataset in named:
                _check_dataset_weights(dataset, self.weight_column, str(split), name)
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
        if not isinstance(self.data_collator, WeightedPreferenceCollator):
            self.data_collator = WeightedPreferenceCollator(self.data_collator, self.weight_column, name)

    def _set_signature_columns_if_needed(self) -> None:
        """Keep the weight column through `remove_unused_columns` (TRL turns it off only for its own collator)."""
        super()._set_signature_columns_if_needed()
        if self.weight_column not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, self.weight_column]

    def get_batch_loss_metrics(
        self,
        model: Any,
        batch: dict[str, Any],
        train_eval: str = "train",
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """DORPO loss (see `weighted_orpo_loss`) and TRL's ORPO metrics plus `weights/mean`."""
        if self.weight_column not in batch:
            raise ValueError(
                f"the batch has no {self.weight_column!r} tensor; DeviationWeightedORPOTrainer never falls back to "
                "unweighted ORPO (was the collator replaced?)"
            )
        weights = batch[self.weight_column]
        batch = {k: v for k, v in batch.items() if k != self.weight_column}
        weights = torch.as_tensor(
            check_weights(weights.detach().cpu().numpy() if torch.is_tensor(weights) else weights, "batch")
        )

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
