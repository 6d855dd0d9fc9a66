"""Every stored row of some runs, table by table: the lossless content of an export."""

from __future__ import annotations

from typing import Any

from trellis.store.connection import Store
from trellis.store.schema import BY_RUN, BY_STEP, RUN_SHIFT


def _columns(store: Store, table: str) -> list[str]:
    cursor = store.connection.cursor()
    cursor.execute(f"SELECT * FROM {table} LIMIT 0")
    names = [c[0] for c in cursor.description]
    cursor.close()
    return names


def records(store: Store, run_ids: list[int]) -> dict[str, Any]:
    """Rows (as column lists plus value lists) of every table, for ``run_ids``."""
    tables: dict[str, Any] = {}
    marks = ", ".join("?" * len(run_ids))
    for table, column in BY_RUN.items():
        tables[table] = _rows(store, table, f"SELECT * FROM {table} WHERE {column} IN ({marks})", run_ids)
    bounds = " OR ".join(["step BETWEEN ? AND ?"] * len(run_ids))
    ranges = [b for run in run_ids for b in (run << RUN_SHIFT, ((run + 1) << RUN_SHIFT) - 1)]
    for table in BY_STEP:
        tables[table] = _rows(store, table, f"SELECT * FROM {table} WHERE {bounds}", ranges)
    environment_ids = sorted({r[tables["runs"]["columns"].index("environment_id")]
                              for r in tables["runs"]["rows"]} - {None})
    tables["environments"] = _rows(
        store, "environments",
        f"SELECT * FROM environments WHERE id IN ({', '.join('?' * len(environment_ids)) or 'NULL'})",
        environment_ids,
    )
    return tables


def _rows(store: Store, table: str, sql: str, params: list[Any]) -> dict[str, Any]:
    return {"columns": _columns(store, table), "rows": [list(r) for r in store.execute(sql, params)]}


def object_digests(tables: dict[str, Any]) -> set[str]:
    """The objects (checkpoints, outputs) the rows refer to."""
    import json

    digests = set()
    checkpoints = tables["checkpoints"]
    if checkpoints["rows"]:
        at = checkpoints["columns"].index("object")
        digests.update(row[at] for row in checkpoints["rows"])
    replays = tables.get("replays") or {"rows": []}
    if replays["rows"]:
        at = replays["columns"].index("code")
        digests.update(row[at] for row in replays["rows"] if row[at])
    steps = tables["steps"]
    at = steps["columns"].index("outputs")
    for row in steps["rows"]:
        for output in json.loads(row[at] or "[]"):
            digests.update(d["object"] for d in output.get("data", {}).values() if d.get("object"))
    return digests
