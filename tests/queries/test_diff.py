"""trellis diff: runs, notebook epochs, and executions of one cell."""

from __future__ import annotations

import json

import pytest

import trellis
from tests.conftest import git


@pytest.fixture
def two_runs(project, monkeypatch, tmp_path):
    monkeypatch.chdir(project.root)
    project.write("data.csv", "1\n2\n")
    project.write("train.py", """
        import trellis
        lr = trellis.arg("lr", 0.1)
        rows = open("data.csv").read().split()
        for epoch in trellis.loop("epoch", range(3)):
            trellis.log("loss", 1.0 / (epoch + 1) * lr)
        trellis.log("rows", len(rows))
        open("out.txt", "w").write(str(lr))
    """)
    project.run("train.py")
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "v1")
    project.write("train.py", (project.root / "train.py").read_text().replace("range(3)", "range(4)"))
    project.write("data.csv", "1\n2\n3\n")
    extra = tmp_path / "site"
    info = extra / "extra_pkg-2.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: extra-pkg\nVersion: 2.0\n")
    project.run("train.py", "--lr", "0.5", PYTHONPATH=str(extra))
    runs = trellis.runs()
    return runs[1]["run_id"], runs[0]["run_id"]


def test_runs_differ_in_code_params_values_files_and_packages(two_runs, project):
    a, b = two_runs
    result = trellis.diff(a[:8], b[:8])
    assert "-for epoch in trellis.loop(\"epoch\", range(3)):" in result["code"]["diff"]
    # what the snapshots hold as data (named like data, or written by a run) is listed apart
    assert result["code"]["data_files"] == ["data.csv", "out.txt"]
    assert "b/data.csv" not in result["code"]["diff"] and "b/out.txt" not in result["code"]["diff"]
    assert result["params"]["changed"] == {"lr": {"a": 0.1, "b": 0.5}}
    loss = result["values"]["changed"]["loss"]
    assert loss["a"]["count"] == 3 and loss["b"]["count"] == 4
    assert loss["delta"] == pytest.approx(0.5 / 4 - 0.1 / 3)
    assert result["values"]["changed"]["rows"]["delta"] == 1
    assert list(result["files"]["read"]["changed"]) == ["data.csv"]
    assert list(result["files"]["write"]["changed"]) == ["out.txt"]
    assert result["environment"]["packages"]["added"] == {"extra-pkg": "2.0"}
    text = project.cli("diff", a[:8], b[:8]).stdout
    assert "params: lr: 0.1 -> 0.5" in text and "files read: data.csv changed" in text
    assert "packages: extra-pkg: added '2.0'" in text
    assert "data files in the snapshots: 2 changed (data.csv, out.txt)" in text
    assert json.loads(project.cli("diff", a[:8], b[:8], "--json").stdout)["kind"] == "runs"


def test_a_run_against_itself_is_the_same(two_runs):
    a, _ = two_runs
    result = trellis.diff(a, a)
    assert result["code"]["same"] and not result["params"]["changed"]
    assert not result["values"]["changed"] and result["environment"]["same"]


def test_mixed_kinds_and_unknown_ids_are_one_line(two_runs, project):
    a, _ = two_runs
    done = project.cli("diff", a[:8], f"{a[:8]}/1", check=False)
    assert done.returncode == 1 and "different kinds" in done.stderr and done.stderr.count("\n") == 1
    done = project.cli("diff", a[:8], "ffffffff", check=False)
    assert done.returncode == 1 and "no run id starts with 'ffffffff'" in done.stderr


@pytest.mark.kernel
def test_two_executions_of_one_cell_and_two_epochs(project, monkeypatch):
    from tests.capture.test_notebook import notebook, trellis_run

    monkeypatch.chdir(project.root)
    notebook(project, "nb.ipynb", ["x = 1", "print(x * 10)\nx * 10"])
    trellis_run(project, "nb.ipynb")
    notebook(project, "nb.ipynb", ["x = 2", "print(x * 10)\nx * 10"])
    trellis_run(project, "nb.ipynb")
    first, second = [r["run_id"][:8] for r in reversed(trellis.runs())]
    epochs = trellis.diff(first, second)
    assert list(epochs["code"]["cells"]) == ["cell-0"] and "+x = 2" in epochs["code"]["cells"]["cell-0"]
    cell = trellis.diff(f"{first}/2", f"{second}/2")
    assert cell["code"]["same"]
    (change,) = [c for c in cell["outputs"] if c["mime"] == "text/plain"]
    assert "-10" in change["diff"] and "+20" in change["diff"]
    assert cell["variables"] == {"changed": {}, "added": {}, "removed": {}}
    defined = trellis.diff(f"{first}/1", f"{second}/1")
    assert defined["variables"]["changed"]["x"]["a"]["value"] == "1"



def test_values_at_the_edges_of_floats_are_summarised_truly(project, monkeypatch):
    """Sums of values near the largest float overflow (an error on PostgreSQL, infinity on
    SQLite); the mean is still theirs, and a NaN logged in both runs is no change."""
    monkeypatch.chdir(project.root)
    project.write("edge.py", """
        import trellis
        last = trellis.arg("last", -2e307)
        for value in (1e308, 1.5e308, last):
            trellis.log("huge", value)
        trellis.log("missing", float("nan"))
        trellis.log("nested", [float("nan"), {"a": 1}])
    """)
    project.run("edge.py")
    project.run("edge.py")
    project.run("edge.py", "--last", "1.7e308")
    third, second, first = (run["run_id"] for run in trellis.runs())
    for a, b in ((first, first), (first, second)):
        values = trellis.diff(a, b)["values"]
        assert values["changed"] == {} and values["same"] == ["huge", "missing", "nested"]
    changed = trellis.diff(first, third)["values"]["changed"]
    assert list(changed) == ["huge"]
    assert changed["huge"]["a"]["mean"] == pytest.approx(1e308 / 3 + 1.5e308 / 3 - 2e307 / 3)
    assert changed["huge"]["b"]["mean"] == pytest.approx(1e308 / 3 + 1.5e308 / 3 + 1.7e308 / 3)
    assert changed["huge"]["b"]["max"] == 1.7e308 and changed["huge"]["delta"] == 1.7e308 + 2e307
