"""The store under load and failing: many writers, kill -9 at random moments, a full disk, a
read-only store, a store locked for a long time. The user's script always finishes, one
warning says what happened, and no value is lost: it is written late, or to a recovery store
that ``trellis import`` (or ``trellis push``) loads later.

Every test runs on the store of the run (``--store``); the disk-full and read-only cases of a
SQLite store mount a small tmpfs, which needs root.
"""

from __future__ import annotations

import bisect
import json
import os
import random
import subprocess
import sys
import time

import pytest

import trellis
from tests.conftest import log_from_processes


@pytest.fixture
def in_project(project, monkeypatch):
    monkeypatch.chdir(project.root)
    return project


def _values(name: str) -> list:
    return trellis.query("SELECT int_value FROM logs WHERE name = ? ORDER BY id", (name,))["int_value"].tolist()


def _statuses() -> list[str]:
    return trellis.query("SELECT status FROM runs ORDER BY started")["status"].tolist()


def test_sixteen_processes_log_100k_values_each_into_one_store(in_project):
    log_from_processes(in_project, 16, 100_000, timeout=600)
    counts = trellis.query("SELECT run, COUNT(*) AS n FROM logs GROUP BY run")
    assert sorted(counts["n"]) == [100_000] * 16
    assert sorted(_values("value")) == [w * 1_000_000 + i for w in range(16) for i in range(100_000)]
    iterations = trellis.query("SELECT COUNT(*) AS stored, SUM(count) AS n FROM iterations").iloc[0]
    assert iterations["n"] == 1_600_000
    assert iterations["stored"] <= 16 * 20  # a row per flush of each loop, not one per iteration
    assert _statuses() == ["ok"] * 16


KILLED = """
import trellis
for i in trellis.loop("i", range(10**9)):
    trellis.log("i", i)
    if i % 2000 == 1999:
        trellis.commit()
        print(i, flush=True)
"""


def test_kill_9_at_random_moments_loses_nothing_flushed(in_project):
    in_project.write("killed.py", KILLED)
    chance = random.Random(8)
    committed: dict[int, int] = {}
    for trial in range(20):
        process = subprocess.Popen(
            [sys.executable, "killed.py"], cwd=in_project.root, stdout=subprocess.PIPE, text=True,
            env=in_project.env(TRELLIS_FLUSH_SECONDS="0.1"),
        )
        # half at any moment from the start (some before the run is registered), half while it
        # logs and commits
        first = "" if trial % 2 else process.stdout.readline()
        time.sleep(chance.uniform(0.05, 1.0) if trial % 2 else chance.uniform(0.0, 0.5))
        process.kill()
        output, _ = process.communicate(timeout=60)
        lines = (first + output).split()
        committed[process.pid] = int(lines[-1]) + 1 if lines else 0

    runs = trellis.query("SELECT id, pid, status FROM runs")
    # each start marks the runs killed before it; the last one is still "running"
    assert set(runs["status"]) <= {"running", "interrupted"} and len(runs) <= 20
    assert sum(n > 0 for n in committed.values()) >= 10  # most kills came after a commit
    for run, pid, _ in runs.itertuples(index=False):
        values = trellis.query("SELECT int_value FROM logs WHERE run = ? ORDER BY id", (run,))["int_value"]
        # whole transactions only: the values are a prefix of what the script logged, at least
        # up to its last commit, and each belongs to an iteration that was written with it
        assert values.tolist() == list(range(len(values))) and len(values) >= committed[pid]
    spans = trellis.query("SELECT id, count FROM iterations ORDER BY id")
    firsts, counts = spans["id"].tolist(), spans["count"].tolist()
    for key in trellis.query("SELECT iteration FROM logs")["iteration"].tolist():
        at = bisect.bisect_right(firsts, key) - 1
        assert at >= 0 and key < firsts[at] + counts[at], "a value whose iteration was not written"
    assert all(committed[pid] == 0 for pid in set(committed) - set(runs["pid"]))

    in_project.write("next.py", "import trellis\n")
    in_project.run("next.py")
    assert _statuses().count("interrupted") == len(runs) and _statuses().count("ok") == 1


# -- a store that fails part way -------------------------------------------------------------

WAITS = """
import os, time, trellis
for i in trellis.loop("i", range(20)):
    trellis.log("v", i)
    if i == 9:
        trellis.commit()  # the store is locked: this waits TRELLIS_LOCK_TIMEOUT, then goes on
        print("committed", flush=True)
        while not os.path.exists("go"):
            time.sleep(0.05)
print("finished")
"""


class Lock:
    """Another process's long write transaction on the store: an exclusive lock."""

    def __init__(self, project) -> None:
        url = _shared(project)
        if url:
            import psycopg

            self.connection = psycopg.connect(url.replace("+psycopg", ""))
            self.connection.execute("LOCK TABLE logs, runs IN ACCESS EXCLUSIVE MODE")
        else:
            import sqlite3

            self.connection = sqlite3.connect(project.root / ".trellis" / "trellis.db", isolation_level=None)
            self.connection.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        self.connection.rollback()
        self.connection.close()


def _shared(project) -> str | None:
    """The PostgreSQL store the project is configured with under --store=postgresql."""
    settings = project.root / ".trellis" / "config.json"
    return json.loads(settings.read_text())["store"] if settings.exists() else None


def _start_waiting(project) -> subprocess.Popen:
    project.write("waits.py", WAITS)
    process = subprocess.Popen(
        [sys.executable, "waits.py"], cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=project.env(TRELLIS_LOCK_TIMEOUT="1", TRELLIS_FLUSH_SECONDS="0.2"),
    )
    return process


