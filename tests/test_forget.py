"""trellis forget: a notebook's history or runs leave the store, after an export is offered."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import trellis
from tests.capture.test_notebook import notebook, trellis_run


def forget(project, *args, answers=""):
    return subprocess.run([sys.executable, "-m", "trellis.cli", "forget", *args], cwd=project.root,
                          input=answers, capture_output=True, text=True, env=project.env(), timeout=120)


@pytest.mark.kernel
def test_forget_a_notebook_after_exporting_it(project, monkeypatch):
    monkeypatch.chdir(project.root)
    notebook(project, "nb.ipynb", ["a = 1", "b = a + 1"])
    trellis_run(project, "nb.ipynb")
    project.write("other.py", "import trellis\ntrellis.log('x', 1)\n")
    project.run("other.py")
    before = trellis.query("SELECT COUNT(*) AS n FROM dependencies")["n"][0]
    assert before == 1

    refused = forget(project, "nb.ipynb")  # no answers: nothing happens
    assert refused.returncode == 1
    assert len(trellis.query("SELECT id FROM runs")) == 2

    done = forget(project, "nb.ipynb", answers="y\nsaved.json\ny\n")
    assert done.returncode == 0, done.stderr
    assert "this forgets 1 runs and their 2 executions" in done.stdout
    assert "forgot 1 runs, 2 executions" in done.stdout
    exported = json.loads((project.root / "saved.json").read_text())
    assert exported["format"] == "trellis-export/1" and len(exported["tables"]["steps"]["rows"]) == 2
    assert trellis.query("SELECT filename FROM runs")["filename"].tolist() == ["other.py"]
    for table in ("steps", "dependencies", "variables", "files", "modules"):
        assert trellis.query(f"SELECT COUNT(*) AS n FROM {table}")["n"][0] == 0, table
    assert project.cli("notebook", "show", "nb.ipynb", check=False).returncode == 1

    project.cli("import", "saved.json")  # the export brings it back
    shown = json.loads(project.cli("notebook", "show", "nb.ipynb", "--json").stdout)
    assert [e["defined"] for e in shown["epochs"][0]["executions"]] == [["a"], ["b"]]

    script = trellis.query("SELECT uuid FROM runs WHERE filename = 'other.py'")["uuid"][0]
    done = forget(project, script[:8], "--yes")
    assert done.returncode == 0 and "forgot 1 runs" in done.stdout
    assert trellis.query("SELECT filename FROM runs")["filename"].tolist() == ["nb.ipynb"]
    for table in ("logs", "log_names"):
        assert trellis.query(f"SELECT COUNT(*) AS n FROM {table}")["n"][0] == 0, table


def test_forget_from_python_counts_first_and_exports_what_it_removes(project, monkeypatch):
    monkeypatch.chdir(project.root)
    project.write("one.py", "import trellis\ntrellis.log('x', 1)\n")
    project.run("one.py")
    project.run("one.py")
    older = trellis.runs()[-1]["run_id"]
    assert trellis.forget(older[:8], dry_run=True) == {"runs": 1, "executions": 0}
    assert len(trellis.runs()) == 2  # counting changes nothing
    (project.root / "taken.json").write_text("{}")
    with pytest.raises(trellis.TrellisError, match="taken.json exists"):
        trellis.forget(older[:8], export_to=project.root / "taken.json")
    assert len(trellis.runs()) == 2
    trellis.forget(older[:8], export_to=project.root / "gone.json")
    assert older not in [run["run_id"] for run in trellis.runs()] and len(trellis.runs()) == 1
    assert trellis.import_runs(project.root / "gone.json")["imported"] == 1
    assert older in [run["run_id"] for run in trellis.runs()]
