"""A warm interpreter for the stage processes of one `divwrite repro`: each `python ...` that DVC
starts forks from a process that has already imported torch, transformers, TRL, MLflow and
Great Expectations, instead of importing them again (~4-7 s of CPU per stage here).

`warm_interpreter(env)` (used by `ops.pipeline.reproduce`) starts a server (`python -m
divwrite.ops.prefork serve SOCKET`) that imports `PRELOAD`, third-party libraries only: this
project's own modules are imported afresh by every stage, so a stage always runs the code DVC
hashed. The server lives as long as the `with` block. The environment it returns puts a
`python` shim first on PATH; DVC runs the stages' unchanged `cmd`s (`python stages/x.py`,
`python -m divwrite.training.launch ...`) through it. For each one the shim (this file, run
with `python -S`: stdlib only, ~20 ms) sends its argv, working directory, environment and
stdin/stdout/stderr to the server, which forks a waiter, which forks the stage process. The
stage process takes the shim's descriptors, directory and environment, runs the script or
module as `python` would (`runpy`) and exits through the interpreter's shutdown up to its
atexit handlers (MLflow ends its run, logging flushes; `_exit`). The waiter sends its exit status back to the
shim, which exits with it; SIGTERM/SIGHUP to the shim reach the stage process, and a shim
that dies takes its stage process with it.

A stage runs as it would in a fresh process, with one difference in the state it starts from:
the preloaded modules are already imported (fresh `random` and NumPy global seeds, as a new
process gets). The shim runs the real interpreter instead (`os.execv`) when the server is not
there, when the command line is not `python script.py ...` or `python -m module ...`, or when
the environment differs from the server's in a variable libraries read when imported (`PRELOAD`
was imported under the server's). `DIVWRITE_PREFORK=0` turns it off.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

ENABLE_ENV = "DIVWRITE_PREFORK"
# What the stages import, heaviest first; a module that fails to import is skipped.
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "torch",
    "transformers",
    "transformers.modeling_utils",
    "transformers.trainer",
    "accelerate",
    "accelerate.commands.launch",
    "peft",
    "datasets",
    "trl",
    "trl.trainer.dpo_trainer",
    "trl.trainer.sft_trainer",
    "trl.trainer.reward_trainer",
    "trl.experimental.orpo",
    "sentence_transformers",
    "mlflow",
    "great_expectations",
    "scipy.stats",
)
# Variables that a library may read when it is imported: a stage whose environment differs from
# the server's in one of them runs in a fresh interpreter.
IMPORT_TIME_ENV = (
    "HF_",
    "HUGGINGFACE",
    "TRANSFORMERS_",
    "TORCH",
    "PYTORCH_",
    "CUDA",
    "NVIDIA_",
    "OMP_",
    "GOMP_",
    "MKL_",
    "KMP_",
    "OPENBLAS_",
    "PYTHON",
    "LD_",
    "TOKENIZERS_",
    "SENTENCE_TRANSFORMERS",
    "ACCELERATE_",
    "TRL_",
    "GX_",
    "GE_",
    "MLFLOW_",
    "XDG_",
    "HOME",
)
_LENGTH = 8  # bytes of the request's length prefix


# ---- the server (a warm interpreter) -----------------------------------------------------


def serve(path: str, preload: tuple[str, ...] = PRELOAD) -> None:
    """Listen on `path`, import `preload`, then fork a waiter per request (never returns)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)  # stages that connect while the preload runs wait in the backlog
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the stage, not the server
    own_env = dict(os.environ)
    for module in preload:
        with contextlib.suppress(ImportError):
            __import__(module)
    # What the imports put in the environment (torch sets KMP_* defaults): a stage process gets it too.
    set_by_imports = {k: v for k, v in os.environ.items() if own_env.get(k) != v}
    gc.freeze()  # the preloaded objects: never scanned by a stage's collections, so their pages stay shared
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # waiters are reaped by the kernel
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _wait_for_stage(conn, own_env, set_by_imports)
        conn.close()


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    _, fds, _, _ = socket.recv_fds(conn, 1, 3)
    header = _read(conn, _LENGTH)
    return json.loads(_read(conn, int.from_bytes(header, "big"))), fds


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:  # the shim went away before its request was whole: nothing to run
            os._exit(0)
        data += chunk
    return data


def _send(conn: socket.socket, message: dict) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def import_time_differences(a: Mapping[str, str], b: Mapping[str, str]) -> list[str]:
    """The variables read at import time (`IMPORT_TIME_ENV`) that differ between two environments."""
    keys = {k for k in (*a, *b) if k.startswith(IMPORT_TIME_ENV)}
    return sorted(k for k in keys if a.get(k) != b.get(k))


def _wait_for_stage(conn: socket.socket, own_env: dict[str, str], set_by_imports: dict[str, str]) -> None:
    """The waiter: fork the stage process, wait for it (or for its shim to go away), report its status."""
    request, fds = _receive(conn)
    differences = import_time_differences(request["env"], own_env)
    if differences:
        _send(conn, {"refuse": f"environment differs in {', '.join(differences)}"})
        os._exit(0)
    pid = os.fork()
    if pid == 0:
        conn.close()
        _run_stage(request | {"env": set_by_imports | request["env"]}, fds)
    for fd in fds:
        os.close(fd)
    _send(conn, {"pid": pid})
    pidfd = os.pidfd_open(pid)
    while True:
        ready, _, _ = select.select([conn, pidfd], [], [])
        if pidfd in ready:
            break
        if not conn.recv(1):  # the shim is gone: so goes its stage
            os.kill(pid, signal.SIGTERM)
            break
    _, status = os.waitpid(pid, 0)
    with contextlib.suppress(OSError):
        _send(conn, {"status": os.waitstatus_to_exitcode(status)})
    os._exit(0)


