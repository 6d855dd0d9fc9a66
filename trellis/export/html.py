"""A single self-contained HTML page of the provenance graph: inline SVG, no scripts, no
external resources. Data flows left to right: each node sits one column right of the furthest
node it depends on (an entity after the activity that generated it, an activity after what it
used). Every text from the store is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

COLUMN, ROW, WIDTH, HEIGHT = 230, 46, 190, 30
COLOURS = {
    "run": "#9ecae1", "execution": "#c6dbef", "file": "#fdd0a2", "output": "#fee6ce",
    "param": "#c7e9c0", "logged": "#e5f5e0",
}
LEGEND = {
    "run": "run / epoch", "execution": "cell execution", "file": "file version",
    "output": "cell output", "param": "param", "logged": "logged value (last)",
}


def serialize(data: dict[str, Any]) -> str:
    nodes, edges = _graph(data)
    place = _layout(nodes, edges)
    width = (max((x for x, _ in place.values()), default=0) + 1) * COLUMN
    height = (max((y for _, y in place.values()), default=0) + 1) * ROW + 10
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
            f' viewBox="0 0 {width} {height}" role="img" aria-label="provenance graph">'
        ),
        (
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7"'
            ' markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#666"/>'
            "</marker></defs>"
        ),
    ]
    for source, target, relation in edges:
        (x1, y1), (x2, y2) = _centre(place[source]), _centre(place[target])
        parts.append(
            f'<line x1="{x1 + WIDTH / 2}" y1="{y1}" x2="{x2 - WIDTH / 2}" y2="{y2}"'
            f' class="edge {escape(relation)}" marker-end="url(#arrow)">'
            f"<title>{escape(relation)}</title></line>"
        )
    for key, node in nodes.items():
        x, y = place[key]
        label = node["label"] if len(node["label"]) <= 28 else node["label"][:27] + "\u2026"
        parts.append(
            f'<g class="node {node["kind"]}"><title>{escape(node["title"])}</title>'
            f'<rect x="{x * COLUMN + 10}" y="{y * ROW + 10}" width="{WIDTH}" height="{HEIGHT}"'
            f' rx="{12 if node["kind"] in ("run", "execution") else 3}"'
            f' fill="{COLOURS[node["kind"]]}" stroke="#555"/>'
            f'<text x="{x * COLUMN + 18}" y="{y * ROW + 30}">{escape(label)}</text></g>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span style="background:{COLOURS[kind]}"></span>{escape(text)}</li>'
        for kind, text in LEGEND.items()
    )
    runs = len(data["runs"])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(f"trellis provenance: {data['project']}")}</title>
<style>
body {{ font: 13px system-ui, sans-serif; margin: 1em; color: #222; }}
svg text {{ font: 12px system-ui, sans-serif; pointer-events: none; }}
line.edge {{ stroke: #888; stroke-width: 1.2; }}
line.wasInformedBy {{ stroke-dasharray: 4 3; }}
ul.legend {{ list-style: none; padding: 0; display: flex; gap: 1.2em; }}
ul.legend span {{ display: inline-block; width: 1em; height: 1em; margin-right: .3em;
  border: 1px solid #555; vertical-align: middle; }}
</style>
</head>
<body>
<h1>{escape(data["project"])}: provenance of {runs} run{"s" if runs != 1 else ""}</h1>
<p>Hover a node for its details. Solid arrows: used / generated; dashed: depends on.</p>
<ul class="legend">{legend}</ul>
{"".join(parts)}
</body>
</html>
"""


def _centre(place: tuple[int, int]) -> tuple[float, float]:
    x, y = place
    return x * COLUMN + 10 + WIDTH / 2, y * ROW + 10 + HEIGHT / 2


def _graph(data: dict[str, Any]) -> tuple[dict[str, dict[str, str]], list[tuple[str, str, str]]]:
    """Nodes by IRI, and edges in the direction data flowed (source before target)."""
    files = {entry["iri"]: entry for entry in data["files"]}
    nodes: dict[str, dict[str, str]] = {}
    edges: list[tuple[str, str, str]] = []

    def node(key: str, kind: str, label: str, title: str) -> None:
        nodes.setdefault(key, {"kind": kind, "label": label, "title": title})

    def io(activity: dict[str, Any]) -> None:
        for key in activity["used"]:
            node(key, "file", files[key]["path"], _file_title(files[key]))
            edges.append((key, activity["iri"], "used"))
        for key in activity["generated"]:
            node(key, "file", files[key]["path"], _file_title(files[key]))
            edges.append((activity["iri"], key, "wasGeneratedBy"))

    for run in data["runs"]:
        name = run["filename"] or run["kind"]
        node(run["iri"], "run", f"{name} {run['run_id'][:8]}",
             f"{run['kind']} {name}\nrun {run['run_id']}\n{run['status']}, {run['started']}")
        io(run)
        for param in run["params"]:
            node(param["iri"], "param", f"{param['name']}={param['value']}", f"param {param['name']}")
            edges.append((param["iri"], run["iri"], "used"))
        for execution in run["executions"]:
            node(execution["iri"], "execution",
                 f"[{execution['execution_count']}] {execution['cell_id']}",
                 f"cell {execution['cell_id']}, execution {execution['execution_count']}"
                 f" ({execution['status']})\n{execution['started']}\n\n{execution['source']['text'] or ''}")
            edges.append((run["iri"], execution["iri"], "contains"))
            io(execution)
            for link in execution["depends_on"]:
                if (link["execution"], execution["iri"], "wasInformedBy") not in edges:
                    edges.append((link["execution"], execution["iri"], "wasInformedBy"))
            for output in execution["outputs"]:
                node(output["iri"], "output", output["preview"] or output["output_type"] or "output",
                     f"{output['output_type']} {', '.join(output['mime_types'])}")
                edges.append((execution["iri"], output["iri"], "wasGeneratedBy"))
        for value in run["logged"]:
            node(value["iri"], "logged", f"{value['name']}={value['last']}",
                 f"{value['name']}: last of {value['count']} values")
            edges.append((value["execution"] or run["iri"], value["iri"], "wasGeneratedBy"))
    return nodes, [edge for edge in edges if edge[0] in nodes and edge[1] in nodes]


def _file_title(entry: dict[str, Any]) -> str:
    return f"{entry['path']}\nsha256 {entry['sha256'] or 'not hashed'}\n{entry['size']} bytes"


def _layout(nodes: dict[str, Any], edges: list[tuple[str, str, str]]) -> dict[str, tuple[int, int]]:
    """(column, row) of each node: the column is the longest path to it (cycles are cut)."""
    before: dict[str, list[str]] = {key: [] for key in nodes}
    for source, target, _ in edges:
        before[target].append(source)
    column: dict[str, int] = {}
    for start in nodes:
        stack, visiting = [(start, iter(before[start]))], {start}
        while stack:
            key, pending = stack[-1]
            nxt = next((s for s in pending if s not in column and s not in visiting), None)
            if nxt is not None:
                visiting.add(nxt)
                stack.append((nxt, iter(before[nxt])))
                continue
            stack.pop()
            visiting.discard(key)
            column[key] = 1 + max((column[s] for s in before[key] if s in column), default=-1)
    rows: dict[int, int] = {}
    place = {}
    for key in nodes:
        place[key] = (column[key], rows.get(column[key], 0))
        rows[column[key]] = place[key][1] + 1
    return place
