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
    same choice as the trainers' `use_cpu` (`training.arguments.schedule_args`)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


CPU_THREADS_ENV = "DIVWRITE_CPU_THREADS"


def use_cpu_cores() -> int:
    """On a CPU-only machine, give torch this process's share of the cores; return the thread count.

    `accelerate launch` sets `OMP_NUM_THREADS=1` for every process unless its config says
    `use_cpu: true` (ours does not: the same config runs on a GPU when there is one), so a
    single training process on a CPU would use one core only: SFT of the built-in model took
    2.5x as long on 2 cores. The share is the cores this process may run on divided by the
    processes on this machine (`LOCAL_WORLD_SIZE`), what accelerate itself picks on CPU;
    `DIVWRITE_CPU_THREADS` overrides it. With a GPU nothing changes (returns torch's count).
    """
    import torch

    if torch.cuda.is_available():
        return torch.get_num_threads()
    threads = os.environ.get(CPU_THREADS_ENV)
    if threads:
        n = int(threads)
        if n < 1:
            raise ValueError(f"{CPU_THREADS_ENV}={threads!r}: expected a positive number of threads")
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        n = max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    torch.set_num_threads(n)
    return n
