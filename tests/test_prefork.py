"""The warm interpreter that `divwrite repro`'s stages fork from (`divwrite.ops.prefork`): a
stage run through its `python` shim sees what `python` would have given it, and everything
it cannot run goes to the real interpreter. (The pipeline's outputs with and without it are
compared byte for byte in tests/test_pipeline_e2e.py.)"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from divwrite.ops.prefork import import_time_differences, warm_interpreter

PROBE = """
import json, os, sys
print(json.dumps({
    "argv": sys.argv, "cwd": os.getcwd(), "path0": sys.path[0], "x": os.environ.get("X"),
    "stdin": sys.stdin.read(), "preloaded": "email.mime.text" in sys.modules,
    "name": __name__, "file": __file__, "parent": open(f"/proc/{os.getppid()}/cmdline").read().split("\\0")[:4],
}))
sys.stderr.write("to stderr\\n")
sys.exit(int(os.environ.get("CODE", "0")))
"""


@pytest.fixture(scope="module")
def warm():
    """A warm interpreter preloading a module no probe imports itself (`email.mime.text`)."""
    with warm_interpreter(dict(os.environ), preload=("email.mime.text",)) as env:
        yield env


def run(env, argv, cwd, **kwargs):
    return subprocess.run(["python", *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, **kwargs)


def test_a_script_sees_what_python_would_give_it(warm, tmp_path):
    script = tmp_path / "scripts" / "probe.py"
    script.parent.mkdir()
    script.write_text(PROBE)
    work = tmp_path / "work"
    work.mkdir()
    for code in (0, 3):
        out = run({**warm, "X": f"x{code}", "CODE": str(code)}, [str(script), "a", "b c"], work, input="in put")
        assert out.returncode == code
        seen = json.loads(out.stdout)
        assert seen["argv"] == [str(script), "a", "b c"]
        assert seen["cwd"] == str(work) and seen["path0"] == str(script.parent)
        assert seen["x"] == f"x{code}" and seen["stdin"] == "in put"
        assert seen["name"] == "__main__" and seen["file"] == str(script)
        assert out.stderr == "to stderr\n"
        # It ran in a process forked from the server, which had imported the preload.
        assert seen["preloaded"] and seen["parent"][1:4] == ["-m", "divwrite.ops.prefork", "serve"]


def test_a_module_runs_as_with_dash_m(warm, tmp_path):
    (tmp_path / "probe_mod.py").write_text(PROBE)
    out = run(warm, ["-m", "probe_mod", "--flag"], tmp_path, input="")
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["argv"] == [str(tmp_path / "probe_mod.py"), "--flag"] and seen["path0"] == str(tmp_path)
    assert seen["preloaded"]


def test_failures_exit_as_python_does(warm, tmp_path):
    (tmp_path / "boom.py").write_text("raise ValueError('bad input')\n")
    (tmp_path / "message.py").write_text("import sys\nsys.exit('a message')\n")
    boom = run(warm, ["boom.py"], tmp_path)
    assert boom.returncode == 1
    assert "Traceback" in boom.stderr and boom.stderr.rstrip().endswith("ValueError: bad input")
    message = run(warm, ["message.py"], tmp_path)
    assert message.returncode == 1 and message.stderr == "a message\n"


def test_what_it_cannot_run_goes_to_the_real_interpreter(warm, tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    # Options other than -m: the real interpreter.
    out = run(warm, ["-c", "import sys; print(sys.executable)"], tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == sys.executable
    # A variable libraries read when imported differs from the server's: a fresh interpreter.
    fresh = run({**warm, "HF_HOME": str(tmp_path / "hf")}, ["probe.py"], tmp_path, input="")
    assert fresh.returncode == 0 and not json.loads(fresh.stdout)["preloaded"]
    # Turned off by the environment.
    off = run({**warm, "DIVWRITE_PREFORK": "0"}, ["probe.py"], tmp_path, input="")
    assert off.returncode == 0 and not json.loads(off.stdout)["preloaded"]


def test_the_shim_runs_python_itself_once_the_server_is_gone(tmp_path):
    with warm_interpreter(dict(os.environ), preload=()) as env:
        pass
    (tmp_path / "probe.py").write_text(PROBE)
    out = run(env, ["probe.py"], tmp_path, input="")
    assert out.returncode == 0 and json.loads(out.stdout)["argv"] == ["probe.py"]


def test_terminating_the_shim_terminates_its_stage(warm, tmp_path):
    pid_file = tmp_path / "pid"
    (tmp_path / "sleeper.py").write_text(
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
    )
    shim = subprocess.Popen(["python", "sleeper.py"], env=warm, cwd=tmp_path)
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    stage = int(pid_file.read_text())
    assert stage != shim.pid
    shim.send_signal(signal.SIGTERM)
    assert shim.wait(timeout=30) == 128 + signal.SIGTERM
    while Path(f"/proc/{stage}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{stage}").exists()


def test_off_it_adds_only_the_wait_policy():
    env = {"PATH": "/usr/bin", "DIVWRITE_PREFORK": "0"}
    with warm_interpreter(env) as got:
        assert set(got) - set(env) <= {"OMP_WAIT_POLICY"} and got["PATH"] == "/usr/bin"
    mine = env | {"OMP_WAIT_POLICY": "ACTIVE"}  # the user's own policy is kept
    with warm_interpreter(mine) as got:
        assert got == mine


def test_import_time_variables_are_the_ones_compared():
    base = {"PATH": "/a", "HF_HOME": "/h", "DVC_ROOT": "/r"}
    assert import_time_differences(base, {**base, "PATH": "/b", "DVC_ROOT": "/s"}) == []
    assert import_time_differences(base, {**base, "HF_HOME": "/x", "OMP_NUM_THREADS": "1"}) == [
        "HF_HOME",
        "OMP_NUM_THREADS",
    ]
