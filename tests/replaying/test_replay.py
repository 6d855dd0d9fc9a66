"""Hindsight logging end to end: real runs of two code versions in a real git repository, then
new log statements replayed into them from checkpoints, in separate processes."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import git

# A deterministic numpy training script. STEP_LOG (when set) gets a line per executed step, so a
# test can tell which steps a replay really ran.
VERSION_1 = '''
import os
import time
import numpy as np
import trellis

lr = trellis.arg("lr", 0.05)
epochs = trellis.arg("epochs", 6)
rng = np.random.default_rng(0)
X = rng.normal(size=(256, 4))
y = X @ np.array([1.0, -2.0, 0.5, 3.0])
w = np.zeros(4)
with trellis.checkpointing(w=w):
    for epoch in trellis.loop("epoch", range(epochs)):
        for step in trellis.loop("step", range(8)):
            rows = slice(step * 32, step * 32 + 32)
            grad = X[rows].T @ (X[rows] @ w - y[rows]) / 32
            w -= lr * grad
            time.sleep(0.003)  # a step takes time, so every epoch's checkpoint fits the budget
            if os.environ.get("STEP_LOG"):
                with open(os.environ["STEP_LOG"], "a") as steps:
                    steps.write(f"{epoch} {step}\\n")
            trellis.log("loss", float(np.mean((X[rows] @ w - y[rows]) ** 2)))
print("trained")
'''
# The second version adds label noise and logs the epoch's error.
VERSION_2 = VERSION_1.replace(
    "y = X @ np.array([1.0, -2.0, 0.5, 3.0])",
    "y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + rng.normal(scale=0.1, size=256)",
).replace(
    'print("trained")',
    'print("trained")\ntrellis.log("final_error", float(np.mean((X @ w - y) ** 2)))',
).replace(
    '            trellis.log("loss", float(np.mean((X[rows] @ w - y[rows]) ** 2)))\n',
    '            trellis.log("loss", float(np.mean((X[rows] @ w - y[rows]) ** 2)))\n'
    '        trellis.log("error", float(np.mean((X @ w - y) ** 2)))\n',
)
STEP_STATEMENT = '            trellis.log("grad_norm", float(np.linalg.norm(grad)))\n'
EPOCH_STATEMENT = '        trellis.log("weight_norm", float(np.linalg.norm(w)))\n'


def with_new_statements(source: str) -> str:
    """What a user would write: the step-level statement after the update, the epoch-level one
    after the step loop."""
    source = source.replace("            w -= lr * grad\n", "            w -= lr * grad\n" + STEP_STATEMENT)
    anchor = '            trellis.log("loss", float(np.mean((X[rows] @ w - y[rows]) ** 2)))\n'
    return source.replace(anchor, anchor + EPOCH_STATEMENT)


def commit(project, message: str) -> None:
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", message)


@pytest.fixture
def history(project):
    """Three runs: version 1 once, version 2 twice (two learning rates); every epoch checkpointed."""
    return _record_history(project)


@pytest.fixture
def shared_history(project, new_store, tmp_path):
    """The same runs, recorded into a store outside the project with its objects in a folder
    of their own, as a team shares them: (run ids, the store's settings)."""
    shared = {"TRELLIS_STORE": new_store, "TRELLIS_OBJECTS": str(tmp_path / "team-objects")}
    return _record_history(project, **shared), shared


def _record_history(project, **env: str) -> list[str]:
    project.write("train.py", VERSION_1)
    commit(project, "version 1")
    project.run("train.py", TRELLIS_CHECKPOINT_SHARE="1", **env)
    project.write("train.py", VERSION_2)
    commit(project, "version 2")
    project.run("train.py", TRELLIS_CHECKPOINT_SHARE="1", **env)
    project.run("train.py", "--lr", "0.02", TRELLIS_CHECKPOINT_SHARE="1", **env)
    database = _Database(project, env.get("TRELLIS_STORE"))
    runs = [uuid for (uuid,) in database.execute("SELECT uuid FROM runs ORDER BY id")]
    saved = database.execute("SELECT run, COUNT(DISTINCT idx) FROM checkpoints GROUP BY run ORDER BY run").fetchall()
    assert saved == [(1, 6), (2, 6), (3, 6)]
    project.write("train.py", with_new_statements(VERSION_2))
    return runs


class _Rows(list):
    def fetchone(self) -> tuple | None:
        return self[0] if self else None

    def fetchall(self) -> list[tuple]:
        return list(self)


class _Database:
    """The project's store, SQLite or PostgreSQL (``--store``), read as with ``sqlite3``."""

    def __init__(self, project, url: str | None = None) -> None:
        if url is None:
            self.store = project.store()
        else:
            from trellis.store.connection import open_store

            self.store = open_store(url, root=project.root, read_only=True)

    def execute(self, sql: str, params: tuple = ()) -> _Rows:
        return _Rows(self.store.execute(sql, params))


def frame(project, *names: str, **env: str):
    done = project.python(f"""
        import trellis
        print(trellis.dataframe({', '.join(map(repr, names))}).to_json(orient="records"))
    """, **env)
    return json.loads(done.stdout)


def by_run(rows: list[dict], run: str) -> list[dict]:
    return [row for row in rows if row["run_id"] == run]


def run_ids(project) -> list[str]:
    database = _Database(project)
    return [uuid for (uuid,) in database.execute("SELECT uuid FROM runs ORDER BY id")]


def test_replayed_values_equal_forward_runs_of_both_code_versions(project, history):
    first, second, third = history
    done = project.cli("replay", "grad_norm", "weight_norm", "--workers", "2", "--yes")
    assert "3 run(s)" in done.stdout and "failed" not in done.stdout
    assert "\r" not in done.stdout + done.stderr  # no progress bar where no terminal shows it
    replayed = frame(project, "loss", "grad_norm")
    replayed_epochs = frame(project, "weight_norm")

    # The references: each version with the statements from the start, run forward.
    project.run("train.py", TRELLIS_CHECKPOINT_SHARE="1")
    project.run("train.py", "--lr", "0.02", TRELLIS_CHECKPOINT_SHARE="1")
    project.write("train.py", with_new_statements(VERSION_1))
    project.run("train.py", TRELLIS_CHECKPOINT_SHARE="1")
    forward = frame(project, "loss", "grad_norm")
    forward_epochs = frame(project, "weight_norm")
    runs = run_ids(project)
    reference = {second: runs[3], third: runs[4], first: runs[5]}

    for original, copy in reference.items():
        ours, theirs = by_run(replayed, original), by_run(forward, copy)
        assert len(ours) == len(theirs) == 6 * 8
        for a, b in zip(ours, theirs):
            assert (a["epoch"], a["step"]) == (b["epoch"], b["step"])
            assert a["loss"] == b["loss"]
            assert a["grad_norm"] == b["grad_norm"]  # exactly, not approximately
        ours = [r["weight_norm"] for r in by_run(replayed_epochs, original)]
        theirs = [r["weight_norm"] for r in by_run(forward_epochs, copy)]
        assert ours == theirs and len(ours) == 6


def test_an_epoch_level_statement_executes_no_step(project, history, tmp_path):
    steps = tmp_path / "steps.txt"
    done = project.cli("replay", "weight_norm", "--yes", "--json", env={"STEP_LOG": str(steps)})
    report = json.loads(done.stdout)
    assert [run["values"] for run in report["runs"]] == [6, 6, 6]
    assert not steps.exists() or steps.read_text() == ""
    assert all(run["restores"] >= 6 for run in report["runs"])
    plan = project.cli("replay", "weight_norm", "--dry-run", "--force").stdout
    assert "inner loops restored" in plan
    code = project.cli("replay", "weight_norm", "--force", "--show-code", history[0][:8]).stdout
    assert code == VERSION_1.replace(
        '            trellis.log("loss", float(np.mean((X[rows] @ w - y[rows]) ** 2)))\n',
        '            trellis.log("loss", float(np.mean((X[rows] @ w - y[rows]) ** 2)))\n' + EPOCH_STATEMENT)


def test_where_narrows_and_a_second_replay_does_not_duplicate(project, history, tmp_path):
    steps = tmp_path / "steps.txt"
    second = history[1]
    project.cli("replay", "grad_norm", "--run", second, "--where", "epoch >= 4", "--yes",
                env={"STEP_LOG": str(steps)})
    executed = {tuple(map(int, line.split())) for line in steps.read_text().splitlines()}
    assert {epoch for epoch, _ in executed} == {4, 5}  # restored from the checkpoint after epoch 3
    values = [r for r in by_run(frame(project, "grad_norm"), second) if r["grad_norm"] is not None]
    assert sorted({r["epoch"] for r in values}) == [4, 5] and len(values) == 16

    again = project.cli("replay", "grad_norm", "--run", second, "--dry-run").stdout
    assert "replayed already" in again
    project.cli("replay", "grad_norm", "--run", second, "--where", "epoch >= 4", "--force", "--yes")
    database = _Database(project)
    (count,) = database.execute("SELECT COUNT(*) FROM logs WHERE name = 'grad_norm'").fetchone()
    assert count == 16
    (source,) = database.execute("SELECT DISTINCT source FROM logs WHERE name = 'grad_norm'").fetchone()
    assert source == "replay"
    # `trellis show` lists both replays of the run, with their times as timestamps
    replays = json.loads(project.cli("show", second, "--json").stdout)["replays"]
    assert [(r["names"], r["status"]) for r in replays] == [(["grad_norm"], "exact")] * 2
    assert all(datetime.fromisoformat(r["started"]) <= datetime.fromisoformat(r["ended"]) for r in replays)


def test_the_users_repository_is_untouched(project, history):
    def state() -> tuple:
        root = project.root
        return (git(root, "rev-parse", "HEAD"), git(root, "status", "--porcelain"),
                (root / ".git" / "index").read_bytes(), (root / "train.py").read_text(),
                git(root, "branch", "--list"))

    before = state()
    project.cli("replay", "grad_norm", "--workers", "2", "--yes")
    assert state() == before
    assert git(project.root, "worktree", "list").count("\n") == 1


def test_a_statement_before_or_after_the_loop_is_replayed_without_iterating(project, history, tmp_path):
    steps = tmp_path / "steps.txt"
    source = (project.root / "train.py").read_text()
    source = source.replace('print("trained")', 'print("trained")\ntrellis.log("final_norm", float(np.linalg.norm(w)))')
    source = source.replace("w = np.zeros(4)\n", 'w = np.zeros(4)\ntrellis.log("features", X.shape[1])\n')
    project.write("train.py", source)
    project.cli("replay", "final_norm", "features", "--yes", env={"STEP_LOG": str(steps)})
    assert not steps.exists() or steps.read_text() == ""
    rows = frame(project, "final_norm", "features")
    assert sorted(r["features"] for r in rows if r["features"] is not None) == [4, 4, 4]
    finals = [r["final_norm"] for r in rows if r["final_norm"] is not None]
    assert len(finals) == 3 and len(set(finals)) == 3  # each run's own final weights
    assert all(value > 0 for value in finals)  # restored from the last checkpoint, not zeros


def test_what_cannot_be_replayed_is_reported_and_nothing_is_changed(project, history):
    source = (project.root / "train.py").read_text()
    source = source.replace(EPOCH_STATEMENT, '        trellis.log("weight_norm", helper(w))\n')
    source = "def helper(w):\n    return float(abs(w).sum())\n" + source
    project.write("train.py", source)
    plan = project.cli("replay", "weight_norm", "--dry-run").stdout
    # helper() exists only in today's file: no old version can run the statement.
    assert plan.count("weight_norm skipped: cannot place it in this version: the new statement"
                      " uses helper, which this version does not define") == 3

    missing = project.cli("replay", "no_such_value", "--yes", check=False)
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines() == [
        "Error: no recorded script logs no_such_value today; add trellis.log('no_such_value', ...)"
        " to the script first, or name it with --file"]

    before = _Database(project).execute("SELECT COUNT(*) FROM logs").fetchone()
    source = source.replace(STEP_STATEMENT, '            trellis.log("grad_norm", 1 / (epoch - 3))\n')
    project.write("train.py", source)
    failing = project.cli("replay", "grad_norm", "--yes", check=False)
    assert failing.returncode == 1 and "ZeroDivisionError" in failing.stdout
    after = _Database(project).execute("SELECT COUNT(*) FROM logs").fetchone()
    assert after == before


def test_a_run_whose_snapshot_is_gone_is_skipped_with_the_reason(project, history):
    first = history[0]
    database = _Database(project)
    (commit_id,) = database.execute("SELECT git_commit FROM runs WHERE uuid = ?", (first,)).fetchone()
    git(project.root, "update-ref", "-d", f"refs/trellis/runs/{first}")
    git(project.root, "reflog", "expire", "--expire=now", "--all")
    git(project.root, "gc", "-q", "--prune=now")
    plan = project.cli("replay", "grad_norm", "--dry-run").stdout
    assert f"{first[:8]}  {commit_id[:8]}  skip: its code snapshot {commit_id[:8]} is gone" in plan
    assert "2 run(s)" in plan


def test_a_dask_cluster_of_worker_processes_replays_like_the_process_pool(project, shared_history):
    from distributed import LocalCluster

    _, shared = shared_history
    checkpoints = list(Path(shared["TRELLIS_OBJECTS"]).glob("*/*"))
    assert len(checkpoints) >= 6 and not (project.root / ".trellis" / "objects").exists()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        done = project.cli("replay", "grad_norm", "--workers", "2", "--executor",
                           cluster.scheduler_address.replace("tcp://", "dask://"), "--yes", "--json",
                           env=shared)
    report = json.loads(done.stdout)
    assert [run["status"] for run in report["runs"]] == ["exact"] * 3
    assert [run["values"] for run in report["runs"]] == [48] * 3
    values = frame(project, "loss", "grad_norm", **shared)  # the values are in the shared store
    assert sum(row["grad_norm"] is not None for row in values) == 3 * 48

    # The workers started without the variable the new statement reads: --env brings it along.
    source = (project.root / "train.py").read_text()
    project.write("train.py", source.replace(
        STEP_STATEMENT, '            trellis.log("grad_norm", float(os.environ["GRAD_SCALE"]))\n'))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        address = cluster.scheduler_address.replace("tcp://", "dask://")
        done = project.cli("replay", "grad_norm", "--force", "--executor", address, "--env", "GRAD_SCALE",
                           "--yes", "--json", env={**shared, "GRAD_SCALE": "2.5"})
    assert [run["values"] for run in json.loads(done.stdout)["runs"]] == [48] * 3
    scaled = [row["grad_norm"] for row in frame(project, "grad_norm", **shared)]
    assert scaled == [2.5] * 3 * 48
    missing = project.cli("replay", "grad_norm", "--force", "--env", "NOT_SET_ANYWHERE", "--yes",
                          check=False, env=shared)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "Error: --env NOT_SET_ANYWHERE: NOT_SET_ANYWHERE is not set here; give NOT_SET_ANYWHERE=VALUE")
