"""A shared store: runs recorded offline pushed later with their objects, pulled back, and
objects kept in an S3-compatible object store (moto's server, on loopback).

The shared store is a PostgreSQL database under ``--store=postgresql``, else a SQLite file in a
folder standing for a shared one; the project's own store is its ``.trellis/`` folder.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import trellis

from tests.conftest import git
from trellis.store.objects import object_path

SCRIPT = """
import numpy as np, os, sys, time, trellis
weights = np.zeros(4)
with trellis.checkpointing(weights=weights):
    for epoch in trellis.loop("epoch", range(3)):
        time.sleep(float(os.environ.get("EPOCH_SECONDS", "0")))  # long enough for its checkpoint
        weights += float(sys.argv[1])
        trellis.log("loss", float(sys.argv[1]) / (epoch + 1))
"""


# epochs long enough that the checkpoint of every one fits in their time
EVERY_CHECKPOINT = {"TRELLIS_CHECKPOINT_SHARE": "1", "EPOCH_SECONDS": "0.3"}


@pytest.fixture
def shared(new_store) -> str:
    return new_store


@pytest.fixture
def team_objects(tmp_path) -> str:
    """A folder standing for one every machine mounts."""
    return str(tmp_path / "team-objects")


def _local(project) -> dict[str, str]:
    return {"TRELLIS_STORE": str(project.root / ".trellis"), **EVERY_CHECKPOINT}


def _objects(project, store: str, name: str = "%") -> int:
    """Distinct objects of the store's checkpoints (of entries named like ``name``)."""
    done = project.python(f"""
        import trellis
        print(trellis.query("SELECT COUNT(DISTINCT object) AS n FROM checkpoints WHERE name LIKE '{name}'")["n"][0])
    """, TRELLIS_STORE=store)
    return int(done.stdout)


def _frame(project, store: str) -> list[tuple]:
    done = project.python(f"""
        import json, trellis
        frame = trellis.dataframe("loss")
        print(json.dumps(sorted(zip(frame["run_id"], frame["epoch"].tolist(), frame["loss"].tolist()))))
    """, TRELLIS_STORE=store)
    return [tuple(row) for row in __import__("json").loads(done.stdout)]


def test_push_uploads_offline_runs_with_their_objects_once(project, shared, team_objects, monkeypatch):
    project.write("train.py", SCRIPT)
    project.run("train.py", "1", **_local(project))
    project.run("train.py", "2", **_local(project))
    local = _frame(project, str(project.root / ".trellis"))
    assert len(local) == 6

    assert _objects(project, str(project.root / ".trellis"), "weights") == 5  # 1, 2, 3 and 2, 4, 6: once each
    objects = _objects(project, str(project.root / ".trellis"))  # and the generators' states
    first = project.cli("push", shared, "--objects", team_objects)
    assert f"pushed 2 runs, {objects} objects" in first.stdout
    assert _frame(project, shared) == local  # the same uuids, coordinates and values
    again = project.cli("push", shared, "--objects", team_objects)
    assert "pushed 0 runs, 0 objects" in again.stdout and "2 already there" in again.stdout
    assert _frame(project, shared) == local

    project.run("train.py", "3", **_local(project))
    third = project.cli("push", shared, "--objects", team_objects)
    assert "pushed 1 runs" in third.stdout
    assert len(_frame(project, shared)) == 9

    monkeypatch.chdir(project.root)
    monkeypatch.setenv("TRELLIS_STORE", shared)
    monkeypatch.setenv("TRELLIS_OBJECTS", team_objects)
    run = trellis.dataframe("loss")["run_id"].iloc[-1]
    restored = np.zeros(4)
    trellis.load_checkpoint(run, 2, weights=restored)  # from the objects pushed with the run
    assert restored.tolist() == [9.0] * 4


