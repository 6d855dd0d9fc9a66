"""trellis reproduce: again from the snapshot, in a worktree, then compared."""

from __future__ import annotations

import json

import pytest

import trellis
from tests.conftest import git


@pytest.fixture
def in_project(project, monkeypatch):
    monkeypatch.chdir(project.root)
    return project


def test_a_deterministic_script_reproduces_and_the_tree_is_untouched(in_project):
    in_project.write(".gitignore", "data/\n")
    in_project.write("data/input.txt", "3\n4\n")
    in_project.write("train.py", """
        import trellis
        scale = trellis.arg("scale", 1.0)
        numbers = [float(x) for x in open("data/input.txt").read().split()]
        for i in trellis.loop("i", range(len(numbers))):
            trellis.log("value", numbers[i] * scale)
        open("result.txt", "w").write(str(sum(numbers) * scale))
    """)
    in_project.run("train.py", "--scale", "2")
    before = (git(in_project.root, "status", "--porcelain"), git(in_project.root, "rev-parse", "HEAD"),
              (in_project.root / ".git/index").read_bytes())
    done = in_project.cli("reproduce", "latest", "--json")
    report = json.loads(done.stdout)
    assert report["matched"] and report["inputs_copied"] == ["data/input.txt"]
    assert report["values"]["compared"] == 1 and report["files"]["compared"] == 1
    after = (git(in_project.root, "status", "--porcelain"), git(in_project.root, "rev-parse", "HEAD"),
             (in_project.root / ".git/index").read_bytes())
    assert after == before
    assert "tree" not in git(in_project.root, "worktree", "list")
    runs = trellis.query("SELECT uuid, parent_run, argv FROM runs ORDER BY started")
    assert runs["parent_run"].isna().tolist() == [True, False]
    assert json.loads(runs["argv"][1]) == ["train.py", "--scale", "2"]


def test_unseeded_randomness_does_not_reproduce_and_is_named(in_project):
    in_project.write("noisy.py", """
        import random
        import trellis
        trellis.log("draw", random.random())
    """)
    in_project.run("noisy.py")
    done = in_project.cli("reproduce", "latest", check=False)
    assert done.returncode == 1
    assert "values: 1 differ" in done.stdout and "not reproduced" in done.stdout
    assert "random numbers without setting a seed" in done.stdout


@pytest.mark.kernel
def test_a_notebook_epoch_reproduces_in_its_execution_order(in_project):
    from tests.capture.test_notebook import notebook, trellis_run

    notebook(in_project, "nb.ipynb", ["x = 1", "x = x + 1\nx"])
    git(in_project.root, "add", "nb.ipynb")
    git(in_project.root, "commit", "-qm", "nb")
    trellis_run(in_project, "nb.ipynb")
    report = trellis.reproduce("latest")
    assert report["matched"], report
    assert report["outputs"]["compared"] == 2
    epochs = trellis.query("SELECT kind, filename, parent_run FROM runs ORDER BY started")
    assert epochs["filename"].tolist() == ["nb.ipynb", "nb.ipynb"] and epochs["parent_run"].notna().tolist() == [False, True]


def test_runs_outside_git_cannot_be_reproduced(bare_folder, monkeypatch):
    monkeypatch.chdir(bare_folder.root)
    bare_folder.write("plain.py", "import trellis\ntrellis.log('v', 1)\n")
    bare_folder.run("plain.py")
    done = bare_folder.cli("reproduce", "latest", check=False)
    assert done.returncode == 1 and "recorded outside git" in done.stderr and done.stderr.count("\n") == 1


def test_a_run_whose_snapshot_is_gone_says_how_to_get_it_back(in_project):
    in_project.write("plain.py", "import trellis\ntrellis.log('v', 1)\n")
    in_project.run("plain.py")
    uuid = trellis.runs()[0]["run_id"]
    git(in_project.root, "update-ref", "-d", f"refs/trellis/runs/{uuid}")
    git(in_project.root, "reflog", "expire", "--expire=now", "--all")
    git(in_project.root, "gc", "-q", "--prune=now")
    done = in_project.cli("reproduce", "latest", check=False)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert f"run {uuid[:8]} cannot be reproduced: its code snapshot" in done.stderr
    assert "git fetch REMOTE 'refs/trellis/runs/*:refs/trellis/runs/*'" in done.stderr
    assert "tree" not in git(in_project.root, "worktree", "list")
