"""An MLflow tracking store's history as trellis runs: an ``mlruns/`` folder (MLflow's file
store) or a ``sqlite:///mlflow.db`` database (its default), read in their documented layouts.

Each MLflow run becomes a run: its experiment is the project id, its params are params (numbers
read back as numbers: MLflow keeps them as text), its own tags are params too (origin
``mlflow tag``; a tag named like a param gives way), every metric is logged in a ``step`` loop at
the step MLflow recorded, and its artifacts, when they are files beside the store, are files the
run wrote, with their hashes. Start, end and status carry over (FINISHED is ok, FAILED failed,
KILLED or never finished interrupted). A run's id is derived from MLflow's, so a second import adds
only what is new. Everything is read and checked before the store is touched, in one
transaction; the database is opened read-only and nothing in it is executed or unpickled.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trellis._errors import TrellisError
from trellis.store.cells import cell
from trellis.store.connection import Store
from trellis.store.file_hashes import file_digest
from trellis.store.paths import recorded_path
from trellis.store.schema import NOTE_LOG_NAME, RUN_SHIFT

_NAMESPACE = uuid.UUID("5b0f3c9e-8d4a-4f61-a2a7-3e1d9c6b7f10")  # trellis's, for MLflow runs
_STATUS = {"FINISHED": "ok", "FAILED": "failed", "KILLED": "interrupted"}
# the file store writes RunStatus numbers
_STATUS_NUMBERS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_MAX_ARTIFACTS = 10_000


@dataclass
class MlflowRun:
    run_id: str
    experiment: str
    name: str | None
    status: str
    started: float
    ended: float | None
    artifacts: Path | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, float, int]] = field(default_factory=list)  # key, value, at, step


def mlflow_source(path: str) -> tuple[str, Path] | None:
    """("sqlite", file) or ("folder", mlruns) if ``path`` names an MLflow tracking store."""
    if path.startswith("sqlite:///"):  # relative, or absolute with a fourth slash
        return "sqlite", Path(path[len("sqlite:///"):])
    candidate = Path(path)
    if candidate.is_file() and _is_mlflow_database(candidate):
        return "sqlite", candidate
    for folder in (candidate, candidate / "mlruns"):
        if folder.is_dir() and any(folder.glob("*/meta.yaml")) and not (folder / "runs").is_dir():
            return "folder", folder
    return None


def _is_mlflow_database(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                return False
        connection = _read_only(path)
        try:
            tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            connection.close()
    except (OSError, sqlite3.Error):
        return False
    return {"experiments", "runs", "metrics", "params", "tags", "alembic_version"} <= tables


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def import_mlflow(store: Store, kind: str, location: Path) -> dict[str, int]:
    runs = _read_database(location) if kind == "sqlite" else _read_folder(location)
    imported = skipped = 0
    with store.transaction():
        for run in runs:
            run_uuid = str(uuid.uuid5(_NAMESPACE, run.run_id))
            if store.execute("SELECT 1 FROM runs WHERE uuid = ?", (run_uuid,)):
                skipped += 1
                continue
            _insert_run(store, run_uuid, run)
            imported += 1
    return {"imported": imported, "skipped": skipped, "replays": 0}


# -- reading ------------------------------------------------------------------------------------

def _read_database(path: Path) -> list[MlflowRun]:
    if not path.is_file():
        raise TrellisError(f"no MLflow database at {path}")
    try:
        connection = _read_only(path)
        try:
            experiments = dict(connection.execute("SELECT experiment_id, name FROM experiments"))
            runs = [
                _checked_run(run_id, experiments.get(experiment, str(experiment)), name, status,
                             start, end, artifacts, path.parent)
                for run_id, name, status, start, end, artifacts, experiment, stage in connection.execute(
                    "SELECT run_uuid, name, status, start_time, end_time, artifact_uri, experiment_id,"
                    " lifecycle_stage FROM runs ORDER BY start_time, run_uuid")
                if stage != "deleted"
            ]
            by_id = {run.run_id: run for run in runs}
            for key, value, run_id in connection.execute("SELECT key, value, run_uuid FROM params"):
                if run_id in by_id:
                    by_id[run_id].params[_text(key, "a param name")] = _text(value, "a param value")
            for key, value, run_id in connection.execute("SELECT key, value, run_uuid FROM tags"):
                if run_id in by_id:
                    by_id[run_id].tags[_text(key, "a tag name")] = _text(value, "a tag value")
            for key, value, at, run_id, step, is_nan in connection.execute(
                    "SELECT key, value, timestamp, run_uuid, step, is_nan FROM metrics"
                    " ORDER BY run_uuid, timestamp, step"):
                if run_id in by_id:
                    by_id[run_id].metrics.append(_metric(key, math.nan if is_nan else value, at, step))
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise TrellisError(f"{path} is not an MLflow database trellis can read ({error}); nothing was imported") from None
    return runs


def _read_folder(folder: Path) -> list[MlflowRun]:
    try:
        import yaml
    except ImportError:
        raise TrellisError("reading an mlruns/ folder needs PyYAML: pip install 'trellis[mlflow]'") from None
    runs = []
    for experiment_meta in sorted(folder.glob("*/meta.yaml")):
        experiment = _yaml(yaml, experiment_meta)
        if experiment.get("lifecycle_stage") == "deleted":
            continue
        for run_meta in sorted(experiment_meta.parent.glob("*/meta.yaml")):
            meta = _yaml(yaml, run_meta)
            if meta.get("lifecycle_stage") == "deleted":
                continue
            root = run_meta.parent
            status = meta.get("status")
            run = _checked_run(meta.get("run_id") or meta.get("run_uuid"), str(experiment.get("name", "")),
                               meta.get("run_name"), _STATUS_NUMBERS.get(status, status),
                               meta.get("start_time"), meta.get("end_time"), meta.get("artifact_uri"), folder)
            run.params = {p.name: _read_text(p) for p in sorted((root / "params").glob("*")) if p.is_file()}
            run.tags = {p.name: _read_text(p) for p in sorted((root / "tags").glob("*")) if p.is_file()}
            for metric in sorted((root / "metrics").glob("*")):
                if not metric.is_file():
                    continue
                for number, line in enumerate(_read_text(metric).splitlines(), 1):
                    parts = line.split()
                    if len(parts) not in (2, 3):
                        raise TrellisError(f"{metric} line {number} is not 'timestamp value step'; nothing was imported")
                    try:
                        at, value, step = int(parts[0]), float(parts[1]), int(parts[2]) if len(parts) == 3 else 0
                    except ValueError:
                        raise TrellisError(f"{metric} line {number} is not 'timestamp value step'; nothing was imported") from None
                    run.metrics.append(_metric(metric.name, value, at, step))
            runs.append(run)
    return sorted(runs, key=lambda run: (run.started, run.run_id))


def _yaml(yaml: Any, path: Path) -> dict[str, Any]:
    try:
        found = yaml.safe_load(_read_text(path))
    except yaml.YAMLError:
        found = None
    if not isinstance(found, dict):
        raise TrellisError(f"{path} is not an MLflow meta.yaml; nothing was imported")
    return found


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TrellisError(f"cannot read {path}: {error}; nothing was imported") from None


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TrellisError(f"the MLflow store holds {what} that is not text ({value!r:.40}); nothing was imported")
    return value


def _checked_run(run_id: Any, experiment: str, name: Any, status: Any, start: Any, end: Any,
                 artifacts: Any, beside: Path) -> MlflowRun:
    if not isinstance(run_id, str) or not run_id:
        raise TrellisError("the MLflow store has a run without an id; nothing was imported")
    if not isinstance(start, int) or (end is not None and not isinstance(end, int)):
        raise TrellisError(f"MLflow run {run_id} has no start time in milliseconds; nothing was imported")
    return MlflowRun(run_id, experiment, name if isinstance(name, str) else None, str(status),
                     start / 1000, None if end is None else end / 1000, _artifact_folder(artifacts, beside))


def _artifact_folder(uri: Any, beside: Path) -> Path | None:
    """The run's artifact folder if it is a local folder inside the store's own folder: another
    machine's paths, or a store pointing elsewhere on this one, are not read."""
    if not isinstance(uri, str) or ("://" in uri and not uri.startswith("file://")):
        return None
    folder = Path(uri.removeprefix("file://")).resolve()
    home = beside.resolve()
    return folder if folder.is_dir() and folder.is_relative_to(home) else None


