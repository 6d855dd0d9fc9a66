"""How a run starts and ends: status, errors, signals, kill -9, snapshots, streams, environment."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

import trellis
from tests.conftest import git, log_from_processes


@pytest.fixture
def in_project(project, monkeypatch):
    monkeypatch.chdir(project.root)
    return project


def runs(project):
    return trellis.query(
        "SELECT uuid, status, error, filename, argv, git_commit, git_ref, git, build, build_target,"
        " environment_id, stdout, stderr, ended, problems FROM runs ORDER BY started"
    )


def test_import_alone_records_a_complete_run(in_project):
    in_project.write("empty.py", "import trellis\nprint('hello')\n")
    done = in_project.run("empty.py", "--flag", "x")
    assert done.stdout == "hello\n"
    (row,) = runs(in_project).to_dict("records")
    assert len(row["uuid"]) == 36 and row["status"] == "ok" and row["ended"] is not None
    assert row["filename"] == "empty.py"
    assert json.loads(row["argv"])[1:] == ["--flag", "x"]
    assert row["stdout"] == "hello\n"
    assert row["environment_id"] is not None and row["problems"] is None
    build = json.loads(row["build"])
    assert build["kind"] == "command"


def test_snapshot_leaves_the_users_repository_untouched(in_project):
    root = in_project.root
    in_project.write("train.py", "import trellis\ntrellis.log('x', 1)\n")
    in_project.write("data/notes.txt", "untracked but not ignored\n")
    in_project.write(".gitignore", "secret.bin\n")
    git(root, "add", ".gitignore")
    (root / "secret.bin").write_text("ignored")
    before = (
        git(root, "status", "--porcelain"), (root / ".git/index").read_bytes(),
        git(root, "rev-parse", "HEAD"), (root / ".git/HEAD").read_text(), git(root, "branch"),
    )
    in_project.run("train.py")
    after = (
        git(root, "status", "--porcelain"), (root / ".git/index").read_bytes(),
        git(root, "rev-parse", "HEAD"), (root / ".git/HEAD").read_text(), git(root, "branch"),
    )
    assert after == before
    (row,) = runs(in_project).to_dict("records")
    assert row["git_ref"].startswith("refs/trellis/")
    files = git(root, "ls-tree", "-r", "--name-only", row["git_commit"]).split()
    assert "train.py" in files and "data/notes.txt" in files
    assert "secret.bin" not in files and not any(f.startswith(".trellis") for f in files)
    assert git(root, "show", f"{row['git_commit']}:train.py") == "import trellis\ntrellis.log('x', 1)\n"
    assert ".trellis" not in (root / ".gitignore").read_text()
    assert "/.trellis/" in (root / ".git/info/exclude").read_text()


def test_concurrent_runs_each_get_their_own_snapshot(in_project):
    in_project.write("job.py", "import trellis, sys\ntrellis.log('job', int(sys.argv[1]))\n")
    processes = [
        subprocess.Popen([sys.executable, "job.py", str(i)], cwd=in_project.root, env=in_project.env())
        for i in range(4)
    ]
    assert [p.wait(120) for p in processes] == [0] * 4
    table = runs(in_project)
    assert len(table) == 4 and table["git_ref"].nunique() == 4
    for ref in table["git_ref"]:
        git(in_project.root, "rev-parse", "--verify", ref)


def test_a_run_outside_git_works(bare_folder, monkeypatch):
    monkeypatch.chdir(bare_folder.root)
    bare_folder.write("plain.py", "import trellis\ntrellis.log('v', 1.5)\n")
    bare_folder.run("plain.py")
    (row,) = runs(bare_folder).to_dict("records")
    assert row["status"] == "ok" and row["git_commit"] is None
    assert json.loads(row["git"]) == {"repository": None}
    assert trellis.dataframe("v")["v"].tolist() == [1.5]
    assert trellis.dataframe("v")["projid"][0] == "nogit"


def test_an_uncaught_exception_marks_the_run_failed(in_project):
    in_project.write("crash.py", """
        import trellis
        trellis.log("before", 1)
        raise RuntimeError("boom")
    """)
    done = in_project.run("crash.py", check=False)
    assert done.returncode == 1 and "RuntimeError: boom" in done.stderr
    (row,) = runs(in_project).to_dict("records")
    assert row["status"] == "failed" and "RuntimeError: boom" in row["error"]
    assert "RuntimeError: boom" in row["stderr"]
    assert trellis.dataframe("before")["before"].tolist() == [1]


def test_sigterm_and_ctrl_c_mark_the_run_interrupted(in_project):
    in_project.write("waits.py", """
        import sys, time, trellis
        for i in trellis.loop("tick", range(1000)):
            trellis.log("i", i)
            if i == 3:
                print("ready", flush=True)
            time.sleep(0.01)
    """)
    for sent in (signal.SIGTERM, signal.SIGINT):
        process = subprocess.Popen(
            [sys.executable, "waits.py"], cwd=in_project.root, env=in_project.env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(sent)
        process.wait(60)
        assert process.returncode != 0
    table = runs(in_project)
    assert table["status"].tolist() == ["interrupted", "interrupted"]
    counts = trellis.query("SELECT run, COUNT(*) AS n FROM logs GROUP BY run")["n"]
    assert (counts >= 4).all()


def test_kill_9_leaves_a_readable_store_with_flushed_values(in_project):
    in_project.write("killed.py", """
        import time, trellis
        for i in trellis.loop("tick", range(100000)):
            trellis.log("i", i)
            if i == 50:
                trellis.commit()
                print("committed", flush=True)
            time.sleep(0.001)
    """)
    process = subprocess.Popen(
        [sys.executable, "killed.py"], cwd=in_project.root, env=in_project.env(TRELLIS_FLUSH_SECONDS="0.2"),
        stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout.readline().strip() == "committed"
    time.sleep(0.5)
    process.kill()
    process.wait(30)
    values = trellis.dataframe("i")["i"].tolist()
    assert values[:51] == list(range(51)) and values == list(range(len(values)))
    assert runs(in_project)["status"].tolist() == ["running"]
    in_project.write("next.py", "import trellis\n")
    in_project.run("next.py")
    assert runs(in_project)["status"].tolist() == ["interrupted", "ok"]


def test_eight_processes_log_into_one_store_without_loss(in_project):
    log_from_processes(in_project, 8, 10_000, timeout=240, TRELLIS_FLUSH_SECONDS="0.1")
    frame = trellis.dataframe("value")
    assert len(frame) == 80000
    assert sorted(frame["value"]) == sorted(w * 1_000_000 + i for w in range(8) for i in range(10000))
    assert frame["run_id"].nunique() == 8


def test_environment_is_stored_once_per_distinct_content(in_project):
    in_project.write("env.py", "import trellis\n")
    in_project.run("env.py")
    in_project.run("env.py")
    table = runs(in_project)
    assert table["environment_id"].nunique() == 1
    data = json.loads(trellis.query("SELECT data FROM environments")["data"][0])
    assert data["packages"]["trellis"] == trellis.__version__
    assert "HOME" not in json.dumps(data.get("env", {}))


def test_build_context_under_make(in_project):
    in_project.write("train.py", "import trellis\ntrellis.log('trained', 1)\n")
    in_project.write("data.csv", "x\n1\n")
    in_project.write("Makefile", f"""
        model.txt: train.py data.csv
        \t{sys.executable} train.py --data data.csv
        \ttouch model.txt
    """.replace("        ", ""))
    done = subprocess.run(["make", "model.txt"], cwd=in_project.root, env=in_project.env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (row,) = runs(in_project).to_dict("records")
    build = json.loads(row["build"])
    assert row["build_target"] == "model.txt"
    assert build["kind"] == "make" and build["prerequisites"] == ["train.py", "data.csv"]


def test_importing_trellis_from_a_library_or_cli_does_not_start_a_run(in_project):
    in_project.write("lib/helper.py", "import trellis\n")
    in_project.write("main.py", "import sys; sys.path.insert(0, 'lib'); import helper\n")
    in_project.run("main.py")
    in_project.python("import trellis")
    with pytest.raises(trellis.StoreError, match="no trellis store"):
        in_project.store()
    check = in_project.python("import sys, trellis; print(sorted(m for m in ('pandas', 'numpy', 'sqlite3', 'torch') if m in sys.modules))")
    assert check.stdout.strip() == "[]"


def test_a_library_import_starts_the_run_at_the_first_call(in_project):
    in_project.write("lib/helper.py", "import trellis\ndef go():\n    trellis.log('from_lib', 1)\n")
    in_project.write("main.py", "import sys; sys.path.insert(0, 'lib'); import helper; helper.go()\n")
    in_project.run("main.py")
    frame = trellis.dataframe("from_lib")
    assert frame["filename"].tolist() == ["main.py"]


def test_an_unwritable_store_warns_once_and_the_script_finishes(in_project):
    blocker = in_project.root / "blocked"
    blocker.write_text("a file where a folder should be")
    in_project.write("robust.py", """
        import trellis
        for i in trellis.loop("i", range(3)):
            trellis.log("v", i)
        trellis.commit()
        print("finished")
    """)
    done = in_project.run("robust.py", TRELLIS_STORE=str(blocker / "store"))
    assert done.stdout.strip() == "finished"
    assert done.stderr.count("trellis could not record") == 1
