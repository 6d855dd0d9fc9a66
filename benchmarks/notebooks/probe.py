"""Read what trellis recorded for one notebook run, in the folder that holds its store.

    TRELLIS_DISABLE=1 python probe.py NOTEBOOK.ipynb '{"by_variable": [...], "by_cell": [...]}'

Prints JSON: the runs (with the problems trellis noted), the cell executions (steps), the files
read and written, and lineage graphs reduced to (target execution, file paths reached):
``by_variable`` names go through the public ``trellis.lineage("NOTEBOOK.ipynb:name")``;
``by_cell`` cell ids are walked upstream from the execution of that cell with the walker that
``trellis.lineage`` itself uses (the public API addresses a variable's latest version only).
TRELLIS_DISABLE keeps this process from being recorded as a run of its own.
"""

import json
import sys

import trellis
from trellis.queries.lineage import _Walker
from trellis.store.connection import open_store


def records(sql: str) -> list[dict]:
    return json.loads(trellis.query(sql).to_json(orient="records"))


def reduced(graph: dict) -> dict:
    nodes = {node["id"]: node for node in graph["nodes"]}
    target = nodes.get(graph["target"], {})
    return {
        "target_cell_id": target.get("cell_id"),
        "files": sorted({n["path"] for n in graph["nodes"] if n["kind"] == "file"}),
    }


def by_step(step: int) -> dict:
    store = open_store(read_only=True)
    try:
        walker = _Walker(store, f"step:{step}")
        walker.graph.target = walker.step_node(step)
        walker.upstream(("step", step), set())
        return reduced(walker.graph.to_dict())
    finally:
        store.close()


def main() -> None:
    notebook, wanted = sys.argv[1], json.loads(sys.argv[2])
    found = {
        "runs": records("SELECT id, kind, filename, status, problems FROM runs"),
        "steps": records(
            "SELECT id, run, cell_id, execution_count, status, started, ended FROM steps"
            " WHERE kind = 'cell' ORDER BY started"
        ),
        "files": records("SELECT step, path, mode FROM files"),
        "by_variable": {},
        "by_cell": {},
    }
    for name in wanted["by_variable"]:
        try:
            found["by_variable"][name] = reduced(trellis.lineage(f"{notebook}:{name}"))
        except trellis.TrellisError as error:
            found["by_variable"][name] = {"error": str(error)}
    step_of_cell = {s["cell_id"]: s["id"] for s in found["steps"]}
    for cell_id in wanted["by_cell"]:
        if cell_id in step_of_cell:
            found["by_cell"][cell_id] = by_step(step_of_cell[cell_id])
        else:
            found["by_cell"][cell_id] = {"error": "no recorded execution of this cell"}
    json.dump(found, sys.stdout)


main()
