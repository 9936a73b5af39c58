"""Profiles (`profiles/<name>.yaml`) as DVC experiments: checked against `params.yaml`,
flattened to `-S key=value` overrides, run with `dvc exp run -n <name>`.

A profile is a partial `params.yaml`: `divwrite smoke --profile <name>` applies it in a
scratch copy (`pipeline.profile_params`); `run_profile_experiment` applies it to the project
itself as a named DVC experiment, so a real run (the paper's setup, `profiles/paper.yaml`)
is recorded like any other: `dvc exp show`, `dvc metrics diff`, and each stage's MLflow run
tagged `dvc.experiment`.

- `check_profile` refuses what would not merge cleanly: a key that `params.yaml` lacks (DVC
  would refuse its `-S` too, but only after the queue or the run started), a section given
  as a value or a value as a section, and a value of another kind than the param's (a
  number that arrives as text, as `yaml.safe_load` reads `3e-5` though `params.parse_yaml`
  does not; a flag written `"yes"`). `None` is accepted anywhere (e.g. `data.columns.post_text: null`, no body column), as are a list
  and a string for each other (`model.lora.target_modules`).
- `profile_overrides` flattens the profile to `key=value` strings, values written in
  Hydra's override grammar, which DVC parses `-S` with (`ablation.hydra_value`: strings
  quoted only where the grammar needs it, e.g. `data.source='hf:euclaise/...'`). Applying
  them with DVC's own `dvc.utils.hydra.apply_overrides` gives exactly the profile merged over
  `params.yaml` (tested).
- `stage_view` / `check_round_trip`: DVC writes the overridden `params.yaml` with ruamel.yaml
  (YAML 1.2) and the stages read it with PyYAML (`params.load_params`, YAML 1.1). The two
  disagree on some plain scalars: `5e-06` (what DVC writes for the paper's learning rate) is
  a float in 1.2 and the text "5e-06" in 1.1 (AdamW then fails, hours into a real run); the
  string "yes" is written unquoted and read back as true. `check_round_trip` applies the
  overrides with DVC's own `dvc.utils.hydra.apply_overrides` to a temporary copy, reads it
  back as the stages will, and refuses any value that does not come back as the profile
  wrote it.
- `exp_run_command` / `run_profile_experiment`: `dvc exp run -n <name> [--queue] -S ...
  [targets]`, after `check_round_trip`; `extra` overrides (`key=value`, Hydra syntax)
  replace the profile's value of the same key, e.g. a local copy of the data instead of
  the hub.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from divwrite.core.params import deep_merge, flatten, load_params, parse_yaml
from divwrite.ops.ablation import hydra_value
from divwrite.ops.pipeline import _venv_env


def profile_path(root: Path, profile: str) -> Path:
    """`root/profiles/<profile>.yaml`; ValueError naming the known profiles when it is absent."""
    path = Path(root) / "profiles" / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (Path(root) / "profiles").glob("*.yaml"))
        raise ValueError(f"no profile {profile!r} ({path}); profiles: {known}")
    return path


def load_profile(root: Path, profile: str) -> dict[str, Any]:
    """The overrides of `profiles/<profile>.yaml`, checked against `root/params.yaml`
    (`check_profile`). An empty file is an empty profile."""
    path = profile_path(root, profile)
    with path.open(encoding="utf-8") as f:
        try:
            override = parse_yaml(f)
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML ({e})") from None
    override = {} if override is None else override
    if not isinstance(override, dict):
        raise ValueError(f"{path}: expected a mapping of params.yaml sections, got {type(override).__name__}")
    check_profile(load_params(Path(root) / "params.yaml"), override, label=str(path))
    return override


def _kind(value: Any) -> str:
    """What kind of param a value is, for `check_profile`: lists and strings are one kind."""
    if isinstance(value, bool):
        return "a flag (true/false)"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (str, list)):
        return "a string or list"
    return type(value).__name__


def check_profile(params: Mapping[str, Any], override: Mapping[str, Any], label: str = "profile") -> None:
    """ValueError unless every key of `override` exists in `params` with the same shape and
    kind (see the module docstring); the message names the profile (`label`) and the key."""

    def walk(base: Mapping[str, Any], over: Mapping[str, Any], prefix: str) -> None:
        for key, value in over.items():
            name = f"{prefix}{key}"
            if key not in base:
                raise ValueError(f"{label}: no param {name!r} in params.yaml (keys there: {sorted(map(str, base))})")
            current = base[key]
            if isinstance(current, Mapping):
                if not isinstance(value, Mapping):
                    raise ValueError(f"{label}: {name} is a section in params.yaml, the profile gives it {value!r}")
                walk(current, value, f"{name}.")
            elif isinstance(value, Mapping):
                raise ValueError(
                    f"{label}: {name} is a value in params.yaml ({current!r}), the profile gives a section"
                )
            elif value is not None and current is not None and _kind(value) != _kind(current):
                raise ValueError(
                    f"{label}: {name} is {_kind(current)} in params.yaml ({current!r}), the profile gives "
                    f"{_kind(value)} ({value!r})"
                )

    walk(params, override, "")


def flatten_overrides(override: Mapping[str, Any], prefix: str = "") -> list[str]:
    """`{"a": {"b": 1}, "c": "hf:x"}` -> `["a.b=1", "c='hf:x'"]`, in the profile's order; values
    in Hydra's override grammar (`ablation.hydra_value`; ValueError for one it cannot carry)."""
    flat: list[str] = []
    for key, value in override.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.extend(flatten_overrides(value, f"{name}."))
        else:
            flat.append(f"{name}={hydra_value(value)}")
    return flat


