"""One run as the standards that describe a job's run see it: what ran, how it ended, under what
(a make invocation, the run it reproduces), and the files it read and wrote, one version each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trellis.queries.runs import program_name
from trellis.store.connection import Store


def run_record(store: Store, run_id: int, filename: str | None = None) -> dict[str, Any]:
    """The run ``run_id`` (the store's integer id) as plain data.

    ``filename`` stands in for a file the store does not know yet (a kernel names its notebook
    after the run began). ``inputs`` holds each path read once, as first read (the version the
    run consumed); ``outputs`` each path written, as last written (the version it left). A path
    is relative to the project when inside it, as the store records it; ``absolute`` is where it
    was.
    """
    row = store.execute(
        "SELECT uuid, projid, kind, filename, cwd, argv, started, ended, status, error, host,"
        " git_commit, build, build_target, parent_run FROM runs WHERE id = ?",
        (run_id,),
    )[0]
    (uuid, projid, kind, stored_name, cwd, argv, started, ended, status, error, host, commit,
     build, target, parent) = row
    inputs: dict[str, dict[str, Any]] = {}
    outputs: dict[str, dict[str, Any]] = {}
    for path, mode, digest, size, at in store.execute(
        "SELECT path, mode, hash, size, at FROM files WHERE run = ? ORDER BY at", (run_id,)
    ):
        entry = {"path": path, "absolute": _absolute(store, path), "hash": digest, "size": size,
                 "at": at}
        if mode == "read":
            inputs.setdefault(path, entry)
        else:
            outputs[path] = entry
    return {
        "run_id": uuid,
        "project": projid,
        "kind": kind,
        "program": program_name(stored_name or _inside(store, filename), kind, cwd),
        "argv": json.loads(argv) if argv else None,
        "started": started,
        "ended": ended,
        "status": status,
        "error": error,
        "host": host,
        "git_commit": commit,
        "build": json.loads(build) if build else None,
        "build_target": target,
        "reproduces": _reproduced(store, parent) if parent is not None else None,
        "inputs": list(inputs.values()),
        "outputs": list(outputs.values()),
    }


def _reproduced(store: Store, run_id: int) -> dict[str, Any] | None:
    found = store.execute(
        "SELECT uuid, projid, kind, filename, cwd, build_target FROM runs WHERE id = ?", (run_id,))
    if not found:
        return None
    uuid, projid, kind, filename, cwd, target = found[0]
    return {"run_id": uuid, "project": projid, "program": program_name(filename, kind, cwd),
            "build_target": target}


def _inside(store: Store, path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(Path(store.project).resolve()))
    except (ValueError, OSError):
        return path


def _absolute(store: Store, path: str) -> str:
    if "://" in path or Path(path).is_absolute():
        return path
    return str(Path(store.project) / path)
