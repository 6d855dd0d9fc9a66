"""What changed between two runs, two notebook epochs, or two executions of one cell.

A run or epoch is named by an id prefix (or ``latest``); an execution by ``<epoch prefix>/<n>``,
its number in the epoch (as ``trellis notebook show`` prints it). The result is plain data: code
(a unified diff of the snapshots, or of cell sources), params, logged values, data files,
libraries and environment, and outputs.
"""

from __future__ import annotations

import difflib
import json
import math
from typing import Any

from trellis._errors import TrellisError
from trellis.queries.runs import resolve
from trellis.analysis.cells import DATA_EXTENSIONS
from trellis.store.cells import decode
from trellis.store.connection import Store
from trellis.store.objects import object_path
from trellis.store.schema import RUN_SHIFT, run_keys
from trellis.store.snapshots import GitError, git

_TEXT_LIMIT = 200_000


def _is_execution(ref: str) -> bool:
    return "/" in ref and ref.rsplit("/", 1)[1].isdigit()


def _execution(store: Store, ref: str) -> dict[str, Any]:
    prefix, number = ref.rsplit("/", 1)
    run = resolve(store, prefix)
    step = (run["id"] << RUN_SHIFT) + int(number)
    rows = store.execute(
        "SELECT id, cell_id, notebook, source, status, error, outputs FROM steps WHERE id = ?", (step,)
    )
    if not rows:
        raise TrellisError(f"epoch {run['uuid'][:8]} has no execution {number}; see `trellis notebook show`")
    step, cell, notebook, source, status, error, outputs = rows[0]
    return {"ref": f"{run['uuid'][:8]}/{number}", "step": step, "run": run, "cell_id": cell,
            "notebook": notebook, "source": source or "", "status": status, "error": error,
            "outputs": json.loads(outputs or "[]")}


def diff(store: Store, a: str, b: str) -> dict[str, Any]:
    if _is_execution(a) != _is_execution(b):
        raise TrellisError(f"{a!r} and {b!r} are different kinds of thing: compare two runs or two executions")
    if _is_execution(a):
        return _diff_executions(store, _execution(store, a), _execution(store, b))
    return _diff_runs(store, resolve(store, a), resolve(store, b))


# -- runs and epochs ---------------------------------------------------------------------------


def _diff_runs(store: Store, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "runs",
        "a": _identity(a),
        "b": _identity(b),
        "code": _code(store, a, b),
        "params": _changes(_params(store, a["id"]), _params(store, b["id"])),
        "values": _values(store, a["id"], b["id"]),
        "files": _files(store, a["id"], b["id"]),
        "environment": _environment(store, a, b),
    }


def _identity(run: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": run["uuid"], "kind": run["kind"], "filename": run["filename"],
            "status": run["status"], "git_commit": run["git_commit"]}


def _changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {
        "changed": {k: {"a": old[k], "b": new[k]} for k in old if k in new and old[k] != new[k]},
        "added": {k: new[k] for k in new if k not in old},
        "removed": {k: old[k] for k in old if k not in new},
    }


def _params(store: Store, run: int) -> dict[str, Any]:
    rows = store.execute(
        "SELECT name, kind, int_value, float_value, text_value FROM params WHERE run = ?", (run,)
    )
    return {name: decode(kind, i, f, t) for name, kind, i, f, t in rows}


def _value_summary(store: Store, run: int) -> dict[str, dict[str, Any]]:
    from trellis.queries.dataframe import COMMIT_MARK  # when a commit happened, not a result

    keys = run_keys(run)
    rows = store.execute(
        "SELECT name, COUNT(*), MIN(float_value), MAX(float_value), "
        + store.dialect.mean.format("float_value")
        + ", MAX(id) FROM logs WHERE id >= ? AND id < ? AND name <> ? GROUP BY name",
        (*keys, COMMIT_MARK),
    )
    summary = {}
    for name, count, low, high, mean, last_id in rows:
        kind, i, f, t = store.execute(
            "SELECT kind, int_value, float_value, text_value FROM logs WHERE id = ?", (last_id,)
        )[0]
        entry: dict[str, Any] = {"count": count, "last": decode(kind, i, f, t)}
        if low is not None:
            if _finite(low) and _finite(high) and not _finite(mean):
                mean = _scaled_mean(store, keys, name, max(abs(low), abs(high)))
            entry.update(min=low, max=high, mean=mean)
        summary[name] = entry
    return summary


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _scaled_mean(store: Store, keys: tuple[int, int], name: str, scale: float) -> float:
    """The mean of finite values whose sum overflows (SQLite's AVG answers infinity)."""
    rows = store.execute("SELECT float_value FROM logs WHERE id >= ? AND id < ? AND name = ?"
                         " AND float_value IS NOT NULL", (*keys, name))
    return math.fsum(value / scale for value, in rows) / len(rows) * scale


