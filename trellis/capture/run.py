"""The current run: what ``log``/``loop``/``arg`` buffer, and the thread that writes it down.

The hot path (``log`` inside ``loop``) only appends tuples to a deque; classifying values and
writing them happens in bulk, in one transaction per flush, on a recorder thread or at exit. The
recorder also takes the snapshot, environment and build context, so importing trellis costs a
script almost nothing up front.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from trellis import _config
from trellis._errors import TrellisError
from trellis.capture import recovery, streams
from trellis.capture.values import describe_item, echo, encode
from trellis.store.cells import PLAIN, Encoded, cell, fits, storable
from trellis.store.schema import FLOAT, NOTE_LOG_NAME, RUN_SHIFT
from trellis.store.spans import pack_starts
from trellis.store.paths import recorded_path

# What a run (and its unfinished step) found with its process gone says of its end.
KILLED = "its process ended without finishing the run (killed, or its machine stopped)"

# The innermost iteration around the current point (0: the top level) and its loop depth.
_current = 0
_depth = 0
# (name, iteration id, value) for each log call, in order.
_values: deque = deque()
_append_value = _values.append
_run: "Run | None" = None
_echo = False
_checkpointer: Any = None
_failed_at_start = False
_RETRY_SECONDS = 5.0
# An iteration row is a list, its columns then the starts of the iterations it holds and the
# loop's value when it is not the index (JSON), so that the next iteration can end it or join it.
_ITERATION_COLUMNS = ("id", "run", "parent", "loop", "depth", "idx", "started", "ended")
_ID, _ENDED, _STARTS, _VALUE = 0, 7, 8, 9
_LOG_COLUMNS = ("id", "run", "step", "iteration", "name", "kind", "int_value", "float_value", "text_value")
# Most values are floats: their rows leave out the columns they would bind NULL to, which takes
# a third off inserting them.
_FLOAT_LOG_COLUMNS = ("id", "run", "step", "iteration", "name", "kind", "float_value")
# Told of the run's life, off the program's thread where they can be: ``prepare()`` while the
# context is taken, ``started(run)`` once the run's context (and file) is written, ``ended(run)``
# once its end is; what one raises is a problem of the run about its ``what``. The face adds the
# OpenLineage sender when one is configured.
observers: list = []


class Run:
    """One process's run: identity, buffers, and the recorder that flushes them."""

    replaying = None  # a replayed segment stands in for a run (replaying/segment.py)

    def __init__(self, kind: str, filename: str | None = None) -> None:
        self.uuid = str(uuid.uuid4())
        self.kind = kind
        self.filename = filename
        self.cwd = Path.cwd()
        self.started = time.time()
        main = sys.modules.get("__main__")
        script = getattr(main, "__file__", None)
        # the file itself, not a link's name for it: replay and reproduction read it from the snapshot
        self.script = Path(script).resolve() if script else None
        self.argv = list(sys.argv)
        self.iterations: deque = deque()
        self.iteration_ids = itertools.count(1)
        self.params: dict[str, tuple[Any, str]] = {}
        self.params_written: set[str] = set()
        self.names_noted: set[str] = set()
        self.stored_names: dict[str, str] = {}  # names that are stored escaped (cells.storable)
        self.checkpoints: deque = deque()
        self.inputs: deque = deque()
        self.files: Any = None
        self.pending_files: list = []
        self.steps: list[dict[str, Any]] = []
        self.step_numbers = itertools.count(1)
        self.variables: deque = deque()
        self.dependencies: deque = deque()
        self.modules: deque = deque()
        self.wake = threading.Event()
        self.consistent_soon = False
        self.open_iterations: dict[tuple, Any] = {}
        self.pending_loops: dict[tuple[str, int], bool] = {}
        self.seq = 0
        self.log_step: int | None = None
        self.current_step = 0
        self.status: str | None = None
        self.error: str | None = None
        self.problems: list[str] = []
        self.store: Any = None
        self.moved: tuple[str, Any, str] | None = None  # (from, to, hint) until confirmed there
        self.run_id: int | None = None
        self.registered = threading.Event()
        self.stopping = threading.Event()
        self.flush_lock = threading.RLock()
        self.finished = False
        self.announced = False  # the observers have been told the run began
        self.out: streams.Tee | None = None
        self.err: streams.Tee | None = None
        self.recorder = threading.Thread(target=self._record, name="trellis-recorder", daemon=True)
        self.context: threading.Thread | None = None

    # -- problems ---------------------------------------------------------------------------

    def problem(self, where: str, error: BaseException) -> None:
        """An internal failure: warn once per kind of failure, remember it, carry on."""
        message = f"{where}: {type(error).__name__}: {error}"
        first = not any(p.startswith(where + ":") for p in self.problems)
        self.problems.append(message)
        if first:
            warnings.warn(f"trellis could not record {message}; the script continues", stacklevel=2)

    # -- the recorder thread ----------------------------------------------------------------

    def _record(self) -> None:
        if self.files is not None:
            self.files.quiet(threading.current_thread())
        if not self._register():
            # the store may come back (a server restarting, a lock released): keep trying
            while self.run_id is None:
                if self.stopping.wait(_RETRY_SECONDS):
                    return
                with self.flush_lock:
                    if self.run_id is None:
                        self._register()
        # The code snapshot and the environment can take seconds: they are taken beside the
        # flushes, so that what is logged meanwhile is written on time all the same.
        self.context = threading.Thread(target=self._capture_context_quietly, name="trellis-context",
                                        daemon=True)
        self.context.start()
        interval = _config.flush_seconds()
        batch = _config.flush_values()
        # Wake often enough to notice a full buffer: flushing large batches while the program
        # runs keeps each transaction, and the wait at commit or exit, short.
        tick = min(interval, 0.2)
        due = time.monotonic()  # the values logged before the run was registered: now
        # How long the last flushes took; until some are timed, a quarter of the interval.
        took: deque = deque([interval / 4], maxlen=5)
        while not self.stopping.is_set():
            woken = self.wake.wait(max(0.0, min(tick, due - time.monotonic())))
            if self.stopping.is_set():
                break
            if not woken and time.monotonic() < due and len(_values) < batch:
                continue
            self.wake.clear()
            consistent, self.consistent_soon = self.consistent_soon, False
            began = time.monotonic()
            self.flush(consistent=consistent)
            took.append(time.monotonic() - began)
            if observers and not self.announced and not self.context.is_alive():
                self._announce_start(final=False)
            # By deadline, not a sleep after each flush (``next_flush``).
            due = next_flush(began, max(took), interval)

    def _announce_start(self, final: bool) -> None:
        """Tell the observers the run began, once what they describe it by is written: its
        context (a make target), and its file (a kernel learns its notebook's at its first cell)."""
        named = self.filename is not None or (self.kind == "script" and self.script is not None)
        if self.run_id is None or not (final or named):
            return
        self.announced = True
        self._notify("started", self)

    def _notify(self, moment: str, *args: Any) -> None:
        for observer in observers:
            try:
                getattr(observer, moment)(*args)
            except Exception as error:
                self.problem(getattr(observer, "what", "telling an observer"), error)

    def _capture_context_quietly(self) -> None:
        if self.files is not None:
            self.files.quiet(threading.current_thread())
        if observers:
            self._notify("prepare")
        self._capture_context()
        if observers and not self.announced:
            self._announce_start(final=False)

    def _register(self, store: Any = None) -> bool:
        """Insert this run into ``store`` (by default: open the configured one)."""
        from trellis.store.connection import open_store

        fallback = store is not None
        try:
            if store is None:
                store = open_store(root=self.cwd)
            root = store.project
            filename = recorded_path(self.filename, root) if self.filename else None
            if filename is None and self.script is not None:
                try:
                    filename = str(self.script.relative_to(root))
                except ValueError:
                    filename = str(self.script)
            from trellis.capture.environment import mask_secrets

            parent = _config.parent_run()
            found = store.execute("SELECT id, projid FROM runs WHERE uuid = ?", (parent,)) if parent else []
            rows = store.execute(
                "INSERT INTO runs (uuid, projid, kind, filename, cwd, argv, started, status, host,"
                " pid, parent_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    self.uuid,
                    found[0][1] if found else root.name,  # a reproduction belongs to its original's project
                    self.kind,
                    None if filename is None else storable(filename),
                    storable(recorded_path(str(self.cwd), root)),
                    json.dumps(mask_secrets(self.argv)),
                    self.started,
                    "running",
                    socket.gethostname(),
                    os.getpid(),
                    found[0][0] if found else None,
                ),
            )
            store.connection.commit()
            self.store, self.run_id = store, rows[0][0]
        except Exception as error:
            if store is not None and not fallback:
                store.close()
            self.problem("opening the store", error)
            return False
        finally:
            self.registered.set()
        if self.files is not None:
            self.files.ignored += (str(Path(store.location).parent) + os.sep,)
        if not fallback:
            self._mark_dead_runs_interrupted()
        return True

    def _mark_dead_runs_interrupted(self) -> None:
        """A run left 'running' by a process that is gone was killed: say so."""
        from trellis.capture.liveness import process_gone

        try:
            candidates = self.store.execute(
                "SELECT id, pid, started FROM runs WHERE status = 'running' AND host = ? AND id <> ?",
                (socket.gethostname(), self.run_id),
            )
            dead = [(KILLED, run) for run, pid, started in candidates if process_gone(pid, started)]
            if dead:
                with self.store.transaction() as store:
                    store.executemany(
                        "UPDATE runs SET status = 'interrupted', error = COALESCE(error, ?)"
                        " WHERE id = ? AND status = 'running'",
                        dead,
                    )
                    store.executemany(
                        "UPDATE steps SET status = 'interrupted', error = COALESCE(error, ?)"
                        " WHERE run = ? AND status = 'running'",
                        dead,
                    )
        except Exception as error:
            self.problem("checking for killed runs", error)

    def _capture_context(self) -> None:
        from trellis.capture import environment, makefile, snapshot

        updates: dict[str, Any] = {}
        try:
            root = snapshot.find_git_root(self.cwd)
            if root is not None:
                taken = snapshot.take_snapshot(root, self.uuid)
                updates["git_commit"] = taken.get("commit")
                updates["git_ref"] = taken.get("ref")
                updates["git"] = json.dumps(taken)
            else:
                updates["git"] = json.dumps({"repository": None})
        except Exception as error:
            self.problem("the code snapshot", error)
        try:
            build = makefile.build_context()
            updates["build"] = json.dumps(build)
            updates["build_target"] = build.get("target")
        except Exception as error:
            self.problem("the build context", error)
        try:
            import hashlib

            # one cache per user, so that a new project does not pay for reading every package
            described = json.dumps(environment.describe_environment(environment.user_cache()), sort_keys=True)
            digest = hashlib.sha256(described.encode()).hexdigest()
            with self.store.transaction() as store:
                store.execute(
                    "INSERT INTO environments (hash, data) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING",
                    (digest, described),
                )
                (env_id,) = store.execute("SELECT id FROM environments WHERE hash = ?", (digest,))[0]
            updates["environment_id"] = env_id
        except Exception as error:
            self.problem("the environment", error)
        if updates:
            try:
                with self.store.transaction() as store:
                    assignments = ", ".join(f"{column} = ?" for column in updates)
                    store.execute(
                        f"UPDATE runs SET {assignments} WHERE id = ?", (*updates.values(), self.run_id)
                    )
            except Exception as error:
                self.problem("the run's context", error)

    # -- flushing ---------------------------------------------------------------------------

    def flush(self, final: bool = False, consistent: bool = False) -> None:
        """Write everything buffered in one transaction; on failure keep it for the next try.

        A ``consistent`` flush (``commit`` or the end) also records the files written so far,
        which are only hashed once the program says its writes are complete.
        """
        with self.flush_lock:
            if self.run_id is None:
                if self.recorder.is_alive() or self.recorder.ident is None:
                    self.registered.wait(60)
                if self.run_id is None and not self._register_late(final):
                    return
            values = _drain(_values)
            iterations = _drain(self.iterations)
            checkpoints = _drain(self.checkpoints)
            inputs = _drain(self.inputs)
            files: list = []
            if self.files is not None:
                try:
                    files = self.files.drain(include_writes=final or consistent)
                except Exception as error:
                    self.problem("hashing files", error)
            files, self.pending_files = self.pending_files + files, []
            try:
                self._write(values, iterations, checkpoints, final, files, inputs)
            except Exception as error:
                self.problem("writing to the store", error)
                if not (self._must_move(final) and recovery.move(self)):
                    self._keep(values, iterations, checkpoints, inputs, files)
                    return
                try:
                    self._write(values, iterations, checkpoints, final, files, inputs)
                except Exception as again:
                    self.problem("writing to the recovery store", again)
                    self._keep(values, iterations, checkpoints, inputs, files)
                    return
            recovery.confirm(self)

    def _keep(self, values: list, iterations: list, checkpoints: list, inputs: list, files: list) -> None:
        """What a flush could not write waits for the next."""
        _values.extendleft(reversed(values))
        self.iterations.extendleft(reversed(iterations))
        self.checkpoints.extendleft(reversed(checkpoints))
        self.inputs.extendleft(reversed(inputs))
        self.pending_files = files

    def _register_late(self, final: bool) -> bool:
        """A store that could not be opened: at the end, one more try, then a recovery store."""
        if final and self._register():
            # its git processes are not the run's
            with self.files.quietly() if self.files is not None else contextlib.nullcontext():
                self._capture_context()
            return True
        return self._must_move(final) and recovery.move(self)

    def _must_move(self, final: bool) -> bool:
        """Whether what waits for a store that fails goes to a recovery store now: at the end,
        or once it holds too much to keep in memory."""
        return final or len(_values) > recovery.KEEP_IN_MEMORY

    def _write(
        self, values: list, iterations: list, checkpoints: list, final: bool, files: list,
        inputs: list,
    ) -> None:
        run = self.run_id
        base = run << RUN_SHIFT
        seq = self.seq
        step = self.log_step
        names = {name for name, _, _ in values if name is not None}
        for name in names - self.names_noted:
            if name not in self.stored_names and not fits(name):
                self.stored_names[name] = storable(name)
        if self.stored_names and not names.isdisjoint(self.stored_names):
            stored = self.stored_names
            values = [(stored.get(name, name), iteration, value) for name, iteration, value in values]
            names = {stored.get(name, name) for name in names}
        log_rows = []
        add = log_rows.append
        float_rows = []
        add_float = float_rows.append
        for name, iteration, value in values:
            if name is None:  # a step began: the values after it belong to that step
                step = base + iteration if iteration else None
                continue
            seq += 1
            kind = type(value)
            # Floats dominate; build their row inline rather than through cell().
            if kind is float and value == value:
                add_float((base + seq, run, step, base + iteration, name, FLOAT, value))
            else:
                add((base + seq, run, step, base + iteration, name, *cell(value)))
        new_names = names - self.names_noted
        single, valued, spans, ended_before = self._iteration_rows(iterations, base)
        loops, self.pending_loops = self.pending_loops, {}
        new_params = [(position, n, v) for position, (n, v) in enumerate(self.params.items())
                      if n not in self.params_written]
        param_rows = [
            (run, storable(n),
             *cell(v if type(v) in PLAIN or type(v) is Encoded else encode(n, v, "trellis.arg")), origin, position)
            for position, n, (v, origin) in new_params
        ]
        run_updates = {"committed": time.time()}
        output_changed = False
        for tee, column in ((self.out, "stdout"), (self.err, "stderr")):
            if tee is not None and (tee.changed or final):
                tee.changed = False
                run_updates[column] = storable(tee.text())
                output_changed = True
        if output_changed:  # each kept line's start, in microseconds after the run's
            run_updates["output_times"] = json.dumps({
                column: [None if t is None else round((t - self.started) * 1e6) for t in tee.line_times()]
                for tee, column in ((self.out, "stdout"), (self.err, "stderr")) if tee is not None
            }, separators=(",", ":"))
        if final:
            run_updates["status"] = self.status or "ok"
            run_updates["ended"] = time.time()
            run_updates["error"] = None if self.error is None else storable(self.error)
        if self.problems:
            run_updates["problems"] = json.dumps(self.problems)
        steps = [(live, dict(live)) for live in self.steps]  # the kernel's thread may change them
        variables, dependencies, modules = _drain(self.variables), _drain(self.dependencies), _drain(self.modules)

        def write(store: Any) -> list:
            store.insert_rows("iterations", _ITERATION_COLUMNS, single)
            store.insert_rows("iterations", (*_ITERATION_COLUMNS, "value"), valued)
            store.insert_rows("iterations", (*_ITERATION_COLUMNS, "count", "starts_us", "value"), spans)
            store.executemany("UPDATE iterations SET ended = ? WHERE id = ?", ended_before)
            # A summary of the loops, so readers need not scan every iteration to find them.
            store.executemany(
                "INSERT INTO loops (run, loop, depth, has_values) VALUES (?, ?, ?, 0)"
                " ON CONFLICT (run, loop, depth) DO NOTHING",
                [(run, loop, depth) for loop, depth in loops],
            )
            store.executemany(
                "UPDATE loops SET has_values = 1 WHERE run = ? AND loop = ? AND depth = ?",
                [(run, loop, depth) for (loop, depth), shown in loops.items() if shown],
            )
            store.insert_rows("logs", _FLOAT_LOG_COLUMNS, float_rows)
            store.insert_rows("logs", _LOG_COLUMNS, log_rows)
            store.executemany(NOTE_LOG_NAME, [(run, name) for name in new_names])
            written = self._write_steps(store, base, steps, variables, dependencies, modules)
            store.executemany(
                "INSERT INTO params (run, name, kind, int_value, float_value, text_value, origin, position)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run, name) DO NOTHING",
                param_rows,
            )
            store.executemany(
                "INSERT INTO checkpoints (run, iteration, loop, idx, name, object, format, size,"
                " seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run, iteration, name)"
                " DO NOTHING",
                [(run, base + iteration, *rest) for iteration, *rest in checkpoints],
            )
            store.executemany(
                "INSERT INTO files (run, step, path, mode, hash, size, at, seen_after)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run, base + step if step else None, storable(path), *event)
                 for step, path, *event in files],
            )
            store.executemany(
                "INSERT INTO run_inputs (run, step, source, via, detail, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(run, base + step if step else None, *entry) for step, *entry in inputs],
            )
            assignments = ", ".join(f"{column} = ?" for column in run_updates)
            store.execute(
                f"UPDATE runs SET {assignments} WHERE id = ?", (*run_updates.values(), run)
            )
            return written

        try:
            with self.store.transaction() as store:
                written = write(store)
        except UnicodeEncodeError:
            # Text no store can hold (a NUL or lone surrogate in a step's source, a variable's
            # summary, a ref): write the same rows again with every such text escaped
            # (``storable``), rather than lose the rest of the run with it.
            with self.store.transaction() as store:
                written = write(_Escaping(store))
        for live, state in written:
            live["written"] = state
            if state != "running":
                self.steps.remove(live)  # in place: the kernel's thread may be appending a step
        self.seq = seq
        self.log_step = step
        self.params_written.update(n for _, n, _ in new_params)
        self.names_noted |= new_names

    # -- ending -----------------------------------------------------------------------------

    def _iteration_rows(
        self, records: list, base: int
    ) -> tuple[list[list], list[list], list[list], list[tuple]]:
        """Rows of new iterations (single, single with a value, spans of several), and
        (ended, id) of rows written open earlier.

        An iteration ends where the next iteration of the same loop starts, or at the loop's end
        marker ``(parent, loop, ended)``. The next iteration of a loop instance joins its open row
        when it follows it in both key and index and shows the same value (none, for a range; a
        type, for a data loader's batches): the iterations of an innermost loop become one row
        (``trellis.store.spans``). A row still open at a flush is written open, closed by a later
        flush's UPDATE, and not extended after.
        """
        open_rows = self.open_iterations  # (parent, loop) -> its open row, or the row's id once written
        pending_loops = self.pending_loops
        run = self.run_id
        rows: list[list] = []
        closed: list[tuple] = []
        # The row the next iteration may join: its starts' append, loop, parent and item, and
        # the key and index that come next.
        extend, span_loop, span_parent, span_item, next_id, next_index = None, None, None, None, -1, -1
        for record in records:
            if len(record) == 3:  # a loop ended
                parent, loop, ended = record
                row = open_rows.pop((parent, loop), None)
                if type(row) is list:
                    row[_ENDED] = ended
                elif row is not None:
                    closed.append((ended, row))
                if parent == span_parent and loop == span_loop:
                    next_id = -1
                continue
            iteration_id, parent, loop, depth, index, item, started = record
            if (iteration_id == next_id and index == next_index and loop == span_loop
                    and parent == span_parent
                    and (item is span_item or (type(item) is type(span_item) and item == span_item))):
                extend(started)
                next_id += 1
                next_index += 1
                continue
            key = (parent, loop)
            row = open_rows.get(key)
            if type(row) is list:
                row[_ENDED] = started
            elif row is not None:
                closed.append((started, row))
            row = [base + iteration_id, run, base + parent, loop, depth, index, started, None,
                   [started], None if item is None else json.dumps(item)]
            rows.append(row)
            open_rows[key] = row
            extend, span_loop, span_parent, span_item = row[_STARTS].append, loop, parent, item
            next_id, next_index = iteration_id + 1, index + 1
            if item is not None or (loop, depth) not in pending_loops:
                pending_loops[loop, depth] = pending_loops.get((loop, depth), False) or item is not None
        for key, row in list(open_rows.items()):
            if type(row) is list:
                open_rows[key] = row[_ID]  # written open; a later UPDATE closes it
        single, valued, spans = [], [], []
        for row in rows:
            starts, value = row[_STARTS], row[_VALUE]
            if len(starts) > 1:
                row[_STARTS:] = [len(starts), pack_starts(starts), value]
                spans.append(row)
            elif value is None:
                single.append(row[:_STARTS])
            else:
                valued.append([*row[:_STARTS], value])
        return single, valued, spans, closed

    def _write_steps(
        self, store: Any, base: int, steps: list, variables: list, dependencies: list, modules: list,
    ) -> list[tuple[dict, str]]:
        """Steps are written when they start and updated once when they end. ``steps`` pairs
        each live step with one consistent view of it; returns (step, what is now written of
        it), for the caller to note once the transaction is committed."""
        columns = ("kind", "notebook", "cell_id", "execution_count", "source", "source_hash",
                   "started", "ended", "status", "error", "stdout", "stderr", "outputs", "analysis")
        written = []
        for live, step in steps:
            if not step.get("written"):
                notebook = recorded_path(step["notebook"], store.project) if step["notebook"] else None
                store.execute(
                    f"INSERT INTO steps (id, run, {', '.join(columns)}) VALUES"
                    f" ({', '.join('?' * (len(columns) + 2))})",
                    (base + step["number"], self.run_id, step["kind"], notebook,
                     *(step.get(c) for c in columns[2:])),
                )
                written.append((live, step["status"]))
            elif step["written"] == "running" and step["status"] != "running":
                updated = columns[3:]
                store.execute(
                    f"UPDATE steps SET {', '.join(f'{c} = ?' for c in updated)} WHERE id = ?",
                    (*(step.get(c) for c in updated), base + step["number"]),
                )
                written.append((live, step["status"]))
            elif step["written"] != "running":
                written.append((live, step["written"]))
            elif (step["status"] == "running" and self.steps and live is self.steps[-1]
                  and self.out is not None and self.err is not None
                  and (self.out.cell_changed or self.err.cell_changed)):
                # what the running cell printed so far is kept: its process may be killed
                store.execute(
                    "UPDATE steps SET stdout = ?, stderr = ? WHERE id = ? AND status = 'running'",
                    (self.out.cell_text(), self.err.cell_text(), base + step["number"]),
                )
        store.executemany(
            "INSERT INTO variables (step, name, type, summary, fingerprint) VALUES (?, ?, ?, ?, ?)",
            [(base + number, *rest) for number, *rest in variables],
        )
        store.executemany(
            "INSERT INTO dependencies (step, depends_on, name, via) VALUES (?, ?, ?, ?)",
            [(base + number, on, name, via) for number, on, name, via in dependencies],
        )
        store.executemany(
            "INSERT INTO modules (run, step, module, distribution, version) VALUES (?, ?, ?, ?, ?)",
            [(self.run_id, base + number if number else None, *rest) for number, *rest in modules],
        )
        return written

    def flush_soon(self, consistent: bool = True) -> None:
        """Ask the recorder to flush now, without making the caller wait for it."""
        self.consistent_soon = self.consistent_soon or consistent
        self.wake.set()

    def next_step(self) -> int:
        return next(self.step_numbers)

    def global_step(self, number: int) -> int | None:
        self.registered.wait(60)
        return None if self.run_id is None else (self.run_id << RUN_SHIFT) + number

    def earlier_writer(self, path: str) -> int | None:
        """The step of an earlier run that last wrote ``path``; a reproduction wrote into a
        worktree of its own, not the file this run read."""
        if self.store is None:
            return None
        try:
            rows = self.store.execute(
                "SELECT f.step FROM files f JOIN runs r ON r.id = f.run WHERE f.path = ?"
                " AND f.mode = 'write' AND f.step IS NOT NULL AND r.parent_run IS NULL"
                " ORDER BY f.at DESC LIMIT 1",
                (path,),
            )
        except Exception:
            return None
        return rows[0][0] if rows else None

    def finish(self) -> None:
        """Stop the recorder and write the last of the run with its final status."""
        if self.finished:
            return
        self.finished = True
        self.stopping.set()
        self.wake.set()
        if self.recorder.is_alive():
            self.recorder.join(120)
        if self.context is not None:
            self.context.join(120)
        if self.kind == "script" and self.files is not None:
            try:
                # only a script that started another program: a scan would also find what others
                # (make -j's other jobs, an editor) wrote in the project meanwhile
                if self.files.spawned_in(0):
                    self.files.find_written_after(0, self.started)
            except Exception as error:
                self.problem("files written by other programs", error)
        self.flush(final=True)
        if observers and self.run_id is not None:
            if not self.announced:
                self._announce_start(final=True)
            problems = len(self.problems)
            self._notify("ended", self)
            if len(self.problems) > problems:
                self._record_problems()
        if self.out is not None and self.err is not None:
            streams.uninstall(self.out, self.err)

    def _record_problems(self) -> None:
        """Problems met after the last flush (an observer told of the end) join the run's."""
        try:
            with self.store.transaction() as store:
                store.execute("UPDATE runs SET problems = ? WHERE id = ?",
                              (json.dumps(self.problems), self.run_id))
        except Exception:
            pass  # warned already; the run itself is written

    def record_input(self, sources: list[str], via: str, detail: str) -> None:
        """This run read what other runs recorded (their values, their checkpoints)."""
        now = time.time()
        for source in sources:
            if source != self.uuid:
                self.inputs.append((self.current_step, source, via, detail, now))

    def fail(self, status: str, error: str) -> None:
        if self.status is None:
            self.status = status
            self.error = error


