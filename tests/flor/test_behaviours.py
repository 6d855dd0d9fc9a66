"""FlorDB's documented behaviours (its README, the FlorDB paper's examples), each run against
FlorDB 4.0.1 itself and against ``trellis.flor`` with only the import changed."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.flor.conftest import same_frames

pytestmark = pytest.mark.sqlite_only("compares with FlorDB 4.0.1 and does not depend on the store")

# The README's training loop: args settable with --kwargs, loss per step, val_acc per epoch
# (the paper's version adds `hidden`).
TRAIN = """
import flordb as flor

hidden = flor.arg("hidden", 500)
lr = flor.arg("lr", 1e-3)
batch_size = flor.arg("batch_size", 32)
epochs = flor.arg("epochs", 2)

for epoch in flor.loop("epoch", range(epochs)):
    for step in flor.loop("step", range(3)):
        flor.log("loss", 1 / (2 + epoch * 3 + step))
    flor.log("val_acc", 0.5 + epoch / 10)
"""


def test_first_log_reads_back(both):
    both.write("hello.py", """
        import flordb as flor
        flor.log("message", "Hello ML World!")
    """)
    both.run("hello.py")
    queries = [("message",)]
    theirs, ours = both.frames(*queries)
    assert theirs[0]["columns"] == ["projid", "tstamp", "filename", "source", "message"]
    same_frames(theirs, ours, queries)


def test_args_are_columns_and_outer_values_land_on_inner_rows(both):
    both.write("train.py", TRAIN)
    both.run("train.py", "--kwargs", "lr=5e-4", "batch_size=64")
    both.run("train.py")
    queries = [
        ("lr", "batch_size", "loss"),
        ("hidden", "batch_size", "lr", "loss"),
        ("loss", "val_acc"),
        ("val_acc", "loss"),
        ("val_acc",),
        ("lr",),
        ("epochs", "val_acc"),
    ]
    theirs, ours = both.frames(*queries)
    # the README's frame: a row per loss, lr and batch_size on each; val_acc on its epoch's steps
    assert theirs[0]["columns"][-5:] == ["epoch", "step", "lr", "batch_size", "loss"]
    assert len(theirs[0]["rows"]) == 2 * 6 and len(theirs[2]["rows"]) == 2 * 6
    same_frames(theirs, ours, queries)


def test_run_level_frame_holds_each_runs_args(both):
    both.write("train.py", TRAIN)
    both.run("train.py", "--kwargs", "epochs=1", "hidden=100")
    both.run("train.py", "--kwargs", "epochs=1")
    (theirs,), (ours,) = both.frames(())
    assert len(theirs["rows"]) == 2
    # the args in the order the script declared them (not by name), as FlorDB's table holds them
    assert theirs["columns"][4:] == ["hidden", "lr", "batch_size", "epochs"]
    assert ours["columns"] == theirs["columns"]
    key = lambda row: sorted(row.items())  # noqa: E731
    assert sorted(ours["rows"], key=key) == sorted(theirs["rows"], key=key)


def test_run_level_columns_come_run_by_run_as_declared(both):
    both.write("first.py", """
        import flordb as flor
        zeta = flor.arg("zeta", 1)
        flor.log("score", 2)
    """)
    both.write("second.py", """
        import flordb as flor
        beta = flor.arg("beta", 3)
        alpha = flor.arg("alpha", 4)
        flor.log("mid", 5)
        flor.log("all", 6)
    """)
    both.run("first.py")
    both.run("second.py")
    (theirs,), (ours,) = both.frames(())
    assert theirs["columns"][4:] == ["zeta", "score", "beta", "alpha", "mid", "all"]
    assert ours["columns"] == theirs["columns"]


def test_a_name_never_logged_is_an_empty_frame_or_an_empty_column(both):
    both.write("train.py", TRAIN)
    both.run("train.py")
    queries = [("never_logged",), ("loss", "never_logged"), ("never", "logged")]
    theirs, ours = both.frames(*queries)
    assert theirs[0]["empty"] and theirs[0]["columns"] == ["projid", "tstamp", "filename", "source", "never_logged"]
    same_frames(theirs, ours, queries)


def test_the_first_run_of_an_app_reads_no_labels_and_carries_on(both):
    """The paper's pdf_parser: ``get_colors`` reads the labels so far; on the first run there
    are none (``if not df.empty``), later the newest feedback wins (``utils.latest``)."""
    both.write("app.py", """
        import sys
        import flordb as flor

        PAGES = ["p1", "p2", "p3"]

        def get_colors():
            colors = {page: "white" for page in PAGES}
            df = flor.dataframe("first_page")
            if not df.empty:
                df = flor.utils.latest(df)
                for page, first in zip(df["page_value"], df["first_page"]):
                    colors[page] = "green" if str(first) == "True" else "red"
            return [colors[page] for page in PAGES]

        print("COLORS", get_colors())
        # the labelling loop of a long-running app: each save of feedback is a commit
        for chosen in sys.argv[1:]:
            for index, page in enumerate(PAGES):
                with flor.iteration("page", index, page):
                    flor.log("first_page", page == chosen)
            flor.commit()
            print("COLORS", get_colors())
    """)
    first = both.run("app.py")
    assert [done.stdout.count("COLORS ['white', 'white', 'white']") for done in first] == [1, 1]
    saved = both.run("app.py", "p1", "p3")
    colors = [[line for line in done.stdout.splitlines() if line.startswith("COLORS")] for done in saved]
    assert colors[0] == ["COLORS ['white', 'white', 'white']", "COLORS ['green', 'red', 'red']",
                         "COLORS ['red', 'red', 'green']"]
    assert colors[1] == colors[0]
    queries = [("first_page",)]
    theirs, ours = both.frames(*queries)
    assert len({row["tstamp"] for row in theirs[0]["rows"]}) == 2  # a tstamp per commit
    same_frames(theirs, ours, queries)


def test_a_commit_starts_a_new_tstamp_that_latest_picks(both):
    both.write("label.py", """
        import flordb as flor
        for round in range(3):
            for doc in flor.loop("document", ["a.pdf", "b.pdf"]):
                flor.log("label", f"{doc}-{round}")
            flor.commit()
    """)
    both.run("label.py")
    reader = """
        import json
        import flordb as flor
        df = flor.utils.latest(flor.dataframe("label"))
        print("LATEST", json.dumps(sorted(str(v) for v in df["label"])), df["tstamp"].nunique())
    """
    both.write("latest_reader.py", reader)
    outputs = []
    for side in both.sides:
        done = side.run("-c", (side.root / "latest_reader.py").read_text())
        outputs.append([line for line in done.stdout.splitlines() if line.startswith("LATEST")])
    assert outputs[0] == ['LATEST ["a.pdf-2", "b.pdf-2"] 1']
    assert outputs[1] == outputs[0]


def test_an_arg_without_default_or_value_raises(both):
    both.write("needs.py", """
        import flordb as flor
        try:
            flor.arg("x")
        except RuntimeError:
            print("RAISED")
        x = flor.arg("y")
        flor.log("y_type", type(x).__name__)
        flor.log("y", x)
    """)
    missing = [side.run("needs.py", check=False) for side in both.sides]
    for done in missing:
        assert "RAISED" in done.stdout and done.returncode != 0
    both.run("needs.py", "--kwargs", "y=3")
    queries = [("y_type", "y")]
    theirs, ours = both.frames(*queries)
    assert [row["y_type"] for row in theirs[0]["rows"]] == ["str"]  # no default: the text given
    same_frames(theirs, ours, queries)


def test_loops_over_items_show_their_values(both):
    both.write("docs.py", """
        import flordb as flor
        for document in flor.loop("document", ["a.pdf", "b.pdf"]):
            for page in flor.loop("page", [0, 1, 2]):
                flor.log("words", len(document) * 10 + page)
            flor.log("pages", 3)
        for index, name in enumerate(["x", "y"]):
            with flor.iteration("request", index, name):
                flor.log("latency", index + 0.5)
    """)
    both.run("docs.py")
    queries = [("words",), ("pages", "words"), ("latency",), ("words", "latency")]
    theirs, ours = both.frames(*queries)
    # a loop over values shows them; over values equal to the index, only the index
    assert theirs[0]["columns"] == ["projid", "tstamp", "filename", "source", "document", "document_value",
                                    "page", "words"]
    same_frames(theirs, ours, queries)


def test_repeated_values_and_sibling_loops_join_as_in_flordb(both):
    both.write("sweep.py", """
        import flordb as flor
        lr = flor.arg("lr", 0.1)
        for epoch in flor.loop("epoch", range(2)):
            for step in flor.loop("step", range(2)):
                flor.log("loss", epoch + step)
                flor.log("loss", epoch + step + 0.5)
            for batch in flor.loop("eval", range(2)):
                flor.log("acc", epoch * 10 + batch)
    """)
    both.run("sweep.py")
    queries = [("loss",), ("lr", "loss"), ("loss", "acc"), ("lr", "acc", "loss")]
    theirs, ours = both.frames(*queries)
    same_frames(theirs, ours, queries)


def test_a_makefile_pipeline_reads_the_stage_before(both):
    """The paper's Makefile: one stage featurizes, the next reads its values back."""
    both.write("featurize.py", """
        import flordb as flor
        for document in flor.loop("document", ["a.pdf", "bb.pdf"]):
            for page in flor.loop("page", range(2)):
                flor.log("n_words", len(document) * 100 + page)
    """)
    both.write("train.py", """
        import flordb as flor
        df = flor.dataframe("n_words")
        threshold = flor.arg("scale", 1.0) * sum(int(v) for v in df["n_words"]) / len(df)
        flor.log("threshold", threshold)
    """)
    for side in both.sides:
        (side.root / "Makefile").write_text(
            "train: featurize\n\t$(PYTHON) train.py\n\nfeaturize:\n\t$(PYTHON) featurize.py\n"
            ".PHONY: train featurize\n"
        )
        done = subprocess.run(
            ["make", "-s", "train", f"PYTHON={side.python}"], cwd=side.root, env=side.env,
            capture_output=True, text=True, timeout=240,
        )
        assert done.returncode == 0, done.stderr
    queries = [("n_words",), ("scale", "threshold"), ("n_words", "threshold")]
    theirs, ours = both.frames(*queries)
    assert [row["threshold"] for row in theirs[1]["rows"]] == ["550.5"]
    same_frames(theirs, ours, queries)