def test_pull_copies_this_projects_runs_into_the_local_store(project, shared, team_objects):
    project.write("train.py", SCRIPT)
    project.run("train.py", "5", TRELLIS_STORE=shared, TRELLIS_OBJECTS=team_objects,
                **EVERY_CHECKPOINT)
    objects = _objects(project, shared)
    assert _objects(project, shared, "weights") == 3
    assert project.cli("pull", shared, "--objects", team_objects).stdout.startswith(f"pulled 1 runs, {objects} objects")
    assert _frame(project, str(project.root / ".trellis")) == _frame(project, shared)
    assert project.cli("pull", shared, "--objects", team_objects).stdout.startswith("pulled 0 runs")
    shown = project.python("""
        import numpy as np, trellis
        w = np.zeros(4)
        trellis.load_checkpoint("latest", 1, weights=w)
        print(w.tolist())
    """, **_local(project))
    assert shown.stdout.strip() == "[10.0, 10.0, 10.0, 10.0]"


def _replayed(project, store: str) -> tuple[list[tuple], list[tuple]]:
    """(run, epoch, total) of the replayed values, and (run, names, status) of the replays."""
    done = project.python("""
        import json, trellis
        values = trellis.query(
            "SELECT runs.uuid, iterations.idx + logs.iteration - iterations.id AS idx, logs.float_value"
            " FROM logs JOIN runs ON runs.id = logs.run JOIN iterations"
            " ON logs.iteration BETWEEN iterations.id AND iterations.id + iterations.count - 1"
            " WHERE logs.source = 'replay' ORDER BY runs.uuid, idx")
        replays = trellis.query(
            "SELECT runs.uuid, replays.names, replays.status, replays.code FROM replays"
            " JOIN runs ON runs.id = replays.run ORDER BY runs.uuid, replays.started")
        print(json.dumps([values.values.tolist(), replays.values.tolist()]))
    """, TRELLIS_STORE=store)
    values, replays = __import__("json").loads(done.stdout)
    return [tuple(v) for v in values], [tuple(r) for r in replays]


def test_values_replayed_after_a_push_follow_the_run_on_the_next_push(project, shared, team_objects):
    project.write("train.py", SCRIPT)
    git(project.root, "add", "train.py")
    git(project.root, "commit", "-q", "-m", "train")
    project.run("train.py", "1", **_local(project))
    assert "pushed 1 runs" in project.cli("push", shared, "--objects", team_objects).stdout

    logged = '        trellis.log("loss", float(sys.argv[1]) / (epoch + 1))\n'
    project.write("train.py", SCRIPT.replace(logged, logged + '        trellis.log("total", float(weights.sum()))\n'))
    project.cli("replay", "total", "--yes", env=_local(project))
    local_values, local_replays = _replayed(project, str(project.root / ".trellis"))
    assert [total for _, _, total in local_values] == [4.0, 8.0, 12.0]
    assert len(local_replays) == 1 and local_replays[0][1:3] == ('["total"]', "exact")

    pushed = project.cli("push", shared, "--objects", team_objects).stdout
    assert "pushed 0 runs" in pushed and "1 replays into runs already there" in pushed
    assert _replayed(project, shared) == (local_values, local_replays)
    assert _frame(project, shared) == _frame(project, str(project.root / ".trellis"))
    code = object_path(Path(team_objects), local_replays[0][3]).read_text()  # the patched source went too
    assert 'trellis.log("total", float(weights.sum()))' in code

    again = project.cli("push", shared, "--objects", team_objects).stdout
    assert "replays" not in again and "1 already there" in again
    assert _replayed(project, shared) == (local_values, local_replays)  # nothing twice


def test_push_without_a_shared_store_says_what_to_do(project):
    project.write("train.py", SCRIPT)
    project.run("train.py", "1", **_local(project))
    done = project.cli("push", check=False, env=_local(project))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "Error: name the shared store, e.g. postgresql+psycopg://host/trellis (or set it once with"
        " `trellis config store URL`)")


