"""trellis export --format json / trellis import: lossless, idempotent, all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

import trellis
from tests.conftest import Project, git


@pytest.fixture
def source(project, monkeypatch):
    monkeypatch.chdir(project.root)
    project.write("data.csv", "1\n2\n")
    project.write("train.py", """
        import time
        import numpy as np, trellis
        lr = trellis.arg("lr", 0.1)
        weights = np.zeros(3)
        rows = open("data.csv").read().split()
        with trellis.checkpointing(weights=weights):
            for epoch in trellis.loop("epoch", ["a", "b"]):
                weights += lr
                time.sleep(0.05)  # an epoch outlasts its checkpoint, so every epoch is saved
                for step in trellis.loop("step", range(2)):
                    trellis.log("loss", 1.0 / (step + 1))
                trellis.log("tag", {"epoch": epoch})
        np.save("weights.npy", weights)
    """)
    project.run("train.py", "--lr", "0.5", TRELLIS_CHECKPOINT_SHARE="1")
    return project


def colleague(tmp_path):
    other = Project(tmp_path / "colleague")
    other.root.mkdir()
    git(other.root, "init", "-q")
    return other


def test_round_trip_into_another_store_is_lossless(source, tmp_path, monkeypatch):
    exported = tmp_path / "runs.json"
    source.cli("export", "--all", "-o", str(exported))
    frame = trellis.dataframe("loss", "tag")
    runs = trellis.dataframe()
    graph = trellis.lineage("weights.npy")
    other = colleague(tmp_path)
    assert "imported 1 runs (0 already here)" in other.cli("import", str(exported)).stdout
    assert "imported 0 runs (1 already here)" in other.cli("import", str(exported)).stdout
    monkeypatch.chdir(other.root)
    assert trellis.dataframe("loss", "tag").equals(frame)
    assert trellis.dataframe().drop(columns="duration").equals(runs.drop(columns="duration"))
    assert trellis.lineage("weights.npy") == graph
    assert trellis.load_checkpoint("latest", 1)["weights"].tolist() == [1.0, 1.0, 1.0]
    document = json.loads(exported.read_text())
    checkpoints = document["tables"]["checkpoints"]
    named = {row[checkpoints["columns"].index("name")] for row in checkpoints["rows"]}
    assert named == {"weights", "random-state"}  # the generators' states travel with the weights
    stored = {row[checkpoints["columns"].index("object")] for row in checkpoints["rows"]}
    assert document["format"] == "trellis-export/1" and set(document["objects"]) == stored
    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "json-export.schema.json").read_text())
    jsonschema.validate(document, schema)


def test_errors_are_one_line_and_a_failed_import_changes_nothing(source, tmp_path):
    exported = tmp_path / "runs.json"
    source.cli("export", "latest", "-o", str(exported))
    done = source.cli("export", "latest", "-o", str(exported), check=False)
    assert done.returncode == 1 and "exists; add --force" in done.stderr
    other = colleague(tmp_path)
    (tmp_path / "bad.json").write_text("{broken")
    done = other.cli("import", str(tmp_path / "bad.json"), check=False)
    assert done.returncode == 1 and "is not valid JSON" in done.stderr and done.stderr.count("\n") == 1
    document = json.loads(exported.read_text())
    document["tables"]["logs"]["rows"][-1].append("one column too many")
    (tmp_path / "broken.json").write_text(json.dumps(document))
    done = other.cli("import", str(tmp_path / "broken.json"), check=False)
    assert done.returncode != 0
    other.cli("import", str(exported))  # the store was left unchanged: the good export still imports whole
    runs = json.loads(other.cli("runs", "--json").stdout)
    assert len(runs) == 1


def test_replays_travel_with_their_runs_even_into_a_copy_made_before_them(source, tmp_path, monkeypatch):
    other = colleague(tmp_path)
    before = tmp_path / "before.json"
    source.cli("export", "--all", "-o", str(before))
    other.cli("import", str(before))

    logged = '        trellis.log("tag", {"epoch": epoch})\n'
    today = (source.root / "train.py").read_text()
    source.write("train.py", today.replace(logged, logged + '        trellis.log("wsum", float(weights.sum()))\n'))
    source.cli("replay", "wsum", "--yes")
    monkeypatch.chdir(source.root)
    replayed = trellis.dataframe("loss", "wsum")
    assert replayed["wsum"].dropna().tolist() == [1.5, 3.0]
    after = tmp_path / "after.json"
    source.cli("export", "--all", "-o", str(after))
    document = json.loads(after.read_text())
    assert len(document["tables"]["replays"]["rows"]) == 1

    third = Project(tmp_path / "third")
    third.root.mkdir()
    assert "imported 1 runs" in third.cli("import", str(after)).stdout
    assert "imported 0 runs (1 already here, 1 replays into them added)" in other.cli("import", str(after)).stdout
    assert "replays" not in other.cli("import", str(after)).stdout
    for copy in (third, other):
        monkeypatch.chdir(copy.root)
        assert trellis.dataframe("loss", "wsum").equals(replayed)
        shown = trellis.query("SELECT names, status, stored FROM replays")
        assert shown.values.tolist() == [['["wsum"]', "exact", 2]]


def test_export_stays_the_function_after_its_formats_are_loaded(source, monkeypatch):
    monkeypatch.chdir(source.root)
    first = trellis.export(everything=True)
    assert callable(trellis.export)  # loading the writers must not replace the function by a module
    assert trellis.export(everything=True, format="turtle") and json.loads(first)["tables"]["runs"]["rows"]
