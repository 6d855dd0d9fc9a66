"""Loading provenance made elsewhere into a store: a notebook's embedded history, or a JSON
export of runs (a collaborator gets the history).

Runs already in the store (same run id) are skipped, so importing twice changes nothing, and an
import is one transaction: if any part fails, the store is left as it was. A run whose writing
moved to another store part way (the shared store went away; see capture/recovery.py) is the
one exception: with ``merge``, its rest is added to the part already here.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from trellis._errors import TrellisError
from trellis.queries.notebooks import notebook_file
from trellis.sharing import received
from trellis.sharing.flor_import import flor_folder, import_flor
from trellis.sharing.mlflow_import import import_mlflow, mlflow_source
from trellis.sharing.transfer import copy_runs
from trellis.store.connection import Store, open_store
from trellis.store.replayed import put_replayed
from trellis.store.schema import RUN_SHIFT


def _seconds(stamp: str | None) -> float | None:
    return None if stamp is None else datetime.fromisoformat(stamp).timestamp()


def import_notebook(store: Store, embedded: dict[str, Any], projid: str,
                    carried: dict[str, bytes] | None = None, where: str = "the notebook",
                    received_from: str = "notebook metadata") -> dict[str, int]:
    """Load a notebook's ``metadata.trellis``, checked whole first against the published schema.

    Outputs keep their object only where ``carried`` (content by digest, from the notebook's own
    cells) holds its content: the provenance brings its outputs with it, or none.
    """
    if not isinstance(embedded, dict) or not str(embedded.get("schema", "")).startswith(
            "trellis-notebook-provenance/"):
        raise TrellisError("this is not trellis notebook provenance (unknown schema)")
    if embedded["schema"] != received.NOTEBOOK_FORMAT:
        raise TrellisError(f"the notebook's provenance is {embedded['schema']}, from a newer trellis;"
                           " upgrade trellis to import it")
    received.check_notebook(embedded, where)
    try:
        return _load_notebook(store, embedded, projid, carried or {}, received_from)
    except TrellisError:
        raise
    except Exception as error:
        raise TrellisError(f"the import failed and nothing was imported: {type(error).__name__}: {error}") from None


def _load_notebook(store: Store, embedded: dict[str, Any], projid: str,
                   carried: dict[str, bytes], received_from: str) -> dict[str, int]:
    kept: dict[str, bytes] = {}  # filled as the outputs are inserted
    return _all_or_nothing(store, lambda: _insert_epochs(store, embedded, projid, carried, kept, received_from),
                           kept)


def _all_or_nothing(store: Store, insert: Any, objects: dict[str, bytes]) -> dict[str, int]:
    """The rows ``insert`` writes and the ``objects`` they bring, in one transaction: a failure
    leaves neither (objects are content-addressed, so those already here are kept)."""
    from trellis.store import objects as object_store

    written: list[Any] = []
    try:
        with store.transaction():
            counts = insert()
            for digest, content in objects.items():
                if (path := object_store.put_received(store.objects, digest, content)) is not None:
                    written.append(path)
    except BaseException:
        object_store.remove(written)
        raise
    return counts


def _insert_epochs(store: Store, embedded: dict[str, Any], projid: str, carried: dict[str, bytes],
                   kept: dict[str, bytes], received_from: str) -> dict[str, int]:
    documented = {epoch["run_id"] for epoch in embedded["epochs"]}
    imported = skipped = 0
    pending_links: list[tuple[int, str, str, str]] = []
    sources = embedded.get("sources") or {}
    for epoch in embedded["epochs"]:
        if store.execute("SELECT 1 FROM runs WHERE uuid = ?", (epoch["run_id"],)):
            skipped += 1
            continue
        (run_id,) = store.execute(
            "INSERT INTO runs (uuid, projid, kind, filename, started, ended, status, problems, received_from)"
            " VALUES (?, ?, 'notebook', ?, ?, ?, ?, ?, ?) RETURNING id",
            (epoch["run_id"], projid, embedded["notebook"],
             epoch.get("started_unix") or _seconds(epoch["started"]) or time.time(),
             epoch["ended_unix"] if "ended_unix" in epoch else _seconds(epoch["ended"]),
             epoch["status"], json.dumps(["imported from notebook metadata"]), received_from),
        )[0]
        if run_id >= received.RUN_LIMIT:
            raise TrellisError("this store has too many runs for another one's keys; nothing was imported")
        _add_environment(store, run_id, epoch.get("environment"))
        base = run_id << RUN_SHIFT
        for module in epoch.get("modules", []):
            store.execute(
                "INSERT INTO modules (run, step, module, distribution, version) VALUES (?, NULL, ?, ?, ?)",
                (run_id, module["module"], module["distribution"], module["version"]),
            )
        for execution in epoch["executions"]:
            step = base + received.execution_key(execution["id"])[1]
            started = execution.get("started_unix") or _seconds(execution["started"])
            if "ended_unix" in execution:
                ended = execution["ended_unix"]
            else:
                ended = None if execution["duration"] is None else started + execution["duration"]
            source = execution.get("source", sources.get(execution["source_hash"]))
            analysis = {k: execution[k] for k in ("defined", "used", "mutated", "imports")}
            analysis.update({k: execution[k] for k in ("loops", "conditions") if k in execution})
            store.execute(
                "INSERT INTO steps (id, run, kind, notebook, cell_id, execution_count, source,"
                " source_hash, started, ended, status, error, outputs, analysis)"
                " VALUES (?, ?, 'cell', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (step, run_id, embedded["notebook"], execution["cell_id"], execution["execution_count"],
                 source, execution["source_hash"], started, ended, execution["status"], execution["error"],
                 json.dumps(_carried_outputs(execution["outputs"], carried, kept)), json.dumps(analysis)),
            )
            for mode, entries in (("read", execution["reads"]), ("write", execution["writes"])):
                store.executemany(
                    "INSERT INTO files (run, step, path, mode, hash, size, at, seen_after)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, step, f["path"], mode, f["hash"], f["size"], started,
                      1 if f.get("seen_after") is True else None) for f in entries],
                )
            store.executemany(
                "INSERT INTO variables (step, name, type, summary, fingerprint) VALUES (?, ?, ?, ?, ?)",
                [(step, v["name"], v["type"], json.dumps(v["summary"]), v["summary"].get("fingerprint"))
                 for v in execution["variables"]],
            )
            pending_links += [(step, d["execution"], d["name"], d["via"]) for d in execution["depends_on"]]
        imported += 1
    for step, key, name, via in pending_links:
        # a link goes only to an execution of this notebook's epochs that is in the store
        uuid, number = received.execution_key(key)
        found = store.execute("SELECT id FROM runs WHERE uuid = ?", (uuid,)) if uuid in documented else []
        target = (found[0][0] << RUN_SHIFT) + number if found else None
        if target is not None and store.execute("SELECT 1 FROM steps WHERE id = ?", (target,)):
            store.execute(
                "INSERT INTO dependencies (step, depends_on, name, via) VALUES (?, ?, ?, ?)",
                (step, target, name, via),
            )
    return {"imported": imported, "skipped": skipped}


def _add_environment(store: Store, run_id: int, environment: dict[str, Any] | None) -> None:
    """The part of the epoch's environment the notebook carries, as the epoch's environment."""
    if not isinstance(environment, dict):
        return
    import hashlib

    described = json.dumps(environment, sort_keys=True)
    digest = hashlib.sha256(described.encode()).hexdigest()
    store.execute("INSERT INTO environments (hash, data) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING",
                  (digest, described))
    (environment_id,) = store.execute("SELECT id FROM environments WHERE hash = ?", (digest,))[0]
    store.execute("UPDATE runs SET environment_id = ? WHERE id = ?", (environment_id, run_id))


def _carried_outputs(outputs: list[dict[str, Any]], carried: dict[str, bytes],
                     kept: dict[str, bytes]) -> list[dict[str, Any]]:
    """The outputs, each object kept only when its content came with the document."""
    result = []
    for output in outputs:
        data = {}
        for mime, entry in output["data"].items():
            digest = entry["object"]
            if digest is not None and digest in carried:
                kept[digest] = carried[digest]
            else:
                digest = None
            data[mime] = {**entry, "object": digest}
        result.append({**output, "data": data})
    return result


# What a run's last write sets: what its rest brings to the part already in a store.
_FINISHING = ("ended", "committed", "status", "error", "problems", "stdout", "stderr", "output_times",
              "git_commit",
              "git_ref", "git", "build_target", "build")
_UNFINISHED = ("running", "interrupted")


def import_path(path: Any) -> dict[str, int]:
    """Import what ``path`` holds into this project's store: a FlorDB project's
    ``.flor/`` folder, an MLflow tracking store (``mlruns/`` or ``sqlite:///mlflow.db``), another SQLite store (such as a recovery file), a notebook's embedded
    history or a JSON export. It is checked whole before the local store is opened, so a bad file
    leaves no trace."""
    if Path(path).suffix == ".ipynb":
        embedded, carried = received.read_notebook(notebook_file(str(path)))
        received.check_notebook(embedded, str(path))
        with open_store() as store:
            return import_notebook(store, embedded, store.project.name, carried, where=str(path),
                                   received_from=str(Path(path).absolute()))
    if (folder := flor_folder(Path(path))) is not None:
        with open_store() as store:
            return import_flor(store, folder)
    if (tracking := mlflow_source(str(path))) is not None:
        with open_store() as store:
            return import_mlflow(store, *tracking)
    if Path(path).suffix in (".db", ".sqlite", ".sqlite3"):
        with open_store(str(path), read_only=True) as source:
            received.check_store(source)
            with open_store() as store:
                counts = copy_runs(source, store)
        return {"imported": counts["copied"] + counts["merged"], "skipped": counts["skipped"],
                "replays": counts["replays"]}
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise TrellisError(f"no file at {path}") from None
    except OSError as error:
        raise TrellisError(f"cannot read {path}: {error.strerror or error}") from None
    exported = received.parse_json(raw, str(path))
    received.check_export(exported)
    with open_store() as store:
        return import_export(store, exported, received_from=str(Path(path).absolute()))


def import_export(store: Store, exported: dict[str, Any], merge: bool = False,
                  received_from: str = "a JSON export") -> dict[str, int]:
    """Load a ``trellis export --format json`` document; keys are renumbered for this store.

    With ``merge``, a run that is here unfinished and there finished gets the rows it lacks.
    Every run inserted or completed is marked ``received_from`` (where it came from)."""
    tables = received.check_export(exported)
    return import_checked(store, tables, received.check_objects(exported.get("objects")), merge, received_from)


def import_checked(store: Store, tables: dict[str, list[dict[str, Any]]], objects: dict[str, bytes],
                   merge: bool = False, received_from: str = "a JSON export") -> dict[str, int]:
    """``import_export`` of what ``received.check_export`` and ``check_objects`` returned."""
    try:
        return _load(store, tables, objects, merge, received_from)
    except TrellisError:
        raise
    except Exception as error:
        raise TrellisError(f"the import failed and nothing was imported: {type(error).__name__}: {error}") from None


def _load(store: Store, tables: dict[str, list[dict[str, Any]]], objects: dict[str, bytes],
          merge: bool, received_from: str) -> dict[str, int]:
    def rows(table: str) -> list[dict[str, Any]]:
        return [dict(row) for row in tables[table]]

    return _all_or_nothing(store, lambda: _insert(store, rows, merge, set(), received_from), objects)


def _insert(store: Store, rows: Any, merge: bool, merged: set[int], received_from: str) -> dict[str, int]:
    imported = skipped = 0
    environments: dict[int, int] = {}
    for environment in rows("environments"):
        store.execute("INSERT INTO environments (hash, data) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING",
                      (environment["hash"], environment["data"]))
        environments[environment["id"]] = store.execute(
            "SELECT id FROM environments WHERE hash = ?", (environment["hash"],))[0][0]
    new_ids: dict[int, int] = {}
    replayed_later: list[tuple[int, int]] = []  # (run there, run here) of runs already here
    for run in rows("runs"):
        found = store.execute("SELECT id, status FROM runs WHERE uuid = ?", (run["uuid"],))
        if found and merge and found[0][1] in _UNFINISHED and run["status"] not in _UNFINISHED:
            finishing = {c: run[c] for c in _FINISHING if run.get(c) is not None}
            finishing["received_from"] = received_from  # its checkpoints may now come from there
            if run.get("environment_id") in environments:
                finishing["environment_id"] = environments[run["environment_id"]]
            store.execute(f"UPDATE runs SET {', '.join(f'{c} = ?' for c in finishing)} WHERE id = ?",
                          [*finishing.values(), found[0][0]])
            new_ids[run["id"]] = found[0][0]
            merged.add(found[0][0])
            continue
        if found:
            skipped += 1
            replayed_later.append((run["id"], found[0][0]))
            continue
        old = run.pop("id")
        run["environment_id"] = environments.get(run["environment_id"])
        run["parent_run"] = None
        run["received_from"] = received_from
        columns = list(run)
        (new,) = store.execute(
            f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) RETURNING id",
            [run[c] for c in columns],
        )[0]
        if new >= received.RUN_LIMIT:
            raise TrellisError("this store has too many runs for another one's keys; nothing was imported")
        new_ids[old] = new
        imported += 1

    def moved(key: int | None) -> int | None:
        """A run-prefixed key of the exporting store, in this store."""
        if key is None:
            return None
        run = key >> RUN_SHIFT
        return (new_ids[run] << RUN_SHIFT) + (key & 0xFFFFFFFF) if run in new_ids else key

    # a step may depend on a step of another run of the export; on none outside it
    here = {**dict(replayed_later), **new_ids}
    keyed = {**received.OWN_KEYS, "dependencies": ("step",), "variables": ("step",)}
    for table in ("params", "iterations", "loops", "logs", "checkpoints", "files", "run_inputs",
                  "steps", "modules", "dependencies", "variables", "replays"):
        batch, rest = [], []
        for row in rows(table):
            owner = row["run"] if "run" in row else row["step"] >> RUN_SHIFT
            if owner not in new_ids:
                continue
            if table == "replays":
                del row["id"]
            if "run" in row:
                row["run"] = new_ids[row["run"]]
            for column in keyed.get(table, ()):
                row[column] = moved(row[column])
            if table == "dependencies":
                on = row["depends_on"] >> RUN_SHIFT
                if on not in here:
                    continue
                row["depends_on"] = (here[on] << RUN_SHIFT) + (row["depends_on"] & 0xFFFFFFFF)
            (rest if new_ids[owner] in merged else batch).append(row)
        if batch:
            columns = list(batch[0])
            store.insert_rows(table, columns, [[row[c] for c in columns] for row in batch])
        if rest:
            columns = list(rest[0])
            if table == "steps":  # a step written running here and finished there: the later one
                store.executemany("DELETE FROM steps WHERE id = ?", [(row["id"],) for row in rest])
            store.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
                " ON CONFLICT DO NOTHING",
                [[row[c] for c in columns] for row in rest],
            )
    replayed = _add_replays(store, rows, replayed_later)
    if new_ids:
        store.execute(
            "INSERT INTO log_names (run, name) SELECT DISTINCT run, name FROM logs"
            f" WHERE run IN ({', '.join('?' * len(new_ids))}) ON CONFLICT (run, name) DO NOTHING",
            list(new_ids.values()),
        )
    return {"imported": imported, "skipped": skipped, "merged": len(merged), "replays": replayed}


def _add_replays(store: Store, rows: Any, runs: list[tuple[int, int]]) -> int:
    """Replays done there into runs already here and not yet brought here, with their values.

    A replay is known by its run and start time. Its values replace the replayed values here at
    the same (name, iteration), as a replay does, and take fresh keys above this run's own.
    """
    if not runs:
        return 0
    here_of = dict(runs)
    new: dict[int, list[dict[str, Any]]] = {}
    for replay in rows("replays"):
        there = replay["run"]
        if there not in here_of:
            continue
        known = store.execute("SELECT 1 FROM replays WHERE run = ? AND started = ?",
                              (here_of[there], replay["started"]))
        if not known:
            new.setdefault(there, []).append(replay)
    if not new:
        return 0
    values: dict[int, list[dict[str, Any]]] = {}
    for log in rows("logs"):
        if log["source"] == "replay" and log["run"] in new:
            values.setdefault(log["run"], []).append(log)
    for there, replays in new.items():
        here = here_of[there]
        names = {name for replay in replays for name in json.loads(replay["names"])}
        put_replayed(store, here, [
            (log["name"], (here << RUN_SHIFT) + (log["iteration"] & 0xFFFFFFFF), log["kind"],
             log["int_value"], log["float_value"], log["text_value"])
            for log in sorted(values.get(there, []), key=lambda log: log["id"]) if log["name"] in names
        ])
        for replay in replays:
            replay = {**replay, "run": here}
            del replay["id"]
            columns = list(replay)
            store.execute(f"INSERT INTO replays ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                          [replay[c] for c in columns])
    return sum(len(replays) for replays in new.values())