def test_config_store_makes_the_project_record_there(project, shared):
    project.write("train.py", SCRIPT)
    assert project.cli("config", "store", shared).stdout.strip() == f"store: {shared}"
    listed = project.cli("config").stdout
    assert f"store: {shared}" in listed and "objects: (not set)" in listed
    env = {k: v for k, v in project.env().items() if k != "TRELLIS_STORE"}
    subprocess.run([sys.executable, "train.py", "4"], cwd=project.root, env=env, check=True, timeout=240)
    assert len(_frame(project, shared)) == 3
    project.cli("config", "store", "--unset")
    assert "store: (not set)" in project.cli("config").stdout


# -- objects in an S3-compatible object store --------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server in its own process on a loopback port, with credentials it accepts."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("moto's S3 server did not start")
            time.sleep(0.2)
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    yield env
    server.kill()
    server.wait(30)


def _bucket(s3: dict[str, str], name: str):
    import boto3

    client = boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=name)
    return client


def test_a_shared_store_keeps_checkpoints_in_s3(project, shared, s3):
    client = _bucket(s3, "team-checkpoints")
    project.write("train.py", SCRIPT)
    objects = "s3://team-checkpoints/trellis"
    project.run("train.py", "2", TRELLIS_STORE=shared, TRELLIS_OBJECTS=objects, TRELLIS_CHECKPOINT_SHARE="1",
                EPOCH_SECONDS="1", **s3)
    keys = [item["Key"] for item in client.list_objects_v2(Bucket="team-checkpoints")["Contents"]]
    assert _objects(project, shared, "weights") == 3  # and the generators' states beside them
    assert len(keys) == _objects(project, shared) and all(k.startswith("trellis/") for k in keys)
    assert not (project.root / ".trellis" / "objects").exists()
    # another machine: a fresh folder, nothing local, the same store and bucket
    other = project.root.parent / "elsewhere"
    other.mkdir()
    done = subprocess.run([sys.executable, "-c", (
        "import numpy as np, trellis\n"
        "w = np.zeros(4)\n"
        "trellis.load_checkpoint('latest', 2, weights=w)\n"
        "print(w.tolist())\n")], cwd=other, capture_output=True, text=True, timeout=240,
        env={**project.env(TRELLIS_STORE=shared, TRELLIS_OBJECTS=objects), **s3})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[6.0, 6.0, 6.0, 6.0]"


def test_a_replay_restores_checkpoints_from_s3(project, shared, s3):
    _bucket(s3, "team-checkpoints")
    team = {"TRELLIS_STORE": shared, "TRELLIS_OBJECTS": "s3://team-checkpoints/trellis", **s3}
    project.write("train.py", SCRIPT)
    project.run("train.py", "2", TRELLIS_CHECKPOINT_SHARE="1", EPOCH_SECONDS="0.5", **team)
    logged = '        trellis.log("loss", float(sys.argv[1]) / (epoch + 1))\n'
    project.write("train.py", SCRIPT.replace(logged, logged + '        trellis.log("total", float(weights.sum()))\n'))
    # the last epoch only: it starts from the checkpoint saved after the one before, in S3
    done = project.cli("replay", "total", "--where", "epoch >= 2", "--yes", "--json", env=team)
    report = json.loads(done.stdout)
    assert [run["status"] for run in report["runs"]] == ["exact"] and report["runs"][0]["restores"] >= 1
    values, _ = _replayed(project, shared)
    assert [(epoch, total) for _, epoch, total in values] == [(2, 6.0 * 4)]


def test_push_copies_objects_into_s3(project, shared, s3):
    client = _bucket(s3, "pushed")
    project.write("train.py", SCRIPT)
    project.run("train.py", "1", **_local(project))
    done = project.cli("push", shared, "--objects", "s3://pushed/o", env=s3)
    objects = _objects(project, str(project.root / ".trellis"))  # 3 weights and the generators' states
    assert f"pushed 1 runs, {objects} objects" in done.stdout
    assert len(client.list_objects_v2(Bucket="pushed")["Contents"]) == objects
    assert "pushed 0 runs, 0 objects" in project.cli("push", shared, "--objects", "s3://pushed/o", env=s3).stdout
