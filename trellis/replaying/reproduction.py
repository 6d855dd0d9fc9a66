"""``trellis reproduce RUN``: run a recorded script or notebook epoch again, and compare.

The code comes from the run's snapshot, checked out in a fresh ``git worktree`` with the data
files it read (``trellis.replaying.worktrees``) and the folders it read from and wrote into (an empty
output folder is in no git snapshot). The new run is recorded in the same store with the
original as its parent; a notebook's is a run of kind ``reproduction``, not another epoch of the
notebook. Then values, written files, outputs and, for a notebook, each cell's status are
compared; environment differences and unseeded randomness that may explain a mismatch are
reported alongside.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from trellis._errors import TrellisError, UntrustedObjectError
from trellis.analysis.seeding import draws_unseeded
from trellis.queries.checkpoints import received_from
from trellis.queries.runs import resolve
from trellis.replaying import worktrees
from trellis.store.cells import decode
from trellis.store.connection import Store
from trellis.store.schema import run_keys
from trellis.store.snapshots import has_commit, source_at


def reproduce(store: Store, ref: str, tolerance: float = 0.0, trusted: bool = False) -> dict[str, Any]:
    original = resolve(store, ref)
    if original["kind"] not in ("script", "notebook"):
        raise TrellisError(f"run {original['uuid'][:8]} is a {original['kind']} run; only scripts and notebooks replay")
    source = None if trusted else received_from(store, original["id"])
    if source is not None:
        raise UntrustedObjectError(f"run {original['uuid'][:8]} came from {source}: reproducing it runs the command"
                                   " line and code recorded there; add --trust if you trust its source")
    if not original["git_commit"]:
        raise TrellisError(f"run {original['uuid'][:8]} was recorded outside git: there is no snapshot to run")
    if not has_commit(store.project, original["git_commit"]):
        raise TrellisError(f"run {original['uuid'][:8]} cannot be reproduced: {worktrees.snapshot_gone(original['git_commit'])}")
    folder = Path(tempfile.mkdtemp(prefix="trellis-reproduce-"))
    worktree = folder / "tree"
    worktrees.check_out(store.project, original["git_commit"], worktree)
    try:
        copied, missing = worktrees.bring_inputs(store, original, worktree)
        _recreate_folders(store, original["id"], worktree)
        completed = _run_again(store, original, worktree)
        again = store.execute("SELECT uuid FROM runs WHERE parent_run = ? ORDER BY started DESC LIMIT 1",
                              (original["id"],))
        if not again:
            raise TrellisError(f"the reproduction recorded no run; it printed: {completed[-500:]}")
        copy = resolve(store, again[0][0])
        report = {
            "original": original["uuid"], "reproduction": copy["uuid"], "status": copy["status"],
            "inputs_copied": copied, "inputs_missing": missing,
            "values": _compare_values(store, original["id"], copy["id"], tolerance),
            "files": _compare_files(store, original["id"], copy["id"]),
            "outputs": _compare_outputs(store, original["id"], copy["id"]),
            "cells": _compare_cells(store, original["id"], copy["id"]),
            "explanations": _explanations(store, original, copy),
        }
        report["failed_cells"] = _failed_cells(store, copy["id"])
        report["matched"] = (
            copy["status"] == original["status"] and not missing
            and all(not report[part]["differences"] for part in _COMPARED)
        )
        return report
    finally:
        worktrees.remove(store.project, worktree)
        shutil.rmtree(folder, ignore_errors=True)


_COMPARED = ("values", "files", "outputs", "cells")


def _recreate_folders(store: Store, run: int, worktree: Path) -> None:
    """The folders inside the project that the run read from or wrote into, as they were there."""
    for (path,) in store.execute("SELECT DISTINCT path FROM files WHERE run = ?", (run,)):
        if os.path.isabs(path) or "://" in path:
            continue
        folder = (worktree / path).parent
        if worktree.resolve() in folder.resolve().parents and (store.project / path).parent.is_dir():
            folder.mkdir(parents=True, exist_ok=True)


def _run_again(store: Store, run: dict[str, Any], worktree: Path) -> str:
    env = {**os.environ, "TRELLIS_STORE": store.location, "TRELLIS_PARENT_RUN": run["uuid"],
           "TRELLIS_PROGRESS": "0"}
    cwd = worktree / (run["cwd"] or ".")
    if run["kind"] == "notebook":
        notebook = worktree / run["filename"]
        _write_in_execution_order(store, run["id"], notebook)
        command = [sys.executable, "-m", "trellis.cli", "run", str(notebook)]
        cwd = notebook.parent
    else:
        argv = json.loads(run["argv"] or "[]")
        if any(arg.endswith("***") for arg in argv):
            raise TrellisError(f"run {run['uuid'][:8]} had secret arguments, which were not recorded")
        command = [sys.executable, *argv]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    return done.stdout + done.stderr


def _write_in_execution_order(store: Store, run: int, notebook: Path) -> None:
    """The cells as the epoch executed them: its order, its sources, its cell ids."""
    import nbformat

    steps = store.execute("SELECT cell_id, source FROM steps WHERE run = ? ORDER BY started, id", (run,))
    book = nbformat.v4.new_notebook()
    seen: dict[str, int] = {}
    for cell_id, source in steps:
        cell = nbformat.v4.new_code_cell(source or "")
        count = seen.get(cell_id, 0)
        seen[cell_id] = count + 1
        if cell_id and not cell_id.startswith("sha256:"):
            cell["id"] = cell_id if count == 0 else f"{cell_id}-{count}"
        book.cells.append(cell)
    notebook.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(book, notebook)


def _values_of(store: Store, run: int) -> dict[str, list[Any]]:
    from trellis.queries.dataframe import COMMIT_MARK  # when a commit happened, not a result

    rows = store.execute(
        "SELECT name, kind, int_value, float_value, text_value FROM logs WHERE id >= ? AND id < ?"
        " AND name <> ? ORDER BY id",
        (*run_keys(run), COMMIT_MARK),
    )
    values: dict[str, list[Any]] = {}
    for name, kind, i, f, t in rows:
        values.setdefault(name, []).append(decode(kind, i, f, t))
    return values


def _same(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance) if tolerance else a == b
    return a == b


def _compare_values(store: Store, a: int, b: int, tolerance: float) -> dict[str, Any]:
    old, new = _values_of(store, a), _values_of(store, b)
    differences = []
    for name in sorted(old.keys() | new.keys()):
        left, right = old.get(name, []), new.get(name, [])
        if len(left) != len(right):
            differences.append({"name": name, "count": [len(left), len(right)]})
            continue
        for position, (x, y) in enumerate(zip(left, right)):
            if not _same(x, y, tolerance):
                differences.append({"name": name, "first_difference": position, "a": x, "b": y})
                break
    return {"compared": len(old.keys() & new.keys()), "differences": differences}


def _compare_files(store: Store, a: int, b: int) -> dict[str, Any]:
    def written(run: int) -> dict[str, str | None]:
        rows = store.execute("SELECT path, hash FROM files WHERE run = ? AND mode = 'write' ORDER BY at", (run,))
        return dict(rows)

    old, new = written(a), written(b)
    differences = [{"path": p, "a": old.get(p), "b": new.get(p)}
                   for p in sorted(old.keys() | new.keys()) if old.get(p) != new.get(p)]
    return {"compared": len(old), "differences": differences}


def _compare_outputs(store: Store, a: int, b: int) -> dict[str, Any]:
    def outputs(run: int) -> list[tuple[str, list]]:
        rows = store.execute("SELECT cell_id, outputs FROM steps WHERE run = ? ORDER BY started, id", (run,))
        return [(cell, [{m: d["object"] for m, d in o["data"].items()} for o in json.loads(out or "[]")])
                for cell, out in rows]

    old, new = outputs(a), outputs(b)
    differences = [
        {"execution": position + 1, "cell_id": left[0], "a": left[1], "b": right[1]}
        for position, (left, right) in enumerate(zip(old, new)) if left[1] != right[1]
    ]
    if len(old) != len(new):
        differences.append({"executions": [len(old), len(new)]})
    return {"compared": min(len(old), len(new)), "differences": differences}


def _cell_statuses(store: Store, run: int) -> list[tuple[str, str, str | None]]:
    rows = store.execute("SELECT cell_id, status, error FROM steps WHERE run = ? ORDER BY started, id", (run,))
    return [(cell, status, error.strip().splitlines()[-1] if error else None) for cell, status, error in rows]


def _compare_cells(store: Store, a: int, b: int) -> dict[str, Any]:
    """Each execution's status there and here: a cell that failed only here did not reproduce."""
    old, new = _cell_statuses(store, a), _cell_statuses(store, b)
    differences = [
        {"execution": position + 1, "cell_id": left[0], "a": left[1], "b": right[1], "error": right[2]}
        for position, (left, right) in enumerate(zip(old, new)) if left[1] != right[1]
    ]
    return {"compared": min(len(old), len(new)), "differences": differences}


