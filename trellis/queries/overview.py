"""What the dashboard shows of runs: the runs table with each run's last logged values, the
points of a logged name over its loop coordinates, one run's page, and the recorded notebooks.

Everything is plain data; ``json_text`` turns it (or any query's result) into strict JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

from trellis.queries.checkpoints import list_checkpoints
from trellis.queries.runs import list_runs, resolve, show_run, timestamp
from trellis.store.cells import decode
from trellis.store.connection import Store
from trellis.store.schema import RUN_SHIFT
from trellis.store.snapshots import files_at, source_at


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its text, so strict JSON can carry it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """Strict JSON (what browsers parse): NaN and infinities, which some logged values are,
    become their text."""
    try:
        return json.dumps(value, allow_nan=False, default=str, separators=(",", ":"))
    except ValueError:
        return json.dumps(json_ready(value), default=str, separators=(",", ":"))


def runs_table(store: Store) -> dict[str, Any]:
    """Every run, newest first, with its params and the last value of each name it logged."""
    runs = list_runs(store)
    last: dict[str, dict[str, Any]] = {}
    for run, uuid in store.execute("SELECT id, uuid FROM runs"):
        # a run's values are one key range: reading it needs no index on the logs
        rows = store.execute(
            "SELECT l.name, l.kind, l.int_value, l.float_value, l.text_value FROM logs l JOIN"
            " (SELECT MAX(id) AS newest FROM logs WHERE id >= ? AND id < ? GROUP BY name) m"
            " ON l.id = m.newest",
            (run << RUN_SHIFT, (run + 1) << RUN_SHIFT),
        )
        if rows:
            last[uuid] = {name: decode(kind, i, f, t) for name, kind, i, f, t in rows}
    for run in runs:
        run["last"] = last.get(run["run_id"], {})
    names = sorted({name for values in last.values() for name in values})
    params = sorted({name for run in runs for name in run["params"]})
    return {"runs": runs, "names": names, "params": params}


def series(store: Store, name: str, run_refs: Iterable[str]) -> dict[str, Any]:
    """The values of ``name`` per run, each point at its loop coordinates.

    ``x`` is the index of the one loop the name was logged in; logged inside nested loops (a
    loss per step of each epoch) it is the value's position in the run, with the coordinates
    kept beside it.
    """
    import pandas as pd

    from trellis.queries.dataframe import DIMENSIONS, dataframe

    refs = list(run_refs)
    frame = dataframe(store, [name], runs=refs)
    value = frame.columns[-1]  # the name's column: its label differs when a loop has that name
    coordinates = [c for c in frame.columns[:-1]
                   if c not in DIMENSIONS and str(frame[c].dtype) == "Int64"]
    lines = []
    for run_id, group in frame.groupby("run_id", sort=False):
        group = group[group[value].notna()]
        used = [c for c in coordinates if group[c].notna().any()]
        points = []
        # plain tuples: named ones rename columns that are not identifiers (a loop "train-epoch")
        for position, row in enumerate(group.itertuples(index=False, name=None)):
            record = dict(zip(group.columns, row))
            at = {c: int(record[c]) for c in used if not pd.isna(record[c])}
            y = record[value]
            points.append({
                "x": at[used[0]] if len(used) == 1 and used[0] in at else position,
                "y": y.item() if hasattr(y, "item") else y,
                "at": at,
            })
        lines.append({"run_id": run_id, "filename": group["filename"].iloc[0] if len(group) else None,
                      "loops": used, "points": points})
    return {"name": name, "runs": lines}


def run_page(store: Store, ref: str) -> dict[str, Any]:
    """Everything the run page shows: ``show_run`` plus files, checkpoints, values by origin
    (logged as the run went, or replayed later) and the files of its code snapshot."""
    described = show_run(store, ref)
    run = resolve(store, ref)
    described["files"] = [
        {"mode": mode, "path": path, "hash": digest, "size": size, "at": timestamp(at)}
        for mode, path, digest, size, at in store.execute(
            "SELECT mode, path, hash, size, at FROM files WHERE run = ? ORDER BY at", (run["id"],)
        )
    ]
    described["checkpoints"] = list_checkpoints(store, run["uuid"])
    origins: dict[str, dict[str, int]] = {}
    for name, origin, count in store.execute(
        "SELECT name, source, COUNT(*) FROM logs WHERE id >= ? AND id < ? GROUP BY name, source"
        " ORDER BY name",
        (run["id"] << RUN_SHIFT, (run["id"] + 1) << RUN_SHIFT),
    ):
        origins.setdefault(name, {})[origin] = count
    described["logged"] = origins
    described["inputs"] = [
        {"run_id": source, "via": via, "detail": detail}
        for source, via, detail in store.execute(
            "SELECT source, via, detail FROM run_inputs WHERE run = ? ORDER BY at", (run["id"],)
        )
    ]
    described["snapshot"] = {
        "commit": run["git_commit"],
        "files": files_at(store.project, run["git_commit"]) if run["git_commit"] else [],
    }
    return described


def snapshot_text(store: Store, ref: str, path: str | None = None) -> dict[str, Any]:
    """A file of a run's code snapshot as it was when the run started (default: its script)."""
    from trellis._errors import TrellisError

    run = resolve(store, ref)
    if not run["git_commit"]:
        raise TrellisError(f"run {run['uuid'][:8]} was recorded outside git: it has no code snapshot")
    wanted = path or run["filename"]
    text = source_at(store.project, run["git_commit"], wanted) if wanted else None
    if text is None:
        raise TrellisError(f"the snapshot of run {run['uuid'][:8]} has no file {wanted!r}")
    return {"run_id": run["uuid"], "commit": run["git_commit"], "path": wanted, "text": text}


def notebooks(store: Store) -> list[dict[str, Any]]:
    """The notebooks with recorded kernel sessions: epochs, executions and the last session."""
    rows = store.execute(
        "SELECT r.filename, COUNT(DISTINCT r.id), COUNT(s.id), MAX(r.started) FROM runs r"
        " LEFT JOIN steps s ON s.run = r.id WHERE r.kind = 'notebook' AND r.filename IS NOT NULL"
        " GROUP BY r.filename ORDER BY MAX(r.started) DESC"
    )
    return [{"notebook": path, "epochs": epochs, "executions": executions, "last": timestamp(last)}
            for path, epochs, executions, last in rows]


def written_files(store: Store) -> list[str]:
    """Every path a recorded run or cell wrote: what a lineage can start from."""
    return [path for (path,) in store.execute(
        "SELECT path FROM files WHERE mode = 'write' GROUP BY path ORDER BY MAX(at) DESC")]
