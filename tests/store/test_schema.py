"""Opening stores made by other versions of trellis."""

from __future__ import annotations

import pytest

from tests.conftest import Project, git
from trellis.queries.dataframe import dataframe
from trellis.store.connection import open_store
from trellis.store.schema import SCHEMA_VERSION
from trellis.store.spans import expand

SCRIPT = """
import trellis
for epoch in trellis.loop("epoch", range(3)):
    trellis.log("loss", 1.0 / (epoch + 1))
    trellis.log("note", f"epoch {epoch}")
"""


def _raw(project):
    """The store's own connection, to put it back into what another version wrote."""
    return open_store(root=project.root)


def _has_index(store, name: str) -> bool:
    catalog = ("SELECT 1 FROM sqlite_master WHERE name = ?" if store.dialect.name == "sqlite"
               else "SELECT 1 FROM pg_indexes WHERE indexname = ?")
    return bool(store.execute(catalog, (name,)))


def _as_version_5(store) -> None:
    """Without the order of params and the overrides of a replay (version 6)."""
    store.execute("ALTER TABLE params DROP COLUMN position")
    store.execute("ALTER TABLE replays DROP COLUMN overrides")
    store.execute("ALTER TABLE runs DROP COLUMN output_times")
    store.execute("UPDATE schema_version SET version = 5")


def _as_version_4(store) -> None:
    """Without the mark of a write found after the fact (version 5)."""
    _as_version_5(store)
    store.execute("ALTER TABLE files DROP COLUMN seen_after")
    store.execute("UPDATE schema_version SET version = 4")


def _as_version_3(store) -> None:
    """Without the columns of version 4 (how a replayed value was verified, where a run came from)."""
    _as_version_4(store)
    store.execute("ALTER TABLE logs DROP COLUMN verified")
    store.execute("ALTER TABLE runs DROP COLUMN received_from")
    store.execute("UPDATE schema_version SET version = 3")


def _as_version_2(store) -> None:
    """Iterations one row each, as version 2 wrote them."""
    _as_version_3(store)
    rows = store.execute("SELECT id, run, parent, loop, depth, idx, started, ended, value, count,"
                         " starts_us FROM iterations")
    store.execute("DELETE FROM iterations")
    store.execute("ALTER TABLE iterations DROP COLUMN starts_us")
    store.execute("ALTER TABLE iterations DROP COLUMN count")
    store.executemany(
        "INSERT INTO iterations (id, run, parent, loop, depth, idx, started, ended, value)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(ident, run, parent, loop, depth, idx, started, ended, value)
         for ident, run, parent, loop, depth, first, first_start, last_end, value, count, starts in rows
         for ident, idx, started, ended in expand(ident, first, first_start, last_end, count, starts)],
    )
    store.execute("UPDATE schema_version SET version = 2")


