"""A notebook's history as plain data: its epochs, and each execution's names, files and links.

This is what ``trellis notebook show`` prints and what ``trellis notebook embed`` writes into the
notebook (the schema is in ``docs/notebook-provenance.md``).
"""

from __future__ import annotations

import ast
import functools
import json
from pathlib import Path
from typing import Any

from trellis._errors import TrellisError
from trellis.analysis.magics import to_python
from trellis.store.paths import recorded_path
from trellis.queries.runs import timestamp
from trellis.store.connection import Store

SCHEMA = "trellis-notebook-provenance/1"


def execution_key(run_uuid: str, step_id: int) -> str:
    """A store-independent name for an execution: its epoch and its number in that epoch."""
    return f"{run_uuid}/{step_id & 0xFFFFFFFF}"


def history(store: Store, notebook: str) -> dict[str, Any]:
    path = recorded_path(notebook, store.project)
    epochs = store.execute(
        "SELECT id, uuid, started, ended, status, environment_id FROM runs"
        " WHERE filename = ? AND kind = 'notebook' ORDER BY started, id",
        (path,),
    )
    if not epochs:
        raise TrellisError(f"no recorded kernel session ran {path}; run it with `trellis run {path}`")
    keys: dict[int, str] = {}
    step_rows = store.execute(
        "SELECT s.id, r.uuid FROM steps s JOIN runs r ON r.id = s.run WHERE r.filename = ?", (path,)
    )
    keys.update((step, execution_key(uuid, step)) for step, uuid in step_rows)
    result: dict[str, Any] = {"schema": SCHEMA, "notebook": path, "epochs": []}
    for run_id, uuid, started, ended, status, environment_id in epochs:
        result["epochs"].append({
            "run_id": uuid, "started": timestamp(started), "ended": timestamp(ended),
            "started_unix": started, "ended_unix": ended,
            "status": status, "environment": _environment(store, environment_id),
            "modules": _modules(store, run_id),
            "executions": _executions(store, run_id, keys),
        })
    result["unused_imports"] = unused_imports(result)
    return result


def _environment(store: Store, environment_id: int | None) -> dict[str, Any] | None:
    if environment_id is None:
        return None
    found = store.execute("SELECT data FROM environments WHERE id = ?", (environment_id,))
    if not found:
        return None
    data = json.loads(found[0][0])
    return {k: data.get(k) for k in ("python_version", "python_implementation", "os", "platform",
                                      "machine", "hostname", "cpu_count", "gpus")}


def _modules(store: Store, run_id: int) -> list[dict[str, Any]]:
    rows = store.execute(
        "SELECT module, distribution, version FROM modules WHERE run = ? AND distribution IS NOT NULL"
        " ORDER BY module",
        (run_id,),
    )
    unique = {module: (distribution, version) for module, distribution, version in rows}
    return [{"module": m, "distribution": d, "version": v} for m, (d, v) in unique.items()]


def _executions(store: Store, run_id: int, keys: dict[int, str]) -> list[dict[str, Any]]:
    steps = store.execute(
        "SELECT id, cell_id, execution_count, source, source_hash, started, ended, status, error,"
        " outputs, analysis FROM steps WHERE run = ? ORDER BY started, id",
        (run_id,),
    )
    files = _grouped(store, "SELECT step, mode, path, hash, size, seen_after FROM files WHERE run = ? ORDER BY at", run_id)
    variables = _grouped(
        store,
        "SELECT v.step, v.name, v.type, v.summary FROM variables v JOIN steps s ON s.id = v.step"
        " WHERE s.run = ?",
        run_id,
    )
    dependencies = _grouped(
        store,
        "SELECT d.step, d.depends_on, d.name, d.via FROM dependencies d JOIN steps s ON s.id = d.step"
        " WHERE s.run = ? ORDER BY d.name",
        run_id,
    )
    executions = []
    for (step, cell, count, source, digest, started, ended, status, error, outputs,
         analysis) in steps:
        found = json.loads(analysis or "{}")
        executions.append({
            "id": keys.get(step) or execution_key("?", step),
            "cell_id": cell,
            "execution_count": count,
            "status": status,
            "started": timestamp(started),
            "duration": None if ended is None else round(ended - started, 4),
            "started_unix": started, "ended_unix": ended,
            "source": source,
            "source_hash": digest,
            "error": error.strip().splitlines()[-1] if error else None,
            "defined": found.get("defined", []),
            "used": found.get("used", []),
            "mutated": found.get("mutated", []),
            "imports": found.get("imports", []),
            "loops": found.get("loops", 0),
            "conditions": found.get("conditions", 0),
            "reads": [{"path": p, "hash": h, "size": s} for m, p, h, s, _ in files.get(step, []) if m == "read"],
            "writes": [{"path": p, "hash": h, "size": s, **({"seen_after": True} if after else {})}
                       for m, p, h, s, after in files.get(step, []) if m == "write"],
            "depends_on": [
                {"execution": keys.get(on) or execution_key("?", on), "name": name, "via": via}
                for on, name, via in dependencies.get(step, [])
            ],
            "variables": [
                {"name": n, "type": t, "summary": json.loads(s or "{}")}
                for n, t, s in variables.get(step, [])
            ],
            "outputs": json.loads(outputs or "[]"),
        })
    return executions


def _grouped(store: Store, sql: str, run_id: int) -> dict[int, list[tuple]]:
    grouped: dict[int, list[tuple]] = {}
    for step, *rest in store.execute(sql, (run_id,)):
        grouped.setdefault(step, []).append(tuple(rest))
    return grouped


def unused_imports(described: dict[str, Any]) -> list[str]:
    """Names bound by imports that no execution of the notebook ever used."""
    imported: dict[str, None] = {}
    used: set[str] = set()
    for epoch in described["epochs"]:
        for execution in epoch["executions"]:
            for entry in execution["imports"]:
                for name in _bound_names(entry):
                    imported.setdefault(name)
            used.update(execution["used"])
            used.update(execution["mutated"])
            if execution["imports"]:  # an import used in its own cell is not in "used"
                used.update(loaded_names(execution["source"]))
    return [name for name in imported if name not in used]


@functools.lru_cache(maxsize=4096)
def loaded_names(source: str | None) -> frozenset[str]:
    """Every name the cell reads anywhere: the analysis's ``used`` leaves out names the cell
    bound before reading them, such as an import followed by its use in the same cell."""
    try:
        tree = ast.parse(to_python(source or "")[0])
    except (SyntaxError, ValueError, RecursionError):
        return frozenset()
    return frozenset(node.id for node in ast.walk(tree)
                     if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load))


def _bound_names(entry: dict[str, Any]) -> list[str]:
    if entry.get("names"):
        return [n for n in entry["names"] if n != "*"]
    if entry.get("alias"):
        return [entry["alias"]]
    module = entry.get("module") or ""
    return [module.split(".")[0]] if module else []


def notebook_file(path: str) -> Path:
    found = Path(path)
    if not found.is_file():
        raise TrellisError(f"no notebook at {path}")
    return found