def _comparable(summary: dict[str, Any]) -> str:
    # a NaN logged in both runs is the same value, though NaN != NaN; JSON writes both as NaN
    return json.dumps(summary, sort_keys=True, default=repr)


def _values(store: Store, a: int, b: int) -> dict[str, Any]:
    old, new = _value_summary(store, a), _value_summary(store, b)
    changed = {}
    same = sorted(n for n in old.keys() & new.keys() if _comparable(old[n]) == _comparable(new[n]))
    for name in old.keys() & new.keys() - set(same):
        entry = {"a": old[name], "b": new[name]}
        la, lb = old[name]["last"], new[name]["last"]
        if isinstance(la, (int, float)) and isinstance(lb, (int, float)) and not isinstance(la, bool):
            entry["delta"] = lb - la
        changed[name] = entry
    return {"changed": dict(sorted(changed.items())),
            "same": same,
            "added": {n: new[n] for n in sorted(new.keys() - old.keys())},
            "removed": {n: old[n] for n in sorted(old.keys() - new.keys())}}


def _file_versions(store: Store, column: str, value: int) -> dict[tuple[str, str], str | None]:
    rows = store.execute(f"SELECT mode, path, hash FROM files WHERE {column} = ? ORDER BY at", (value,))
    return {(mode, path): digest for mode, path, digest in rows}


def _files(store: Store, a: int, b: int, column: str = "run") -> dict[str, Any]:
    old, new = _file_versions(store, column, a), _file_versions(store, column, b)
    out: dict[str, Any] = {}
    for mode in ("read", "write"):
        paths_a = {p: h for (m, p), h in old.items() if m == mode}
        paths_b = {p: h for (m, p), h in new.items() if m == mode}
        out[mode] = {
            "changed": {p: {"a": paths_a[p], "b": paths_b[p]} for p in sorted(paths_a.keys() & paths_b.keys())
                        if paths_a[p] != paths_b[p]},
            "new": sorted(paths_b.keys() - paths_a.keys()),
            "gone": sorted(paths_a.keys() - paths_b.keys()),
        }
    return out


def _code(store: Store, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    if a["kind"] == "notebook" or b["kind"] == "notebook":
        return _cell_sources(store, a["id"], b["id"])
    if not a["git_commit"] or not b["git_commit"]:
        return {"available": False, "reason": "a run was recorded outside git"}
    if a["git_commit"] == b["git_commit"]:
        return {"available": True, "same": True, "diff": ""}
    try:
        changed = git(store.project, "diff", "--name-only", "-z", a["git_commit"], b["git_commit"],
                      strip=False).split("\0")
        changed = [path for path in changed if path]
        data = [path for path in changed if _is_data(store, path)]
        code = [path for path in changed if path not in data]
        text = git(store.project, "diff", "--no-color", a["git_commit"], b["git_commit"], "--", *code,
                   strip=False) if code else ""
    except GitError as error:
        return {"available": False, "reason": str(error).splitlines()[-1]}
    # data a snapshot holds (a run's predictions, a CSV) is listed apart, not read as code
    return {"available": True, "same": not text, "diff": text[:_TEXT_LIMIT], "data_files": data}


# Text a person edits (settings, requirements) stays in the code diff even when named like data.
_EDITED = frozenset({"json", "yaml", "yml", "txt", "toml"})


def _is_data(store: Store, path: str) -> bool:
    """A file some run wrote (generated data), or one named like data (``.csv``, ``.npz``...)."""
    if path.rsplit(".", 1)[-1].lower() in DATA_EXTENSIONS - _EDITED:
        return True
    return bool(store.execute("SELECT 1 FROM files WHERE path = ? AND mode = 'write' LIMIT 1", (path,)))


def _cell_sources(store: Store, a: int, b: int) -> dict[str, Any]:
    """Per cell id, the last source each epoch ran; a unified diff where they differ."""
    def last_sources(run: int) -> dict[str, str]:
        rows = store.execute("SELECT cell_id, source FROM steps WHERE run = ? ORDER BY started", (run,))
        return {cell: source or "" for cell, source in rows}

    old, new = last_sources(a), last_sources(b)
    cells = {}
    for cell in sorted(old.keys() & new.keys()):
        if old[cell] != new[cell]:
            cells[cell] = _unified(old[cell], new[cell], f"a/{cell}", f"b/{cell}")
    return {"available": True, "same": not cells and old.keys() == new.keys(), "cells": cells,
            "new_cells": sorted(new.keys() - old.keys()), "gone_cells": sorted(old.keys() - new.keys())}


def _unified(old: str, new: str, left: str, right: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), left, right))


def _environment(store: Store, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    def load(environment_id: int | None) -> dict[str, Any]:
        if environment_id is None:
            return {}
        rows = store.execute("SELECT data FROM environments WHERE id = ?", (environment_id,))
        return json.loads(rows[0][0]) if rows else {}

    run_a = store.execute("SELECT environment_id FROM runs WHERE id = ?", (a["id"],))[0][0]
    run_b = store.execute("SELECT environment_id FROM runs WHERE id = ?", (b["id"],))[0][0]
    old, new = load(run_a), load(run_b)
    packages = _changes(old.pop("packages", {}), new.pop("packages", {}))
    return {"same": run_a == run_b, "packages": packages, "system": _changes(old, new)}


# -- executions --------------------------------------------------------------------------------


def _diff_executions(store: Store, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    if (a["notebook"], a["cell_id"]) != (b["notebook"], b["cell_id"]):
        note = f"different cells ({a['cell_id']} and {b['cell_id']})"
    else:
        note = None
    return {
        "kind": "executions",
        "a": {k: a[k] for k in ("ref", "cell_id", "notebook", "status")},
        "b": {k: b[k] for k in ("ref", "cell_id", "notebook", "status")},
        "note": note,
        "code": {"same": a["source"] == b["source"],
                 "diff": _unified(a["source"], b["source"], f"a/{a['ref']}", f"b/{b['ref']}")},
        "status": None if a["status"] == b["status"] else {"a": a["status"], "b": b["status"]},
        "outputs": _outputs(store, a["outputs"], b["outputs"]),
        "files": _files(store, a["step"], b["step"], column="step"),
        "variables": _changes(_variables(store, a["step"]), _variables(store, b["step"])),
    }


def _variables(store: Store, step: int) -> dict[str, Any]:
    rows = store.execute("SELECT name, type, summary FROM variables WHERE step = ?", (step,))
    return {name: {"type": kind, **json.loads(summary or "{}")} for name, kind, summary in rows}


def _outputs(store: Store, old: list[dict], new: list[dict]) -> list[dict[str, Any]]:
    changes = []
    for position in range(max(len(old), len(new))):
        left = old[position]["data"] if position < len(old) else {}
        right = new[position]["data"] if position < len(new) else {}
        for mime in sorted(left.keys() | right.keys()):
            da, db = (left.get(mime) or {}).get("object"), (right.get(mime) or {}).get("object")
            if da == db:
                continue
            entry: dict[str, Any] = {"output": position, "mime": mime, "a": da, "b": db}
            if mime.startswith("text/") and da and db:
                entry["diff"] = _unified(_text(store, da), _text(store, db), "a", "b")
            changes.append(entry)
    return changes


def _text(store: Store, digest: str) -> str:
    try:
        return object_path(store.objects, digest).read_bytes()[:_TEXT_LIMIT].decode("utf-8", "replace")
    except OSError:
        return ""