def _failed_cells(store: Store, run: int) -> dict[str, int]:
    statuses = [status for _, status, _ in _cell_statuses(store, run)]
    return {"failed": sum(status != "ok" for status in statuses), "of": len(statuses)}


def _explanations(store: Store, original: dict[str, Any], copy: dict[str, Any]) -> list[str]:
    from trellis.queries.diff import _environment

    found = []
    environment = _environment(store, original, copy)
    for name, change in environment["packages"]["changed"].items():
        found.append(f"package {name}: {change['a']} then, {change['b']} now")
    for name in environment["packages"]["removed"]:
        found.append(f"package {name} is no longer installed")
    for name, change in environment["system"]["changed"].items():
        if name in ("python_version", "python_implementation", "os", "machine", "cpu_count", "gpus"):
            found.append(f"{name}: {change['a']} then, {change['b']} now")
    if original["kind"] == "notebook":
        sources = [s for (s,) in store.execute("SELECT source FROM steps WHERE run = ?", (original["id"],))]
    else:
        sources = [_snapshot_source(store, original)]
    if draws_unseeded(sources):
        found.append("the code draws random numbers without setting a seed")
    return found


def _snapshot_source(store: Store, run: dict[str, Any]) -> str:
    return source_at(store.project, run["git_commit"], run["filename"]) or ""
