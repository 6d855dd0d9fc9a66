"""Everything the provenance exports need about some runs (one, a notebook's epochs, or all).

The result is plain data, one dict per run with its params, logged values (last value and count
per name), files used and generated, libraries, environment and, for a notebook epoch, its cell
executions with their dependencies, variable versions and outputs. Every node carries an ``iri``
under ``urn:uuid:``:

- what belongs to one run (the run, its executions, params, logged values, variable versions,
  outputs, sources, its kernel or interpreter) is named from the run's own UUID, so it never
  collides with anything in another store;
- what runs share is named from its content within the project: a file version (path and
  sha256), a notebook and its cells (path, cell id), a variable of a notebook; a library
  version, a Python version and an operating system are named from themselves alone.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any

from trellis.queries.dataflow import DataFlow
from trellis.queries.runs import params_of
from trellis.store.cells import decode
from trellis.store.connection import Store
from trellis.store.schema import RUN_SHIFT, run_keys

SCHEMA = "trellis-provenance/1"
# The namespace of every name-based UUID trellis mints (uuid5 of the project's content).
TRELLIS_UUID = uuid.UUID("6f0f3c1e-5b7a-5d2e-9a43-1c0f1b7e2a90")
_STEP_MASK = (1 << RUN_SHIFT) - 1


def iri(scope: uuid.UUID, *parts: Any) -> str:
    return f"urn:uuid:{uuid.uuid5(scope, chr(0).join(str(p) for p in parts))}"


def instant(seconds: float | None) -> str | None:
    """An ``xsd:dateTime`` in UTC to the millisecond (truncation keeps start <= end)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds")


