"""Which process am I, under `accelerate launch`? (one process outside it)."""

from __future__ import annotations

import os
from collections.abc import Mapping


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
# OpenMP's (libgomp's, torch's CPU build) wait policy: read once, when torch loads.
WAIT_ENV = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def affinity_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def free_cores(interval: float = 0.25) -> float:
    """How many of this process's cores the machine's other processes leave idle, from
    `/proc/stat` over `interval` seconds while this process sleeps (the core count where there
    is no `/proc/stat`)."""
    import time

    cores = affinity_cores()

    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all jiffies, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except OSError:
        return float(cores)
    busy = (os.cpu_count() or cores) * (1 - (idle1 - idle0) / max(total1 - total0, 1))
    return max(0.0, min(float(cores), cores - busy))


def cpu_wait_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """How OpenMP's threads wait, for the processes a pipeline starts (`ops.prefork.warm_interpreter`):
    nothing where the environment sets it (`OMP_WAIT_POLICY` / `GOMP_SPINCOUNT`); else `PASSIVE`
    (a thread that waits sleeps) when other processes keep a core busy, and OpenMP's own policy
    otherwise. libgomp spins ~300,000 times before a waiting thread sleeps: on 2 cores with one
    busy process beside it, the thread that shares a core is descheduled while its partner spins,
    and an SFT step took 4.3x its idle time, 1.9x when passive (`benchmarks/bench_busy.py`). On an
    idle machine the spin is what keeps short parallel regions fast (a shorter one, 10,000, cost
    ~5% of an SFT step). How threads wait does not change how work is split: the same bytes
    come out either way."""
    environ = os.environ if environ is None else environ
    if any(k in environ for k in WAIT_ENV):
        return {}
    return wait_policy(free_cores(), affinity_cores())


def wait_policy(free: float, cores: int) -> dict[str, str]:
    """`PASSIVE` when fewer than `cores` are free (half a core busy is busy), else nothing."""
    return {"OMP_WAIT_POLICY": "PASSIVE"} if free < cores - 0.5 else {}


def use_cpu_cores() -> int:
    """On a CPU-only machine, give torch this process's share of the cores; return the thread count.

    `accelerate launch` sets `OMP_NUM_THREADS=1` for every process unless its config says
    `use_cpu: true` (ours does not: the same config runs on a GPU when there is one), so a
    single training process on a CPU would use one core only: SFT of the built-in model took
    2.5x as long on 2 cores. The share is the cores this process may run on divided by the
    processes on this machine (`LOCAL_WORLD_SIZE`), what accelerate itself picks on CPU;
    `DIVWRITE_CPU_THREADS` overrides it: a number, or `auto` for the cores that other processes
    leave free when the stage starts (`free_cores`). The thread count is not left to the load by
    default because it changes the bytes trained: a sum split over another number of threads
    adds in another order (`benchmarks/bench_busy.py` shows the digests); how threads wait on a
    busy machine is set instead (`cpu_wait_env`). With a GPU nothing changes (returns torch's count).
    """
    import torch

    if torch.cuda.is_available():
        return torch.get_num_threads()
    threads = os.environ.get(CPU_THREADS_ENV, "")
    share = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if threads == "auto":  # the cores other processes leave free now
        n = max(1, round(free_cores()) // share)
    elif threads:
        if not threads.isdigit() or int(threads) < 1:
            raise ValueError(f"{CPU_THREADS_ENV}={threads!r}: expected a positive number of threads or 'auto'")
        n = int(threads)
    else:
        n = max(1, affinity_cores() // share)
    torch.set_num_threads(n)
    return n
