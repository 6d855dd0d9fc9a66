"""A FlorDB 4.x project's history (its ``.flor/`` folder and git branch) as trellis runs.

FlorDB writes one JSON-lines file per commit, ``.flor/runs/<tstamp>.jsonl``: a record per value
with its loop context (``ctx``, outermost first) and its kind (1 a logged value or arg, 2 captured
output, 3 a timing). Its git branch holds an auto-commit per tstamp whose message lists the
run's args. Each file becomes a run (started at its tstamp): args become params, logged values
become logs at their loop coordinates, captured output the run's stdout and stderr, and the
auto-commit the run's code version. A run's id is derived from its project and tstamp, so a
second import of the same folder adds only what is new. One transaction: a file that cannot be
read leaves the store as it was.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from trellis._errors import TrellisError
from trellis.store.cells import cell
from trellis.store.connection import Store
from trellis.store.schema import NOTE_LOG_NAME, RUN_SHIFT
from trellis.store.snapshots import GitError, git

VALUE, OUTPUT, TIMING = 1, 2, 3
AUTO_COMMIT = "FLOR::Auto-commit::"
_NAMESPACE = uuid.UUID("7d3c4f0e-2a51-4c5e-9f36-0b6c1f1e4a77")  # trellis's, for FlorDB runs


def flor_folder(path: Path) -> Path | None:
    """The ``.flor`` folder ``path`` is or holds, if it has FlorDB's run files."""
    for folder in (path, path / ".flor"):
        if folder.is_dir() and (folder / "runs").is_dir():
            return folder
    return None


def import_flor(store: Store, folder: Path) -> dict[str, int]:
    runs = [_read_run_file(path) for path in sorted((folder / "runs").glob("*.jsonl"))]
    commits = _auto_commits(folder.resolve().parent)
    imported = skipped = 0
    with store.transaction():
        for tstamp, records in runs:
            if not records:
                continue
            run_uuid = str(uuid.uuid5(_NAMESPACE, f"{records[0].get('projid')}/{tstamp}"))
            if store.execute("SELECT 1 FROM runs WHERE uuid = ?", (run_uuid,)):
                skipped += 1
                continue
            _insert_run(store, run_uuid, tstamp, records, commits.get(tstamp))
            imported += 1
    return {"imported": imported, "skipped": skipped, "replays": 0}


def _read_run_file(path: Path) -> tuple[str, list[dict[str, Any]]]:
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("name"), str):
                raise ValueError("not a FlorDB record")
            ctx = record.get("ctx")
            if ctx is not None and not (
                isinstance(ctx, list) and all(isinstance(s, dict) and isinstance(s.get("name"), str) for s in ctx)
            ):
                raise ValueError("its ctx is not a list of loop segments")
        except ValueError as error:
            raise TrellisError(
                f"{path.name} line {number} is not a FlorDB 4.x record ({error}); nothing was imported"
            ) from None
        records.append(record)
    return path.stem, records


def _auto_commits(root: Path) -> dict[str, dict[str, Any]]:
    """tstamp -> the auto-commit FlorDB made for it: hash, branch, and the args its message lists."""
    try:
        listing = git(root, "log", "--all", "--source", "--format=%H%x00%S%x00%B%x01", strip=False)
    except GitError:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for entry in listing.split("\x01"):
        parts = entry.strip("\n").split("\x00")
        if len(parts) != 3 or not parts[2].startswith(AUTO_COMMIT):
            continue
        sha, ref, message = parts
        subject, _, body = message.partition("\n")
        tstamp = subject[len(AUTO_COMMIT):].strip()
        args = [line.split("=", 1)[0] for line in body.strip().splitlines() if "=" in line]
        found[tstamp] = {"commit": sha, "ref": ref.removeprefix("refs/heads/") or None, "args": args}
    return found


def _seconds(tstamp: str) -> float:
    try:
        return datetime.fromisoformat(tstamp).timestamp()  # FlorDB's tstamps are local time
    except ValueError:
        raise TrellisError(f"{tstamp}.jsonl is not named by a FlorDB tstamp; nothing was imported") from None


def _value(value: Any) -> Any:
    if type(value) in (list, dict):
        from trellis.capture.values import encode

        return encode("imported value", value)
    return value


