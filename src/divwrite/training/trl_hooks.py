"""The private TRL / transformers hooks the trainers override or rely on, listed and checked in one place.

DDPO and DORPO (METHOD.md, Training) cannot be built from TRL's public API alone: TRL 1.16 has
no per-example weight, and the per-pair loss exists only inside private methods (notes/trl.md).
So the trainers (`training.trainers`, `training.weighted`) override private methods and read
private attributes. A TRL upgrade that renames one, or changes its parameters, must not train
plain DPO/ORPO without a word: the worst case is an override TRL no longer calls. Every such
hook is a `Hook` here, grouped per trainer (`LENGTH_GROUPED_DPO_HOOKS`, ...), and each trainer
checks its group when constructed:

- `check_trl_hooks` (before TRL's `__init__`): every method / function exists with the parameter
  names relied on. An overridden hook must match exactly (TRL calls the override with its own
  parameters); a hook only called may have further parameters with defaults.
- `check_trl_attributes` (after TRL's `__init__`, and before the reference pass that runs inside
  it): every instance attribute relied on was set.

Either raises `RuntimeError` naming the hook, what was expected and the installed TRL and
transformers versions. Both are cheap (`inspect.signature`, `hasattr`); nothing is cached, so a
monkeypatched class is seen (tests/test_trl_hooks.py).

Also relied on, but not checkable without running a model (tests/test_trainers*.py cover them):
`DPOTrainer._compute_loss`'s body (copied for the policy log-probs: the `fused_lm_head=True`
outputs `log_probs`, `entropy`, `mean_logits`, `is_top1`; the batch keys it keeps from the
model, `DPO_NON_MODEL_KEYS`); TRL running `_precompute_ref_logps` inside `__init__`;
`DataCollatorForPreference` dropping unknown keys; the order of `ORPOTrainer.concatenated_forward`'s
outputs `(chosen_logps, rejected_logps, chosen_logits, rejected_logits, nll[, aux_loss])`.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import transformers
import trl
from trl import DPOTrainer
from trl.import_utils import TRLExperimentalWarning

with warnings.catch_warnings():
    # ORPO lives only in `trl.experimental` in TRL 1.16; depending on it is deliberate.
    warnings.simplefilter("ignore", TRLExperimentalWarning)
    from trl.experimental import utils as trl_experimental_utils
    from trl.experimental.orpo import ORPOTrainer, orpo_trainer

# Batch keys that TRL's `DPOTrainer._compute_loss` keeps away from `model(**kwargs)` (a local there).
DPO_NON_MODEL_KEYS = ("completion_mask", "ref_chosen_logps", "ref_rejected_logps")

_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


@dataclass(frozen=True)
class Hook:
    """One private thing of TRL / transformers that the trainers rely on.

    `owner` is the TRL class (methods inherited from `transformers.Trainer` are looked up through
    it, as the trainers see them) or module that has it; `params` the parameter names relied on,
    `self` included for methods, or None for an instance attribute that the owner's `__init__`
    sets; `overridden` whether the trainers override it; `use` what depends on it."""

    owner: Any
    name: str
    params: tuple[str, ...] | None
    use: str
    overridden: bool = False

    def __str__(self) -> str:
        where = f"{self.owner.__name__}.{self.name}"
        return f"{where}({', '.join(self.params)})" if self.params is not None else f"{where} (instance attribute)"


def _method(owner: Any, name: str, params: tuple[str, ...], use: str, overridden: bool = True) -> Hook:
    return Hook(owner, name, params, use, overridden)


def _attributes(owner: Any, names: tuple[str, ...], use: str) -> tuple[Hook, ...]:
    return tuple(Hook(owner, name, None, use) for name in names)


def _length_grouping(owner: Any) -> Hook:
    return _method(owner, "_get_train_sampler", ("self", "train_dataset"), "length-grouped batches of pairs")


def _weight_column(owner: Any) -> tuple[Hook, ...]:
    use = "keeping the weight column through remove_unused_columns"
    return (
        _method(owner, "_set_signature_columns_if_needed", ("self",), use),
        *_attributes(owner, ("_signature_columns",), use),
    )


LENGTH_GROUPED_DPO_HOOKS: tuple[Hook, ...] = (
    _length_grouping(DPOTrainer),
    _method(
        DPOTrainer,
        "_precompute_ref_logps",
        ("self", "dataset", "name", "batch_size"),
        "reference pass sorted by length",
    ),
    *_attributes(DPOTrainer, ("_precompute_model_hash",), "the key of the reference log-probs cache"),
)

LENGTH_GROUPED_ORPO_HOOKS: tuple[Hook, ...] = (_length_grouping(ORPOTrainer),)

WEIGHTED_DPO_HOOKS: tuple[Hook, ...] = (
    *LENGTH_GROUPED_DPO_HOOKS,
    *_weight_column(DPOTrainer),
    _method(DPOTrainer, "_compute_loss", ("self", "model", "inputs", "return_outputs"), "the weighted DPO loss"),
    _method(DPOTrainer, "compute_ref_log_probs", ("self", "model", "inputs"), "reference log-probs without the weight"),
    *_attributes(
        DPOTrainer,
        ("precompute_ref_logps", "ref_model", "beta", "aux_loss_enabled", "router_aux_loss_coef"),
        "the weighted DPO loss",
    ),
    *_attributes(DPOTrainer, ("_metrics", "_total_train_tokens", "_tp_size"), "TRL's DPO metrics"),
)

WEIGHTED_ORPO_HOOKS: tuple[Hook, ...] = (
    *LENGTH_GROUPED_ORPO_HOOKS,
    *_weight_column(ORPOTrainer),
    _method(ORPOTrainer, "get_batch_loss_metrics", ("self", "model", "batch", "train_eval"), "the weighted ORPO loss"),
    _method(ORPOTrainer, "concatenated_forward", ("self", "model", "batch"), "ORPO's log-probs", overridden=False),
    _method(orpo_trainer, "log1mexp", ("x",), "ORPO's log-odds", overridden=False),
    _method(trl_experimental_utils, "pad_to_length", ("tensor", "length", "pad_value"), "ORPO's NLL", overridden=False),
    *_attributes(
        ORPOTrainer,
        ("beta", "aux_loss_enabled", "aux_loss_coef", "padding_value", "is_encoder_decoder"),
        "the weighted ORPO loss",
    ),
)

ALL_HOOKS: tuple[Hook, ...] = tuple(dict.fromkeys((*WEIGHTED_DPO_HOOKS, *WEIGHTED_ORPO_HOOKS)))


def signature_problem(hook: Hook) -> str | None:
    """What is wrong with a method / function hook in the installed TRL, or None if it is as expected."""
    target = getattr(hook.owner, hook.name, None)
    if target is None or not callable(target):
        return "it is missing"
    try:
        parameters = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return "its signature cannot be read"
    fixed = [p for p in parameters if p.kind not in _VARIADIC]
    found = f"found ({', '.join(str(p) for p in parameters)})"
    expected = list(hook.params or ())
    if [p.name for p in fixed[: len(expected)]] != expected:
        return f"expected the parameters ({', '.join(expected)}), {found}"
    extra = fixed[len(expected) :]
    if hook.overridden and extra:
        return f"it is overridden with exactly ({', '.join(expected)}), {found}"
    if any(p.default is inspect.Parameter.empty for p in extra):
        return f"it is called with ({', '.join(expected)}) only, {found}"
    return None


def _fail(hook: Hook, problem: str) -> RuntimeError:
    return RuntimeError(
        f"{hook}: {problem}. divwrite's trainers rely on it for {hook.use} and were written against TRL 1.16; "
        f"installed: trl {trl.__version__}, transformers {transformers.__version__}. Adapt divwrite.training "
        "(training/trl_hooks.py lists what is relied on) rather than train: a changed hook can silently train "
        "plain DPO/ORPO"
    )


def check_trl_hooks(hooks: Iterable[Hook]) -> None:
    """Raise `RuntimeError` if a method / function of `hooks` is missing or its parameters differ."""
    for hook in hooks:
        if hook.params is not None and (problem := signature_problem(hook)) is not None:
            raise _fail(hook, problem)


def check_trl_attributes(trainer: Any, hooks: Iterable[Hook]) -> None:
    """Raise `RuntimeError` if `trainer` lacks an instance attribute of `hooks` (after TRL's `__init__`)."""
    for hook in hooks:
        if hook.params is None and not hasattr(trainer, hook.name):
            raise _fail(
                hook, f"{type(trainer).__name__} has no attribute {hook.name!r} (TRL's __init__ no longer sets it)"
            )
