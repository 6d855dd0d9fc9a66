"""`trellis import` of an MLflow tracking store, written by a real MLflow (the version the
benchmarks pin, in a virtualenv of its own made once) and read back by MLflow's own client as
the truth: runs, params, tags, every metric at its step, status, times and artifacts."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

import trellis
from tests.side_python import side_python

REPO = Path(__file__).resolve().parents[2]
PEER_DIR = Path(os.environ.get("TRELLIS_MLFLOW_VENV", Path(__file__).parent / ".mlflow"))
MLFLOW_PIN = next(
    line.split("#")[0].strip() for line in (REPO / "benchmarks" / "peers.txt").read_text().splitlines()
    if line.startswith("mlflow==")
)

TRAIN = """
import os, sys
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("churn")
with mlflow.start_run(run_name="baseline"):
    mlflow.log_params({"lr": 0.1, "epochs": 3, "optimizer": "sgd", "shuffle": True})
    mlflow.set_tag("team", "vision")
    for step in range(3):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metric("val_loss", 2.0 / (step + 2), step=step)
    mlflow.log_metric("auc", 0.91)
    os.makedirs("out", exist_ok=True)
    with open("out/model.txt", "w") as handle:
        handle.write("weights")
    mlflow.log_artifact("out/model.txt", artifact_path="model")
with mlflow.start_run(run_name="diverged"):
    mlflow.log_param("lr", 5.0)
    mlflow.log_metric("loss", float("nan"), step=0)
    mlflow.end_run(status="FAILED")
"""

# MLflow's own client, printing what it holds as JSON: the truth the import is compared with
READ_BACK = """
import json, sys
from mlflow.tracking import MlflowClient
client = MlflowClient(sys.argv[1])
runs = []
for experiment in client.search_experiments():
    for run in client.search_runs([experiment.experiment_id]):
        history = {key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
                   for key in run.data.metrics}
        runs.append({"run_id": run.info.run_id, "experiment": experiment.name,
                     "status": run.info.status, "start": run.info.start_time, "end": run.info.end_time,
                     "params": run.data.params,
                     "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
                     "metrics": history, "artifact_uri": run.info.artifact_uri})
print(json.dumps(runs))
"""


@pytest.fixture(scope="session")
def mlflow_python() -> Path:
    """A virtualenv with the pinned MLflow (its client and SQLite store), installed from PyPI once."""
    version = MLFLOW_PIN.split("==")[1]
    return side_python(PEER_DIR, "import mlflow; print(mlflow.__version__)", version,
                       [f"mlflow-skinny=={version}", "sqlalchemy", "alembic"])


def _tracked(project, mlflow_python, uri: str, **env: str) -> list[dict]:
    script = project.write("train_mlflow.py", TRAIN)
    environment = {**project.env(), **env}
    for program in ([str(mlflow_python), str(script), uri], [str(mlflow_python), "-c", READ_BACK, uri]):
        done = subprocess.run(program, cwd=project.root, capture_output=True, text=True,
                              env=environment, timeout=300)
        assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _same_as_mlflow(truth: list[dict], project) -> None:
    runs = {r["run_id"]: r for r in trellis.runs()}
    assert len(runs) == len(truth) == 2
    imported = trellis.query("SELECT uuid, projid, status, started, ended, problems FROM runs")
    by_problem = {json.loads(p)[0].split("run ")[1].split(",")[0]: row
                  for p, row in zip(imported["problems"], imported.to_dict("records"))}
    for run in truth:
        row = by_problem[run["run_id"]]
        assert row["projid"] == run["experiment"] == "churn"
        assert row["status"] == {"FINISHED": "ok", "FAILED": "failed"}[run["status"]]
        assert (row["started"], row["ended"]) == (run["start"] / 1000, run["end"] / 1000)
        described = trellis.show(row["uuid"])
        expected = {k: json.loads(v) if v[:1].isdigit() else {"True": True}.get(v, v)
                    for k, v in run["params"].items()}
        assert described["params"] == {**expected, **run["tags"]}
        for name, history in run["metrics"].items():
            frame = trellis.dataframe(name, runs=row["uuid"])
            frame = frame[frame[name].notna() | frame["step"].notna()]
            got = [(int(step), value) for step, value in zip(frame["step"], frame[name])]
            assert len(got) == len(history)
            for (step, value), (want_step, want) in zip(got, sorted(history)):
                assert step == want_step and (value == want or (math.isnan(value) and math.isnan(want)))
    artifact = project.root / "out" / "model.txt"
    files = trellis.query("SELECT path, mode, hash, size FROM files")
    assert files["mode"].tolist() == ["write"]
    assert files["path"][0].endswith("model/model.txt")
    assert files["hash"][0] == hashlib.sha256(artifact.read_bytes()).hexdigest()


def test_an_mlflow_database_comes_over_whole_and_once(project, mlflow_python, monkeypatch):
    truth = _tracked(project, mlflow_python, "sqlite:///mlflow.db")
    monkeypatch.chdir(project.root)
    assert project.cli("import", "sqlite:///mlflow.db").stdout.strip() == "imported 2 runs (0 already here)"
    _same_as_mlflow(truth, project)
    assert "imported 0 runs (2 already here)" in project.cli("import", "mlflow.db").stdout


def test_an_mlruns_folder_comes_over_whole(project, mlflow_python, monkeypatch):
    truth = _tracked(project, mlflow_python, "file:./mlruns", MLFLOW_ALLOW_FILE_STORE="true")
    monkeypatch.chdir(project.root)
    assert project.cli("import", "mlruns").stdout.strip() == "imported 2 runs (0 already here)"
    _same_as_mlflow(truth, project)


def test_a_damaged_or_hostile_mlflow_database_imports_nothing(project, mlflow_python, monkeypatch, tmp_path):
    _tracked(project, mlflow_python, "sqlite:///mlflow.db")
    monkeypatch.chdir(project.root)
    damaged = tmp_path / "damaged.db"
    shutil.copy(project.root / "mlflow.db", damaged)
    with sqlite3.connect(damaged) as connection:
        connection.execute("UPDATE metrics SET value = 'lots' WHERE key = 'auc'")
    failed = project.cli("import", str(damaged), check=False)
    assert failed.returncode == 1 and len(failed.stderr.strip().splitlines()) == 1
    assert "metric" in failed.stderr and "nothing was imported" in failed.stderr
    assert trellis.query("SELECT COUNT(*) AS n FROM runs")["n"][0] == 0
    # artifacts named outside the store's folder are not read
    elsewhere = tmp_path / "elsewhere.db"
    shutil.copy(project.root / "mlflow.db", elsewhere)
    with sqlite3.connect(elsewhere) as connection:
        connection.execute("UPDATE runs SET artifact_uri = '/etc'")
    project.cli("import", str(elsewhere))
    assert trellis.query("SELECT COUNT(*) AS n FROM files")["n"][0] == 0
