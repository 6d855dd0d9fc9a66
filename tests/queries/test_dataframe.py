"""dataframe options: runs, latest, params, several names across levels."""

from __future__ import annotations

import pandas as pd
import pytest

import trellis
from trellis.store.spans import expand


@pytest.fixture
def two_scripts(project, monkeypatch):
    monkeypatch.chdir(project.root)
    project.write("train.py", """
        import trellis
        depth = trellis.arg("depth", 2)
        for epoch in trellis.loop("epoch", range(2)):
            trellis.log("loss", 1.0 / (epoch + depth))
    """)
    project.write("infer.py", """
        import trellis
        for doc in trellis.loop("document", ["a.pdf", "b.pdf"]):
            for page in trellis.loop("page", range(2)):
                trellis.log("segment", page == 0)
        trellis.log("loss", 9.0)
    """)
    project.run("train.py", "--depth", "3")
    project.run("train.py")
    project.run("infer.py")
    return project


def test_runs_and_latest_filter_in_sql(two_scripts):
    everything = trellis.dataframe("loss")
    assert len(everything) == 5 and everything["run_id"].nunique() == 3
    first = everything["run_id"].iloc[0]
    only = trellis.dataframe("loss", runs=first[:8])
    assert only["run_id"].unique().tolist() == [first]
    assert only["loss"].tolist() == [1 / 3, 1 / 4]
    newest = trellis.dataframe("loss", latest=True)
    assert sorted(newest["filename"].unique()) == ["infer.py", "train.py"]
    assert newest[newest["filename"] == "train.py"]["loss"].tolist() == [1 / 2, 1 / 3]
    with pytest.raises(trellis.UnknownRunError):
        trellis.dataframe("loss", runs="0000")


def test_loops_with_values_and_bool_columns(two_scripts):
    frame = trellis.dataframe("segment")
    assert frame["document"].tolist() == [0, 0, 1, 1]
    assert frame["document_value"].tolist() == ["a.pdf", "a.pdf", "b.pdf", "b.pdf"]
    assert frame["page"].tolist() == [0, 1, 0, 1]
    assert "page_value" not in frame
    assert pd.api.types.is_bool_dtype(frame["segment"])
    assert frame["segment"].tolist() == [True, False, True, False]


def test_no_names_gives_a_row_per_run_with_params(two_scripts):
    runs = trellis.dataframe()
    assert len(runs) == 3
    assert runs["filename"].tolist() == ["train.py", "train.py", "infer.py"]
    assert runs["status"].tolist() == ["ok"] * 3
    assert runs["depth"].tolist()[:2] == [3, 2] and pd.isna(runs["depth"].iloc[2])
    assert pd.api.types.is_integer_dtype(runs["depth"])
    assert (runs["duration"] > 0).all()


def test_query_is_read_only(two_scripts):
    assert trellis.query("SELECT COUNT(*) AS n FROM runs")["n"][0] == 3
    with pytest.raises(trellis.TrellisError, match="query failed"):
        trellis.query("DROP TABLE logs")
    assert trellis.query("SELECT COUNT(*) AS n FROM logs")["n"][0] == 9


