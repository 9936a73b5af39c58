"""Cores, threads and OpenMP's wait policy (`divwrite.core.distributed`). The policy's effect on a
busy machine is measured by benchmarks/bench_busy.py, which also checks the weights' bytes."""

import os
import subprocess
import sys

import pytest

from divwrite.core.distributed import (
    CPU_THREADS_ENV,
    affinity_cores,
    cpu_wait_env,
    free_cores,
    wait_policy,
)


def test_free_cores_is_between_none_and_all():
    free = free_cores(interval=0.05)
    assert 0.0 <= free <= affinity_cores()


def test_a_busy_core_makes_waiting_threads_sleep():
    assert wait_policy(2.0, 2) == {}
    assert wait_policy(1.6, 2) == {}  # a little load is not a busy core
    assert wait_policy(1.0, 2) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert wait_policy(0.2, 16) == {"OMP_WAIT_POLICY": "PASSIVE"}


def test_the_environment_s_own_policy_wins():
    assert cpu_wait_env({"OMP_WAIT_POLICY": "ACTIVE"}) == {}
    assert cpu_wait_env({"GOMP_SPINCOUNT": "0"}) == {}
    assert cpu_wait_env({}) in ({}, {"OMP_WAIT_POLICY": "PASSIVE"})


def threads_under(value: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != CPU_THREADS_ENV} | {CPU_THREADS_ENV: value}
    code = "from divwrite.core.distributed import use_cpu_cores; print(use_cpu_cores())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("value", ["1", "auto"])
def test_threads_follow_the_override(value):
    out = threads_under(value)
    assert out.returncode == 0, out.stderr
    n = int(out.stdout)
    assert n == 1 if value == "1" else 1 <= n <= affinity_cores()


def test_a_bad_thread_count_is_refused_by_name():
    out = threads_under("two")
    assert out.returncode != 0 and "DIVWRITE_CPU_THREADS='two'" in out.stderr
