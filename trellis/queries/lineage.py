"""Lineage: what a file or run was derived from, or what was derived from it.

Upstream of a file is the run that wrote that version of it; upstream of a run are the files
it read (each back to the run that wrote the version read, unless it is a source), the runs
whose values or checkpoints it read, and its own params and code snapshot. Downstream follows
the same edges the other way. A file is a node per version (per content hash): a reader is linked
to the version it read, known by its hash or, unhashed, as the last one written before the read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trellis._errors import TrellisError
from trellis.queries.dataflow import DataFlow
from trellis.queries.runs import params_of, program_name, resolve, timestamp
from trellis.store.connection import Store
from trellis.store.paths import recorded_path


@dataclass
class Graph:
    target: str
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[dict[str, str]] = field(default_factory=list)
    # the other versions of a target file, each followed downstream from a root of its own
    versions: list[str] = field(default_factory=list)

    def edge(self, source: str, target: str, relation: str) -> None:
        entry = {"from": source, "to": target, "relation": relation}
        if entry not in self.edges:
            self.edges.append(entry)

    def to_dict(self) -> dict[str, Any]:
        found = {"target": self.target, "nodes": list(self.nodes.values()), "edges": self.edges}
        if self.versions:
            found["versions"] = self.versions
        return found


def _file_id(path: str, digest: str | None) -> str:
    return f"file:{path}@{digest[:12] if digest else '?'}"


Activity = tuple[str, int]  # ("run", run id) or ("step", step id): what reads and writes


class _Walker:
    def __init__(self, store: Store, target: str) -> None:
        self.store = store
        self.graph = Graph(target)
        self.runs_by_id: dict[int, dict[str, Any]] = {}
        self.readers: dict[str, dict[str | None, list[Activity]]] = {}
        self.flow = DataFlow(store)

    # -- nodes ------------------------------------------------------------------------------

    def run_node(self, run_id: int) -> str:
        if run_id not in self.runs_by_id:
            row = self.store.execute(
                "SELECT uuid, filename, status, started, git_commit, build_target, kind, cwd"
                " FROM runs WHERE id = ?",
                (run_id,),
            )[0]
            uuid, filename, status, started, commit, target, kind, cwd = row
            self.runs_by_id[run_id] = {
                "id": f"run:{uuid}", "kind": "run", "run_id": uuid,
                "filename": program_name(filename, kind, cwd),
                "status": status, "started": timestamp(started), "git_commit": commit,
                "build_target": target, "run_kind": kind, "params": params_of(self.store, run_id),
            }
            self.graph.nodes[f"run:{uuid}"] = self.runs_by_id[run_id]
        return self.runs_by_id[run_id]["id"]

    def step_node(self, step_id: int) -> str:
        node = f"step:{step_id}"
        if node not in self.graph.nodes:
            run, cell, count, status, started, notebook = self.store.execute(
                "SELECT run, cell_id, execution_count, status, started, notebook FROM steps"
                " WHERE id = ?",
                (step_id,),
            )[0]
            epoch = self.runs_by_id.get(run) or self.graph.nodes[self.run_node(run)]
            self.graph.nodes[node] = {
                "id": node, "kind": "execution", "run_id": epoch["run_id"],
                "notebook": notebook or epoch["filename"],
                "cell_id": cell, "execution_count": count, "status": status,
                "started": timestamp(started),
            }
        return node

    def node(self, activity: Activity) -> str:
        kind, number = activity
        return self.run_node(number) if kind == "run" else self.step_node(number)

    def file_node(self, path: str, digest: str | None, size: int | None) -> str:
        node = _file_id(path, digest)
        self.graph.nodes.setdefault(
            node, {"id": node, "kind": "file", "path": path, "hash": digest, "size": size,
                   "source": True}
        )
        return node

    # -- upstream ---------------------------------------------------------------------------

    def writer_of(self, path: str, digest: str | None, before: float | None) -> tuple | None:
        """What wrote the version of ``path`` that was read at ``before``: (activity, hash, size,
        whether the write was only seen after the fact).

        The last write before the read, matched by hash when both sides have one; with no time,
        the last write of all.
        """
        sql = "SELECT run, step, hash, size, seen_after FROM files WHERE path = ? AND mode = 'write'"
        params: list[Any] = [path]
        if before is not None:
            sql += " AND at <= ?"
            params.append(before)
        guessed = None
        for run, step, written, size, seen_after in self.store.execute(sql + " ORDER BY at DESC", params):
            if not digest or not written or written == digest:
                activity = ("step", step) if step is not None else ("run", run)
                if not seen_after or not digest:
                    return activity, written, size, bool(seen_after)
                # a write seen as it happened, with the same content, outranks one found after
                # the fact by a program that ran meanwhile
                guessed = guessed or (activity, written, size, True)
        return guessed

    def upstream_of_file(self, path: str, digest: str | None, size: int | None,
                         before: float | None, seen: set) -> str:
        written = self.writer_of(path, digest, before)
        node = self.file_node(path, digest or (written[1] if written else None),
                              size if size is not None else (written[2] if written else None))
        if written is not None:
            self.graph.nodes[node]["source"] = False
            if written[3]:
                self.graph.nodes[node]["seen_after"] = True
            self.graph.edge(node, self.node(written[0]), "wasGeneratedBy")
            self.upstream(written[0], seen)
        return node

    def first_visit(self, activity: Activity, seen: set) -> tuple[str, int, str, str] | None:
        """(kind, number, node, the files column naming it), the first time it is reached."""
        if activity in seen:
            return None
        seen.add(activity)
        kind, number = activity
        return kind, number, self.node(activity), "run" if kind == "run" else "step"

    def upstream(self, activity: Activity, seen: set) -> None:
        if (visit := self.first_visit(activity, seen)) is None:
            return
        kind, number, me, column = visit
        reads = self.store.execute(
            f"SELECT path, hash, size, MIN(at) FROM files WHERE {column} = ? AND mode = 'read'"
            " GROUP BY path, hash, size ORDER BY path",
            (number,),
        )
        for path, digest, size, at in reads:
            self.graph.edge(me, self.upstream_of_file(path, digest, size, at, seen), "used")
        for source, via, detail in self.store.execute(
            f"SELECT source, via, detail FROM run_inputs WHERE {column} = ? ORDER BY at", (number,)
        ):
            found = self.store.execute("SELECT id FROM runs WHERE uuid = ?", (source,))
            if found:
                self.graph.edge(me, self.run_node(found[0][0]), f"used {via} ({detail})")
                self.upstream(("run", found[0][0]), seen)
        if kind == "step":
            for earlier, name in self.store.execute(
                "SELECT depends_on, name FROM dependencies WHERE step = ? AND via = 'variable'"
                " ORDER BY name",
                (number,),
            ):
                self.graph.edge(me, self.step_node(earlier), f"used {name}")
                # a name bound to code or a literal there: the cell is where it came from, but
                # nothing that cell read flowed into it
                if self.flow.carries_data(earlier, name):
                    self.upstream(("step", earlier), seen)

    # -- downstream -------------------------------------------------------------------------

    def readers_by_version(self, path: str) -> dict[str | None, list[Activity]]:
        """Who read each version of ``path``: a read with no hash read the last version written
        before it (None when nothing was written before)."""
        rows = self.store.execute(
            "SELECT run, step, mode, hash, at FROM files WHERE path = ? ORDER BY at, mode", (path,)
        )
        found: dict[str | None, list[Activity]] = {}
        last_written = None
        for run, step, mode, digest, _ in rows:
            if mode == "write":
                last_written = digest
                continue
            reader: Activity = ("step", step) if step is not None else ("run", run)
            readers = found.setdefault(digest or last_written, [])
            if reader not in readers:
                readers.append(reader)
        return found

    def downstream_of_version(self, path: str, digest: str | None, size: int | None,
                              seen: set) -> str:
        node = self.file_node(path, digest, size)
        if path not in self.readers:
            self.readers[path] = self.readers_by_version(path)
        for reader in self.readers[path].get(digest, []):
            self.graph.edge(self.node(reader), node, "used")
            self.downstream(reader, seen)
        return node

    def downstream_of_file(self, path: str, seen: set) -> str:
        """Every version of ``path`` followed downstream; the newest is the graph's target."""
        rows = self.store.execute(
            "SELECT hash, size, mode FROM files WHERE path = ? ORDER BY at", (path,)
        )
        versions: dict[str | None, tuple[int | None, bool]] = {}
        for digest, size, mode in rows:
            _, written = versions.get(digest, (None, False))
            versions[digest] = (size, written or mode == "write")
        if len(versions) > 1:
            versions.pop(None, None)  # an unhashed row is one of the hashed versions
        nodes = []
        for digest, (size, written) in versions.items():
            node = self.downstream_of_version(path, digest, size, seen)
            self.graph.nodes[node]["source"] = not written
            nodes.append(node)
        self.graph.versions = nodes[:-1]
        return nodes[-1]

    def downstream(self, activity: Activity, seen: set) -> None:
        if (visit := self.first_visit(activity, seen)) is None:
            return
        kind, number, me, column = visit
        for path, digest, size, seen_after in self.store.execute(
            f"SELECT path, hash, MAX(size), MAX(seen_after) FROM files WHERE {column} = ?"
            " AND mode = 'write' GROUP BY path, hash ORDER BY MIN(at)", (number,)
        ):
            file_node = self.downstream_of_version(path, digest, size, seen)
            self.graph.nodes[file_node]["source"] = False
            if seen_after:
                self.graph.nodes[file_node]["seen_after"] = True
            self.graph.edge(file_node, me, "wasGeneratedBy")
        if kind == "run":
            uuid = self.runs_by_id[number]["run_id"]
            for run, step in self.store.execute(
                "SELECT DISTINCT run, step FROM run_inputs WHERE source = ?", (uuid,)
            ):
                reader: Activity = ("step", step) if step is not None else ("run", run)
                self.graph.edge(self.node(reader), me, "used values")
                self.downstream(reader, seen)
        else:
            for later, name in self.store.execute(
                "SELECT step, name FROM dependencies WHERE depends_on = ? AND via = 'variable'",
                (number,),
            ):
                if not self.flow.carries_data(number, name):
                    continue
                self.graph.edge(self.step_node(later), me, f"used {name}")
                self.downstream(("step", later), seen)


