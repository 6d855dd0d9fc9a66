"""A notebook's history shaped for its provenance graph: every execution in order (with its
epoch), the cells they group into (with whether each is still in the notebook file), the
libraries each cell imports and uses, and the environment of each epoch.

The graph itself (a node per cell, edges for the variables and files that flow) is drawn by the
UI bundle from this data, so the dashboard, the notebook widget and a static page agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trellis.queries.notebooks import _bound_names, history, loaded_names
from trellis.queries.status import notebook_staleness
from trellis.store.connection import Store
from trellis.store.objects import object_path

# Outputs carried inside the data (the widget has no server to fetch them from): text and
# images up to this size; larger ones show their preview.
INLINE_LIMIT = 256 << 10
_INLINE_TYPES = ("text/", "image/png", "image/jpeg", "image/gif", "image/svg+xml", "application/json")


def notebook_graph(store: Store, notebook: str, inline_outputs: bool = False) -> dict[str, Any]:
    described = history(store, notebook)
    environments = _environments(store, [epoch["run_id"] for epoch in described["epochs"]])
    epochs, executions = [], []
    for number, epoch in enumerate(described["epochs"]):
        epochs.append({
            "run_id": epoch["run_id"], "started": epoch["started"], "ended": epoch["ended"],
            "status": epoch["status"], "environment": environments.get(epoch["run_id"]),
            "modules": epoch["modules"],
        })
        for execution in epoch["executions"]:
            executions.append({**execution, "epoch": number})
    if inline_outputs:
        _inline(store, executions)
    # what is out of date in this working copy, and why (`trellis status`), for the graph to mark
    stale = notebook_staleness(store, described["notebook"])
    for execution in executions:
        if execution["id"] in stale:
            execution["stale"] = stale[execution["id"]]
    present = _cells_in_file(store.project / described["notebook"])
    return {
        "notebook": described["notebook"],
        "epochs": epochs,
        "executions": executions,
        "cells": _cells(executions, present),
        "libraries": _libraries(described, executions),
        "file_found": present is not None,
    }


def _environments(store: Store, run_uuids: list[str]) -> dict[str, Any]:
    if not run_uuids:
        return {}
    marks = ", ".join("?" * len(run_uuids))
    rows = store.execute(
        f"SELECT r.uuid, e.data FROM runs r JOIN environments e ON e.id = r.environment_id"
        f" WHERE r.uuid IN ({marks})",
        run_uuids,
    )
    return {uuid: json.loads(data) for uuid, data in rows}


def _cells_in_file(path: Path) -> list[str] | None:
    """The cell ids of the notebook as it is now, or None when that cannot be told."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return None
    ids = [cell.get("id") for cell in cells if isinstance(cell, dict) and cell.get("cell_type") == "code"]
    return ids if all(isinstance(i, str) for i in ids) else None


def _cells(executions: list[dict[str, Any]], present: list[str] | None) -> list[dict[str, Any]]:
    """Cells in the notebook's order; cells no longer in the file after, marked deleted."""
    executed = list(dict.fromkeys(e["cell_id"] for e in executions))
    order = {cell: place for place, cell in enumerate(present or [])}
    ranked = sorted(executed, key=lambda c: (c not in order, order.get(c, 0), executed.index(c)))
    return [{"cell_id": cell, "deleted": present is not None and cell not in order} for cell in ranked]


def _libraries(described: dict[str, Any], executions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each name an import binds: its module, distribution and version, the cells that import
    it and the cells that use it (none: imported but never used), the importing cell included."""
    versions = {}
    for epoch in described["epochs"]:
        for module in epoch["modules"]:
            versions[module["module"]] = (module["distribution"], module["version"])
    found: dict[str, dict[str, Any]] = {}
    for execution in executions:
        for entry in execution["imports"]:
            module = entry.get("module") or ""
            for name in _bound_names(entry):
                distribution, version = versions.get(module.split(".")[0], (None, None))
                library = found.setdefault(name, {
                    "name": name, "module": module, "distribution": distribution,
                    "version": version, "imported_in": [], "used_in": [],
                })
                if execution["cell_id"] not in library["imported_in"]:
                    library["imported_in"].append(execution["cell_id"])
    for execution in executions:
        # only a cell that imports can use a name it bound itself, which "used" leaves out
        loaded = loaded_names(execution["source"]) if execution["imports"] else ()
        for name in (*execution["used"], *execution["mutated"], *loaded):
            library = found.get(name)
            if library is not None and execution["cell_id"] not in library["used_in"]:
                library["used_in"].append(execution["cell_id"])
    for library in found.values():
        library["unused"] = not library["used_in"]
    return sorted(found.values(), key=lambda library: library["name"].lower())


def _inline(store: Store, executions: list[dict[str, Any]]) -> None:
    for execution in executions:
        for output in execution["outputs"]:
            for mime, entry in output.get("data", {}).items():
                digest = entry.get("object") if isinstance(entry, dict) else None
                if (digest and mime.startswith(_INLINE_TYPES) and (entry.get("size") or 0) <= INLINE_LIMIT):
                    try:
                        entry["text"] = object_path(store.objects, digest).read_bytes().decode("utf-8", "replace")
                    except OSError:
                        pass
