"""The command line, run as users run it."""

from __future__ import annotations

import json


def populate(project):
    project.write("train.py", """
        import trellis
        lr = trellis.arg("lr", 0.1)
        for epoch in trellis.loop("epoch", range(3)):
            trellis.log("acc", epoch * lr)
        print("trained")
    """)
    project.run("train.py", "--lr", "0.5")
    project.run("train.py")


def test_runs_show_dataframe_query(project):
    populate(project)
    listing = project.cli("runs").stdout.splitlines()
    assert listing[0].split()[:3] == ["id", "filename", "status"]
    assert len(listing) == 3 and "lr=0.5" in listing[2] and "lr=0.1" in listing[1]

    runs = json.loads(project.cli("runs", "--json").stdout)
    prefix = runs[1]["run_id"][:6]
    shown = json.loads(project.cli("show", prefix, "--json").stdout)
    assert shown["params"] == {"lr": 0.5} and shown["logged"] == {"acc": 3}
    assert shown["loops"] == [{"loop": "epoch", "depth": 0, "iterations": 3}]
    assert shown["stdout"] == "trained\n" and shown["status"] == "ok"
    assert shown["git"]["commit"] and shown["environment"]["packages"]
    text = project.cli("show", "latest").stdout
    assert "status: ok" in text and "--- stdout ---" in text

    csv = project.cli("dataframe", "acc", "--csv").stdout.splitlines()
    assert csv[0] == "projid,run_id,tstamp,filename,epoch,acc"
    assert len(csv) == 7
    records = json.loads(project.cli("dataframe", "acc", "--json", "--run", prefix).stdout)
    assert [r["acc"] for r in records] == [0.0, 0.5, 1.0]
    params = json.loads(project.cli("dataframe", "--json").stdout)
    assert sorted(r["lr"] for r in params) == [0.1, 0.5]

    counted = project.cli("query", "SELECT COUNT(*) AS n FROM logs", "--csv").stdout
    assert counted.splitlines() == ["n", "6"]


def test_errors_are_one_line(project):
    populate(project)
    for args, message in [
        (["show", "zzz"], "'zzz' is not a run id"),
        (["show", "ffffffff"], "no run id starts with 'ffffffff'"),
        (["dataframe", "recall"], "logged names: acc"),
        (["query", "DELETE FROM runs"], "query failed"),
        (["checkpoints", "latest"], None),
    ]:
        done = project.cli(*args, check=False)
        if message is None:
            assert done.returncode == 0 and done.stdout.strip() == "no checkpoints"
            continue
        assert done.returncode == 1, args
        assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert len(json.loads(project.cli("runs", "--json").stdout)) == 2


def test_no_store_yet(bare_folder):
    done = bare_folder.cli("runs", check=False)
    assert done.returncode == 1 and "no trellis store" in done.stderr
    assert done.stderr.count("\n") == 1
