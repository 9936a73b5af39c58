"""Profiles (`profiles/<name>.yaml`) as DVC experiments: checked against `params.yaml`,
flattened to `-S key=value` overrides, run with `dvc exp run -n <name>`.

A profile is a partial `params.yaml`: `divwrite smoke --profile <name>` applies it in a
scratch copy (`pipeline.profile_params`); `run_profile_experiment` applies it to the project
itself as a named DVC experiment, so a real run (the paper's setup, `profiles/paper.yaml`)
is recorded like any other: `dvc exp show`, `dvc metrics diff`, and each stage's MLflow run
tagged `dvc.experiment`.

- `load_profile` checks the profile merged over `params.yaml` against the params schema
  (`core.schema.Params`) before DVC starts: a key the schema lacks (DVC would refuse its `-S`
  too, but only after the queue or the run started), a section given as a value or a value
  as a section, a value of the wrong type (a number that arrives as text, a flag written
  `"yes"`) are a `ParamsError` naming the profile and the dotted key.
- `profile_overrides` flattens the profile to `key=value` strings (`core.params.flatten`,
  then `core.vcs.override_args`), values written in Hydra's override grammar, which DVC
  parses `-S` with (`core.vcs.hydra_value`: strings quoted only where the grammar needs it,
  e.g. `data.source='hf:euclaise/...'`). Applying them with DVC's own
  `dvc.utils.hydra.apply_overrides` gives exactly the profile merged over `params.yaml`
  (tested).
- `stage_view` / `check_round_trip`: DVC writes the overridden `params.yaml` with ruamel.yaml
  (YAML 1.2) and the stages read it with PyYAML (`core.params.read_params`, YAML 1.1). The two
  disagree on some plain scalars: `5e-06` (what DVC writes for the paper's learning rate) is
  a float in 1.2 and the text "5e-06" in 1.1 (AdamW then fails, hours into a real run); the
  string "yes" is written unquoted and read back as true. `check_round_trip` applies the
  overrides with DVC's own `dvc.utils.hydra.apply_overrides` to a temporary copy, reads it
  back as the stages will, refuses any value that does not come back as the profile
  wrote it, and checks the result against the schema (the `extra` `-S` overrides too).
- `exp_run_command` / `run_profile_experiment`: `dvc exp run -n <name> [--queue] -S ...
  [targets]`, after `check_round_trip`; `extra` overrides (`key=value`, Hydra syntax)
  replace the profile's value of the same key, e.g. a local copy of the data instead of
  the hub.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from divwrite.core.params import deep_merge, flatten, parse_yaml, read_params, validate_params
from divwrite.core.vcs import dvc_argv, override_args, run_dvc

logger = logging.getLogger(__name__)


def profile_path(root: Path, profile: str) -> Path:
    """`root/profiles/<profile>.yaml`; ValueError naming the known profiles when it is absent."""
    path = Path(root) / "profiles" / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (Path(root) / "profiles").glob("*.yaml"))
        raise ValueError(f"no profile {profile!r} ({path}); profiles: {known}")
    return path


def absolute_source(root: Path, source: Any) -> Any:
    """A `data.source` that is a relative local path, made absolute against `root` (the runs
    happen in other folders); `builtin`, `hf:<dataset>` and absolute paths as they are."""
    if (
        isinstance(source, str)
        and source != "builtin"
        and not source.startswith("hf:")
        and not Path(source).is_absolute()
    ):
        return str((Path(root) / source).resolve())
    return source


def load_profile(root: Path, profile: str) -> dict[str, Any]:
    """The overrides of `profiles/<profile>.yaml`; merged over `root/params.yaml` they must fit
    the params schema (`ParamsError` naming the profile and the key). An empty file is an
    empty profile."""
    path = profile_path(root, profile)
    with path.open(encoding="utf-8") as f:
        try:
            override = parse_yaml(f)
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: not valid YAML ({e})") from None
    override = {} if override is None else override
    if not isinstance(override, dict):
        raise ValueError(f"{path}: expected a mapping of params.yaml sections, got {type(override).__name__}")
    validate_params(deep_merge(read_params(Path(root) / "params.yaml"), override), label=str(path))
    return override


def profile_overrides(root: Path, profile: str) -> list[str]:
    """`profiles/<profile>.yaml` as `key=value` strings for `dvc exp run -S`, checked against
    `params.yaml` first (`load_profile`)."""
    return override_args(flatten(load_profile(Path(root), profile)))


def _override_key(override: str) -> str:
    key, sep, _ = override.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {override!r}: expected key=value (e.g. data.hf_split=train)")
    return key.strip()


def _replaced(key: str, replaced: set[str]) -> bool:
    """Whether an `extra` override of one of `replaced` (or of a section above it) sets `key`."""
    return any(key == r or key.startswith(f"{r}.") for r in replaced)


def with_extra(root: Path, profile: str, extra: Sequence[str] = ()) -> list[str]:
    """The profile's `-S` overrides (`profile_overrides`) then `extra` (`key=value`, Hydra
    syntax), a profile value dropped where an `extra` override sets it or a section above it."""
    replaced = {_override_key(o) for o in extra}
    kept = [o for o in profile_overrides(Path(root), profile) if not _replaced(_override_key(o), replaced)]
    return [*kept, *extra]


def stage_view(root: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """`root/params.yaml` as the stages will read it after `dvc exp run -S <overrides>`:
    DVC's own `apply_overrides` on a temporary copy, read back with `core.params.read_params`.
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
        return read_params(path)


def check_round_trip(root: Path, profile: str, extra: Sequence[str] = ()) -> None:
    """ValueError naming every profile value that the stages would not read back as the
    profile wrote it after `dvc exp run -S` (value and type compared; `stage_view`; keys
    that `extra` overrides are not compared), then `ParamsError` when what the stages would
    read does not fit the params schema (the `extra` overrides included)."""
    root = Path(root)
    override = load_profile(root, profile)
    expected = flatten(deep_merge(read_params(root / "params.yaml"), override))
    replaced = {_override_key(o) for o in extra}
    view = stage_view(root, with_extra(root, profile, extra))
    seen = flatten(view)
    bad = [
        f"{key}: the profile says {expected[key]!r}, the stages would read {seen.get(key)!r}"
        for key in flatten(override)
        if not _replaced(key, replaced)
        and (type(seen.get(key)) is not type(expected[key]) or seen.get(key) != expected[key])
    ]
    if bad:
        raise ValueError(
            f"profiles/{profile}.yaml: after `dvc exp run -S` (DVC writes params.yaml as YAML 1.2) "
            "divwrite.core.params.read_params (PyYAML) would misread " + "; ".join(bad)
        )
    validate_params(view, label=f"params.yaml after `dvc exp run` with profiles/{profile}.yaml")


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
    command = dvc_argv("exp", "run", "-n", name or profile)
    if queue:
        command.append("--queue")
    for override in with_extra(root, profile, extra):
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
    args = command[len(dvc_argv()) :]  # the argv after `python -m dvc`
    shown = shlex.join(["dvc", *args])
    if dry_run:
        print(shown)  # noqa: T201 - the dvc command is the command's output with --dry-run
        return 0
    logger.info("%s", shown)
    return run_dvc(Path(root), *args, output="inherit").returncode