def _metric(key: Any, value: Any, at: Any, step: Any) -> tuple[str, float, float, int]:
    if not isinstance(key, str) or not isinstance(value, (int, float)) or not isinstance(at, int) \
            or not isinstance(step, int):
        raise TrellisError(f"the MLflow store holds a metric that is not name, number, time, step"
                           f" ({key!r:.40}); nothing was imported")
    return key, float(value), at / 1000, step


# -- writing ------------------------------------------------------------------------------------

def _param_value(text: str) -> Any:
    """MLflow keeps params as text: "0.1" was a number, "True" a bool; the rest stays text."""
    if text in ("True", "False"):  # how Python writes a bool
        return text == "True"
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float, bool)) and not isinstance(value, str) else text


def _insert_run(store: Store, run_uuid: str, run: MlflowRun) -> None:
    tags = {k: v for k, v in run.tags.items() if not k.startswith("mlflow.")}
    program = run.tags.get("mlflow.source.name") or run.name
    status = _STATUS.get(run.status, "interrupted")
    problems = [f"imported from MLflow (run {run.run_id}, experiment {run.experiment})"]
    if run.status not in _STATUS:
        problems.append(f"MLflow had it {run.status}: it never finished there")
    (row,) = store.execute(
        "INSERT INTO runs (uuid, projid, kind, filename, started, ended, committed, status, problems,"
        " git_commit) VALUES (?, ?, 'script', ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (run_uuid, run.experiment, program, run.started, run.ended, run.ended or run.started, status,
         json.dumps(problems), run.tags.get("mlflow.source.git.commit")),
    )[0]
    base = row << RUN_SHIFT
    steps = sorted({step for _, _, _, step in run.metrics})
    first_at = {}
    for _, _, at, step in run.metrics:
        first_at[step] = min(at, first_at.get(step, at))
    iteration = {step: number for number, step in enumerate(steps, 1)}
    store.executemany(
        "INSERT INTO iterations (id, run, parent, loop, depth, idx, value, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(base + iteration[step], row, base, "step", 0, step, None, first_at[step]) for step in steps],
    )
    if steps:
        store.execute("INSERT INTO loops (run, loop, depth, has_values) VALUES (?, 'step', 0, 0)", (row,))
    store.executemany(
        "INSERT INTO logs (id, run, iteration, name, kind, int_value, float_value, text_value)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(base + number, row, base + iteration[step], key, *cell(value))
         for number, (key, value, _, step) in enumerate(run.metrics, 1)],
    )
    store.executemany(NOTE_LOG_NAME, [(row, name) for name in sorted({key for key, *_ in run.metrics})])
    params = [(name, _param_value(value), "mlflow") for name, value in run.params.items()]
    params += [(name, value, "mlflow tag") for name, value in tags.items() if name not in run.params]
    store.executemany(
        "INSERT INTO params (run, name, kind, int_value, float_value, text_value, origin, position)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(row, name, *cell(value), origin, position) for position, (name, value, origin) in enumerate(params)],
    )
    store.executemany(
        "INSERT INTO files (run, step, path, mode, hash, size, at) VALUES (?, NULL, ?, 'write', ?, ?, ?)",
        [(row, recorded_path(path, store.project), digest, size, run.ended or run.started)
         for path, digest, size in _artifacts(run.artifacts)],
    )


def _artifacts(folder: Path | None) -> list[tuple[str, str | None, int | None]]:
    if folder is None:
        return []
    found = []
    for directory, folders, files in os.walk(folder):
        folders.sort()
        for name in sorted(files):
            path = Path(directory, name)
            if path.is_symlink():
                continue  # a link out of the folder is not the run's artifact
            digest, size = file_digest(str(path), None)
            found.append((str(path), digest, size))
            if len(found) >= _MAX_ARTIFACTS:
                return found
    return found
