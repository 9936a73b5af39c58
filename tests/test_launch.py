"""`divwrite.training.launch`: accelerate's launcher in-process for one plain process, `accelerate launch`
itself otherwise."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from divwrite.training.launch import is_single_process

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "accelerate"

PROBE = """
import json, os, sys
print(json.dumps({"argv": sys.argv, "pid": os.getpid(), "env": {k: v for k, v in os.environ.items() if k.startswith("ACCELERATE_")}}))
"""


def _validated(*argv: str):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args([*argv, "x.py"]))
    return args, defaults


@pytest.mark.parametrize(
    "config, extra, single",
    [
        ("single_process.yaml", [], True),
        ("cpu_ddp_2proc.yaml", ["--multi_gpu", "--num_processes", "2"], False),
        ("multi_gpu_ddp.yaml", [], False),
        ("fsdp.yaml", [], False),
    ],
)
def test_which_configs_run_in_process(config, extra, single):
    assert is_single_process(*_validated("--config_file", str(CONFIGS / config), *extra)) is single


def test_single_process_runs_the_script_in_process_with_accelerates_environment(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    config = str(CONFIGS / "single_process.yaml")

    def run(*launcher: str) -> dict:
        out = subprocess.run([sys.executable, *launcher, "--config_file", config, str(script), "a", "--b"],
                             capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1])

    ours, theirs = run("-m", "divwrite.training.launch"), run("-m", "accelerate.commands.launch")
    assert ours["argv"] == theirs["argv"] == [str(script), "a", "--b"]
    assert ours["env"] == theirs["env"] and ours["env"]["ACCELERATE_MIXED_PRECISION"] == "no"


def test_a_failing_script_fails_the_launcher(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text("raise SystemExit(3)")
    code = subprocess.call(
        [
            sys.executable,
            "-m",
            "divwrite.training.launch",
            "--config_file",
            str(CONFIGS / "single_process.yaml"),
            str(script),
        ]
    )
    assert code == 3
