"""`python -m divwrite.training.launch <accelerate launch options> script.py args...`: `accelerate launch`
without its extra process for a single plain process.

`accelerate launch` parses the config, then for one plain process (`distributed_type: "NO"`,
no DeepSpeed / FSDP / Megatron / TPU / SageMaker: the default `train` config) starts a second
Python that imports torch, transformers and the trainers all over again: ~5 s of CPU per
training stage here, ten stages per run. This launcher parses the same options with
accelerate's own parser and validation, builds the same command and environment
(`prepare_simple_launcher_cmd_env`) and runs the script in its own process under that
environment. Anything else (several processes, DeepSpeed, FSDP, ...) is handed to
`accelerate launch` itself, unchanged.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from pathlib import Path


def is_single_process(args: argparse.Namespace, defaults) -> bool:
    """True where `accelerate.commands.launch.launch_command` would take its `simple_launcher`."""
    from accelerate.utils import ComputeEnvironment

    if args.cpu:
        return True
    distributed = args.use_deepspeed or args.use_fsdp or args.use_megatron_lm or args.multi_gpu or args.tpu
    sagemaker = defaults is not None and defaults.compute_environment == ComputeEnvironment.AMAZON_SAGEMAKER
    return not distributed and not sagemaker and not args.no_python and args.mpirun_hostfile is None


def main(argv: list[str] | None = None) -> None:
    # accelerate has no public name for the validation `accelerate launch` runs; tests/test_launch.py
    # runs this launcher against `accelerate launch` itself, so an accelerate upgrade that moves it fails there.
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser  # noqa: PLC2701
    from accelerate.utils import prepare_simple_launcher_cmd_env

    argv = list(sys.argv[1:] if argv is None else argv)
    args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args(argv))
    if not is_single_process(args, defaults):
        os.execv(sys.executable, [sys.executable, "-m", "accelerate.commands.launch", *argv])
    cmd, env = prepare_simple_launcher_cmd_env(args)
    os.environ.update(env)
    if args.module:
        sys.argv = [args.training_script, *args.training_script_args]
        runpy.run_module(args.training_script, run_name="__main__", alter_sys=True)
    else:
        script = Path(args.training_script)
        sys.argv = [str(script), *args.training_script_args]
        sys.path.insert(0, str(script.resolve().parent))  # as `python script.py` would
        runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