class _Escaping:
    """A store whose writes store every text as ``cells.storable`` makes it."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def execute(self, sql: str, params: Any = ()) -> list[tuple]:
        return self._store.execute(sql, _escaped(params))

    def executemany(self, sql: str, rows: Any) -> None:
        self._store.executemany(sql, [_escaped(row) for row in rows])

    def insert_rows(self, table: str, columns: Any, rows: Any) -> None:
        self._store.insert_rows(table, columns, [_escaped(row) for row in rows])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _escaped(row: Any) -> tuple:
    return tuple(storable(value) if type(value) is str else value for value in row)


def next_flush(began: float, took: float, interval: float) -> float:
    """When the flush after one that began at ``began`` begins, when recent flushes took up to
    ``took`` seconds.

    A value logged just after a flush took its values waits for the next flush to commit it: a
    ``kill -9`` loses what was logged since the start of the last flush that was committed.
    Begun ``took`` before an interval is up, the next flush is committed within the interval
    unless it takes longer than the recent ones. A flush as long as the interval (a program
    that logs faster than the store takes values while it keeps the interpreter busy) is
    followed by the next at once: then a kill loses up to two flushes' time.
    """
    return began + max(interval - took, 0.0)


def _drain(buffer: deque) -> list:
    """Take the items present now; other threads may keep appending meanwhile."""
    popleft = buffer.popleft
    return [popleft() for _ in range(len(buffer))]


# -- starting and ending the process's run ---------------------------------------------------


# What records this process instead of a run of its own, when it is not one of the user's runs
# (a replayed segment): set by ``trellis/__init__.py``, so that capture imports no room above it.
stand_in: Callable[[], Any] | None = None


def current() -> Run | None:
    return _run


def begin(kind: str = "script", filename: str | None = None) -> Run | None:
    """Start recording this process, once; returns None when trellis is disabled."""
    global _run, _echo, _failed_at_start
    if _run is not None:
        return _run
    if _failed_at_start or _config.disabled():
        return None
    if stand_in is not None:
        _run = stand_in()
        return _run
    if kind == "script" and "IPython" in sys.modules:
        from trellis.capture import notebook

        shell = notebook.in_kernel()
        if shell is not None:  # a kernel: record it as a notebook epoch, cell by cell
            capture = notebook.install(shell)
            return capture.run if capture is not None else None
    try:
        run = Run(kind, filename)
        _echo = _config.echo()
        if sys.stdout is not None and sys.stderr is not None:
            run.out, run.err = streams.install(_config.stream_limit())
        from trellis.capture import files
        from trellis.store.connection import STORE_DIR, project_root

        root = project_root(run.cwd)
        run.files = files.watch(root, root / STORE_DIR)
        from trellis.capture.readers import watch_readers

        watch_readers(run.files)
        if kind == "script":
            from trellis.capture.args import watch_argparse

            watch_argparse()
        _run = run
        run.recorder.start()
        atexit.register(_at_exit)
        _install_hooks()
    except Exception as error:
        _failed_at_start = True
        warnings.warn(f"trellis could not start recording: {error}; the script continues")
        return None
    return run


def _at_exit() -> None:
    if _run is not None:
        _run.finish()


def _install_hooks() -> None:
    previous_hook = sys.excepthook

    def excepthook(kind: type, error: BaseException, tb: Any) -> None:
        if _run is not None:
            status = "interrupted" if issubclass(kind, KeyboardInterrupt) else "failed"
            _run.fail(status, "".join(traceback.format_exception(kind, error, tb)))
        if isinstance(error, TrellisError):
            print(f"trellis: {error}", file=sys.stderr)
        else:
            previous_hook(kind, error, tb)

    sys.excepthook = excepthook
    if threading.current_thread() is not threading.main_thread():
        return
    previous_term = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        if _run is not None:
            _run.fail("interrupted", "terminated by SIGTERM")
            _run.finish()
        if callable(previous_term):
            previous_term(signum, frame)
        elif previous_term != signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_term)


# -- the logging API ---------------------------------------------------------------------------


def log(name: str, value: Any) -> Any:
    """Record ``value`` under ``name`` at the current loop coordinates; returns ``value``."""
    if _run is None and begin() is None:
        return value
    if type(value) in PLAIN and type(name) is str:
        _append_value((name, _current, value))
    else:
        if type(name) is not str:
            raise TrellisError(f"trellis.log: the name must be a str, not {type(name).__name__}")
        try:
            _append_value((name, _current, encode(name, value)))
        except Exception as error:
            _run.problem(f"the value of {name!r}", error)
    if _echo:
        echo(name, value, _describe_coordinates())
    return value


def _describe_coordinates() -> str:
    return f" (iteration {_current})" if _current else ""


def commit() -> None:
    """Write what is buffered now, in one transaction: a consistent point of the run."""
    run = _run if _run is not None else begin()
    if run is not None:
        run.flush(consistent=True)


class loop:
    """Iterate like ``iterable`` while setting the coordinates of every ``log`` inside.

    Keeps ``len()`` so that ``tqdm(trellis.loop(...))`` shows a total.
    """

    def __init__(self, name: str, iterable: Iterable) -> None:
        if type(name) is not str:
            raise TrellisError(f"trellis.loop: the name must be a str, not {type(name).__name__}")
        self.name = name
        self.iterable = iterable

    def __len__(self) -> int:
        return len(self.iterable)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator:
        run = _run if _run is not None else begin()
        if run is None:
            return iter(self.iterable)
        if run.replaying is not None:
            return run.replaying.iterate(self.name, self.iterable)
        iterator = _iterate(run, storable(self.name), self.iterable)
        if _depth == 0 and _config.progress() and _stderr_is_terminal():
            from tqdm import tqdm

            total = len(self.iterable) if hasattr(self.iterable, "__len__") else None
            return iter(tqdm(iterator, desc=self.name, total=total, leave=False))
        return iterator


def _stderr_is_terminal() -> bool:
    try:
        return sys.__stderr__ is not None and sys.__stderr__.isatty()
    except (AttributeError, ValueError):
        return False


def _iterate(run: Run, name: str, iterable: Iterable) -> Iterator:
    """The hot path: one tuple per iteration; an iteration ends when the next one starts."""
    global _current, _depth
    parent, depth = _current, _depth
    record = run.iterations.append
    next_id = run.iteration_ids.__next__
    now = time.time
    counts_from_zero = type(iterable) is range and iterable.start == 0 and iterable.step == 1
    checkpointer = _checkpointer if _checkpointer is not None and _checkpointer.loop is None else None
    if checkpointer is not None:
        checkpointer.bind(name)
    iteration_id = 0
    _depth = depth + 1
    try:
        if counts_from_zero and checkpointer is None:
            # The innermost loops' usual case, kept lean: the item is the index, and the
            # coordinates go back to the parent when the loop ends or is left, not between
            # iterations, where no user code runs.
            try:
                for index in iterable:
                    iteration_id = next_id()
                    record((iteration_id, parent, name, depth, index, None, now()))
                    _current = iteration_id
                    yield index
            finally:
                _current = parent
            return
        for index, item in enumerate(iterable):
            iteration_id = next_id()
            record((iteration_id, parent, name, depth, index,
                    None if counts_from_zero else describe_item(item), now()))
            _current = iteration_id
            try:
                yield item
            finally:
                _current = parent
            if checkpointer is not None:
                checkpointer.boundary(run, iteration_id, index)
    finally:
        _depth = depth
        if iteration_id:
            record((parent, name, now()))  # the end of the loop's last iteration
        if checkpointer is not None:
            checkpointer.unbind()


def iteration(name: str, index: int | None = None, value: Any = None) -> "_Iteration":
    """One iteration of a loop the user drives by hand (a request, a document, a page).

    ``with trellis.iteration("document", 3, "report.pdf"): trellis.log(...)``; with no index,
    iterations of the same name are numbered in the order they are entered.
    """
    return _Iteration(name, index, value)


_hand_counts: dict[tuple[int, str], int] = {}


class _Iteration:
    def __init__(self, name: str, index: int | None, value: Any) -> None:
        self.name = storable(name) if type(name) is str else name
        self.index, self.value = index, value
        self.run: Run | None = None

    def __enter__(self) -> "_Iteration":
        global _current, _depth
        self.run = _run if _run is not None else begin()
        self.outer = (_current, _depth)
        if self.run is not None:
            shown = None if self.value is None else describe_item(self.value)
            counted = (_current, self.name)
            index = _hand_counts.get(counted, 0) if self.index is None else int(self.index)
            _hand_counts[counted] = index + 1
            self.iteration_id = next(self.run.iteration_ids)
            self.run.iterations.append(
                (self.iteration_id, _current, self.name, _depth, index, shown, time.time())
            )
            _current, _depth = self.iteration_id, _depth + 1
        return self

    def __exit__(self, *exc: Any) -> None:
        global _current, _depth
        if self.run is not None:
            self.run.iterations.append((self.outer[0], self.name, time.time()))
        _current, _depth = self.outer


def set_checkpointer(checkpointer: Any) -> Any:
    """Make ``checkpointer`` the one the next outermost loop binds to; returns the previous."""
    global _checkpointer
    previous, _checkpointer = _checkpointer, checkpointer
    return previous


def set_step(number: int) -> None:
    """Mark where a step (a cell execution) begins or ends in the run's buffers."""
    run = _run
    if run is None:
        return
    run.current_step = number
    _append_value((None, number, None))
    if run.files is not None:
        run.files.step = number
