"""What the commands print: the plain-text forms of the API's answers."""

from __future__ import annotations

import json
from typing import Any


def diff(result: dict[str, Any]) -> str:
    """A readable report of a diff."""
    lines = [f"a: {_label(result['a'])}", f"b: {_label(result['b'])}"]
    if result.get("note"):
        lines.append(f"note: {result['note']}")
    code = result["code"]
    if code.get("available") is False:
        lines.append(f"code: not comparable ({code['reason']})")
    elif code.get("same"):
        lines.append("code: same")
    if code.get("data_files"):
        lines.append(f"data files in the snapshots: {len(code['data_files'])} changed"
                     f" ({', '.join(code['data_files'][:5])}{' ...' if len(code['data_files']) > 5 else ''})")
    if code.get("available") is not False and not code.get("same"):
        lines.append("code:")
        text = code.get("diff") or "".join(code.get("cells", {}).values())
        lines += ["  " + line for line in text.rstrip().splitlines()]
        for key in ("new_cells", "gone_cells"):
            if code.get(key):
                lines.append(f"  {key.replace('_', ' ')}: {', '.join(code[key])}")
    for section in ("params", "variables"):
        if section in result:
            lines += _render_changes(section, result[section])
    if "values" in result:
        values = result["values"]
        for name, change in values["changed"].items():
            delta = f" (delta {change['delta']:+.6g})" if "delta" in change else ""
            lines.append(f"values: {name}: last {change['a']['last']!r} -> {change['b']['last']!r}{delta},"
                         f" count {change['a']['count']} -> {change['b']['count']}")
        for key in ("added", "removed"):
            for name in values[key]:
                lines.append(f"values: {name}: {key}")
        if values["same"]:
            lines.append(f"values: same for {', '.join(values['same'])}")
    for mode, changes in result["files"].items():
        for path, hashes in changes["changed"].items():
            lines.append(f"files {mode}: {path} changed ({_short(hashes['a'])} -> {_short(hashes['b'])})")
        for key in ("new", "gone"):
            for path in changes[key]:
                lines.append(f"files {mode}: {path} {key}")
    if "environment" in result:
        environment = result["environment"]
        if environment["same"]:
            lines.append("environment: same")
        else:
            lines += _render_changes("packages", environment["packages"])
            lines += _render_changes("environment", environment["system"])
    if result.get("status"):
        lines.append(f"status: {result['status']['a']} -> {result['status']['b']}")
    for change in result.get("outputs", []):
        lines.append(f"output {change['output']} {change['mime']}: {_short(change['a'])} -> {_short(change['b'])}")
        lines += ["  " + line for line in change.get("diff", "").rstrip().splitlines()]
    return "\n".join(lines)


def _label(identity: dict[str, Any]) -> str:
    if "ref" in identity:
        return f"execution {identity['ref']} of cell {identity['cell_id']} in {identity['notebook']} ({identity['status']})"
    return f"run {identity['run_id'][:8]} {identity['filename']} ({identity['kind']}, {identity['status']})"


def _render_changes(section: str, changes: dict[str, Any]) -> list[str]:
    lines = [f"{section}: {k}: {v['a']!r} -> {v['b']!r}" for k, v in changes["changed"].items()]
    lines += [f"{section}: {k}: added {v!r}" for k, v in changes["added"].items()]
    lines += [f"{section}: {k}: removed {v!r}" for k, v in changes["removed"].items()]
    return lines


def _short(digest: str | None) -> str:
    return digest[:10] if digest else "none"


def lineage(graph: dict[str, Any], downstream: bool = False) -> str:
    """The graph as an indented tree from its target, each node expanded once; a group of
    source files (``trellis.lineage(..., group=True)``) is one line."""
    nodes = {node["id"]: node for node in graph["nodes"]}
    children: dict[str, list[tuple[str, str]]] = {}
    for edge in graph["edges"]:
        parent, child = (edge["to"], edge["from"]) if downstream else (edge["from"], edge["to"])
        relation = _downstream_relation(edge["relation"]) if downstream else edge["relation"]
        children.setdefault(parent, []).append((relation, child))
    lines: list[str] = []
    expanded: set[str] = set()

    def describe(node_id: str) -> str:
        node = nodes[node_id]
        if node["kind"] == "file":
            digest = f"sha256 {node['hash'][:12]}" if node["hash"] else "not hashed"
            return (f"{node['path']} ({digest}{', source' if node['source'] else ''}"
                    f"{', written by another program: seen after the fact' if node.get('seen_after') else ''})")
        if node["kind"] == "execution":
            return (f"cell {node['cell_id']} [{node['execution_count']}] of {node['notebook']}"
                    f" (epoch {node['run_id'][:8]}) {node['status']} {node['started']}")
        params = " ".join(f"{k}={v}" for k, v in node["params"].items())
        target = f" [make {node['build_target']}]" if node["build_target"] else ""
        commit = f" code {node['git_commit'][:10]}" if node["git_commit"] else ""
        return (f"run {node['run_id'][:8]} {node['filename'] or node['run_kind']}{target}"
                f" {node['status']} {node['started']}{commit}" + (f" {params}" if params else ""))

    def walk(node_id: str, prefix: str, relation: str | None) -> None:
        label = describe(node_id)
        lines.append(f"{prefix}{relation + ': ' if relation else ''}{label}"
                     + (" (see above)" if node_id in expanded and children.get(node_id) else ""))
        if node_id in expanded:
            return
        expanded.add(node_id)
        edges = children.get(node_id, [])
        for edge_relation, child in edges:
            if nodes[child]["kind"] != "files":
                walk(child, prefix + "  ", edge_relation)
        for edge_relation, child in edges:
            if nodes[child]["kind"] == "files":
                paths = nodes[child]["paths"]
                lines.append(f"{prefix}  {edge_relation}: {len(paths)} source files in {nodes[child]['folder']}/"
                             f" ({paths[0].rsplit('/', 1)[-1]} ... {paths[-1].rsplit('/', 1)[-1]})")

    for root in [graph["target"], *graph.get("versions", [])]:
        walk(root, "", None)
    return "\n".join(lines)


def _downstream_relation(relation: str) -> str:
    """An edge read from its far end: the file a run used was "read by" it, and so on."""
    if relation == "wasGeneratedBy":
        return "generated"
    if relation.startswith("used"):
        named = relation[4:].strip()
        return f"{named} read by" if named else "read by"
    return relation


def notebook_history(described: dict[str, Any]) -> str:
    lines = [f"{described['notebook']}: {len(described['epochs'])} epoch(s)"]
    for number, epoch in enumerate(described["epochs"], 1):
        executions = epoch["executions"]
        total = sum(e["duration"] or 0 for e in executions)
        lines.append(f"epoch {number} {epoch['run_id'][:8]} {epoch['started']} {epoch['status']}:"
                     f" {len(executions)} executions, {total:.2f} s")
        for e in executions:
            links = ", ".join(f"{d['name']}<-{d['execution'].split('/')[-1]}" for d in e["depends_on"])
            files = [f"read {r['path']}" for r in e["reads"]] + [
                f"wrote {w['path']}{' (seen after)' if w.get('seen_after') else ''}" for w in e["writes"]]
            changed = dict.fromkeys(e["defined"] + e["mutated"])
            lines.append(
                f"  [{e['execution_count']}] {e['id'].split('/')[-1]:>3} cell {e['cell_id']} {e['status']}"
                f" defines {','.join(changed) or '-'} uses {','.join(e['used']) or '-'}"
                + (f" | {_control_flow(e)}" if e.get("loops") or e.get("conditions") else "")
                + (f" | depends {links}" if links else "")
                + (f" | {'; '.join(files)}" if files else "")
                + (f" | {e['error']}" if e["error"] else "")
                + (f" | STALE: {'; '.join(r['text'] for r in e['stale'])}" if e.get("stale") else "")
            )
    if described["unused_imports"]:
        lines.append(f"imported but never used: {', '.join(described['unused_imports'])}")
    return "\n".join(lines)


def _control_flow(execution: dict[str, Any]) -> str:
    loops, conditions = execution.get("loops") or 0, execution.get("conditions") or 0
    parts = [f"{loops} loop{'s' if loops != 1 else ''}" if loops else "",
             f"{conditions} condition{'s' if conditions != 1 else ''}" if conditions else ""]
    return ", ".join(part for part in parts if part)


def reproduction(report: dict[str, Any]) -> str:
    failed = report.get("failed_cells") or {"failed": 0, "of": 0}
    state = report["status"]
    if failed["failed"]:
        state = f"{failed['failed']} of {failed['of']} cells failed"
    lines = [f"original {report['original'][:8]}, reproduction {report['reproduction'][:8]} ({state})"]
    if report["inputs_copied"]:
        lines.append(f"inputs brought from the project (same hash): {', '.join(report['inputs_copied'])}")
    if report["inputs_missing"]:
        lines.append(f"inputs missing or changed since: {', '.join(report['inputs_missing'])}")
    for part in ("values", "files", "outputs", "cells"):  # what a reproduction compares
        found = report[part]
        if part == "cells" and not found["compared"] and not found["differences"]:
            continue  # a script has no cells
        if found["differences"]:
            lines.append(f"{part}: {len(found['differences'])} differ")
            lines += [f"  {json.dumps(d, default=str)}" for d in found["differences"][:20]]
        else:
            lines.append(f"{part}: {found['compared']} compared, all the same")
    for reason in report["explanations"]:
        lines.append(f"may explain a difference: {reason}")
    lines.append("reproduced: everything matched" if report["matched"] else "not reproduced")
    return "\n".join(lines)


STATUS_TEXT = {
    "exact": "exact from checkpoints",
    "rerun": "exact after re-running from an earlier point",
    "unchecked": "not verified",
    "inexact": "could not be made exact",
}


def _values(count: int) -> str:
    return f"{count} value" + ("" if count == 1 else "s")


def describe_outcome(run: dict[str, Any]) -> str:
    """One run's line of the replay report."""
    names = ", ".join(run["names"])
    head = f"{run['run'][:8]}  {STATUS_TEXT.get(run['status'], run['status'])}: "
    if run["status"] == "inexact":
        kept = f"; {_values(run['values'])} from segments that verified stored" if run["values"] else ""
        return head + (f"{run['mismatch']}, even from the start of the run;"
                       f" {_values(run['not_stored'])} of {names} not stored{kept}")
    line = head + f"{_values(run['values'])} of {names}"
    if run["status"] == "unchecked":
        line += (" (resumed from checkpoints, but the iterations replayed recompute no value the run"
                 " logged, so nothing could be compared)")
    elif run["compared"]:
        line += f" ({_values(run['compared'])} the run logged recomputed, all equal)"
    for rerun in run["reruns"][:3]:
        line += f"\n      {rerun}"
    if run["failed"]:
        line += f", {len(run['failed'])} segment(s) failed: {run['failed'][0]}"
    return line


def replay_report(report: dict[str, Any]) -> str:
    lines = [describe_outcome(run) for run in report["runs"]]
    lines += [f"{skipped['run'][:8]}  skipped: {skipped['reason']}" for skipped in report["skipped"]]
    lines.append(f"replayed in {report['seconds']:.1f} s (planned {report['estimate']:.1f} s)")
    return "\n".join(lines)


# As many outputs of one folder as make a data set in lineage (trellis.lineage(..., group=True))
_DATA_SET = 6


def status(result: dict[str, Any]) -> str:
    """Each output's state and reasons, then the commands to run again, in order. Many outputs
    of one folder in the same state for the same reasons (a data set) are one line."""
    lines = []
    groups: dict[tuple, list[str]] = {}
    for entry in result["outputs"]:
        folder = entry["path"].rsplit("/", 1)[0] if "/" in entry["path"] else ""
        texts = tuple(reason["text"] for reason in entry["reasons"])
        groups.setdefault((folder, entry["stale"], texts), []).append(entry["path"])
    for (folder, stale, texts), paths in sorted(groups.items(), key=lambda item: item[1][0]):
        state = "stale      " if stale else "up to date "
        if folder and len(paths) >= _DATA_SET:
            lines.append(f"{state} {len(paths)} files in {folder}/ ({paths[0].rsplit('/', 1)[-1]}"
                         f" ... {paths[-1].rsplit('/', 1)[-1]})")
            lines += [f"              {text}" for text in texts]
            continue
        for path in paths:
            lines.append(f"{state} {path}")
            lines += [f"              {text}" for text in texts]
    for entry in result.get("values", []):
        writer = entry["writer"]
        lines.append(f"stale       the values {writer['filename']} logged (run {writer['run_id'][:8]})")
        lines += [f"              {reason['text']}" for reason in entry["reasons"]]
    if not result["outputs"]:
        lines.append("no recorded run wrote a file yet")
    if result["rerun"]:
        lines.append("")
        lines.append("to bring them up to date, run in this order:")
        lines += [f"  {command['text']}" for command in result["rerun"]]
    elif result["outputs"]:
        lines.append(f"all {len(result['outputs'])} outputs are up to date")
    return "\n".join(lines)