def test_a_store_locked_for_a_while_gets_the_values_when_it_is_free(in_project):
    in_project.write("first.py", "import trellis\ntrellis.log('first', 1)\n")
    in_project.run("first.py")
    lock = Lock(in_project)
    try:
        process = _start_waiting(in_project)
        assert process.stdout.readline().strip() == "committed"  # went on after the timeout
        time.sleep(1.5)
    finally:
        lock.release()
    (in_project.root / "go").touch()
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0 and out.strip() == "finished"
    assert err.count("trellis could not record") == 1, err
    assert _values("v") == list(range(20))
    assert _statuses() == ["ok", "ok"]


def test_a_store_locked_past_the_end_leaves_a_recovery_store_to_import(in_project):
    in_project.write("first.py", "import trellis\ntrellis.log('first', 1)\n")
    in_project.run("first.py")
    lock = Lock(in_project)
    try:
        process = _start_waiting(in_project)
        assert process.stdout.readline().strip() == "committed"
        (in_project.root / "go").touch()
        out, err = process.communicate(timeout=120)
    finally:
        lock.release()
    assert process.returncode == 0 and out.strip() == "finished"
    assert err.count("trellis could not record") == 1, err
    saved = list((in_project.root / ".trellis" / "recovery").glob("*.db"))
    if _shared(in_project):  # a shared store's run goes to the project's own store
        assert not saved and "`trellis push` uploads it" in err
        assert "pushed 1 runs" in in_project.cli("push").stdout
    else:
        assert len(saved) == 1 and f"trellis import {saved[0]}" in err
        assert "imported 1 runs" in in_project.cli("import", str(saved[0])).stdout
    assert _values("v") == list(range(20))
    assert _statuses() == ["ok", "ok"]
    again = in_project.cli("import", str(saved[0])).stdout if saved else in_project.cli("push").stdout
    assert "imported 0 runs" in again or "pushed 0 runs" in again
    assert _values("v") == list(range(20))



# -- a full disk, a read-only store ------------------------------------------------------------

LOGS = """
import trellis
for i in trellis.loop("i", range(200_000)):
    trellis.log("v", i)
    if i % 50_000 == 0:
        trellis.commit()
print("finished")
"""


class Tmpfs:
    """A small filesystem of its own under the project's .trellis/ (mounting needs root)."""

    def __init__(self, folder, size: str) -> None:
        if os.geteuid() != 0:
            pytest.skip("mounting a small filesystem needs root")
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.folder)], check=True)

    def remove(self) -> None:
        subprocess.run(["umount", "-l", str(self.folder)], check=True)


@pytest.mark.sqlite_only("fills the disk under the SQLite file; a PostgreSQL server's disk is not the script's")
def test_a_full_disk_keeps_the_values_for_a_recovery_store(in_project, tmp_path):
    disk = Tmpfs(in_project.root / ".trellis", "1m")
    try:
        in_project.write("logs.py", LOGS)
        done = in_project.run("logs.py", XDG_STATE_HOME=str(tmp_path / "state"))
        assert done.stdout.strip() == "finished"
        assert done.stderr.count("trellis could not record") == 1, done.stderr
        (saved,) = (tmp_path / "state" / "trellis" / "recovery").glob("*.db")
        assert f"load it with `trellis import {saved}`" in done.stderr
        disk.remount("size=256m")
        assert "imported 1 runs" in in_project.cli("import", str(saved)).stdout
        assert _values("v") == list(range(200_000))
        assert _statuses() == ["ok"]
    finally:
        disk.remove()


@pytest.mark.sqlite_only("remounts the folder of the SQLite file read-only")
def test_a_store_made_read_only_keeps_the_values_for_a_recovery_store(in_project, tmp_path):
    disk = Tmpfs(in_project.root / ".trellis", "256m")
    try:
        in_project.write("first.py", "import trellis\ntrellis.log('first', 1)\n")
        in_project.run("first.py")
        disk.remount("ro")
        in_project.write("logs.py", LOGS)
        done = in_project.run("logs.py", XDG_STATE_HOME=str(tmp_path / "state"))
        assert done.stdout.strip() == "finished"
        assert done.stderr.count("trellis could not record") == 1, done.stderr
        (saved,) = (tmp_path / "state" / "trellis" / "recovery").glob("*.db")
        disk.remount("rw")
        assert "imported 1 runs" in in_project.cli("import", str(saved)).stdout
        assert _values("v") == list(range(200_000))
        assert _statuses() == ["ok", "ok"]
    finally:
        disk.remove()


def test_a_read_only_shared_store_leaves_the_run_to_push_later(in_project):
    in_project.write("first.py", "import trellis\ntrellis.log('first', 1)\n")
    in_project.run("first.py")
    shared = _shared(in_project)
    if shared is None:
        pytest.skip("a PostgreSQL store only: the SQLite case is the read-only mount above")
    import psycopg

    name = shared.rsplit("/", 1)[1]
    with psycopg.connect(shared.replace("+psycopg", "").rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        in_project.write("logs.py", LOGS)
        done = in_project.run("logs.py")
        admin.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = off")
    assert done.stdout.strip() == "finished"
    assert done.stderr.count("trellis could not record") == 1, done.stderr
    assert "`trellis push` uploads it" in done.stderr
    assert "pushed 1 runs" in in_project.cli("push").stdout
    assert _values("v") == list(range(200_000))
    assert _statuses() == ["ok", "ok"]
