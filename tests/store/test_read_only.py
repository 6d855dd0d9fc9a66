"""Reading a store one may not write: a folder without write permission, and `trellis query`,
which only reads whatever SQL it is given."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import postgres

# Root ignores file permissions: a reader started by root gives up the capabilities that let it
# (as a colleague reading a shared folder has none of them). Anyone else is bound by them anyway.
AS_READER = (["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]
             if os.geteuid() == 0 else [])

TRAIN = """
    import trellis
    for epoch in trellis.loop("epoch", range(3)):
        trellis.log("loss", 1.0 / (epoch + 1))
    print("trained")
"""


def reader(project, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([*AS_READER, *argv], cwd=project.root, capture_output=True, text=True,
                          env=project.env(), timeout=240)


def reader_cli(project, *args: str) -> subprocess.CompletedProcess:
    done = reader(project, sys.executable, "-m", "trellis.cli", *args)
    assert done.returncode == 0, f"trellis {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done


def files_of(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def set_writable(folder: Path, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o200 if writable else mode & ~0o222)


@pytest.fixture
def read_only_store(project):
    folder = project.root / ".trellis"
    yield folder
    if folder.exists():
        set_writable(folder, True)


def assert_reads(project, folder: Path) -> None:
    """Every reading command works, and the folder is as it was."""
    before = files_of(folder)
    (run,) = json.loads(reader_cli(project, "runs", "--json").stdout)
    assert run["filename"] == "train.py" and run["status"] == "ok"
    shown = json.loads(reader_cli(project, "show", run["run_id"][:8], "--json").stdout)
    assert shown["stdout"] == "trained\n"
    frame = json.loads(reader_cli(project, "dataframe", "loss", "--json").stdout)
    assert [row["loss"] for row in frame] == [1.0, 0.5, pytest.approx(1 / 3)]
    counted = reader_cli(project, "query", "SELECT COUNT(*) AS n FROM logs", "--json").stdout
    assert json.loads(counted) == [{"n": 3}]
    assert files_of(folder) == before


@pytest.mark.sqlite_only("a folder without write permission is a SQLite store's case")
def test_a_store_whose_folder_may_not_be_written_is_read(project, read_only_store):
    project.write("train.py", TRAIN)
    project.run("train.py")
    folder = read_only_store
    # the writer closed the store: no write-ahead log, no shared-memory index to read through
    assert not any(p.name.endswith(("-wal", "-shm")) for p in folder.iterdir())
    set_writable(folder, False)
    probe = reader(project, "touch", str(folder / "probe"))
    assert probe.returncode != 0 and not (folder / "probe").exists()  # the reader cannot write
    assert_reads(project, folder)


def kill_a_writer_after_a_write(project) -> None:
    """A process that writes to the store and is killed before it folds its log into the file:
    the write is only in ``trellis.db-wal``."""
    project.write("holder.py", """
        import sqlite3, time
        connection = sqlite3.connect(".trellis/trellis.db", isolation_level=None)
        connection.execute("PRAGMA wal_autocheckpoint=0")
        connection.execute("UPDATE runs SET status = 'held'")
        print("written", flush=True)
        time.sleep(120)
    """)
    holder = subprocess.Popen([sys.executable, "holder.py"], cwd=project.root, text=True,
                              stdout=subprocess.PIPE, env=project.env())
    try:
        assert holder.stdout.readline().strip() == "written"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)


@pytest.mark.sqlite_only("a folder without write permission is a SQLite store's case")
def test_a_store_left_by_a_killed_writer_in_a_read_only_folder_is_read(project, read_only_store):
    """A writer killed mid-run leaves its write-ahead log and index behind: a reader who may not
    write reads through them and sees the rows that are only in the log."""
    project.write("train.py", TRAIN)
    project.run("train.py")
    kill_a_writer_after_a_write(project)
    folder = read_only_store
    assert (folder / "trellis.db-wal").stat().st_size > 0
    set_writable(folder, False)
    before = files_of(folder)
    (run,) = json.loads(reader_cli(project, "runs", "--json").stdout)
    assert run["status"] == "held"  # only in the log
    assert files_of(folder) == before


@pytest.mark.sqlite_only("a folder without write permission is a SQLite store's case")
def test_a_log_that_cannot_be_read_without_writing_gets_one_line(project, read_only_store):
    """A write-ahead log with content but no index, in a folder the reader may not write: reading
    the database file alone would miss those rows, so the reader is told what to do."""
    project.write("train.py", TRAIN)
    project.run("train.py")
    kill_a_writer_after_a_write(project)
    folder = read_only_store
    (folder / "trellis.db-shm").unlink()
    set_writable(folder, False)
    done = reader(project, sys.executable, "-m", "trellis.cli", "runs")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "trellis.db-wal holds writes not yet in the database" in done.stderr


# -- trellis query only reads -----------------------------------------------------------------

CHANGES = {
    "INSERT INTO params (run, name, kind, origin) VALUES (1, 'x', 0, 'arg')": "INSERT",
    "UPDATE runs SET status = 'forged'": "UPDATE",
    "DELETE FROM logs": "DELETE",
    "DROP TABLE logs": "DROP",
}
SQLITE_ONLY_CHANGES = {
    "ATTACH DATABASE 'file:attached.db?mode=rwc' AS other": "ATTACH",
    "VACUUM INTO 'copy.db'": "ATTACH",
    "PRAGMA journal_mode=DELETE": "PRAGMA journal_mode=DELETE",
    "PRAGMA query_only=0": "PRAGMA query_only=0",
    "SELECT load_extension('no_such_extension')": "load_extension",
    "CREATE TEMP TABLE scratch (x)": "CREATE TEMP TABLE",
}
POSTGRES_ONLY_CHANGES = {
    # one command per query: the first cannot end the read-only transaction for the second
    "BEGIN READ WRITE; UPDATE runs SET status = 'forged'; COMMIT": "multiple commands",
    "COMMIT; UPDATE runs SET status = 'forged'": "multiple commands",
    "DO $$BEGIN UPDATE runs SET status = 'forged'; END$$": "read-only transaction",
    "CREATE TABLE scratch (x int)": "read-only transaction",
}


def store_state(project) -> list:
    """Every row of every table, and the files beside the store (SQLite)."""
    store = project.store()
    try:
        if store.dialect.name == "sqlite":
            tables = [t for (t,) in store.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            settings = store.execute("PRAGMA journal_mode")
        else:
            tables = [t for (t,) in store.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
            settings = []
        return [sorted(tables), settings, *(sorted(map(repr, store.execute(f"SELECT * FROM {t}")))
                                           for t in sorted(tables))]
    finally:
        store.close()


def test_a_query_that_would_change_the_store_is_refused(project, monkeypatch):
    project.write("train.py", TRAIN)
    project.run("train.py")
    on_postgres = postgres.current is not None
    changes = {**CHANGES, **(POSTGRES_ONLY_CHANGES if on_postgres else SQLITE_ONLY_CHANGES)}
    before = store_state(project)
    files = sorted(p.name for p in project.root.iterdir())
    for sql, named in changes.items():
        done = project.cli("query", sql, check=False)
        assert done.returncode == 1, (sql, done.stdout)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, (sql, done.stderr)
        assert named in done.stderr, (sql, done.stderr)
        assert store_state(project) == before, sql
    assert sorted(p.name for p in project.root.iterdir()) == files  # no file attached or copied
    # from Python too, with the same one line
    import trellis
    from trellis._errors import TrellisError

    monkeypatch.chdir(project.root)
    with pytest.raises(TrellisError, match="DELETE|read-only"):
        trellis.query("DELETE FROM logs")
    assert store_state(project) == before
    # reading still works, pragmas that report included
    assert trellis.query("SELECT COUNT(*) AS n FROM logs")["n"].tolist() == [3]
    if not on_postgres:
        columns = trellis.query("SELECT name FROM pragma_table_info('logs')")["name"].tolist()
        assert "float_value" in columns
        assert trellis.query("PRAGMA table_info(runs)")["name"].tolist()[:2] == ["id", "uuid"]
