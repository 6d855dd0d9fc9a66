"""trellis reproduce of a notebook epoch: a run of its own kind, in the folders the original had,
whose header agrees with its verdict. A real kernel, run by `trellis run` in a worktree."""

from __future__ import annotations

import json

import pytest

import trellis
from tests.capture.test_notebook import notebook, trellis_run
from tests.conftest import git

pytestmark = pytest.mark.kernel


def test_a_reproduction_is_its_own_run_in_the_original_folders(project, monkeypatch):
    monkeypatch.chdir(project.root)
    (project.root / "models").mkdir()  # empty, so in no git snapshot
    notebook(project, "nb.ipynb", ["open('models/out.txt', 'w').write('x')",
                                   "import os\nflag = os.environ['ONLY_THE_FIRST_TIME']"])
    git(project.root, "add", "nb.ipynb")
    git(project.root, "commit", "-qm", "nb")
    monkeypatch.setenv("ONLY_THE_FIRST_TIME", "1")
    trellis_run(project, "nb.ipynb")
    monkeypatch.delenv("ONLY_THE_FIRST_TIME")  # the reproduction's second cell now fails

    from trellis.cli.rendering import reproduction as render

    report = trellis.reproduce("latest")
    header = render(report).splitlines()[0]
    assert "(1 of 2 cells failed)" in header and "(ok)" not in header
    assert not report["matched"]
    assert report["files"]["differences"] == []  # models/out.txt written, with the same content
    (failed,) = report["cells"]["differences"]
    assert (failed["execution"], failed["a"], failed["b"]) == (2, "ok", "error")
    assert "KeyError" in failed["error"]
    runs = trellis.query("SELECT uuid, kind, parent_run FROM runs ORDER BY started")
    assert runs["kind"].tolist() == ["notebook", "reproduction"]
    assert runs["parent_run"].notna().tolist() == [False, True]
    shown = json.loads(project.cli("notebook", "show", "nb.ipynb", "--json").stdout)
    assert [epoch["run_id"] for epoch in shown["epochs"]] == [runs["uuid"][0]]
    assert [e["status"] for e in shown["epochs"][0]["executions"]] == ["ok", "ok"]
