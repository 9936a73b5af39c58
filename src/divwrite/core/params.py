"""Reading `params.yaml` and applying profiles (e.g. `profiles/smoke.yaml`)."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


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


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The pipeline's parameters, read from the working directory.

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


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` with `override` applied recursively (mappings merge, everything else replaces)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}` (lists kept as their string form), for MLflow params."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat
