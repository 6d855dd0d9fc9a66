"""Whether each recorded output is still what its inputs, code and cells would make today, and
what to run again when it is not.

An output is a path some run or cell execution wrote; only its newest writer counts. The writer
is *stale* when a file it read no longer has the content it read (by hash), when the code of its
script (the file and the local modules it imported, against the run's code snapshot) or the
source of its notebook cell changed, when the cell that gave it a variable ran again in the
same kernel and changed it, when a run whose values or checkpoint it read ran again since (the
same script with the same arguments), or when something it read (a file, a variable, a run's
values) is itself out of date. An output is stale when its writer is, or when it was deleted or
changed since it was written.

Files are hashed with the function capture records them with (``store/file_hashes.py``), so the
digests compare. A digest is kept in ``.trellis/file-digests.json`` beside the file's size,
mtime, ctime and inode, and a file is hashed again only when one of those changed: the second
``status`` of a project hashes nothing it has seen. A file changed within the last couple of
seconds is not cached, so an edit made in the same clock tick as the hashing is not missed.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trellis._errors import TrellisError
from trellis.queries.notebooks import execution_key
from trellis.store.connection import STORE_DIR, Store
from trellis.store.file_hashes import file_digest
from trellis.store.paths import recorded_path
from trellis.store.snapshots import GitError, git

DIGEST_CACHE = "file-digests.json"
_SETTLED_NS = 2_000_000_000  # a file untouched this long has a stat worth trusting

Activity = tuple[str, int]  # ("run", run id) or ("step", step id): what reads and writes


@dataclass
class _Access:
    path: str
    hash: str | None
    size: int | None
    at: float


@dataclass
class _Writer:
    activity: Activity
    access: _Access


@dataclass
class _Records:
    """The rows status needs, read once: files, runs, steps and their links."""

    reads: dict[Activity, list[_Access]] = field(default_factory=dict)
    written_by: dict[Activity, set[str]] = field(default_factory=dict)
    newest: dict[str, _Writer] = field(default_factory=dict)
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    steps: dict[int, dict[str, Any]] = field(default_factory=dict)
    uses: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # step -> (definer, name)
    changed: dict[int, set[str]] = field(default_factory=dict)  # step -> names it changed
    modules: dict[int, list[str]] = field(default_factory=dict)  # run -> local top-level modules
    # activity -> (run id, how, what, when) of other runs whose values or checkpoints it read
    used_runs: dict[Activity, list[tuple[int, str, str, float]]] = field(default_factory=dict)
    # (script, argv, make target) -> its runs, oldest first: a later one supersedes the others
    programs: dict[tuple, list[int]] = field(default_factory=dict)


def _read(store: Store) -> _Records:
    found = _Records()
    for run_id, uuid, kind, filename, cwd, argv, started, commit, target, build in store.execute(
        "SELECT id, uuid, kind, filename, cwd, argv, started, git_commit, build_target, build"
        # runs received from another store were built from someone else's files
        " FROM runs WHERE kind IN ('script', 'notebook') AND received_from IS NULL"
    ):
        found.runs[run_id] = {
            "uuid": uuid, "kind": kind, "filename": filename, "cwd": cwd or ".",
            "argv": json.loads(argv or "[]"), "started": started, "git_commit": commit,
            "build_target": target, "build": json.loads(build or "{}"),
        }
    by_uuid = {run["uuid"]: run_id for run_id, run in found.runs.items()}
    for run_id, run in sorted(found.runs.items(), key=lambda item: (item[1]["started"], item[0])):
        program = (run["kind"], run["filename"], json.dumps(run["argv"][1:]), run["build_target"])
        found.programs.setdefault(program, []).append(run_id)
        run["program"] = program
    for run_id, step_id, source, via, detail, at in store.execute(
        "SELECT run, step, source, via, detail, at FROM run_inputs ORDER BY at"
    ):
        if run_id in found.runs and source in by_uuid:
            activity = ("step", step_id) if step_id is not None else ("run", run_id)
            found.used_runs.setdefault(activity, []).append((by_uuid[source], via, detail or "", at))
    for step_id, run_id, cell, count, source, started, notebook in store.execute(
        "SELECT id, run, cell_id, execution_count, source, started, notebook FROM steps"
        " ORDER BY started, id"
    ):
        if run_id in found.runs:
            found.steps[step_id] = {
                "run": run_id, "cell_id": cell, "execution_count": count, "source": source,
                "started": started, "notebook": notebook or found.runs[run_id]["filename"],
            }
    for run_id, step_id, path, mode, digest, size, at in store.execute(
        "SELECT run, step, path, mode, hash, size, at FROM files ORDER BY at"
    ):
        if run_id not in found.runs or "://" in path:
            continue
        activity: Activity = ("step", step_id) if step_id is not None else ("run", run_id)
        access = _Access(path, digest, size, at)
        if mode == "read":
            found.reads.setdefault(activity, []).append(access)
        else:
            found.written_by.setdefault(activity, set()).add(path)
            found.newest[path] = _Writer(activity, access)  # ordered by time: the last wins
    for step_id, definer, name in store.execute(
        "SELECT step, depends_on, name FROM dependencies WHERE via = 'variable' ORDER BY name"
    ):
        found.uses.setdefault(step_id, []).append((definer, name))
    for step_id, name in store.execute("SELECT step, name FROM variables"):
        found.changed.setdefault(step_id, set()).add(name)
    for run_id, module in store.execute(
        "SELECT run, module FROM modules WHERE step IS NULL AND distribution IS NULL"
    ):
        found.modules.setdefault(run_id, []).append(module)
    return found


class _CurrentFiles:
    """Today's digest of each file, hashed only when its stat changed since it was last hashed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache_file = root / STORE_DIR / DIGEST_CACHE
        try:
            loaded = json.loads(self.cache_file.read_text())
            self.cache: dict[str, list] = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            self.cache = {}
        self.added = False
        self.seen: dict[str, tuple[os.stat_result | None, str | None]] = {}
        self.hashed = 0

    def absolute(self, path: str) -> str:
        return path if os.path.isabs(path) else str(self.root / path)

    def get(self, path: str) -> tuple[os.stat_result | None, str | None]:
        """(stat, sha256) of ``path`` now; no stat when it is gone, no digest when too big."""
        if path not in self.seen:
            self.seen[path] = self._look(self.absolute(path))
        return self.seen[path]

    def _look(self, full: str) -> tuple[os.stat_result | None, str | None]:
        try:
            stat = os.stat(full)
        except OSError:
            return None, None
        key = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        cached = self.cache.get(full)
        if isinstance(cached, list) and len(cached) == 5 and cached[:4] == key:
            return stat, cached[4]
        digest, _ = file_digest(full, (stat.st_mtime_ns, stat.st_size))
        self.hashed += 1
        now = time.time_ns()
        if digest and now - max(stat.st_mtime_ns, stat.st_ctime_ns) > _SETTLED_NS:
            self.cache[full] = [*key, digest]
            self.added = True
        return stat, digest

    def save(self) -> None:
        """Keep the digests for next time; a cache that cannot be written is only slower."""
        if not self.added or not self.cache_file.parent.is_dir():
            return
        partial = self.cache_file.with_name(f"{DIGEST_CACHE}.{os.getpid()}")
        try:
            partial.write_text(json.dumps(self.cache))
            os.replace(partial, self.cache_file)
        except OSError:
            partial.unlink(missing_ok=True)


class _Code:
    """The files of a run's code snapshot compared with the working tree, through git."""

    def __init__(self, project: Path) -> None:
        self.project = project
        try:
            self.top: Path | None = Path(git(project, "rev-parse", "--show-toplevel"))
        except GitError:
            self.top = None
        self.compared: dict[tuple[str, tuple[str, ...]], list[str]] = {}

    def changed(self, commit: str, paths: list[str]) -> list[str]:
        """Which of ``paths`` (relative to the project; a folder stands for its ``.py`` files)
        differ now from ``commit``, or are gone; paths the snapshot lacks are not code it ran."""
        key = (commit, tuple(paths))
        if key not in self.compared:
            try:
                self.compared[key] = self._compare(self.top, commit, paths) if self.top else []
            except GitError:  # a snapshot that is gone (a pruned ref) tells nothing
                self.compared[key] = []
        return self.compared[key]

    def _compare(self, top: Path, commit: str, paths: list[str]) -> list[str]:
        prefix = self.project.resolve().relative_to(top.resolve()).as_posix()
        to_git = {(p if prefix == "." else f"{prefix}/{p}"): p for p in paths}
        recorded: dict[str, str] = {}
        for entry in git(top, "ls-tree", "-r", "-z", commit, "--", *to_git, strip=False).split("\0"):
            if not entry:
                continue
            meta, name = entry.split("\t", 1)
            kind, blob = meta.split()[1:3]
            if kind == "blob" and (name in to_git or name.endswith(".py")):
                recorded[name] = blob
        present = [name for name in recorded if (top / name).is_file()]
        now = dict(zip(present, git(top, "hash-object", "--", *present).split())) if present else {}
        differing = [name for name, blob in recorded.items() if now.get(name) != blob]
        return sorted(name[len(prefix) + 1:] if prefix != "." else name for name in differing)


Node = tuple[str, Any]  # an activity, or ("file", path): an output as it is on disk


class _Judge:
    """Staleness as a graph: each node's own reasons, and edges to what it was built from; a
    node is stale when it has a reason of its own or an edge to a stale node. Loops (a closed
    loop of feedback, a script reading what it wrote) need no special case."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.records = _read(store)
        self.files = _CurrentFiles(store.project)
        self.code = _Code(store.project)
        self.notebooks: dict[str, dict[str, str] | None] = {}
        self.own: dict[Node, list[dict[str, Any]]] = {}
        self.edges: dict[Node, list[tuple[Node, dict[str, Any] | None]]] = {}
        self.stale: set[Node] = set()
        self.sources: dict[Activity, set[Activity]] = {}
        self.by_epoch: dict[int, list[tuple[int, dict[str, Any]]]] = {}

    def judge(self, roots: list[Node]) -> None:
        """Every node behind ``roots``, its own reasons and edges; then which are stale."""
        pending = list(roots)
        while pending:
            node = pending.pop()
            if node in self.own:
                continue
            self.own[node], self.edges[node] = (self.file(node[1]) if node[0] == "file"
                                                else self.activity(node))
            pending += [target for target, _ in self.edges[node]]
        readers: dict[Node, list[Node]] = {}
        for node, edges in self.edges.items():
            for target, _ in edges:
                readers.setdefault(target, []).append(node)
        reached = deque(node for node, reasons in self.own.items() if reasons)
        while reached:
            node = reached.popleft()
            if node not in self.stale:
                self.stale.add(node)
                reached.extend(readers.get(node, []))

    def reasons(self, node: Node) -> list[dict[str, Any]]:
        """Why ``node`` is stale: its own reasons, then the stale things it was built from; for
        an output, those of its writer too."""
        found = list(self.own[node])
        for target, reason in self.edges[node]:
            if target in self.stale and reason:
                found.append(reason)
            elif target in self.stale and node[0] == "file":
                found += self.reasons(target)
        return found

    # -- files ------------------------------------------------------------------------------

    def difference(self, access: _Access, read: bool) -> str | None:
        """"deleted" or "changed" when the file is no longer as it was read or written."""
        stat, digest = self.files.get(access.path)
        if stat is None:
            return "deleted"
        if access.hash and digest:
            return None if digest == access.hash else "changed"
        if access.size is not None and stat.st_size != access.size:
            return "changed"
        # unhashed (larger than the hash limit): a read is older than any later change
        if read and stat.st_mtime_ns / 1e9 > access.at:
            return "changed"
        return None

    def file(self, path: str) -> tuple[list, list]:
        writer = self.records.newest[path]
        changed = self.difference(writer.access, read=False)
        reasons = [{"kind": f"output {changed}", "path": path,
                    "text": f"{path} was {changed} since it was written"}] if changed else []
        return reasons, [(writer.activity, None)]

    # -- activities -------------------------------------------------------------------------

    def activity(self, activity: Activity) -> tuple[list, list]:
        reasons: list[dict[str, Any]] = []
        edges: list[tuple[Node, dict[str, Any] | None]] = []
        self.inputs(activity, reasons, edges)
        self.runs_used(activity, reasons, edges)
        if activity[0] == "run":
            reasons += self.script_code(activity[1])
        else:
            self.cell(activity[1], reasons, edges)
        return reasons, edges

    def inputs(self, activity: Activity, reasons: list, edges: list) -> None:
        own = self.records.written_by.get(activity, set())
        seen: set[str] = set()
        for access in self.records.reads.get(activity, []):
            # a file the activity also wrote is its own output, not something it was built from
            if access.path in own or access.path in seen:
                continue
            seen.add(access.path)
            writer = self.records.newest.get(access.path)
            if (writer is not None and writer.activity != activity and writer.access.at > access.at
                    and activity in self.built_from(writer.activity)):
                continue  # rewritten by what this led to: the next turn of a loop, not a change
            changed = self.difference(access, read=True)
            if changed:
                reasons.append({"kind": f"input {changed}", "path": access.path,
                                "text": f"{access.path} was {changed} since it was read"})
            if writer is not None and writer.activity != activity:
                edges.append((("file", access.path), None if changed else {
                    "kind": "upstream stale", "path": access.path,
                    "text": f"{access.path} is itself out of date"}))

    def built_from(self, activity: Activity) -> set[Activity]:
        """Everything ``activity`` was built from, however far back, by the recorded links."""
        if activity not in self.sources:
            found: set[Activity] = set()
            pending = [activity]
            while pending:
                for source in self.direct_sources(pending.pop()):
                    if source not in found:
                        found.add(source)
                        pending.append(source)
            self.sources[activity] = found
        return self.sources[activity]

    def direct_sources(self, activity: Activity) -> list[Activity]:
        found = [writer.activity for access in self.records.reads.get(activity, [])
                 if (writer := self.records.newest.get(access.path)) is not None]
        found += [("run", source) for source, *_ in self.records.used_runs.get(activity, [])]
        if activity[0] == "step":
            found += [("step", definer) for definer, _ in self.records.uses.get(activity[1], [])]
        return [source for source in found if source != activity]

    def runs_used(self, activity: Activity, reasons: list, edges: list) -> None:
        """Other runs whose values or checkpoints it read: stale when the same command ran again
        since, or when the run it read is itself stale. A run already superseded when it was
        read was read as history (the values of earlier runs), and is not followed."""
        for source, via, detail, at in self.records.used_runs.get(activity, []):
            run = self.records.runs[source]
            runs = self.records.programs[run["program"]]
            newest = self.records.runs[runs[-1]]
            name = run["filename"] or run["kind"]
            if runs[-1] != source and newest["started"] > at:
                if activity in self.built_from(("run", runs[-1])):
                    continue  # run again on what this led to: the next turn of a loop
                reason = {"kind": "run again", "run_id": newest["uuid"],
                          "text": f"{name} ran again ({newest['uuid'][:8]}) since its {via} was read"}
                if reason not in reasons:
                    reasons.append(reason)
            elif runs[-1] == source and ("run", source) != activity:
                edge = (("run", source), {"kind": "upstream stale", "run_id": run["uuid"],
                                          "text": f"the {via} it read from {name}"
                                                  f" ({run['uuid'][:8]}) is itself out of date"})
                if edge not in edges:
                    edges.append(edge)

    def script_code(self, run_id: int) -> list[dict[str, Any]]:
        run = self.records.runs[run_id]
        if run["kind"] != "script" or not run["git_commit"] or not run["filename"]:
            return []
        script = run["filename"]
        folder = str(Path(script).parent)
        paths = [script] + [
            os.path.normpath(os.path.join(folder, name)) for module in self.records.modules.get(run_id, [])
            for name in (f"{module}.py", module)
        ]
        return [{"kind": "code changed", "path": path,
                 "text": f"{path} changed since the run's code snapshot {run['git_commit'][:10]}"}
                for path in self.code.changed(run["git_commit"], paths)]

    def cell(self, step_id: int, reasons: list, edges: list) -> None:
        step = self.records.steps[step_id]
        current = self.notebook_cells(step["notebook"])
        label = f"cell '{step['cell_id']}' [{step['execution_count']}]"
        if current is not None and (step["cell_id"] or "").startswith("sha256:"):
            # a frontend that sends no cell ids: the cell is known by its source only
            if (step["source"] or "").rstrip() not in {text.rstrip() for text in current.values()}:
                reasons.append({"kind": "cell changed", "cell_id": step["cell_id"],
                                "text": f"no cell of {step['notebook']} has the source of"
                                        f" execution [{step['execution_count']}] any more"})
        elif current is not None and step["cell_id"] is not None:
            if step["cell_id"] not in current:
                reasons.append({"kind": "cell removed", "cell_id": step["cell_id"],
                                "text": f"{label} is no longer in {step['notebook']}"})
            elif current[step["cell_id"]].rstrip() != (step["source"] or "").rstrip():
                reasons.append({"kind": "cell changed", "cell_id": step["cell_id"],
                                "text": f"the source of {label} changed in {step['notebook']}"})
        elif current is None and step["notebook"]:
            reasons.append({"kind": "notebook missing", "cell_id": step["cell_id"],
                            "text": f"{step['notebook']} is gone"})
        later = [(other, info) for other, info in self.epoch_steps(step["run"])
                 if (info["started"], other) > (step["started"], step_id)]
        for definer, name in self.records.uses.get(step_id, []):
            # the cell that gave the value ran again and changed it (another cell rebinding the
            # name later is how a notebook reads top to bottom, not a sign of staleness)
            cell_id = self.records.steps.get(definer, {}).get("cell_id")
            again = [info for other, info in later if info["cell_id"] == cell_id
                     and name in self.records.changed.get(other, ())]
            if again:
                by = again[0]
                reasons.append({"kind": "variable changed", "name": name, "cell_id": by["cell_id"],
                                "text": f"{name} changed since: cell '{by['cell_id']}' ran again"
                                        f" [{by['execution_count']}]"})
            elif definer in self.records.steps:
                cell = self.records.steps[definer]
                edges.append((("step", definer), {
                    "kind": "upstream stale", "name": name, "cell_id": cell["cell_id"],
                    "text": f"{name} comes from cell '{cell['cell_id']}' [{cell['execution_count']}],"
                            " itself out of date"}))

    def epoch_steps(self, run_id: int) -> list[tuple[int, dict[str, Any]]]:
        if not self.by_epoch:
            for step_id, step in self.records.steps.items():
                self.by_epoch.setdefault(step["run"], []).append((step_id, step))
        return self.by_epoch.get(run_id, [])

    def notebook_cells(self, notebook: str | None) -> dict[str, str] | None:
        """Cell id -> source of the notebook file as it is now (None when unreadable)."""
        if notebook is None:
            return None
        if notebook not in self.notebooks:
            try:
                cells = json.loads(Path(self.files.absolute(notebook)).read_text()).get("cells", [])
                # a cell without an id (nbformat before 4.5) is known by its place
                self.notebooks[notebook] = {
                    cell["id"] if isinstance(cell.get("id"), str) else f"#{place}":
                        "".join(cell.get("source", ""))
                    for place, cell in enumerate(cells)
                    if isinstance(cell, dict) and cell.get("cell_type") == "code"
                }
            except (OSError, ValueError, AttributeError, TypeError):
                self.notebooks[notebook] = None
        return self.notebooks[notebook]

    # -- what to run again ------------------------------------------------------------------

    def upstream(self, activity: Activity) -> list[Activity]:
        """The stale activities ``activity`` was built from directly (through files too)."""
        found = []
        for target, _ in self.edges.get(activity, []):
            if target not in self.stale:
                continue
            found += [w for w, _ in self.edges[target] if w in self.stale] if target[0] == "file" else [target]
        return found

    def order(self, roots: list[Activity]) -> list[Activity]:
        """The stale activities behind ``roots``, each after those it was built from."""
        ordered: list[Activity] = []
        placed: set[Activity] = set()

        def place(activity: Activity) -> None:
            if activity in placed:
                return
            placed.add(activity)
            for earlier in sorted(self.upstream(activity), key=self.started):
                place(earlier)
            ordered.append(activity)

        for root in sorted(roots, key=self.started):
            place(root)
        return ordered

    def started(self, activity: Activity) -> float:
        kind, number = activity
        return (self.records.runs[number] if kind == "run" else self.records.steps[number])["started"]

    def commands(self, activities: list[Activity]) -> list[dict[str, Any]]:
        """One entry per command, in order; cells of one notebook in a row are one entry."""
        found: list[dict[str, Any]] = []
        for activity in activities:
            command = self.command(activity)
            if command in found:
                continue
            last = found[-1] if found else None
            if (command["kind"] == "cells" and last and last["kind"] == "cells"
                    and last["notebook"] == command["notebook"]):
                cells = list(dict.fromkeys(last["cells"] + command["cells"]))
                last["cells"] = self.in_notebook_order(command["notebook"], cells)
                last["text"] = self.cells_text(last["notebook"], last["cells"])
                continue
            found.append(command)
        return found

    def command(self, activity: Activity) -> dict[str, Any]:
        kind, number = activity
        if kind == "step":
            step = self.records.steps[number]
            cells = [step["cell_id"]]
            return {"kind": "cells", "notebook": step["notebook"], "cells": cells,
                    "text": self.cells_text(step["notebook"], cells)}
        run = self.records.runs[number]
        if run["build_target"]:
            make = ["make"]
            directory = run["build"].get("directory")
            if directory and Path(directory).resolve() != self.store.project.resolve():
                make += ["-C", os.path.relpath(directory, self.store.project)]
            make.append(run["build_target"])
            return {"kind": "make", "target": run["build_target"], "text": shlex.join(make)}
        if run["kind"] == "notebook":
            text = shlex.join(["trellis", "run", run["filename"] or "NOTEBOOK.ipynb"])
            return {"kind": "notebook", "notebook": run["filename"], "text": text}
        argv = run["argv"] or [run["filename"] or "SCRIPT"]
        text = shlex.join(["python", *argv])
        if run["cwd"] not in (".", ""):
            text = f"cd {shlex.quote(run['cwd'])} && {text}"
        return {"kind": "script", "script": run["filename"], "argv": argv, "cwd": run["cwd"],
                "text": text}

    def in_notebook_order(self, notebook: str, cells: list[str]) -> list[str]:
        current = list(self.notebook_cells(notebook) or {})
        return sorted(cells, key=lambda c: (current.index(c) if c in current else len(current)))

    @staticmethod
    def cells_text(notebook: str, cells: list[str]) -> str:
        named = ", ".join(str(c) for c in cells)
        return f"run cell{'s' if len(cells) > 1 else ''} {named} of {notebook}" + (
            ", in this order" if len(cells) > 1 else "")

    def writer(self, activity: Activity) -> dict[str, Any]:
        kind, number = activity
        if kind == "step":
            step = self.records.steps[number]
            run = self.records.runs[step["run"]]
            return {"kind": "execution", "run_id": run["uuid"], "notebook": step["notebook"],
                    "cell_id": step["cell_id"], "execution_count": step["execution_count"]}
        run = self.records.runs[number]
        return {"kind": run["kind"], "run_id": run["uuid"], "filename": run["filename"],
                "build_target": run["build_target"]}


def status(store: Store, paths: list[str] | None = None) -> dict[str, Any]:
    """Each recorded output (or those under ``paths``): up to date or stale, why, and what to
    run again, in order. With no ``paths``, ``values`` judges too the newest run of each script
    that wrote no file: what it logged into the store is its output. ``stale`` counts both."""
    judge = _Judge(store)
    known = sorted(judge.records.newest)
    if paths:
        chosen: list[str] = []
        for given in paths:
            wanted = recorded_path(given, store.project)
            matched = [p for p in known if p == wanted or p.startswith(wanted.rstrip("/") + "/")]
            if not matched:
                raise TrellisError(f"no recorded run wrote {wanted!r}; `trellis status` with no"
                                   " path lists every output the store knows")
            chosen += [p for p in matched if p not in chosen]
        known = chosen
    logging_only = [] if paths else [
        ("run", runs[-1]) for runs in judge.records.programs.values()
        if judge.records.runs[runs[-1]]["kind"] == "script" and ("run", runs[-1]) not in judge.records.written_by
    ]
    judge.judge([("file", path) for path in known] + logging_only)
    outputs, values = [], []
    stale_roots: list[Activity] = []
    for path in known:
        stale = ("file", path) in judge.stale
        writer = judge.records.newest[path].activity
        entry: dict[str, Any] = {"path": path, "stale": stale,
                                 "reasons": judge.reasons(("file", path)) if stale else [],
                                 "writer": judge.writer(writer)}
        if stale:
            entry["rerun"] = judge.commands(judge.order([writer]))
            stale_roots.append(writer)
        outputs.append(entry)
    for run in sorted(logging_only, key=judge.started):
        if run in judge.stale:
            values.append({"stale": True, "reasons": judge.reasons(run), "writer": judge.writer(run),
                           "rerun": judge.commands(judge.order([run]))})
            stale_roots.append(run)
    judge.files.save()
    return {"outputs": outputs, "values": values,
            "stale": sum(entry["stale"] for entry in outputs) + len(values),
            "rerun": judge.commands(judge.order(stale_roots)), "hashed": judge.files.hashed}


def notebook_staleness(store: Store, notebook: str) -> dict[str, list[dict[str, Any]]]:
    """Why each out-of-date execution of ``notebook`` is stale, by execution id
    (``<epoch>/<n>``): the last execution of each cell in each epoch is judged."""
    path = recorded_path(notebook, store.project)
    judge = _Judge(store)
    last: dict[tuple[int, str | None], int] = {}
    for step_id, step in sorted(judge.records.steps.items(), key=lambda item: (item[1]["started"], item[0])):
        if step["notebook"] == path:
            last[(step["run"], step["cell_id"] or f"#{step_id}")] = step_id
    judge.judge([("step", step_id) for step_id in last.values()])
    found = {}
    for (run_id, _), step_id in last.items():
        if ("step", step_id) in judge.stale:
            key = execution_key(judge.records.runs[run_id]["uuid"], step_id)
            found[key] = judge.reasons(("step", step_id))
    judge.files.save()
    return found