def lineage(store: Store, target: str, downstream: bool = False) -> dict[str, Any]:
    """The lineage graph of ``target``: a file path, ``run:<id prefix>`` / ``run:latest``, or
    ``notebook.ipynb:variable``."""
    walker = _Walker(store, target)
    activity: Activity | None = None
    if target.startswith("run:"):
        activity = ("run", resolve(store, target[4:])["id"])
    elif ".ipynb:" in target:
        activity = ("step", _variable_step(store, *target.rsplit(":", 1)))
    if activity is not None:
        walker.graph.target = walker.node(activity)
        (walker.downstream if downstream else walker.upstream)(activity, set())
        return walker.graph.to_dict()
    path = recorded_path(target, store.project)
    known = store.execute("SELECT 1 FROM files WHERE path = ? LIMIT 1", (path,))
    if not known:
        raise TrellisError(
            f"no run read or wrote {path!r}; give a path as a run opened it, or run:<id>"
        )
    if downstream:
        walker.graph.target = walker.downstream_of_file(path, set())
    else:
        walker.graph.target = walker.upstream_of_file(path, None, None, None, set())
    return walker.graph.to_dict()


def _variable_step(store: Store, notebook: str, name: str) -> int:
    """The latest execution in ``notebook`` that defined or changed variable ``name``."""
    path = recorded_path(notebook, store.project)
    rows = store.execute(
        "SELECT v.step FROM variables v JOIN steps s ON s.id = v.step JOIN runs r ON r.id = s.run"
        " WHERE r.filename = ? AND r.kind = 'notebook' AND v.name = ? ORDER BY s.started DESC LIMIT 1",
        (path, name),
    )
    if not rows:
        raise TrellisError(f"no execution in {path} defined {name!r}; see `trellis notebook show`")
    return rows[0][0]


GROUP_FROM = 6


def grouped(graph: dict[str, Any], at_least: int = GROUP_FROM) -> dict[str, Any]:
    """``graph`` with each set of ``at_least`` or more source files of one folder that were read
    alike (by the same runs or cells, in the same way: a data set) drawn as one node of kind
    ``files``, with its ``folder``, ``paths`` and ``count``. What the files were read by keeps its
    edges, now to the group."""
    derived = {edge["from"] for edge in graph["edges"]}  # a source file derives from nothing
    nodes = {node["id"]: node for node in graph["nodes"]}
    readers: dict[str, list[tuple[str, str]]] = {}
    for edge in graph["edges"]:
        node = nodes.get(edge["to"])
        if (node is not None and node["kind"] == "file" and node["source"] and edge["to"] not in derived
                and edge["to"] != graph["target"]):
            readers.setdefault(edge["to"], []).append((edge["from"], edge["relation"]))
    alike: dict[tuple, list[str]] = {}
    for file_id, read_by in readers.items():
        path = nodes[file_id]["path"]
        folder = path.rsplit("/", 1)[0] if "/" in path else "."
        alike.setdefault((folder, tuple(sorted(read_by))), []).append(file_id)
    groups = {key: members for key, members in alike.items() if len(members) >= at_least}
    if not groups:
        return graph
    group_of: dict[str, str] = {}
    group_nodes = []
    for number, ((folder, _), members) in enumerate(groups.items()):
        group_id = f"files:{folder}/#{number}"
        paths = sorted(nodes[m]["path"] for m in members)
        group_nodes.append({"id": group_id, "kind": "files", "folder": folder, "paths": paths,
                            "count": len(paths), "source": True})
        group_of.update(dict.fromkeys(members, group_id))
    edges = []
    for edge in graph["edges"]:
        if edge["to"] in group_of:
            edge = {**edge, "to": group_of[edge["to"]]}
        if edge not in edges:
            edges.append(edge)
    kept = [node for node in graph["nodes"] if node["id"] not in group_of]
    return {**graph, "nodes": kept + group_nodes, "edges": edges}


def sources(graph: dict[str, Any]) -> list[str]:
    """The source files (written by no recorded run) a lineage graph reaches."""
    return sorted(n["path"] for n in graph["nodes"] if n["kind"] == "file" and n["source"])
