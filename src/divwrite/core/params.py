"""Reading `params.yaml` (raw, or checked against `core.schema`), and the one dotted get / set /
flatten / merge of nested params (MLflow params, `-S` overrides, profiles, the ablation grid)."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from divwrite.core.schema import Params


class ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads `5e-06` as a float, as YAML 1.2 does.

    PyYAML implements YAML 1.1, whose floats need a dot (`5.0e-06`). DVC writes params.yaml
    with ruamel.yaml (YAML 1.2): `dvc exp run -S dpo.learning_rate=5e-6` leaves `5e-06` in
    the file, which YAML 1.1 reads as the text "5e-06", and AdamW then fails on it.
    """


ParamsLoader.add_implicit_resolver(  # copies SafeLoader's resolvers first: SafeLoader is unchanged
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def parse_yaml(stream: Any) -> Any:
    """A params-style YAML document (text or file) through `ParamsLoader`: profiles, `git show`
    of a params.yaml, anything DVC may have written."""
    return yaml.load(stream, Loader=ParamsLoader)  # a safe loader: SafeLoader plus one float form


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The pipeline's parameters as the YAML holds them (nested dicts), from the working directory.

    DVC runs every stage from the repository root, and in `dvc exp run --queue` from the
    experiment's temporary checkout, so the working directory is the right place to read
    from (never `DVC_ROOT`, which points at the original repo in queued runs).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path.resolve()}: no params file; run from the repository root")
    with path.open(encoding="utf-8") as f:
        params = parse_yaml(f)
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a mapping of sections, got {type(params).__name__}")
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """`read_params(path)` checked against the schema (`core.schema.Params`): what a stage runs
    with. `ParamsError` (a ValueError) names every misspelt or mistyped key."""
    return validate_params(read_params(path), label=str(path))


_MISSING = object()


def get_param(params: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """The value of the (nested) key `dotted` of `params`, e.g. `"dpo.beta"`, else `default`."""
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def has_param(params: Mapping[str, Any], dotted: str) -> bool:
    """Whether `params` has the (nested) key `dotted`."""
    return get_param(params, dotted, _MISSING) is not _MISSING


def set_param(params: Mapping[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of `params` with the (nested) key `dotted` set to `value` (sections created as needed)."""
    return deep_merge(dict(params), unflatten({dotted: value}))


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """`{"a.b": 1, "c": 2}` -> `{"a": {"b": 1}, "c": 2}`: the inverse of `flatten`."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        *sections, key = dotted.split(".")
        node = nested
        for part in sections:
            node = node.setdefault(part, {})
        node[key] = value
    return nested


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` with `override` applied recursively (mappings merge, everything else replaces)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`, in the mapping's order (lists are values, kept as
    they are): the dotted keys of MLflow params, of `-S` overrides and of `get_param`."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


# --------------------------------------------------------------------------- checking against the schema


SectionT = TypeVar("SectionT", bound=BaseModel)


class ParamsError(ValueError):
    """Params that do not fit the schema; the message has one line per problem."""


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The keys of the section at `loc` (for "unknown key" messages), or None."""
    annotation: Any = model
    for part in loc:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
        elif getattr(annotation, "__origin__", None) is dict:
            annotation = annotation.__args__[1]
        else:
            return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return None


def _describe(error: Mapping[str, Any], model: type[BaseModel], label: str) -> str:
    # pydantic puts the branch of a union (`int`, `float`, `str`, `list[str]`) in the location: not a key
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p in {"int", "float", "str"})))
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    given = error.get("input")
    if error["type"] == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        where = ".".join(str(p) for p in loc[:-1]) or label
        return f"{key}: unknown key (got {given!r})" + (f"; {where} has: {', '.join(known)}" if known else "")
    if error["type"] == "missing":
        return f"{key}: missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    own_check = error["type"] == "value_error" and isinstance(given, Mapping)  # a section's check names its keys
    shown = "" if own_check else f" (got {given!r})"
    return f"{key}: {message}{shown}" if key else message


def parse_section(model: type[SectionT], raw: Any, label: str) -> SectionT:
    """`raw` as `model` (a section, or all of `Params`); `ParamsError` naming `label` and every problem."""
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{label}: expected a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(dict(raw))
    except ValidationError as err:
        problems = sorted({_describe(e, model, label) for e in err.errors()})
        raise ParamsError(f"{label}: " + ("\n  " if len(problems) > 1 else "") + "\n  ".join(problems)) from None


def validate_params(raw: Any, label: str = "params.yaml") -> Params:
    """`raw` (a params mapping) as `Params`; `ParamsError` naming `label` and every problem."""
    return parse_section(Params, raw, label)
