"""Values no one should log, logged anyway: the script finishes, each costs a bounded time and
memory, and the store gets what can be kept of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

import trellis


def test_huge_recursive_and_misbehaving_values_cost_little_and_are_kept(project, monkeypatch):
    project.write("hostile.py", """
        import tracemalloc, numpy as np, trellis

        class Raises:
            def __repr__(self):
                raise RuntimeError("no repr")

        class Hangs:
            def __repr__(self):
                while True:
                    pass

        def peak_of(name, value):
            tracemalloc.start()
            trellis.log(name, value)
            print(name, tracemalloc.get_traced_memory()[1], flush=True)
            tracemalloc.stop()

        looped = []
        looped.append(looped)
        shared = []
        for _ in range(60):  # 2**60 paths to the innermost list
            shared = [shared, shared]
        # a gigabyte of float64 that takes no memory: the cost of logging it cannot come from copying
        gigabyte = np.broadcast_to(np.float64(1.5), (1 << 27,))
        assert gigabyte.nbytes == 1 << 30
        peak_of("gigabyte", gigabyte)
        peak_of("long_list", list(range(3_000_000)))
        peak_of("looped", looped)
        peak_of("shared", shared)
        trellis.log("raises", Raises())
        trellis.log("hangs", Hangs())
        trellis.log("hangs", Hangs())  # the type is not asked again
        trellis.log("huge_int", 7 ** 20000)
        trellis.log("long_text", "x" * (65 << 20))
        trellis.log("fine", {"a": [1, 2.5, None]})
        print("end", flush=True)
    """)
    done = project.run("hostile.py")
    lines = dict(line.split() for line in done.stdout.splitlines() if line != "end")
    assert done.stdout.rstrip().endswith("end")
    # bytes: far below a copy of the list (its JSON alone is 23 MB) or of the gigabyte
    assert all(int(peak) < 16_000_000 for peak in lines.values()), lines

    monkeypatch.chdir(project.root)
    stored = dict(zip(*trellis.query(
        "SELECT name, text_value FROM logs WHERE name <> 'huge_int' ORDER BY id").to_dict("list").values()))
    objects = {name: json.loads(text) for name, text in stored.items() if text and name != "fine"}
    assert objects["gigabyte"]["type"] == "ndarray" and "shape=(134217728,)" in objects["gigabyte"]["repr"]
    assert objects["long_list"]["repr"].startswith("[0, 1, 2, 3")
    assert objects["looped"]["repr"] == "[[[[[[[...]]]]]]]"
    assert objects["shared"]["type"] == "list"
    assert objects["raises"]["repr"].startswith("<Raises instance")
    assert objects["hangs"]["repr"] == "<Hangs: repr took over 1 s>"
    assert objects["long_text"] == {"type": "str", "repr": "x" * 200 + "...", "length": 65 << 20}
    frame = trellis.dataframe("huge_int", "fine")
    assert frame["huge_int"].dropna().tolist() == [7 ** 20000]
    assert frame["fine"].dropna().tolist() == [{"a": [1, 2.5, None]}]
    assert trellis.runs()[0]["status"] == "ok"


# -- text no store can hold as it is -----------------------------------------------------------

HOSTILE_TEXT = """
    import os, sys, trellis
    weird = os.fsdecode(b"data_\\xff.csv")  # a file name that is not UTF-8: a lone surrogate
    given = trellis.arg("path", "default.csv")
    trellis.log("path", weird)
    trellis.log("nul", "a\\x00b")
    trellis.log("both", ["x\\x00", weird, {weird: "\\ud800"}])
    trellis.log("backslashes", "\\ufffd\\\\u0000")
    trellis.log(weird, 1)
    for i in trellis.loop("files " + weird, range(3)):
        trellis.log("i", i)
    with open(weird, "w") as handle:
        handle.write("x")
    print("wrote", weird)
    print("finished")
