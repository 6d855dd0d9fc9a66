"""Loading a notebook's embedded provenance into a store (a collaborator gets the history).

Epochs already in the store (same run id) are skipped, so importing twice changes nothing.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from trellis._errors import TrellisError
from trellis.store.connection import Store
from trellis.store.schema import RUN_SHIFT


def _seconds(stamp: str | None) -> float | None:
    return None if stamp is None else datetime.fromisoformat(stamp).timestamp()


def import_notebook(store: Store, embedded: dict[str, Any], projid: str) -> dict[str, int]:
    if not str(embedded.get("schema", "")).startswith("trellis-notebook-provenance/"):
        raise TrellisError("this is not trellis notebook provenance (unknown schema)")
    imported = skipped = 0
    pending_links: list[tuple[int, str, str, str]] = []
    with store.transaction():
        for epoch in embedded["epochs"]:
            if store.execute("SELECT 1 FROM runs WHERE uuid = ?", (epoch["run_id"],)):
                skipped += 1
                continue
            (run_id,) = store.execute(
                "INSERT INTO runs (uuid, projid, kind, filename, started, ended, status, problems)"
                " VALUES (?, ?, 'notebook', ?, ?, ?, ?, ?) RETURNING id",
                (epoch["run_id"], projid, embedded["notebook"], _seconds(epoch["started"]) or time.time(),
                 _seconds(epoch["ended"]), epoch["status"], json.dumps(["imported from notebook metadata"])),
            )[0]
            base = run_id << RUN_SHIFT
            for module in epoch.get("modules", []):
                store.execute(
                    "INSERT INTO modules (run, step, module, distribution, version) VALUES (?, NULL, ?, ?, ?)",
                    (run_id, module["module"], module["distribution"], module["version"]),
                )
            for execution in epoch["executions"]:
                step = base + int(execution["id"].rsplit("/", 1)[1])
                started = _seconds(execution["started"])
                analysis = {k: execution[k] for k in ("defined", "used", "mutated", "imports")}
                store.execute(
                    "INSERT INTO steps (id, run, kind, notebook, cell_id, execution_count, source,"
                    " source_hash, started, ended, status, error, outputs, analysis)"
                    " VALUES (?, ?, 'cell', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (step, run_id, embedded["notebook"], execution["cell_id"], execution["execution_count"],
                     execution.get("source"), execution["source_hash"], started,
                     None if execution["duration"] is None else started + execution["duration"],
                     execution["status"], execution["error"], json.dumps(execution["outputs"]),
                     json.dumps(analysis)),
                )
                for mode, entries in (("read", execution["reads"]), ("write", execution["writes"])):
                    store.executemany(
                        "INSERT INTO files (run, step, path, mode, hash, size, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [(run_id, step, f["path"], mode, f["hash"], f["size"], started) for f in entries],
                    )
                store.executemany(
                    "INSERT INTO variables (step, name, type, summary, fingerprint) VALUES (?, ?, ?, ?, ?)",
                    [(step, v["name"], v["type"], json.dumps(v["summary"]), v["summary"].get("fingerprint"))
                     for v in execution["variables"]],
                )
                pending_links += [(step, d["execution"], d["name"], d["via"]) for d in execution["depends_on"]]
            imported += 1
        for step, key, name, via in pending_links:
            uuid, number = key.rsplit("/", 1)
            found = store.execute("SELECT id FROM runs WHERE uuid = ?", (uuid,))
            if found:
                store.execute(
                    "INSERT INTO dependencies (step, depends_on, name, via) VALUES (?, ?, ?, ?)",
                    (step, (found[0][0] << RUN_SHIFT) + int(number), name, via),
                )
    return {"imported": imported, "skipped": skipped}
