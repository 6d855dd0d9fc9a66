"""What FlorDB's surface maps onto in trellis: the pivot as options of ``trellis.dataframe``
(with trellis's own semantics kept as the default), typed values, checkpoints by tstamp,
hindsight replay and the command line. These read the store, so they run on both stores."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import git

TRAIN = """
import time
from trellis import flor

lr = flor.arg("lr", 0.5)
epochs = flor.arg("epochs", 2)
name = flor.arg("name", "base")
w = [0.0]
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(epochs)):
        for step in flor.loop("step", range(3)):
            w[0] += lr
            time.sleep(0.005)
            flor.log("loss", 1 / (1 + w[0]))
        flor.log("val_acc", epoch / 10)
"""


def read(project, code: str):
    done = project.python("import json, trellis\nfrom trellis import flor\n" + textwrap.dedent(code))
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_args_are_names_and_keep_their_types(project):
    project.write("train.py", TRAIN)
    project.run("train.py", "--kwargs", "lr=0.25", "name=wide")
    types = read(project, """
        df = flor.dataframe("lr", "epochs", "name", "loss", "val_acc")
        print(json.dumps({c: str(df[c].dtype) for c in df.columns} | {"rows": len(df),
              "lr": sorted(set(df["lr"])), "name": sorted(set(df["name"]))}))
    """)
    assert types["rows"] == 6
    assert (types["lr"], types["name"]) == ([0.25], ["wide"])
    assert (types["lr"], types["epochs"], types["loss"], types["val_acc"]) != ("object",) * 4
    assert types["epochs"] == "Int64" and types["loss"] == "float64" and types["epoch"] == "Int64"


def test_trellis_keeps_values_at_their_own_level_unless_asked_to_broadcast(project):
    project.write("train.py", TRAIN)
    project.run("train.py")
    shapes = read(project, """
        own = trellis.dataframe("lr", "loss", "val_acc")
        spread = trellis.dataframe("lr", "loss", "val_acc", broadcast=True)
        print(json.dumps({
            "own": len(own), "own_lr": int(own["lr"].notna().sum()),
            "own_val_acc_steps": own.loc[own["val_acc"].notna(), "step"].isna().all().item(),
            "spread": len(spread), "spread_lr": int(spread["lr"].notna().sum()),
            "spread_val_acc": spread.groupby("epoch")["val_acc"].nunique().tolist(),
        }))
    """)
    # own level: a row for the run's lr, 6 for loss, 2 for val_acc (with no step)
    assert shapes["own"] == 1 + 6 + 2 and shapes["own_lr"] == 1 and shapes["own_val_acc_steps"]
    # broadcast: a row per loss, with lr and its epoch's val_acc on each
    assert shapes["spread"] == 6 and shapes["spread_lr"] == 6 and shapes["spread_val_acc"] == [1, 1]
    printed = json.loads(project.cli("dataframe", "lr", "loss", "--broadcast", "--json").stdout)
    assert len(printed) == 6 and {row["lr"] for row in printed} == {0.5}


def test_unknown_names_raise_by_default_and_are_empty_on_request(project):
    project.write("train.py", TRAIN)
    project.run("train.py")
    failed = project.python("import trellis; trellis.dataframe('nope')", check=False)
    assert "nothing was logged as 'nope'" in failed.stderr and "lr" in failed.stderr
    assert "trellis::commit" not in failed.stderr
    shapes = read(project, """
        empty = trellis.dataframe("nope", unknown="empty")
        some = trellis.dataframe("loss", "nope", unknown="empty")
        print(json.dumps([empty.empty, list(empty.columns), len(some), int(some["nope"].notna().sum())]))
    """)
    assert shapes == [True, ["projid", "run_id", "tstamp", "filename", "nope"], 6, 0]


def test_each_flor_commit_starts_a_tstamp_of_the_same_run(project):
    project.write("app.py", """
        import time
        from trellis import flor
        for round in range(3):
            with flor.iteration("document", 0, "a.pdf"):
                flor.log("label", round)
            flor.commit()
            time.sleep(0.05)
    """)
    project.run("app.py")
    stamps = read(project, """
        by_run = trellis.dataframe("label")
        by_commit = trellis.dataframe("label", tstamp="commit")
        latest = flor.utils.latest(flor.dataframe("label"))
        print(json.dumps([by_run["tstamp"].nunique(), by_commit["tstamp"].nunique(),
                          by_commit["run_id"].nunique(), latest["label"].tolist(),
                          bool(by_commit["tstamp"].is_monotonic_increasing)]))
    """)
    assert stamps == [1, 3, 1, [2], True]


def test_load_checkpoint_by_a_tstamp_from_the_frame(project):
    project.write("train.py", TRAIN)
    project.run("train.py", "--kwargs", "lr=0.25")
    project.run("train.py", "--kwargs", "lr=1.0")
    loaded = read(project, """
        df = flor.dataframe("lr", "loss")
        out = {}
        for tstamp, lr in zip(df["tstamp"], df["lr"]):
            out[str(lr)] = flor.load_checkpoint(tstamp, "w")[0]
        names = [c["name"] for c in flor.checkpoints(df["tstamp"].iloc[0])]
        print(json.dumps([out, sorted(set(names))]))
    """)
    assert loaded[1] == ["w"]
    # each run's own weights, as saved after one of its epochs (3 steps of lr each)
    assert loaded[0]["0.25"] in (0.75, 1.5) and loaded[0]["1.0"] in (3.0, 6.0)
    wrong = project.python("from trellis import flor; flor.load_checkpoint('2001-01-01T00:00:00', 'w')",
                           check=False)
    assert wrong.returncode != 0 and "no run has tstamp" in wrong.stderr


def test_query_and_the_command_line(project):
    project.write("train.py", TRAIN)
    project.run("train.py")
    counted = read(project, """
        ours = trellis.query("SELECT COUNT(*) AS n FROM logs WHERE name = 'loss'")
        theirs = flor.query("SELECT COUNT(*) AS n FROM logs WHERE value_name = 'loss'")
        print(json.dumps([int(ours["n"][0]), int(theirs["n"][0])]))
    """)
    assert counted == [6, 6]  # trellis's tables, and FlorDB's one table made from them
    shown = project.python("import sys; sys.argv[0] = 'x'; from trellis.flor import main; "
                           "main(['dataframe', 'lr,loss'])")
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["projid", "tstamp", "filename", "source", "epoch", "step", "lr", "loss"]
    assert len(lines) == 1 + 6
    done = subprocess.run([sys.executable, "-m", "trellis.flor", "replay"], cwd=project.root,
                          capture_output=True, text=True, env=project.env())
    assert done.returncode == 1 and "nothing to apply" in done.stderr and "Traceback" not in done.stderr


REPLAYED = TRAIN.replace(
    '            flor.log("loss", 1 / (1 + w[0]))\n',
    '            flor.log("loss", 1 / (1 + w[0]))\n        LOGGER("w_norm", abs(w[0]))\n',
)


def flor_replay(project, *argv: str) -> None:
    """``python -m trellis.flor replay ARGV`` in the project, as a FlorDB user runs it."""
    done = subprocess.run([sys.executable, "-m", "trellis.flor", "replay", *argv], cwd=project.root,
                          capture_output=True, text=True, env=project.env(), timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr


def _replay_history(project, logger: str) -> None:
    """Two runs, then a new statement; with ``trellis.log``, the script uses trellis's own names,
    which the replay planner knows."""
    native = logger.startswith("trellis.")

    def script(source: str) -> str:
        if not native:
            return source
        return "import trellis\n" + source.replace("flor.loop", "trellis.loop").replace(
            "flor.checkpointing", "trellis.checkpointing").replace("flor.log", "trellis.log")

    project.write("train.py", script(TRAIN))
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "train")
    project.run("train.py", "--kwargs", "lr=0.25")
    project.run("train.py")
    project.write("train.py", script(REPLAYED.replace("LOGGER", logger)))
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "log the weight norm")


def _replayed_frame(project):
    flor_replay(project, "--apply", "w_norm", "--iter", "epoch=0,1")
    return read(project, """
        df = flor.dataframe("lr", "w_norm")
        print(json.dumps(sorted([str(lr), int(e), v, s] for lr, e, v, s in
                                zip(df["lr"], df["epoch"], df["w_norm"], df["source"]))))
    """)


def test_replay_from_the_command_line_fills_new_statements_into_past_runs(project):
    _replay_history(project, "trellis.log")
    assert _replayed_frame(project) == [
        ["0.25", 0, 0.75, "replay"], ["0.25", 1, 1.5, "replay"],
        ["0.5", 0, 1.5, "replay"], ["0.5", 1, 3.0, "replay"],
    ]


def test_iter_last_replays_the_final_iteration_of_each_run(project):
    project.write("train.py", TRAIN)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "train")
    project.run("train.py", "--kwargs", "lr=0.25", "epochs=3")  # runs of different lengths
    project.run("train.py")
    project.write("train.py", REPLAYED.replace("LOGGER", "flor.log"))
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "log the weight norm")
    flor_replay(project, "--apply", "w_norm", "--iter", "epoch=last")
    stored = read(project, """
        df = flor.dataframe("lr", "w_norm").dropna(subset=["w_norm"])
        print(json.dumps(sorted([str(lr), int(e), v] for lr, e, v in zip(df["lr"], df["epoch"], df["w_norm"]))))
    """)
    # w grows by lr at each of 3 steps an epoch: only the last epoch of each run is replayed
    assert stored == [["0.25", 2, 2.25], ["0.5", 1, 3.0]]


def test_iter_on_an_inner_loop_stores_its_selected_iterations(project):
    project.write("train.py", TRAIN)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "train")
    project.run("train.py")
    project.write("train.py", TRAIN.replace(
        '            flor.log("loss", 1 / (1 + w[0]))\n',
        '            flor.log("loss", 1 / (1 + w[0]))\n            flor.log("w_step", w[0])\n'))
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "log w at every step")
    flor_replay(project, "--apply", "w_step", "--iter", "step=last")
    stored = read(project, """
        df = flor.dataframe("w_step").dropna(subset=["w_step"])
        print(json.dumps(sorted([int(e), int(s), v] for e, s, v in zip(df["epoch"], df["step"], df["w_step"]))))
    """)
    assert stored == [[0, 2, 1.5], [1, 2, 3.0]]  # w grows by 0.5 a step; only each epoch's last step


def test_replay_sees_flor_log(project):
    _replay_history(project, "flor.log")
    assert len(_replayed_frame(project)) == 4


def test_commit_times_are_not_results_to_diff_or_reproduce(project):
    project.write("app.py", """
        from trellis import flor
        for round in range(2):
            flor.log("label", round)
            flor.commit()
    """)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "app")
    project.run("app.py")
    project.run("app.py")
    compared = read(project, """
        runs = [r["run_id"] for r in trellis.runs()]
        values = trellis.diff(runs[1], runs[0])["values"]
        again = trellis.reproduce(runs[0])
        print(json.dumps([values["changed"], values["same"], again["matched"]]))
    """)
    assert compared == [{}, ["label"], True]