def _insert_run(store: Store, run_uuid: str, tstamp: str, records: list[dict[str, Any]],
                commit: dict[str, Any] | None) -> None:
    started = _seconds(tstamp)
    first = records[0]
    timings = {r["name"]: r.get("value") for r in records if r.get("type") == TIMING and not r.get("ctx")}
    took = timings.get("time::script")
    out = [str(r.get("value")) for r in records if r.get("type") == OUTPUT and r["name"] == "io::stdout"]
    err = [str(r.get("value")) for r in records if r.get("type") == OUTPUT and r["name"] != "io::stdout"]
    ref = commit["ref"] if commit else None
    (run,) = store.execute(
        "INSERT INTO runs (uuid, projid, kind, filename, started, ended, committed, status, problems,"
        " git_commit, git_ref, stdout, stderr) VALUES (?, ?, 'script', ?, ?, ?, ?, 'ok', ?, ?, ?, ?, ?)"
        " RETURNING id",
        (run_uuid, str(first.get("projid") or ""), first.get("filename"), started,
         started + took if isinstance(took, (int, float)) else None, started,
         json.dumps([f"imported from FlorDB ({tstamp}.jsonl)"]),
         commit["commit"] if commit else None, ref,
         "\n".join(out) + "\n" if out else None, "\n".join(err) + "\n" if err else None),
    )[0]
    base = run << RUN_SHIFT
    args = set(commit["args"]) if commit else set()
    params: dict[str, Any] = {}
    iterations: dict[tuple, int] = {}
    iteration_rows: list[tuple] = []
    loops: dict[tuple[str, int], bool] = {}
    hand_counts: dict[tuple[int, str], int] = {}
    logs: list[tuple] = []
    names: set[str] = set()
    written_in: dict[str, list[int]] = {"stdout": [], "stderr": []}  # each output line's iteration
    for record in records:
        kind = record.get("type", VALUE)
        if kind not in (VALUE, OUTPUT):
            continue
        name, ctx = record["name"], record.get("ctx") or []
        if kind == VALUE and not ctx and name in args and name not in params:
            params[name] = record.get("value")
            continue
        parent = 0
        path: tuple = ()
        for depth, segment in enumerate(ctx):
            index, shown = segment.get("iteration"), segment.get("value")
            path += ((segment["name"], index, shown),)
            if path not in iterations:
                if index is None:  # flor.iteration with no index: number them in order
                    index = hand_counts.get((parent, segment["name"]), 0)
                hand_counts[(parent, segment["name"])] = int(index) + 1
                number = len(iterations) + 1
                iterations[path] = number
                restates = shown is None or str(shown) == str(index)
                loops[(segment["name"], depth)] = loops.get((segment["name"], depth), False) or not restates
                iteration_rows.append((base + number, run, base + parent, segment["name"], depth, int(index),
                                       None if restates else json.dumps(shown), started))
            parent = iterations[path]
        if kind == OUTPUT:
            written_in["stdout" if name == "io::stdout" else "stderr"].append(parent)
            continue
        names.add(name)
        logs.append((base + len(logs) + 1, run, base + parent, name, *cell(_value(record.get("value")))))
    store.executemany(
        "INSERT INTO iterations (id, run, parent, loop, depth, idx, value, started) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        iteration_rows,
    )
    store.executemany(
        "INSERT INTO loops (run, loop, depth, has_values) VALUES (?, ?, ?, ?)",
        [(run, loop, depth, int(shown)) for (loop, depth), shown in loops.items()],
    )
    store.executemany(
        "INSERT INTO logs (id, run, iteration, name, kind, int_value, float_value, text_value)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        logs,
    )
    store.executemany(NOTE_LOG_NAME, [(run, name) for name in sorted(names)])
    # FlorDB's own ctx of each output line (not times), where a record is one line of the text
    whole_lines = {"stdout": out, "stderr": err}
    written_in = {channel: keys for channel, keys in written_in.items()
                  if any(keys) and not any("\n" in line for line in whole_lines[channel])}
    if written_in:
        store.execute("UPDATE runs SET output_times = ? WHERE id = ?", (json.dumps(
            {f"{channel}_iterations": [base + key if key else None for key in keys]
             for channel, keys in written_in.items()}, separators=(",", ":")), run))
    store.executemany(
        "INSERT INTO params (run, name, kind, int_value, float_value, text_value, origin, position)"
        " VALUES (?, ?, ?, ?, ?, ?, 'flordb', ?)",
        [(run, name, *cell(_value(value)), position) for position, (name, value) in enumerate(params.items())],
    )
