"""Which process am I, under `accelerate launch`? (one process outside it)."""

from __future__ import annotations

import os


def is_main_process() -> bool:
    """True in the process that logs and writes outputs: rank 0 under `accelerate launch` /
    torchrun (`RANK` in the environment), and always outside them. Imports nothing heavy, so
    a stage can ask before loading torch."""
    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    """Number of processes training together (1 outside `accelerate launch`)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_state():
    """accelerate's `PartialState`, on the GPU when there is one, else on the CPU (gloo) - the
    same choice as the trainers' `use_cpu` (`training._common_args`)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())