def plain(value: Any) -> Any:
    """A value an export can carry as a literal: numbers, text and bools as they are; NaN,
    infinities and containers as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def provenance(store: Store, run_ids: list[int]) -> dict[str, Any]:
    """The provenance of the runs ``run_ids`` (from ``trellis.queries.runs.select_runs``)."""
    return _Collector(store).collect(run_ids)


class _Collector:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.uuids = dict(store.execute("SELECT id, uuid FROM runs"))
        self.flow = DataFlow(store)
        self.files: dict[str, dict[str, Any]] = {}
        self.libraries: dict[str, dict[str, Any]] = {}
        self.notebooks: dict[str, dict[str, Any]] = {}
        self.variables: dict[str, dict[str, Any]] = {}
        self.settings: dict[str, dict[str, Any]] = {}

    def collect(self, run_ids: list[int]) -> dict[str, Any]:
        runs = [self.run(run_id) for run_id in run_ids]
        return {
            "schema": SCHEMA,
            "project": self.store.project.name,
            "runs": runs,
            "notebooks": list(self.notebooks.values()),
            "files": list(self.files.values()),
            "libraries": list(self.libraries.values()),
            "variables": list(self.variables.values()),
            "settings": list(self.settings.values()),
        }

    # -- shared nodes -----------------------------------------------------------------------

    def file(self, path: str, digest: str | None, size: int | None, run: uuid.UUID) -> str:
        """A file version: by content when hashed; an unhashed one only within its run."""
        node = (iri(TRELLIS_UUID, self.store.project.name, "file", path, digest) if digest
                else iri(run, "file", path))
        self.files.setdefault(node, {"iri": node, "path": path, "sha256": digest, "size": size})
        return node

    def library(self, distribution: str, version: str | None, module: str) -> str:
        node = iri(TRELLIS_UUID, "library", distribution, version)
        entry = self.libraries.setdefault(
            node, {"iri": node, "name": distribution, "version": version, "modules": []}
        )
        if module not in entry["modules"]:
            entry["modules"].append(module)
        return node

    def setting(self, kind: str, name: str, version: str | None = None) -> str:
        node = iri(TRELLIS_UUID, kind, name, version)
        self.settings.setdefault(node, {"iri": node, "kind": kind, "name": name, "version": version})
        return node

    def notebook(self, path: str) -> dict[str, Any]:
        return self.notebooks.setdefault(path, {
            "iri": iri(TRELLIS_UUID, self.store.project.name, "notebook", path),
            "path": path, "cells": [], "settings": [],
        })

    def cell(self, notebook: str, cell_id: str) -> str:
        node = iri(TRELLIS_UUID, self.store.project.name, "cell", notebook, cell_id)
        cells = self.notebook(notebook)["cells"]
        if all(cell["iri"] != node for cell in cells):
            cells.append({"iri": node, "cell_id": cell_id})
        return node

    def variable(self, plan: str, name: str) -> str:
        node = iri(TRELLIS_UUID, self.store.project.name, "variable", plan, name)
        self.variables.setdefault(node, {"iri": node, "plan": plan, "name": name})
        return node

    # -- one run ----------------------------------------------------------------------------

    def run(self, run_id: int) -> dict[str, Any]:
        (run_uuid, kind, filename, argv, started, ended, status, error, commit, target,
         environment_id) = self.store.execute(
            "SELECT uuid, kind, filename, argv, started, ended, status, error, git_commit,"
            " build_target, environment_id FROM runs WHERE id = ?",
            (run_id,),
        )[0]
        scope = uuid.UUID(run_uuid)
        environment = self.environment(environment_id)
        language = (self.setting("language", environment["python_implementation"] or "Python",
                                 environment["python_version"])
                    if environment.get("python_version") else None)
        system = (self.setting("os", environment["os"], environment.get("release"))
                  if environment.get("os") else None)
        described = {
            "iri": f"urn:uuid:{run_uuid}",
            "run_id": run_uuid,
            "kind": kind,
            "filename": filename,
            "argv": json.loads(argv) if argv else None,
            "status": status,
            "error": error.strip().splitlines()[-1] if error else None,
            "started": instant(started),
            "ended": instant(ended),
            "git_commit": commit,
            "build_target": target,
            "environment": environment,
            "settings": [node for node in (language, system) if node],
            "agent": {
                "iri": iri(scope, "agent"),
                "kind": "kernel" if kind == "notebook" else "interpreter",
                "name": " ".join(filter(None, (environment.get("python_implementation"),
                                               environment.get("python_version")))) or "python",
            },
            "notebook": None,
            "params": [
                {"iri": iri(scope, "param", name), "name": name, "value": plain(value)}
                for name, value in params_of(self.store, run_id).items()
            ],
            "informed_by": [
                f"urn:uuid:{source}" for (source,) in self.store.execute(
                    "SELECT DISTINCT source FROM run_inputs WHERE run = ? ORDER BY source", (run_id,)
                )
            ],
        }
        files = self.grouped("SELECT step, mode, path, hash, size FROM files WHERE run = ? ORDER BY at",
                             run_id)
        modules = self.grouped(
            "SELECT step, distribution, version, module FROM modules WHERE run = ?"
            " AND distribution IS NOT NULL ORDER BY module",
            run_id,
        )
        described.update(self.io(files.get(None, []), modules.get(None, []), scope))
        executions = self.executions(run_id, scope, files, modules)
        described["logged"] = self.logged(run_id, scope)
        described["executions"] = executions
        if kind == "notebook" and filename:
            book = self.notebook(filename)
            described["notebook"] = book["iri"]
            for node in described["settings"]:
                if node not in book["settings"]:
                    book["settings"].append(node)
        return described

    def environment(self, environment_id: int | None) -> dict[str, Any]:
        found = self.store.execute("SELECT data FROM environments WHERE id = ?", (environment_id,)) \
            if environment_id is not None else []
        data = json.loads(found[0][0]) if found else {}
        return {key: data.get(key) for key in ("python_version", "python_implementation", "os",
                                               "release", "platform", "machine", "hostname")}

    def grouped(self, sql: str, run_id: int) -> dict[int | None, list[tuple]]:
        grouped: dict[int | None, list[tuple]] = {}
        for step, *rest in self.store.execute(sql, (run_id,)):
            grouped.setdefault(step, []).append(tuple(rest))
        return grouped

    def io(self, files: list[tuple], modules: list[tuple], scope: uuid.UUID) -> dict[str, list[str]]:
        used: list[str] = []
        generated: list[str] = []
        for mode, path, digest, size in files:
            node = self.file(path, digest, size, scope)
            target = used if mode == "read" else generated
            if node not in target:
                target.append(node)
        libraries = list(dict.fromkeys(self.library(d, v, m) for d, v, m in modules))
        return {"used": used, "generated": generated, "libraries": libraries}

    def logged(self, run_id: int, scope: uuid.UUID) -> list[dict[str, Any]]:
        """Per name: the last value logged, how many were, and which execution logged the last."""
        rows = self.store.execute(
            "SELECT l.name, c.n, l.step, l.kind, l.int_value, l.float_value, l.text_value"
            " FROM logs l JOIN (SELECT name, COUNT(*) AS n, MAX(id) AS last FROM logs"
            " WHERE id >= ? AND id < ? GROUP BY name) c ON l.id = c.last ORDER BY l.name",
            run_keys(run_id),
        )
        return [
            {"iri": iri(scope, "logged", name), "name": name, "count": count,
             "last": plain(decode(kind, i, f, t)), "execution": None if step is None else self.execution_iri(step)}
            for name, count, step, kind, i, f, t in rows
        ]

    def executions(self, run_id: int, scope: uuid.UUID, files: dict, modules: dict) -> list[dict[str, Any]]:
        steps = self.store.execute(
            "SELECT id, notebook, cell_id, execution_count, source, source_hash, started, ended,"
            " status, error, outputs FROM steps WHERE run = ? ORDER BY started, id",
            (run_id,),
        )
        variables = self.grouped(
            "SELECT v.step, v.name, v.type, v.fingerprint FROM variables v JOIN steps s"
            " ON s.id = v.step WHERE s.run = ? ORDER BY v.name",
            run_id,
        )
        dependencies = self.grouped(
            "SELECT d.step, d.depends_on, d.name, d.via FROM dependencies d JOIN steps s"
            " ON s.id = d.step WHERE s.run = ? ORDER BY d.depends_on, d.name",
            run_id,
        )
        executions = []
        for (step, notebook, cell_id, count, source, digest, started, ended, status, error,
             outputs) in steps:
            number = step & _STEP_MASK
            node = self.execution_iri(step)
            plan = notebook or ""
            executions.append({
                "iri": node,
                "number": number,
                "notebook": notebook,
                "cell": self.cell(notebook, cell_id) if notebook and cell_id else None,
                "cell_id": cell_id,
                "execution_count": count,
                "status": status,
                "error": error.strip().splitlines()[-1] if error else None,
                "started": instant(started),
                "ended": instant(ended),
                "source": {"iri": iri(scope, "source", number), "sha256": digest, "text": source},
                **self.io(files.get(step, []), modules.get(step, []), scope),
                "variables": [
                    {"iri": iri(scope, "variable", number, name), "name": name, "type": kind,
                     "fingerprint": fingerprint, "variable": self.variable(plan, name)}
                    for name, kind, fingerprint in variables.get(step, [])
                ],
                # a link through a name bound to code (an import, a def) carries no data
                "depends_on": [
                    {"execution": self.execution_iri(on), "name": name, "via": via,
                     "version": (self.version_iri(on, name)
                                 if via == "variable" and self.defines(on, name) else None),
                     "data": via != "variable" or self.flow.carries_data(on, name)}
                    for on, name, via in dependencies.get(step, [])
                ],
                "outputs": [
                    {"iri": iri(scope, "output", number, index),
                     "output_type": output.get("output_type"),
                     "mime_types": sorted(output.get("data", {})),
                     "objects": sorted(v["object"] for v in output.get("data", {}).values()
                                       if isinstance(v, dict) and v.get("object")),
                     "preview": output.get("preview")}
                    for index, output in enumerate(json.loads(outputs or "[]"))
                ],
            })
        return executions

    def execution_iri(self, step: int) -> str:
        return iri(uuid.UUID(self.uuids[step >> RUN_SHIFT]), "execution", step & _STEP_MASK)

    def version_iri(self, step: int, name: str) -> str:
        return iri(uuid.UUID(self.uuids[step >> RUN_SHIFT]), "variable", step & _STEP_MASK, name)

    def defines(self, step: int, name: str) -> bool:
        return bool(self.store.execute(
            "SELECT 1 FROM variables WHERE step = ? AND name = ? LIMIT 1", (step, name)
        ))