def _run_stage(request: dict, fds: list[int]) -> None:
    """The stage process: become `python <argv>` in the shim's directory, environment and stdio;
    leaves with the script's exit code (`_exit`)."""
    import random
    import runpy

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdout = open(1, "w", buffering=1 if os.isatty(1) else -1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    random.seed()  # a new process's seeds, not the server's
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    argv = request["argv"]
    try:
        if argv[0] == "-m":
            sys.argv, sys.path[0] = [argv[1], *argv[2:]], os.getcwd()
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv, sys.path[0] = list(argv), str(Path(argv[0]).resolve().parent)
            runpy.run_path(argv[0], run_name="__main__")
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (stop.code is not None)
        if not isinstance(stop.code, int | None):
            sys.stderr.write(f"{stop.code}\n")
    except BaseException:  # as the interpreter does with an uncaught exception: print it, exit 1
        sys.excepthook(*sys.exc_info())
        code = 130 if isinstance(sys.exc_info()[1], KeyboardInterrupt) else 1
    _exit(int(code))


def _exit(code: int) -> None:
    """The interpreter's shutdown up to its atexit handlers (non-daemon threads joined, atexit
    run, stdio flushed), then out. Tearing down the preloaded modules as well would write to
    every page shared with the server (copy-on-write): ~2 s per stage, for nothing."""
    import atexit
    import threading

    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


# ---- the shim (`python` on the stages' PATH) ------------------------------------------------


def _forwardable(argv: list[str]) -> bool:
    """`python script.py ...` or `python -m module ...`: what the shim hands to the server."""
    if not argv:
        return False
    if argv[0] == "-m":
        return len(argv) > 1
    return not argv[0].startswith("-")


def client(path: str, python: str, argv: list[str]) -> None:
    """Run `python argv` in the server at `path`, or exec `python` itself when it cannot."""
    if os.environ.get(ENABLE_ENV, "1") == "0" or not _forwardable(argv):
        os.execv(python, [python, *argv])
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        os.execv(python, [python, *argv])
    socket.send_fds(conn, [b"R"], [0, 1, 2])
    body = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    conn.sendall(len(body).to_bytes(_LENGTH, "big") + body)
    replies = conn.makefile("rb")
    first = json.loads(replies.readline() or b"{}")
    if "pid" not in first:
        os.execv(python, [python, *argv])  # refused (or the server is gone): a fresh interpreter
    pid = first["pid"]

    def forward(signum, _frame):
        # Ctrl-C reaches the stage process itself when it is in our process group: forward it only when not.
        with contextlib.suppress(ProcessLookupError):
            if signum != signal.SIGINT or os.getpgid(pid) != os.getpgrp():
                os.kill(pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    last = replies.readline()
    if not last:
        sys.stderr.write("divwrite prefork: the server went away before the stage finished\n")
        raise SystemExit(1)
    code = json.loads(last)["status"]
    raise SystemExit(code if code >= 0 else 128 - code)


# ---- starting and stopping it ---------------------------------------------------------------


def enabled(env: Mapping[str, str]) -> bool:
    return env.get(ENABLE_ENV, "1") != "0" and hasattr(os, "pidfd_open") and hasattr(socket, "send_fds")


@contextlib.contextmanager
def warm_interpreter(env: Mapping[str, str], preload: tuple[str, ...] = PRELOAD) -> Iterator[dict[str, str]]:
    """Start a warm interpreter that has imported `preload`, under `env`; yield `env` with its
    `python` shim first on PATH. Yields `env` without the shim where it is turned off
    (`DIVWRITE_PREFORK=0`) or unsupported. Both add OpenMP's wait policy for the machine's load
    (`core.distributed.cpu_wait_env`) where `env` does not set it: what the stages' torch reads
    when it loads."""
    from divwrite.core.distributed import cpu_wait_env  # not at the top: the shim runs this file without site-packages

    env = dict(env) | cpu_wait_env(env)  # read when torch loads: the server's environment must have it
    if not enabled(env):
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="divwrite-prefork-") as tmp:
        sock, shim = Path(tmp) / "server.sock", Path(tmp) / "bin" / "python"
        shim.parent.mkdir()
        command = [sys.executable, "-S", str(Path(__file__).resolve()), "client", str(sock), sys.executable]
        shim.write_text(f'#!/bin/sh\nexec {shlex.join(command)} "$@"\n')
        shim.chmod(0o755)
        server = subprocess.Popen(
            [sys.executable, "-m", "divwrite.ops.prefork", "serve", str(sock), *preload],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        try:
            while not sock.exists() and server.poll() is None:  # bound before it preloads: milliseconds
                select.select([], [], [], 0.01)
            yield {**env, "PATH": f"{shim.parent}{os.pathsep}{env.get('PATH', '')}"}
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], tuple(sys.argv[3:]))
    elif sys.argv[1] == "client":
        client(sys.argv[2], sys.argv[3], sys.argv[4:])
