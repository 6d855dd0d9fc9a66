"""A single self-contained HTML page of the provenance graph: the UI bundle and the graph's data
inline, no external resource. Data flows left to right (an entity after the activity that
generated it, an activity after what it used); clicking a node shows its details. A notebook's
page is the notebook view of the dashboard and the widget, with its epoch and execution sliders.

The data travels as JSON in a ``<script type="application/json">`` element with every markup
character escaped, and the page's Content-Security-Policy lets only the bundle itself (by its
hash) run: text from the store can never become markup or script.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import Any

from trellis.ui.bundle import bundle_text, json_for_script, script_safe


def serialize(data: dict[str, Any], format: str = "html") -> str:
    runs = len(data["runs"])
    if data.get("notebook_graph") is not None:
        page = {
            "view": "notebook",
            "title": f"{data['project']}: {data['notebook_graph'].get('notebook')}, {runs} session{'s' if runs != 1 else ''}",
            "subtitle": "The epoch and execution sliders replay the history; click a cell, file or edge for its details.",
            "notebook": data["notebook_graph"],
        }
    else:
        nodes, edges = graph(data)
        page = {
            "view": "graph",
            "title": f"{data['project']}: provenance of {runs} run{'s' if runs != 1 else ''}",
            "subtitle": "Solid arrows: used / generated; dashed: depends on. Click a node for its details.",
            "graph": {"nodes": nodes, "edges": edges},
        }
    script = script_safe(bundle_text())
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    policy = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline';"
              " img-src data:; base-uri 'none'; form-action 'none'")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(f"trellis provenance: {data['project']}")}</title>
</head>
<body>
<div id="trellis-app"></div>
<noscript>This page draws the graph with JavaScript; the same data is in `trellis export --format json`.</noscript>
<script type="application/json" id="trellis-data">{json_for_script(page)}</script>
<script type="module">{script}</script>
</body>
</html>
"""


def graph(data: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Nodes (id, kind, label, details) and edges in the direction data flowed."""
    files = {entry["iri"]: entry for entry in data["files"]}
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, str]] = []

    def node(key: str, kind: str, label: str, details: list[list[Any]], text: str | None = None) -> None:
        nodes.setdefault(key, {"id": key, "kind": kind, "label": label, "details": details,
                               **({"text": text} if text else {})})

    def edge(source: str, target: str, relation: str) -> None:
        entry = {"source": source, "target": target, "label": relation}
        if entry not in edges:
            edges.append(entry)

    def io(activity: dict[str, Any]) -> None:
        for key in activity["used"]:
            node(key, "file", files[key]["path"], _file_details(files[key]))
            edge(key, activity["iri"], "used")
        for key in activity["generated"]:
            node(key, "file", files[key]["path"], _file_details(files[key]))
            edge(activity["iri"], key, "wasGeneratedBy")

    for run in data["runs"]:
        name = run["filename"] or run["kind"]
        node(run["iri"], "run", f"{name} {run['run_id'][:8]}",
             [["kind", run["kind"]], ["file", name], ["run", run["run_id"]], ["status", run["status"]],
              ["started", run["started"]], ["ended", run["ended"]], ["code snapshot", run["git_commit"]],
              ["make target", run["build_target"]], ["error", run["error"]]])
        io(run)
        for param in run["params"]:
            node(param["iri"], "param", f"{param['name']}={param['value']}",
                 [["param", param["name"]], ["value", param["value"]]])
            edge(param["iri"], run["iri"], "used")
        for execution in run["executions"]:
            node(execution["iri"], "execution", f"[{execution['execution_count']}] {execution['cell_id']}",
                 [["cell", execution["cell_id"]], ["execution count", execution["execution_count"]],
                  ["status", execution["status"]], ["started", execution["started"]],
                  ["ended", execution["ended"]], ["error", execution["error"]],
                  ["source sha256", execution["source"]["sha256"]]],
                 execution["source"]["text"])
            edge(run["iri"], execution["iri"], "contains")
            io(execution)
            for link in execution["depends_on"]:
                edge(link["execution"], execution["iri"], "wasInformedBy")
            for output in execution["outputs"]:
                node(output["iri"], "output", output["preview"] or output["output_type"] or "output",
                     [["output", output["output_type"]], ["types", ", ".join(output["mime_types"])],
                      ["objects", ", ".join(output["objects"])]],
                     output["preview"])
                edge(execution["iri"], output["iri"], "wasGeneratedBy")
        for value in run["logged"]:
            node(value["iri"], "logged", f"{value['name']}={value['last']}",
                 [["name", value["name"]], ["last value", value["last"]], ["values logged", value["count"]]])
            edge(value["execution"] or run["iri"], value["iri"], "wasGeneratedBy")
    return list(nodes.values()), [e for e in edges if e["source"] in nodes and e["target"] in nodes]


def _file_details(entry: dict[str, Any]) -> list[list[Any]]:
    return [["path", entry["path"]], ["sha256", entry["sha256"] or "not hashed"], ["bytes", entry["size"]]]