def profile_overrides(root: Path, profile: str) -> list[str]:
    """`profiles/<profile>.yaml` as `key=value` strings for `dvc exp run -S`, checked against
    `params.yaml` first (`load_profile`)."""
    return flatten_overrides(load_profile(Path(root), profile))


def _override_key(override: str) -> str:
    key, sep, _ = override.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {override!r}: expected key=value (e.g. data.hf_split=train)")
    return key.strip()


def _replaced(key: str, replaced: set[str]) -> bool:
    """Whether an `extra` override of one of `replaced` (or of a section above it) sets `key`."""
    return any(key == r or key.startswith(f"{r}.") for r in replaced)


def stage_view(root: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """`root/params.yaml` as the stages will read it after `dvc exp run -S <overrides>`:
    DVC's own `apply_overrides` on a temporary copy, read back with `params.load_params`.
    ValueError when DVC refuses an override (an unknown key, bad Hydra syntax)."""
    from dvc.utils.hydra import InvalidArgumentError, apply_overrides

    with tempfile.TemporaryDirectory(prefix="divwrite-params-") as tmp:
        path = Path(tmp) / "params.yaml"
        shutil.copyfile(Path(root) / "params.yaml", path)
        try:
            apply_overrides(path, list(overrides))
        except InvalidArgumentError as e:
            cause = e.__cause__ or e
            raise ValueError(f"dvc refuses the overrides: {str(cause).strip().splitlines()[0]}") from None
        return load_params(path)


def check_round_trip(root: Path, profile: str, extra: Sequence[str] = ()) -> None:
    """ValueError naming every profile value that the stages would not read back as the
    profile wrote it after `dvc exp run -S` (value and type compared; `stage_view`). Keys
    that `extra` overrides are not compared."""
    root = Path(root)
    override = load_profile(root, profile)
    expected = flatten(deep_merge(load_params(root / "params.yaml"), override))
    replaced = {_override_key(o) for o in extra}
    kept = [o for o in flatten_overrides(override) if not _replaced(_override_key(o), replaced)]
    seen = flatten(stage_view(root, [*kept, *extra]))
    bad = [
        f"{key}: the profile says {expected[key]!r}, the stages would read {seen.get(key)!r}"
        for key in flatten(override)
        if not _replaced(key, replaced)
        and (type(seen.get(key)) is not type(expected[key]) or seen.get(key) != expected[key])
    ]
    if bad:
        raise ValueError(
            f"profiles/{profile}.yaml: after `dvc exp run -S` (DVC writes params.yaml as YAML 1.2) "
            "divwrite.params.load_params (PyYAML) would misread " + "; ".join(bad)
        )


def exp_run_command(
    root: Path,
    profile: str,
    *,
    name: str | None = None,
    queue: bool = False,
    extra: Sequence[str] = (),
    targets: Sequence[str] = (),
) -> list[str]:
    """The `dvc exp run` command (argv) that records the profile as experiment `name`
    (default: the profile's name): `-S` for every profile value, then `extra` (`key=value`,
    Hydra syntax), which replace the profile's values of the same keys, then `targets`."""
    replaced = {_override_key(o) for o in extra}
    overrides = [o for o in profile_overrides(Path(root), profile) if not _replaced(_override_key(o), replaced)]
    command = [sys.executable, "-m", "dvc", "exp", "run", "-n", name or profile]
    if queue:
        command.append("--queue")
    for override in [*overrides, *extra]:
        command += ["-S", override]
    return command + list(targets)


def run_profile_experiment(
    root: Path,
    profile: str,
    *,
    name: str | None = None,
    queue: bool = False,
    extra: Sequence[str] = (),
    targets: Sequence[str] = (),
    dry_run: bool = False,
) -> int:
    """Run (or with `queue`, queue: `dvc exp run --run-all` runs it) the profile as a DVC
    experiment in the project at `root` (a git repository: DVC experiments are git refs);
    returns DVC's exit code. The profile is checked first (`load_profile`,
    `check_round_trip`: ValueError when DVC or the stages would get it wrong). `dry_run`
    prints the command, shell-quoted, and runs nothing."""
    check_round_trip(Path(root), profile, extra)
    command = exp_run_command(root, profile, name=name, queue=queue, extra=extra, targets=targets)
    shown = shlex.join(["dvc", *command[3:]])
    if dry_run:
        print(shown)
        return 0
    print(f"divwrite: {shown}", flush=True)
    return subprocess.call(command, cwd=Path(root), env=_venv_env({}))