def test_every_public_name_of_flordb_is_there(both):
    listing = "import json\nimport flordb as flor\nprint(json.dumps(sorted(n for n in dir(flor) if not n.startswith('_')"\
              " and (callable(getattr(flor, n)) or n == 'utils'))))"
    theirs = set(json.loads(both.flordb.run("-c", listing).stdout.splitlines()[-1]))
    # FlorDB's module also exposes what it imported for itself: a class, a connection, IPython's hook
    internal = {"Clock", "conn", "get_ipython"}
    from trellis import flor

    ours = {name for name in dir(flor) if not name.startswith("_")}
    assert theirs - internal <= ours, f"missing from trellis.flor: {sorted(theirs - internal - ours)}"


def test_captured_output_reads_back_line_by_line(both):
    both.write("talk.py", """
        import flordb as flor
        for epoch in flor.loop("epoch", range(2)):
            print(f"epoch {epoch} done")
        flor.log("done", True)
    """)
    both.run("talk.py")
    reader = (
        "import json\nimport flordb as flor\n"
        "df = flor.io('io::stdout')\nprint('IO' + json.dumps([list(df.columns), df['line'].tolist(),"
        " [None if e is None or e != e else int(e) for e in df['epoch'].astype(object)]]))"
    )
    results = []
    for side in both.sides:
        done = side.run("-c", reader.replace("import flordb as flor", side.import_line))
        results.append(json.loads(next(l for l in done.stdout.splitlines() if l.startswith("IO"))[2:]))
    assert results[0] == [["projid", "tstamp", "filename", "source", "epoch", "channel", "line"],
                          ["epoch 0 done", "epoch 1 done"], [0, 1]]
    assert results[1] == results[0]