def test_a_version_1_store_is_migrated_and_reads_the_same(project):
    project.write("train.py", SCRIPT)
    project.run("train.py")
    store = _raw(project)  # back to what version 1 wrote
    with store.transaction():
        _as_version_2(store)
        store.execute("DROP TABLE log_names")
        store.execute("CREATE INDEX logs_by_name ON logs (name, run)")
        store.execute("UPDATE schema_version SET version = 1")
    store.close()
    project.run("train.py")

    store = _raw(project)
    assert store.execute("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert not _has_index(store, "logs_by_name")
    noted = store.execute("SELECT run, name FROM log_names ORDER BY run, name")
    store.close()
    assert noted == [(1, "loss"), (1, "note"), (2, "loss"), (2, "note")]
    frame = dataframe(project.store(), ["loss", "note"])
    assert len(frame) == 6
    assert frame.groupby("run_id")["note"].apply(tuple).tolist() == [
        ("epoch 0", "epoch 1", "epoch 2")] * 2
    assert frame["loss"].tolist() == [1.0, 0.5, 1 / 3] * 2


def test_a_version_2_store_keeps_its_iteration_rows_and_reads_with_new_spans(project):
    project.write("steps.py", """
import trellis
for epoch in trellis.loop("epoch", range(2)):
    for step in trellis.loop("step", range(50)):
        trellis.log("loss", epoch * 100 + step)
""")
    project.run("steps.py")
    store = _raw(project)
    with store.transaction():
        _as_version_2(store)
    assert store.execute("SELECT COUNT(*) FROM iterations") == [(102,)]
    store.close()
    project.run("steps.py")

    store = _raw(project)
    assert store.execute("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    stored = store.execute("SELECT run, COUNT(*), SUM(count) FROM iterations GROUP BY run ORDER BY run")
    store.close()
    assert stored == [(1, 102, 102), (2, 4, 102)]
    frame = dataframe(project.store(), ["loss"])
    assert frame["step"].tolist() == list(range(50)) * 4
    assert frame["epoch"].tolist() == ([0] * 50 + [1] * 50) * 2
    assert frame["loss"].tolist() == [e * 100 + s for e in range(2) for s in range(50)] * 2


def test_a_version_3_store_gains_the_verification_of_replayed_values(project):
    project.write("train.py", SCRIPT)
    project.run("train.py")
    store = _raw(project)
    with store.transaction():
        _as_version_3(store)
    store.close()
    store = _raw(project)
    assert store.execute("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert store.execute("SELECT COUNT(*), COUNT(verified) FROM logs") == [(6, 0)]
    store.close()
    assert dataframe(project.store(), ["loss"], verified=True)["loss_verified"].tolist() == ["logged"] * 3


def test_a_version_4_store_gains_the_mark_of_writes_found_after_the_fact(project):
    project.write("save.py", "import trellis\nopen('out.txt', 'w').write('x')\n")
    project.run("save.py")
    store = _raw(project)
    with store.transaction():
        _as_version_4(store)
    store.close()
    project.run("save.py")
    store = _raw(project)
    assert store.execute("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert store.execute("SELECT path, seen_after FROM files ORDER BY at") == [("out.txt", None)] * 2
    store.close()


def test_a_version_5_store_gains_the_order_of_params(project):
    project.write("args.py", "import trellis\ntrellis.arg('zeta', 1)\ntrellis.arg('alpha', 2)\n")
    project.run("args.py")
    store = _raw(project)
    with store.transaction():
        _as_version_5(store)
    store.close()
    project.run("args.py")
    store = _raw(project)
    assert store.execute("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert store.execute("SELECT run, name, position FROM params ORDER BY run, position, name") == [
        (1, "alpha", None), (1, "zeta", None), (2, "zeta", 0), (2, "alpha", 1)]
    assert store.execute("SELECT COUNT(*) FROM replays WHERE overrides IS NOT NULL") == [(0,)]
    store.close()


def test_a_store_from_a_newer_trellis_is_refused_unchanged(project):
    project.write("train.py", SCRIPT)
    project.run("train.py")
    store = _raw(project)
    store.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    store.close()
    done = project.run("train.py", check=False)
    assert done.returncode == 0  # the user's script still runs
    assert "newer than this trellis" in done.stderr
    with pytest.raises(Exception, match="newer than this trellis"):
        open_store(root=project.root)
    store = project.store()
    assert store.execute("SELECT COUNT(*) FROM runs") == [(1,)]
    assert store.execute("SELECT version FROM schema_version") == [(SCHEMA_VERSION + 1,)]
    store.close()


def test_a_version_3_store_gains_received_from_and_its_own_runs_stay_unmarked(project, tmp_path):
    colleague = Project(tmp_path / "colleague")
    colleague.root.mkdir()
    git(colleague.root, "init", "-q")
    colleague.write("train.py", SCRIPT)
    colleague.run("train.py")
    exported = tmp_path / "runs.json"
    colleague.cli("export", "--all", "-o", str(exported))
    project.write("train.py", SCRIPT)
    project.run("train.py")
    store = _raw(project)  # back to what version 3 wrote
    with store.transaction():
        _as_version_3(store)
    store.close()
    project.run("train.py")  # recorded by this trellis into the version 3 store, which it migrates

    store = _raw(project)
    assert store.execute("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert store.execute("SELECT received_from FROM runs") == [(None,), (None,)]
    store.close()
    project.cli("import", str(exported))
    store = _raw(project)
    marked = store.execute("SELECT received_from FROM runs ORDER BY started")
    store.close()
    assert marked == [(str(exported),), (None,), (None,)]
    assert len(dataframe(project.store(), ["loss"])) == 9
