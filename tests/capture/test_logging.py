"""log / loop / arg / commit in real scripts, read back through the dataframe."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import trellis
from trellis.store.spans import expand


@pytest.fixture
def in_project(project, monkeypatch):
    monkeypatch.chdir(project.root)
    return project


def test_values_keep_their_type(in_project):
    in_project.write("types.py", """
        import numpy as np
        import trellis
        trellis.log("i", 3)
        trellis.log("f", 2.5)
        trellis.log("s", "three")
        trellis.log("b", True)
        trellis.log("n", None)
        trellis.log("l", [1, 2.5, "x", None])
        trellis.log("d", {"a": 1, "b": [True]})
        trellis.log("npf", np.float32(0.5))
        trellis.log("npi", np.int64(7))
        trellis.log("zero_d", np.array(4.25))
        trellis.log("nan", float("nan"))
        trellis.log("huge", 2 ** 80)
        trellis.log("tuple", (1, 2))
    """)
    in_project.run("types.py")
    frame = trellis.dataframe("i", "f", "s", "b", "n", "l", "d", "npf", "npi", "zero_d", "nan", "huge", "tuple")
    assert len(frame) == 1
    row = frame.iloc[0]
    assert pd.api.types.is_integer_dtype(frame["i"]) and row["i"] == 3
    assert frame["f"].dtype == "float64" and row["f"] == 2.5
    assert row["s"] == "three" and isinstance(row["s"], str)
    assert pd.api.types.is_bool_dtype(frame["b"]) and bool(row["b"]) is True
    assert row["n"] is None
    assert row["l"] == [1, 2.5, "x", None]
    assert row["d"] == {"a": 1, "b": [True]}
    assert frame["npf"].dtype == "float64" and row["npf"] == 0.5
    assert pd.api.types.is_integer_dtype(frame["npi"]) and row["npi"] == 7
    assert row["zero_d"] == 4.25
    assert math.isnan(row["nan"])
    assert row["huge"] == 2 ** 80 and isinstance(row["huge"], int)
    assert row["tuple"] == [1, 2]


def test_unknown_objects_are_recorded_by_type_with_one_warning(in_project):
    in_project.write("objects.py", """
        import trellis
        class Model:
            def __repr__(self):
                return "Model(" + "x" * 5000 + ")"
        for i in range(3):
            trellis.log("model", Model())
        trellis.log("fn", len)
        print("still running")
    """)
    done = in_project.run("objects.py")
    assert "still running" in done.stdout
    assert done.stderr.count("trellis.log('model'") == 1
    assert done.stderr.count("trellis.log('fn'") == 1
    frame = trellis.dataframe("model")
    assert len(frame) == 3
    recorded = frame["model"].iloc[0]
    assert recorded["type"] == "Model"
    assert len(recorded["repr"]) < 300 and recorded["repr"].startswith("Model(")


def test_nested_loops_align_values_to_their_own_level(in_project):
    in_project.write("nested.py", """
        import trellis
        for epoch in trellis.loop("epoch", range(3)):
            for step in trellis.loop("step", range(4)):
                trellis.log("loss", epoch * 10 + step + 0.5)
            trellis.log("acc", epoch / 10)
        for lr in trellis.loop("lr", [0.1, 0.01]):
            trellis.log("score", lr * 2)
        trellis.log("done", True)
    """)
    in_project.run("nested.py")
    frame = trellis.dataframe("loss", "acc")
    assert len(frame) == 3 * 4 + 3
    steps = frame.dropna(subset=["loss"])
    assert steps["epoch"].tolist() == [e for e in range(3) for _ in range(4)]
    assert steps["step"].tolist() == list(range(4)) * 3
    assert steps["loss"].tolist() == [e * 10 + s + 0.5 for e in range(3) for s in range(4)]
    assert steps["acc"].isna().all()
    epochs = frame.dropna(subset=["acc"])
    assert epochs["epoch"].tolist() == [0, 1, 2]
    assert epochs["step"].isna().all()
    assert epochs["acc"].tolist() == [0.0, 0.1, 0.2]
    assert list(frame.columns[:6]) == ["projid", "run_id", "tstamp", "filename", "epoch", "step"]
    assert (frame["filename"] == "nested.py").all()
    assert (frame["projid"] == in_project.root.name).all()

    scores = trellis.dataframe("score")
    assert scores["lr"].tolist() == [0, 1]
    assert scores["lr_value"].tolist() == [0.1, 0.01]
    assert scores["score"].tolist() == [0.2, 0.02]
    assert trellis.dataframe("done")["done"].tolist() == [True]


def test_values_repeated_at_one_coordinate_get_a_row_each(in_project):
    in_project.write("repeat.py", """
        import trellis
        for label in ["a", "b", "c"]:
            trellis.log("label", label)
        trellis.log("count", 3)
    """)
    in_project.run("repeat.py")
    frame = trellis.dataframe("label", "count")
    assert frame["label"].tolist() == ["a", "b", "c"]
    assert frame["count"].tolist()[0] == 3 and frame["count"].isna().sum() == 2


LIST_ITERATIONS = {
    "sqlite": "SELECT i.idx + j.key AS idx, i.started + j.value / 1e6 AS started"
              " FROM iterations i, json_each(i.starts_us) j",
    "postgresql": "SELECT i.idx + j.n - 1 AS idx, i.started + j.us::float8 / 1e6 AS started"
                  " FROM iterations i, jsonb_array_elements_text(i.starts_us::jsonb)"
                  " WITH ORDINALITY j(us, n)",
}


def test_loop_keeps_len_and_records_iteration_times(in_project):
    in_project.write("lengths.py", """
        import time
        import trellis
        from tqdm import tqdm
        looped = trellis.loop("epoch", range(5))
        print("len", len(looped))
        bar = tqdm(looped)
        print("total", bar.total)
        for epoch in bar:
            time.sleep(0.01)
    """)
    done = in_project.run("lengths.py")
    assert "len 5" in done.stdout and "total 5" in done.stdout
    (row,) = trellis.query("SELECT id, idx, started, ended, count, starts_us FROM iterations").itertuples(index=False)
    assert row.count == 5  # the iterations of a loop without inner loops share a row
    times = list(expand(*row))
    assert [idx for _, idx, _, _ in times] == [0, 1, 2, 3, 4]
    assert [ident for ident, *_ in times] == [row.id + k for k in range(5)]
    assert all(ended - started >= 0.009 for _, _, started, ended in times)
    # the README's SQL lists the same iterations
    store = in_project.store()
    listing = LIST_ITERATIONS[store.dialect.name]
    store.close()
    listed = trellis.query(listing + " ORDER BY idx")
    assert listed["idx"].tolist() == [0, 1, 2, 3, 4]
    assert listed["started"].tolist() == pytest.approx([started for _, _, started, _ in times], abs=1e-6)


def test_breaking_out_of_a_loop_restores_the_outer_coordinates(in_project):
    in_project.write("breaks.py", """
        import trellis
        for epoch in trellis.loop("epoch", range(2)):
            for step in trellis.loop("step", range(10)):
                if step == 2:
                    break
            trellis.log("after_break", epoch)
            try:
                for step in trellis.loop("step", range(10)):
                    trellis.log("inside", step)
                    if step == 3:
                        raise ValueError
            except ValueError:
                trellis.log("after_error", epoch)
            for step in trellis.loop("step", range(3)):
                pass
            trellis.log("after_end", epoch)
    """)
    in_project.run("breaks.py")
    frame = trellis.dataframe("after_break", "after_error", "after_end")
    assert frame["epoch"].tolist() == [0, 1]
    assert "step" not in frame  # all three at their epoch, none inside a step
    assert frame["after_error"].tolist() == frame["after_end"].tolist() == [0, 1]
    inside = trellis.dataframe("inside")
    assert inside["step"].tolist() == inside["inside"].tolist() == [0, 1, 2, 3] * 2


def test_arg_reads_the_command_line_and_records_params_apart(in_project):
    in_project.write("args.py", """
        import trellis
        lr = trellis.arg("lr", 0.01)
        epochs = trellis.arg("epochs", 3)
        name = trellis.arg("name", "base")
        fast = trellis.arg("fast", False)
        layers = trellis.arg("layers", [1, 2])
        batch = trellis.arg("batch_size", 32)
        print(repr((lr, epochs, name, fast, layers, batch)))
        trellis.log("loss", 1.0)
    """)
    done = in_project.run("args.py", "--lr", "0.5", "epochs=7", "--name=big", "--fast", "--batch-size", "64")
    assert done.stdout.strip() == repr((0.5, 7, "big", True, [1, 2], 64))
    runs = trellis.dataframe()
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["lr"] == 0.5 and row["epochs"] == 7 and row["name"] == "big"
    assert row["fast"] == True and row["layers"] == [1, 2] and row["batch_size"] == 64  # noqa: E712
    origins = dict(trellis.query("SELECT name, origin FROM params").values.tolist())
    assert origins["lr"] == "command line" and origins["layers"] == "default"
    assert "lr" not in set(trellis.query("SELECT DISTINCT name FROM logs")["name"])


def test_a_bad_cast_is_one_line(in_project):
    in_project.write("badarg.py", """
        import trellis
        epochs = trellis.arg("epochs", 3)
    """)
    done = in_project.run("badarg.py", "--epochs", "many", check=False)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines == ["trellis: argument epochs: expected int (like its default 3), got 'many'"]


def test_secrets_are_masked_in_argv_and_params(in_project):
    in_project.write("secret.py", """
        import trellis
        key = trellis.arg("api_key", "none")
        print(key)
    """)
    done = in_project.run("secret.py", "--api_key", "hunter2", "--other", "visible")
    assert done.stdout.strip() == "hunter2"
    stored = trellis.query("SELECT argv FROM runs")["argv"][0]
    assert "hunter2" not in stored and "visible" in stored
    assert trellis.dataframe()["api_key"][0] == "***"


def test_commit_makes_values_visible_while_running(in_project):
    in_project.write("committing.py", """
        import sys, trellis
        trellis.log("early", 1)
        trellis.commit()
        sys.stdout.write("committed\\n"); sys.stdout.flush()
        sys.stdin.readline()
        trellis.log("late", 2)
    """)
    import subprocess, sys
    process = subprocess.Popen(
        [sys.executable, "committing.py"], cwd=in_project.root, env=in_project.env(),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout.readline().strip() == "committed"
        assert trellis.dataframe("early")["early"].tolist() == [1]
        status = trellis.query("SELECT status FROM runs")["status"][0]
        assert status == "running"
    finally:
        process.communicate("\n", timeout=60)
    assert trellis.dataframe("late")["late"].tolist() == [2]
    assert trellis.query("SELECT status FROM runs")["status"][0] == "ok"


def test_unknown_name_lists_known_names(in_project):
    in_project.write("known.py", "import trellis\ntrellis.log('loss', 1.0)\ntrellis.log('acc', 0.5)\n")
    in_project.run("known.py")
    with pytest.raises(trellis.UnknownNameError, match="logged names: acc, loss"):
        trellis.dataframe("recall")


def test_echo_prints_values_when_asked(in_project):
    in_project.write("echo.py", """
        import trellis
        for e in trellis.loop("epoch", range(2)):
            trellis.log("loss", 0.5)
    """)
    quiet = in_project.run("echo.py")
    assert "loss" not in quiet.stderr
    loud = in_project.run("echo.py", TRELLIS_ECHO="1")
    assert loud.stderr.count("trellis: loss = 0.5") == 2


def test_disabled_records_nothing_and_returns_values(in_project):
    in_project.write("off.py", """
        import trellis
        print(trellis.log("x", 5), trellis.arg("lr", 0.1), list(trellis.loop("e", range(2))))
    """)
    done = in_project.run("off.py", TRELLIS_DISABLE="1")
    assert done.stdout.strip() == "5 0.1 [0, 1]"
    with pytest.raises(trellis.StoreError, match="no trellis store"):
        in_project.store()


def test_a_progress_bar_shows_on_a_terminal_and_can_be_turned_off(in_project):
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    in_project.write("bar.py", """
        import time, trellis
        for epoch in trellis.loop("epoch", range(3)):
            for step in trellis.loop("step", range(2)):
                time.sleep(0.01)
    """)

    def stderr_on_a_terminal(**env):
        leader, follower = pty.openpty()
        # a terminal 100 columns wide: with no size, tqdm draws a bar of no width
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        done = subprocess.run([sys.executable, "bar.py"], cwd=in_project.root, stderr=follower,
                              env={**in_project.env(), **env}, timeout=60)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        assert done.returncode == 0
        return b"".join(chunks).decode(errors="replace")

    shown = stderr_on_a_terminal(TRELLIS_PROGRESS="1")
    assert "epoch:" in shown and "/3 [" in shown and "step" not in shown  # the outermost loop only
    assert "epoch" not in stderr_on_a_terminal(TRELLIS_PROGRESS="0")