def test_reading_while_the_same_process_writes_breaks_nothing(project):
    # A notebook reading values back while its run flushes on trellis's thread: on SQLite, the
    # reading driver's own copy of SQLite once reset the store's shared memory under the writer
    # (SIGBUS, or "locking protocol" and lost values). The writer stops at 100 commits: unbounded,
    # it outgrows the reads it races (each read is longer than the last), most of all on a
    # server, where nothing makes the two take turns.
    project.write("both.py", """
        import threading, trellis
        done = threading.Event()
        def write():
            value = 0
            for _ in range(100):
                if done.is_set():
                    break
                for _ in range(200):
                    trellis.log("x", float(value))
                    value += 1
                trellis.commit()
        trellis.log("x", -1.0)
        trellis.commit()
        writer = threading.Thread(target=write)
        writer.start()
        for _ in range(30):
            rows = len(trellis.dataframe("x"))
        done.set()
        writer.join()
        trellis.commit()
        print("read", rows, "stored", len(trellis.dataframe("x")))
    """)
    done = project.run("both.py", check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trellis could not" not in done.stderr
    read, stored = (int(word) for word in done.stdout.split()[1::2])
    assert 1 < read <= stored


def test_values_inside_a_loop_that_began_in_a_shared_row_find_their_coordinates(project, monkeypatch):
    # Epochs 0-2 run no inner loop, so their keys follow each other and share one row; epoch 2
    # then opens one, whose parent is the last key of that row, not its first.
    monkeypatch.chdir(project.root)
    project.write("late.py", """
        import trellis
        for epoch in trellis.loop("epoch", range(5)):
            if epoch == 2:
                for step in trellis.loop("step", range(3)):
                    trellis.log("x", 10 * epoch + step)
            trellis.log("e", epoch)
        trellis.log("top", 1)
    """)
    project.run("late.py")
    rows = trellis.query("SELECT loop, idx, count FROM iterations ORDER BY id")
    assert rows.values.tolist() == [["epoch", 0, 3], ["step", 0, 3], ["epoch", 3, 2]]
    frame = trellis.dataframe("x")
    assert frame["epoch"].tolist() == [2, 2, 2] and frame["step"].tolist() == [0, 1, 2]
    assert frame["x"].tolist() == [20, 21, 22]
    epochs = trellis.dataframe("e")
    assert epochs["epoch"].tolist() == epochs["e"].tolist() == [0, 1, 2, 3, 4]
    assert trellis.dataframe("top")["top"].tolist() == [1]


def test_a_loop_flushed_while_it_runs_keeps_every_iteration_and_its_times(project, monkeypatch):
    monkeypatch.chdir(project.root)
    project.write("slow.py", """
        import time, trellis
        for epoch in trellis.loop("epoch", range(2)):
            for step in trellis.loop("step", range(40)):
                time.sleep(0.01)
                trellis.log("loss", epoch * 100 + step)
    """)
    project.run("slow.py", TRELLIS_FLUSH_SECONDS="0.1")
    stored = trellis.query(
        "SELECT id, idx, started, ended, count, starts_us FROM iterations WHERE loop = 'step' ORDER BY id")
    assert len(stored) > 2  # the flushes cut each epoch's steps into several rows
    assert stored["count"].sum() == 80
    times = [t for row in stored.itertuples(index=False) for t in expand(*row)]
    assert [idx for _, idx, _, _ in times] == list(range(40)) * 2
    for (_, idx, started, ended), (_, next_idx, next_started, _) in zip(times, times[1:]):
        assert ended >= started + 0.009
        if next_idx:  # within an epoch, an iteration ends where the next one starts
            assert ended == pytest.approx(next_started, abs=1e-6)
    frame = trellis.dataframe("loss")
    assert frame["step"].tolist() == list(range(40)) * 2
    assert frame["loss"].tolist() == [e * 100 + s for e in range(2) for s in range(40)]


def test_batches_that_look_alike_share_a_row_and_keep_their_value(project, monkeypatch):
    monkeypatch.chdir(project.root)
    project.write("batches.py", """
        import numpy as np, trellis
        data = np.arange(22.0).reshape(11, 2)
        batches = [data[i:i + 4] for i in range(0, 11, 4)]  # 4, 4 and 3 rows, like a DataLoader's
        for epoch in trellis.loop("epoch", range(2)):
            for batch in trellis.loop("batch", batches):
                trellis.log("total", float(batch.sum()))
        for name in trellis.loop("file", ["a.csv", "a.csv", "b.csv"]):
            trellis.log("seen", name)
    """)
    project.run("batches.py")
    rows = trellis.query("SELECT loop, idx, count, value FROM iterations WHERE loop <> 'epoch' ORDER BY id")
    assert rows.values.tolist() == [
        ["batch", 0, 2, '"<ndarray (4, 2)>"'], ["batch", 2, 1, '"<ndarray (3, 2)>"'],
        ["batch", 0, 2, '"<ndarray (4, 2)>"'], ["batch", 2, 1, '"<ndarray (3, 2)>"'],
        ["file", 0, 2, '"a.csv"'], ["file", 2, 1, '"b.csv"']]
    frame = trellis.dataframe("total")
    assert frame["batch"].tolist() == [0, 1, 2] * 2
    assert frame["batch_value"].tolist() == ["<ndarray (4, 2)>", "<ndarray (4, 2)>", "<ndarray (3, 2)>"] * 2
    assert frame["total"].tolist() == [28.0, 92.0, 111.0] * 2
    files = trellis.dataframe("seen")
    assert files["file_value"].tolist() == files["seen"].tolist() == ["a.csv", "a.csv", "b.csv"]
    assert files["file"].tolist() == [0, 1, 2]
