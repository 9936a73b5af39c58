"""Running DVC and git (the one wrapper of both), and writing `-S key=value` overrides.

Every stage asks git for the commit it runs (`core.tracking.git_commit`); every command of
`divwrite.ops` (`divwrite repro`, `smoke`, `exp`, `ablate`, `seeds`, `retrain`) drives DVC as a
subprocess, `python -m dvc` of this interpreter, never a `dvc` found on PATH: the
stages DVC starts call `python`, so `venv_env` puts this interpreter's bin first on PATH
(and turns DVC's and MLflow's telemetry off unless the environment says otherwise).

`run_dvc` runs one DVC command in three ways, as its callers need:

- `capture` (default): DVC's stdout and stderr come back as text on the result (`dvc exp
  show --json`, `dvc status`, `dvc metrics diff`);
- `inherit`: DVC writes to this process's stdout and stderr (`dvc repro`, `dvc exp run
  --run-all`);
- `stream`: DVC's stdout and stderr, merged, are echoed line by line as they come (CI logs
  stay live) and also come back on the result's `stdout` (`retrain` reads which stages ran
  from them).

`run_git` runs one git command, its output captured as text. Both return the
`CompletedProcess`, and raise `CalledProcessError` on a non-zero exit with `check`.

`hydra_value` writes a params value as the right-hand side of an override in Hydra's
grammar, which DVC parses `-S` with: strings are quoted only where the grammar needs it
(`data.source='hf:euclaise/...'`), YAML words such as `yes` always. `override_args` turns a
flat `key -> value` mapping (`core.params.flatten` of a profile or of an ablation variant)
into the `key=value` strings, in the mapping's order.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

_PLAIN_STRING = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_YAML_WORDS = {"true", "false", "null", "none", "yes", "no", "on", "off", "inf", "nan"}

Output = Literal["capture", "inherit", "stream"]


def venv_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for DVC: this interpreter's bin first on PATH (stages call `python`)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("DVC_STUDIO_OFFLINE", "true")
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.update(extra or {})
    return env


def dvc_argv(*args: str) -> list[str]:
    """`dvc ARGS` as the argv that runs it with this interpreter (`python -m dvc ARGS`)."""
    return [sys.executable, "-m", "dvc", *args]


def run_dvc(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    output: Output = "capture",
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`dvc ARGS` in `cwd`, in `env` (default `venv_env()`); `output` says what becomes of
    DVC's output (see the module docstring). `check`: CalledProcessError on a non-zero exit."""
    argv = dvc_argv(*args)
    environment = dict(env) if env else venv_env()
    if output == "stream":
        return _stream(argv, cwd, environment, check)
    return subprocess.run(argv, cwd=cwd, env=environment, capture_output=output == "capture", text=True, check=check)


def _stream(argv: list[str], cwd: Path, env: dict[str, str], check: bool) -> subprocess.CompletedProcess[str]:
    """Run `argv`, echoing its merged output line by line; the output comes back as `stdout`."""
    lines = []
    with subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)  # noqa: T201 - DVC's own output, relayed: the command's output
            lines.append(line)
    done = subprocess.CompletedProcess(argv, proc.returncode, "".join(lines), None)
    if check:
        done.check_returncode()
    return done


def run_git(cwd: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """`git ARGS` in `cwd`, stdout and stderr captured as text. `check`: CalledProcessError
    on a non-zero exit (OSError when git is not installed)."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check)


def hydra_value(value: Any) -> str:
    """A params value as the right-hand side of a Hydra override (`-S key=<this>`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if _PLAIN_STRING.match(value) and value.lower() not in _YAML_WORDS:
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    raise ValueError(f"cannot write {value!r} ({type(value).__name__}) as a -S override")


def override_args(overrides: Mapping[str, Any]) -> list[str]:
    """`key=value` strings for `dvc exp run -S`, in the mapping's order, from flat (dotted)
    keys; values in Hydra's grammar (`hydra_value`: ValueError for one it cannot carry)."""
    return [f"{key}={hydra_value(value)}" for key, value in overrides.items()]