def test_sql_over_flordbs_logs_table(both):
    both.write("train.py", TRAIN)
    both.run("train.py", "--kwargs", "epochs=1")
    both.write("docs.py", """
        import flordb as flor
        for document in flor.loop("document", ["a.pdf", "b.pdf"]):
            flor.log("words", len(document))
    """)
    both.run("docs.py")
    sql = ("SELECT filename, ctx, value_name, value, source FROM logs WHERE value_type = 1"
           " ORDER BY value_name, ctx, value")
    reader = (
        "import json\nimport flordb as flor\n"
        f"df = flor.query({sql!r})\n"
        "print('Q' + json.dumps([list(df.columns), [[str(v) for v in row] for row in df.values.tolist()],"
        " str(df['value'].dtype)]))"
    )
    results = []
    for side in both.sides:
        done = side.run("-c", reader.replace("import flordb as flor", side.import_line))
        results.append(json.loads(next(l for l in done.stdout.splitlines() if l.startswith("Q"))[1:]))
    assert len(results[0][1]) == 4 + 3 + 1 + 2  # the args, loss per step, val_acc, words
    assert results[1] == results[0]


def test_sql_over_captured_output_and_timings(both):
    both.write("talk.py", """
        import flordb as flor
        print("start")
        for epoch in flor.loop("epoch", range(2)):
            for step in flor.loop("step", ["a", "b", "c"]):
                flor.log("loss", step)
            print(f"epoch {epoch}")
    """)
    both.run("talk.py")
    reader = (
        "import json\nimport flordb as flor\n"
        "out = flor.query('SELECT ctx, value_name, value FROM logs WHERE value_type = 2 ORDER BY rowid')\n"
        "times = flor.query('SELECT ctx, value_name, value FROM logs WHERE value_type = 3 ORDER BY rowid')\n"
        "none = flor.query('SELECT * FROM logs WHERE value_name = \\'never\\'')\n"
        "print('Q' + json.dumps([[[None if c != c else c, n, v] for c, n, v in out.values.tolist()], [[None if c != c else c, n] for c, n in times[['ctx', 'value_name']].values.tolist()],"
        " [float(v) >= 0 for v in times['value']], none is None]))"
    )
    results = []
    for side in both.sides:
        done = side.run("-c", reader.replace("import flordb as flor", side.import_line))
        results.append(json.loads(next(l for l in done.stdout.splitlines() if l.startswith("Q"))[1:]))
    theirs, ours = results
    epoch = '[{{"name": "epoch", "iteration": {0}, "value": "{0}"}}]'.format
    assert theirs[0] == [[None, "io::stdout", "start"], [epoch(0), "io::stdout", "epoch 0"],
                         [epoch(1), "io::stdout", "epoch 1"]]
    assert ours[0] == theirs[0]
    # one summary per loop instance, with its parent's coordinates, between setup and teardown
    assert [name for _, name in theirs[1]][:5] == ["time::setup", "time::iter", "time::iter::std", "time::iter::n", "time::loop"]
    assert ours[1] == theirs[1]
    assert all(ours[2]) and all(theirs[2]) and len(ours[2]) == len(theirs[2]) == 1 + 3 * 4 + 2
    assert ours[3] is theirs[3] is True
