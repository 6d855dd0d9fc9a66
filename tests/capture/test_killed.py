"""A process killed without a word (SIGKILL): its run and its unfinished cell are marked
interrupted once a later run sees the process gone, a zombie or a reused pid included, and what
the cell printed before the kill is kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import trellis
from trellis.capture.run import KILLED


@pytest.fixture
def in_project(project, monkeypatch):
    monkeypatch.chdir(project.root)
    return project


def wait_for(condition, seconds: float = 60, every: float = 0.2):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            found = condition()
        except trellis.StoreError:
            found = None
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"not within {seconds} s: {condition.__doc__ or condition}")


def runs():
    return trellis.query("SELECT id, pid, status, error FROM runs ORDER BY id")


def steps():
    return trellis.query("SELECT run, status, error, stdout FROM steps ORDER BY id")


@pytest.mark.kernel
def test_a_kernel_killed_mid_cell_keeps_what_the_cell_printed(in_project):
    from jupyter_client.manager import start_new_kernel

    notebook = str(in_project.root / "train.ipynb")
    env = in_project.env(TRELLIS_NOTEBOOK=notebook, TRELLIS_FLUSH_SECONDS="0.3")
    manager, client = start_new_kernel(kernel_name="python3", extra_arguments=["--ext=trellis"],
                                       cwd=str(in_project.root), env=env)
    try:
        assert client.execute_interactive("import time", timeout=60)["content"]["status"] == "ok"
        client.execute("print('epoch 1: loss 0.5', flush=True)\ntime.sleep(0.5)\n"
                       "print('epoch 2: loss 0.25', flush=True)\ntime.sleep(120)")

        def printed() -> bool:
            """the running cell's output is in the store"""
            table = steps()
            return len(table) == 2 and table["stdout"][1] == "epoch 1: loss 0.5\nepoch 2: loss 0.25\n"

        wait_for(printed)
        kernel_pid = manager.provisioner.pid
        assert runs()["pid"].tolist() == [kernel_pid]
    finally:
        os.kill(manager.provisioner.pid, signal.SIGKILL)  # no atexit, no last flush
        manager.shutdown_kernel(now=True)
        client.stop_channels()
    assert steps()["status"].tolist() == ["ok", "running"]
    # the next kernel of the notebook sees the first one gone
    manager, client = start_new_kernel(kernel_name="python3", extra_arguments=["--ext=trellis"],
                                       cwd=str(in_project.root), env=env)
    try:
        def marked() -> bool:
            """the killed epoch is marked"""
            return runs()["status"].tolist()[0] == "interrupted"

        wait_for(marked)
    finally:
        manager.shutdown_kernel()
        client.stop_channels()
    table = steps()
    assert table["status"].tolist() == ["ok", "interrupted"]
    assert table["stdout"][1] == "epoch 1: loss 0.5\nepoch 2: loss 0.25\n"
    assert table["error"][1] == KILLED
    epochs = runs()
    assert epochs["status"].tolist() == ["interrupted", "ok"] and epochs["error"][0] == KILLED


SLEEPER = """
    import time, trellis
    trellis.log("started", 1)
    trellis.commit()
    print("committed", flush=True)
    time.sleep(300)
"""


def start_sleeper(project) -> subprocess.Popen:
    project.write("sleeper.py", SLEEPER)
    process = subprocess.Popen([sys.executable, "sleeper.py"], cwd=project.root, text=True,
                               stdout=subprocess.PIPE, env=project.env())
    assert process.stdout.readline().strip() == "committed"
    return process


def test_a_killed_process_not_yet_collected_is_gone(in_project):
    """A zombie still answers signal 0: it is gone all the same."""
    process = start_sleeper(in_project)
    try:
        process.send_signal(signal.SIGKILL)
        wait_for(lambda: _state(process.pid) == "Z", 30, 0.05)
        in_project.write("next.py", "import trellis\n")
        in_project.run("next.py")
        assert _state(process.pid) == "Z"  # still in the process table when next.py looked
    finally:
        process.kill()
        process.wait(30)
    table = runs()
    assert table["status"].tolist() == ["interrupted", "ok"] and table["error"][0] == KILLED


def test_a_pid_given_to_a_later_process_does_not_keep_a_killed_run_running(in_project):
    process = start_sleeper(in_project)
    pid = process.pid
    time.sleep(1)  # the process that gets the pid next starts well after the run did
    process.kill()
    process.wait(30)
    impostor = _start_with_pid(pid, ["sleep", "120"])
    if impostor is None:
        pytest.skip("cannot choose the next pid here (/proc/sys/kernel/ns_last_pid)")
    try:
        assert impostor.pid == pid
        in_project.write("next.py", "import trellis\n")
        in_project.run("next.py")
        assert impostor.poll() is None  # the pid was in use by a live process when next.py looked
    finally:
        impostor.kill()
        impostor.wait(30)
    table = runs()
    assert table["status"].tolist() == ["interrupted", "ok"] and table["error"][0] == KILLED


def test_a_live_run_is_left_running(in_project):
    process = start_sleeper(in_project)
    try:
        in_project.write("next.py", "import trellis\n")
        in_project.run("next.py")
        assert runs()["status"].tolist() == ["running", "ok"]
    finally:
        process.kill()
        process.wait(30)


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()[0]


def _start_with_pid(pid: int, argv: list[str]) -> subprocess.Popen | None:
    """Start ``argv`` as process ``pid``, by setting the pid the system gives next (root, Linux);
    another process may take it first, so try a few times."""
    last = Path("/proc/sys/kernel/ns_last_pid")
    for _ in range(50):
        try:
            last.write_text(str(pid - 1))
        except OSError:
            return None
        started = subprocess.Popen(argv)
        if started.pid == pid:
            return started
        started.kill()
        started.wait()
    return None