"""


def test_text_with_nul_or_lone_surrogates_comes_back_exactly_as_logged(project, monkeypatch):
    project.write("hostile_text.py", HOSTILE_TEXT)
    given = os.fsdecode(b"in_\xfe.csv")
    done = subprocess.run(  # what it prints is not UTF-8 either
        [sys.executable, "hostile_text.py", "--path", given], cwd=project.root, env=project.env(),
        capture_output=True, timeout=240,
    )
    stdout, stderr = (os.fsdecode(out) for out in (done.stdout, done.stderr))
    assert done.returncode == 0 and stdout.splitlines()[-1] == "finished", stderr
    assert "trellis could not" not in stderr, stderr
    weird = os.fsdecode(b"data_\xff.csv")

    monkeypatch.chdir(project.root)
    assert trellis.runs()[0]["status"] == "ok"
    from trellis.store.cells import readable, storable

    frame = trellis.dataframe("path", "nul", "both", "backslashes", weird, "i")
    assert frame["path"].dropna().tolist() == [weird]
    assert frame["nul"].dropna().tolist() == ["a\x00b"]
    assert frame["both"].dropna().tolist() == [["x\x00", weird, {weird: "\ud800"}]]
    assert frame["backslashes"].dropna().tolist() == ["\ufffd\\u0000"]
    # a name pandas cannot hold as a label either is asked as logged and labelled as stored
    assert frame[storable(weird)].dropna().tolist() == [1]
    assert frame["i"].dropna().tolist() == [0, 1, 2]
    assert frame[storable("files " + weird)].dropna().tolist() == [0, 1, 2]
    assert trellis.dataframe()["path"].tolist() == [given]  # the param, from non-UTF-8 argv
    paths = [readable(p) for p in trellis.query("SELECT path FROM files WHERE mode = 'write'")["path"]]
    assert any(p.endswith(weird) for p in paths), paths
    stdout = trellis.query("SELECT stdout FROM runs")["stdout"][0]
    assert f"wrote {weird}\n" in readable(stdout)

    # a run that reads it records the name it asked for in its inputs, a text no step of the
    # write handles apart: the rows are written again with such text escaped
    project.write("reads.py", f"""
        import os, trellis
        trellis.log("rows", len(trellis.dataframe(os.fsdecode({os.fsencode(weird)!r}))))
    """)
    done = project.run("reads.py")
    assert "trellis could not" not in done.stderr, done.stderr
    assert trellis.dataframe("rows")["rows"].dropna().tolist() == [1]
    assert [readable(d) for d in trellis.query("SELECT detail FROM run_inputs")["detail"]] == [weird]
    assert [r["status"] for r in trellis.runs()] == ["ok", "ok"]


def test_a_recovery_store_holds_what_its_warning_says(project, monkeypatch):
    """The store is locked for the whole run: the run goes to a recovery store, and the warning
    that says so counts the values there, all of them, hostile text included."""
    from tests.capture.test_faults import Lock, _shared

    project.write("first.py", "import trellis\ntrellis.log('first', 1)\n")
    project.run("first.py")
    project.write("locked.py", """
        import os, trellis
        weird = os.fsdecode(b"data_\\xff.csv")
        for i in trellis.loop("i", range(20)):
            trellis.log("v", i)
            trellis.log("name", weird + str(i))
        print("finished")
    """)
    lock = Lock(project)
    try:
        done = project.run("locked.py", TRELLIS_LOCK_TIMEOUT="1")
    finally:
        lock.release()
    assert done.stdout.strip() == "finished"
    assert "(40 values there)" in done.stderr, done.stderr
    monkeypatch.chdir(project.root)
    if _shared(project):
        assert "pushed 1 runs" in project.cli("push").stdout
    else:
        (saved,) = (project.root / ".trellis" / "recovery").glob("*.db")
        assert f"saved to {saved} (40 values there)" in done.stderr
        assert "imported 1 runs" in project.cli("import", str(saved)).stdout
    weird = os.fsdecode(b"data_\xff.csv")
    frame = trellis.dataframe("v", "name")
    assert frame["v"].dropna().tolist() == list(range(20))
    assert frame["name"].dropna().tolist() == [weird + str(i) for i in range(20)]


@given(st.text(alphabet=st.characters(codec=None), max_size=40)
       | st.text(alphabet="\\\x00\udcff\ud800\ufffdu0a", max_size=16))
@settings(max_examples=2000, deadline=None)
def test_stored_text_reads_back_exactly_and_fits_every_store(text):
    from trellis.store.cells import fits, readable, storable

    stored = storable(text)
    stored.encode("utf-8")  # both stores take it
    assert "\x00" not in stored
    assert readable(stored) == text
    assert (stored is text) == fits(text)


def test_non_finite_floats_come_back_as_floats_also_after_an_export(project, tmp_path, monkeypatch):
    # checked against the values themselves: inf, -inf and nan nested in lists and dicts, as a
    # logged value and as an arg, read back here and after an export into another store
    project.write("nonfinite.py", """
        import math, trellis
        trellis.arg("cfg", {"b": [math.inf, -math.inf]})
        trellis.log("d", {"b": [math.inf], "c": {"n": math.nan}})
        trellis.log("loss", math.nan)  # a diverged loss is a value like any other
    """)
    project.run("nonfinite.py")

    def check(root):
        monkeypatch.chdir(root)
        (value,) = trellis.dataframe("d")["d"].tolist()
        assert value["b"] == [float("inf")] and isinstance(value["b"][0], float)
        assert value["c"]["n"] != value["c"]["n"]  # nan
        (loss,) = trellis.dataframe("loss")["loss"].tolist()
        assert loss != loss
        (params,) = trellis.dataframe()["cfg"].tolist()
        assert params == {"b": [float("inf"), float("-inf")]}

    check(project.root)
    exported = tmp_path / "runs.json"
    project.cli("export", "--all", "-o", str(exported))
    from tests.conftest import Project, git

    other = Project(tmp_path / "other")
    other.root.mkdir()
    git(other.root, "init", "-q")
    other.cli("import", str(exported))
    check(other.root)
