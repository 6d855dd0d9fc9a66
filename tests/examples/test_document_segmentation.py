"""The document segmentation loop, run through make as a user runs it."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import trellis
from tests.conftest import git

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "document_segmentation"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def loop_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("segmentation") / "project"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("raw", "features", "model", ".trellis"))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "example")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("TRELLIS_", "MAKE"))}
    env["TRELLIS_PROGRESS"] = "0"
    done = subprocess.run(
        ["make", "loop", f"PYTHON={sys.executable}", f"PORT={free_port()}"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return root, done.stdout


@pytest.fixture
def loop(loop_project, monkeypatch):
    root, output = loop_project
    monkeypatch.chdir(root)
    return root, output


def runs_by_target():
    table = trellis.query(
        "SELECT uuid, filename, build_target, build, status FROM runs ORDER BY started, id"
    )
    return [dict(row) for _, row in table.iterrows()]


def test_every_stage_records_its_make_target_and_prerequisites(loop):
    runs = runs_by_target()
    assert [(r["filename"], r["build_target"]) for r in runs] == [
        ("featurize.py", "featurize"), ("train.py", "train"), ("infer.py", "infer"),
        ("app.py", "feedback"), ("train.py", "train"), ("infer.py", "infer"),
    ]
    builds = [json.loads(r["build"]) for r in runs]
    assert builds[0]["prerequisites"] == ["featurize.py", "raw/labels.json"]
    assert builds[1]["prerequisites"] == ["train.py", "features/pages.npz"]
    assert all(b["kind"] == "make" for b in builds)
    assert [r["status"] for r in runs if r["filename"] != "app.py"] == ["ok"] * 5


def test_second_round_trains_on_the_confirmed_labels(loop):
    rounds = trellis.dataframe("training_pages", "feedback_labels")
    assert len(rounds) == 2
    first, second = rounds.iloc[0], rounds.iloc[1]
    assert first["feedback_labels"] == 0
    confirmed = trellis.dataframe("confirmed_first_page")
    assert second["feedback_labels"] == len(confirmed) > 0
    assert second["training_pages"] > first["training_pages"]
    inputs = trellis.query(
        "SELECT r.filename AS reader, s.filename AS source, i.detail FROM run_inputs i"
        " JOIN runs r ON r.id = i.run JOIN runs s ON s.uuid = i.source"
    )
    assert ("train.py", "app.py", "confirmed_first_page") in set(map(tuple, inputs.values.tolist()))
    # the confirmations are the truth: a document's first page is its first page
    assert (confirmed["confirmed_first_page"] == (confirmed["page"] == 0)).all()


def test_infer_used_the_best_checkpoint_there_was(loop):
    scores = trellis.dataframe("acc", "recall")
    checkpointed = trellis.query(
        "SELECT r.uuid AS run_id, c.idx AS epoch FROM checkpoints c JOIN runs r ON r.id = c.run"
    )
    best = scores.merge(checkpointed, on=["run_id", "epoch"]).sort_values(["recall", "acc", "tstamp"]).iloc[-1]
    chosen = trellis.dataframe("chosen_run", "chosen_epoch").iloc[-1]
    assert (chosen["chosen_run"], chosen["chosen_epoch"]) == (best["run_id"], best["epoch"])


def test_lineage_of_the_model_reaches_the_labels_and_the_raw_documents(loop):
    graph = trellis.lineage("model/model.npz")
    files = {n["path"] for n in graph["nodes"] if n["kind"] == "file"}
    scripts = {n["filename"] for n in graph["nodes"] if n["kind"] == "run"}
    assert {"app.py", "train.py", "featurize.py", "infer.py"} <= scripts
    assert "raw/labels.json" in files and "features/pages.npz" in files
    assert sum(path.startswith("raw/doc_") for path in files) == 200
    relations = {e["relation"] for e in graph["edges"]}
    assert "used dataframe (confirmed_first_page)" in relations
    assert "used checkpoint (model)" in relations


def test_report_prints_the_recall_of_both_rounds(loop):
    _, output = loop
    lines = output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:2] == ["run_id", "round"])
    rows = [line.split() for line in lines[at + 1:at + 3]]
    recall = trellis.dataframe("recall").groupby("run_id", sort=False)["recall"].last()
    assert [row[1] for row in rows] == ["1", "2"]
    assert [row[0] for row in rows] == recall.index.tolist()
    assert [float(row[-1]) for row in rows] == pytest.approx(recall.tolist(), abs=1e-6)
