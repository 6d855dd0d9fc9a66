"""Finding runs by id prefix or ``latest``, and describing them."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from trellis._errors import TrellisError, UnknownRunError
from trellis.store.connection import Store
from trellis.store.cells import decode as decode_row
from trellis.store.schema import GENERATOR_STATES, run_keys
from trellis.store.paths import recorded_path

RUN_COLUMNS = (
    "id", "uuid", "projid", "kind", "filename", "cwd", "argv", "started", "ended", "committed", "status",
    "error", "problems", "host", "pid", "git_commit", "git_ref", "git", "build_target", "build",
    "environment_id", "parent_run",
)


def resolve(store: Store, ref: str) -> dict[str, Any]:
    """The run named by ``ref``: a unique prefix of its id, or ``latest``."""
    columns = ", ".join(RUN_COLUMNS)
    ref = str(ref).strip()
    if ref == "latest":
        rows = store.execute(f"SELECT {columns} FROM runs ORDER BY started DESC, id DESC LIMIT 1")
        if not rows:
            raise UnknownRunError("the store has no runs yet; run a script that imports trellis")
    else:
        if not ref or any(c not in "0123456789abcdef-" for c in ref.lower()):
            raise UnknownRunError(f"{ref!r} is not a run id; see `trellis runs` for the ids")
        rows = store.execute(
            f"SELECT {columns} FROM runs WHERE uuid LIKE ? ORDER BY started LIMIT 2",
            (ref.lower() + "%",),
        )
        if not rows:
            raise UnknownRunError(f"no run id starts with {ref!r}; see `trellis runs` for the ids")
        if len(rows) > 1:
            raise UnknownRunError(f"more than one run id starts with {ref!r}; give more characters")
    return dict(zip(RUN_COLUMNS, rows[0]))


def timestamp(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, tz=timezone.utc).astimezone().isoformat(timespec="seconds")


def params_of(store: Store, run_id: int) -> dict[str, Any]:
    rows = store.execute(
        "SELECT name, kind, int_value, float_value, text_value FROM params WHERE run = ? ORDER BY name",
        (run_id,),
    )
    return {name: decode_row(kind, i, f, t) for name, kind, i, f, t in rows}


def program_name(filename: str | None, kind: str, cwd: str | None) -> str | None:
    """What ran: its file, or for a kernel whose notebook could not be known, where it ran."""
    if filename is None and kind in ("notebook", "reproduction"):
        if cwd in (None, "", "."):
            return "unnamed notebook in the project folder"
        return f"unnamed notebook in {cwd.rstrip('/')}/"
    return filename


def list_runs(store: Store, limit: int | None = None) -> list[dict[str, Any]]:
    """Newest first: id, file, status, start, duration and params of each run."""
    sql = ("SELECT id, uuid, filename, kind, status, started, ended, build_target, cwd FROM runs"
           " ORDER BY started DESC, id DESC")
    if limit:
        sql += f" LIMIT {int(limit)}"
    rows = store.execute(sql)
    params: dict[int, dict[str, Any]] = {}
    if rows:
        for run, name, kind, i, f, t in store.execute(
            "SELECT run, name, kind, int_value, float_value, text_value FROM params"
        ):
            params.setdefault(run, {})[name] = decode_row(kind, i, f, t)
    return [
        {
            "run_id": uuid,
            "filename": program_name(filename, kind, cwd),
            "kind": kind,
            "status": status,
            "started": timestamp(started),
            "duration": None if ended is None else round(ended - started, 3),
            "target": target,
            "params": params.get(run, {}),
        }
        for run, uuid, filename, kind, status, started, ended, target, cwd in rows
    ]


def show_run(store: Store, ref: str) -> dict[str, Any]:
    """Everything captured for one run, as plain data."""
    from trellis.queries.checkpoints import received_from  # which imports this module

    run = resolve(store, ref)
    environment = None
    if run["environment_id"] is not None:
        found = store.execute("SELECT data FROM environments WHERE id = ?", (run["environment_id"],))
        environment = json.loads(found[0][0]) if found else None
    names = store.execute(
        "SELECT name, COUNT(*) FROM logs WHERE id >= ? AND id < ? GROUP BY name ORDER BY name",
        run_keys(run["id"]),
    )
    loops = store.execute(
        "SELECT loop, depth, CAST(SUM(count) AS BIGINT) FROM iterations WHERE run = ? GROUP BY loop, depth"
        " ORDER BY depth, loop",
        (run["id"],),
    )
    streams = store.execute("SELECT stdout, stderr FROM runs WHERE id = ?", (run["id"],))[0]
    checkpoints = store.execute("SELECT COUNT(*) FROM checkpoints WHERE run = ? AND name != ?",
                                (run["id"], GENERATOR_STATES))[0][0]
    replays = [
        {"names": json.loads(names), "code": code, "git_commit": commit, "started": timestamp(started),
         "ended": timestamp(ended), "seconds": seconds, "status": status, "segments": segments,
         "failed": failed, "stored": stored, "error": error,
         "overrides": json.loads(overrides) if overrides else None}
        for names, code, commit, started, ended, seconds, status, segments, failed, stored, error, overrides
        in store.execute(
            "SELECT names, code, git_commit, started, ended, seconds, status, segments, failed,"
            " stored, error, overrides FROM replays WHERE run = ? ORDER BY started", (run["id"],))
    ]
    return {
        "run_id": run["uuid"],
        "projid": run["projid"],
        "kind": run["kind"],
        "filename": run["filename"],
        "argv": json.loads(run["argv"]) if run["argv"] else None,
        "status": run["status"],
        "started": timestamp(run["started"]),
        "ended": timestamp(run["ended"]),
        "duration": None if run["ended"] is None else round(run["ended"] - run["started"], 3),
        "error": run["error"],
        "problems": json.loads(run["problems"]) if run["problems"] else [],
        "host": run["host"],
        "pid": run["pid"],
        "received_from": received_from(store, run["id"]),
        "git": json.loads(run["git"]) if run["git"] else None,
        "build": json.loads(run["build"]) if run["build"] else None,
        "params": params_of(store, run["id"]),
        "logged": {name: count for name, count in names},
        "loops": [{"loop": loop, "depth": depth, "iterations": n} for loop, depth, n in loops],
        "checkpoints": checkpoints,
        "replays": replays,
        "environment": environment,
        "stdout": streams[0],
        "stderr": streams[1],
    }


def select_runs(store: Store, target: str | None, everything: bool) -> list[int]:
    """The runs an export covers: one run, every epoch of a notebook, or all of them."""
    if everything == (target is not None):
        raise TrellisError("give a run id, a notebook (.ipynb), or --all (one of them)")
    if everything:
        return [run for (run,) in store.execute("SELECT id FROM runs ORDER BY started, id")]
    if target.endswith(".ipynb"):
        path = recorded_path(target, store.project)
        found = [run for (run,) in store.execute(
            "SELECT id FROM runs WHERE filename = ? ORDER BY started, id", (path,))]
        if not found:
            raise TrellisError(f"no recorded session ran {path}")
        return found
    return [resolve(store, target)["id"]]
