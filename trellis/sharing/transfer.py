"""``trellis push`` / ``trellis pull``: runs between the project's own SQLite store and a shared
one (PostgreSQL, or a SQLite file on a shared folder), with their objects.

A run keeps its uuid; its keys are renumbered for the receiving store by the JSON import
(sharing/importing.py), which skips runs already there, so pushing twice copies nothing twice.
Objects go first, so a shared store never lists a checkpoint it cannot give. Runs still
running are left for a later push.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from trellis._errors import StoreError, TrellisError
from trellis.store.connection import (
    DB_NAME,
    STORE_DIR,
    Store,
    configured_url,
    is_own_store,
    open_store,
    project_root,
)

_RUNS_PER_TRANSACTION = 50


def local_store_path(root: Path) -> Path:
    return root / STORE_DIR / DB_NAME


def _own_objects(root: Path) -> str:
    return str(root / STORE_DIR / "objects")


def shared_url(url: str | None, root: Path) -> str:
    """The shared store: ``url``, else the configured one when it is not the project's own."""
    url = url or configured_url(root)
    if is_own_store(url, root):
        raise TrellisError(
            "name the shared store, e.g. postgresql+psycopg://host/trellis (or set it once with"
            " `trellis config store URL`)"
        )
    return url


def copy_runs(source: Store, target: Store, run_ids: Iterable[int] | None = None) -> dict[str, int]:
    """Copy the finished runs of ``source`` (all, or ``run_ids``) that ``target`` lacks.

    ``source`` may be anyone's: it is checked to be a trellis store, and each batch of its rows
    is checked whole before any object or row of it is copied."""
    from trellis.sharing.received import check_store, is_database_error

    check_store(source)
    try:
        return _copy_runs(source, target, run_ids)
    except Exception as error:
        if not is_database_error(error):
            raise
        reason = " ".join(str(error).split()) or type(error).__name__
        raise StoreError(f"cannot copy runs from {source.location}: {reason}; nothing more was copied") from None


def _copy_runs(source: Store, target: Store, run_ids: Iterable[int] | None) -> dict[str, int]:
    from trellis.sharing.json_export import export
    from trellis.sharing.records import object_digests
    from trellis.sharing.importing import import_checked
    from trellis.store.objects import copy_objects, remove
    from trellis.sharing.received import check_export

    chosen = None if run_ids is None else set(run_ids)
    candidates = [(run, uuid, status) for run, uuid, status in
                  source.execute("SELECT id, uuid, status FROM runs ORDER BY started, id")
                  if chosen is None or run in chosen]
    counts = {"copied": 0, "merged": 0, "skipped": 0, "running": 0, "replays": 0, "objects": 0}
    finished_there = _finished(target, [uuid for _, uuid, _ in candidates])
    replayed_here = _replays(source, finished_there)
    replayed_there = _replays(target, replayed_here)
    todo = []
    for run, uuid, status in candidates:
        if status == "running":
            counts["running"] += 1
        elif uuid in finished_there and replayed_here.get(uuid, set()) <= replayed_there.get(uuid, set()):
            counts["skipped"] += 1
        else:
            todo.append(run)  # new there, or replayed here since it went there
    for start in range(0, len(todo), _RUNS_PER_TRANSACTION):
        try:
            exported = export(source, todo[start:start + _RUNS_PER_TRANSACTION], with_objects=False)
        except (TypeError, ValueError) as error:  # rows of a kind no trellis writes
            raise StoreError(f"the runs of {source.location} are damaged ({type(error).__name__}: {error});"
                             " nothing more was copied") from None
        tables = check_export(exported)  # its digests name objects, never other files, before any is copied
        written = copy_objects(source.objects, target.objects, sorted(object_digests(exported["tables"])))
        try:
            done = import_checked(target, tables, {}, merge=True, received_from=source.location)
        except BaseException:
            remove(written)  # the runs were refused: so are the objects only they brought
            raise
        counts["objects"] += len(written)
        counts["copied"] += done["imported"]
        counts["merged"] += done["merged"]
        counts["skipped"] += done["skipped"]
        counts["replays"] += done["replays"]
    return counts


def _replays(store: Store, uuids: Iterable[str]) -> dict[str, set[float]]:
    """The start times of the replays into each of these runs (by uuid) that have any."""
    uuids = list(uuids)
    found: dict[str, set[float]] = {}
    for start in range(0, len(uuids), 500):
        chunk = uuids[start:start + 500]
        for uuid, started in store.execute(
            "SELECT runs.uuid, replays.started FROM replays JOIN runs ON runs.id = replays.run"
            f" WHERE runs.uuid IN ({', '.join('?' * len(chunk))})", chunk):
            found.setdefault(uuid, set()).add(started)
    return found


def _finished(store: Store, uuids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(uuids), 500):
        chunk = uuids[start:start + 500]
        found.update(uuid for (uuid,) in store.execute(
            f"SELECT uuid FROM runs WHERE uuid IN ({', '.join('?' * len(chunk))})"
            " AND status NOT IN ('running', 'interrupted')", chunk))
    return found


def push(url: str | None = None, objects: str | None = None, root: Path | None = None) -> dict[str, Any]:
    root = project_root(root)
    local_path = local_store_path(root)
    if not local_path.exists():
        raise TrellisError(f"no local store at {local_path}: nothing recorded offline to push")
    target = open_store(shared_url(url, root), root=root, objects=objects)
    try:
        source = open_store(str(local_path), root=root, read_only=True, objects=_own_objects(root))
        try:
            counts = copy_runs(source, target)
        finally:
            source.close()
        return {**counts, "store": target.location}
    finally:
        target.close()


def pull(url: str | None = None, objects: str | None = None, runs: list[str] | None = None,
         everything: bool = False, root: Path | None = None) -> dict[str, Any]:
    """Copy runs of the shared store into the local one: ``runs`` (id prefixes), ``everything``,
    or by default the runs of this project (same project name)."""
    from trellis.queries.runs import resolve

    root = project_root(root)
    source = open_store(shared_url(url, root), root=root, objects=objects, read_only=True)
    try:
        if runs:
            run_ids = [resolve(source, ref)["id"] for ref in runs]
        elif everything:
            run_ids = None
        else:
            run_ids = [run for (run,) in source.execute("SELECT id FROM runs WHERE projid = ?", (root.name,))]
        target = open_store(str(local_store_path(root)), root=root, objects=_own_objects(root))
        try:
            counts = copy_runs(source, target, run_ids)
        finally:
            target.close()
        return {**counts, "store": source.location}
    finally:
        source.close()
