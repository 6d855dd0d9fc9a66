"""FlorDB 4.x's names over trellis: change ``import flordb as flor`` to ``from trellis import flor``.

Each name is a thin mapping onto trellis. ``dataframe`` is ``trellis.dataframe`` with FlorDB's
pivot options (args as columns, outer values broadcast onto inner rows, an empty column for a
name never logged, a ``tstamp`` per ``commit``), shaped like FlorDB's frame (``projid``,
``tstamp``, ``filename``, ``source``, the loops, the names) but with typed values. See
docs/flor.md for what differs.

Command line: ``python -m trellis.flor replay --apply NAMES [--iter LOOP=SPEC] [--where EXPR]``,
``python -m trellis.flor dataframe NAMES``, ``python -m trellis.flor query SQL``.
"""

from __future__ import annotations

import bisect
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import trellis
from trellis import checkpointing, iteration, loop
from trellis._errors import BadArgumentError, NoCheckpointError, TrellisError

if TYPE_CHECKING:
    import pandas

_DIMENSIONS = ["projid", "tstamp", "filename", "source"]


class MissingArgumentError(BadArgumentError, RuntimeError):
    """``arg`` with neither a default nor a value on the command line (FlorDB raises
    RuntimeError here, so code catching that still does)."""


# Whether something was logged since the last commit: in a notebook, FlorDB commits after each
# cell that logged, so every such cell has a tstamp of its own (``utils.latest`` picks the last).
_logged = False


def log(name: str, value: Any) -> Any:
    """``trellis.log``."""
    global _logged
    _logged = True
    return trellis.log(name, value)


def _commit_after_cells() -> None:
    import sys

    if "IPython" not in sys.modules:
        return
    from trellis.capture.notebook import in_kernel

    shell = in_kernel()
    if shell is not None:
        shell.events.register("post_run_cell", _after_cell)


def _after_cell(_result: Any) -> None:
    global _logged
    if _logged:
        _logged = False
        try:
            commit()
        except Exception as error:  # never the user's cell's problem
            import warnings

            warnings.warn(f"trellis.flor could not commit after the cell: {error}")


def arg(name: str, default: Any = None) -> Any:
    """A parameter from the command line (``--kwargs name=value`` or ``--name value``), else
    ``default``; with neither, an error, as in FlorDB."""
    import sys

    global _logged
    _logged = True

    from trellis.capture.args import from_command_line
    from trellis.capture.run import current

    run = current()
    replaying = run is not None and run.replaying is not None
    if default is None and not replaying and from_command_line(name, sys.argv[1:]) is None:
        raise MissingArgumentError(
            f"flor.arg({name!r}) has no default and no value was given: give it one,"
            f" flor.arg({name!r}, <value>), or pass --kwargs {name}=<value>"
        )
    return trellis.arg(name, default)


def commit() -> None:
    """Write what is buffered now; the values logged after it get a new ``tstamp``."""
    from trellis.capture import run as runs
    from trellis.queries.dataframe import COMMIT_MARK

    run = runs.current() or runs.begin()
    if run is not None and run.replaying is None:
        runs._append_value((COMMIT_MARK, 0, time.time()))  # at the run's top level
    trellis.commit()


def dataframe(*names: str) -> "pandas.DataFrame":
    """FlorDB's pivot: a row per coordinate of the innermost names, the run's args and outer
    loops' values on every row inside them; with no names, a row per run of its args and
    top-level values."""
    if not names:
        return _run_level_frame()
    frame = trellis.dataframe(*names, broadcast=True, unknown="empty", tstamp="commit")
    return _florish(frame, list(names))


def pivot(*names: str) -> "pandas.DataFrame":
    """FlorDB's older name for ``dataframe``."""
    return dataframe(*names)


def _run_level_frame() -> "pandas.DataFrame":
    """One row per run and tstamp: its args and the values it logged outside any loop."""
    import pandas as pd

    from trellis.queries.dataframe import COMMIT_MARK
    from trellis.store.schema import RUN_SHIFT

    # FlorDB's columns come in the order its table holds them: run by run, each run's args as
    # it declared them (by name where a run recorded no order), then its top-level values
    declared = _read("SELECT run, 0, COALESCE(position, -1), name FROM params")
    top_level = _read(  # a log's iteration is the run's own key at its top level
        f"SELECT run, 1, MIN(id), name FROM logs WHERE iteration = run * {1 << RUN_SHIFT} AND name <> ?"
        " GROUP BY run, name", (COMMIT_MARK,)
    )
    names = list(dict.fromkeys(name for *_, name in sorted([*declared, *top_level])))
    if not names:
        return pd.DataFrame()
    frame = trellis.dataframe(*names, broadcast=True, unknown="empty", tstamp="commit")
    loops = [c for c in frame.columns if c not in ("projid", "run_id", "tstamp", "filename") + tuple(names)]
    if loops:
        frame = frame[frame[loops].isna().all(axis=1)].drop(columns=loops)
    keys = ["projid", "run_id", "tstamp", "filename"]
    frame = frame.groupby(keys, sort=False, dropna=False).last().reset_index()
    return _florish(frame, names)


def _read(sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    with trellis._reading() as store:
        return store.execute(sql, params)


def _florish(frame: "pandas.DataFrame", names: list[str]) -> "pandas.DataFrame":
    """trellis's frame in FlorDB's shape: local naive ``tstamp``, a ``source`` per row, no
    ``run_id``, duplicate rows dropped."""
    if "source" not in frame.columns:
        frame = frame.assign(source=_sources(frame, names))
    if len(frame) and hasattr(frame["tstamp"], "dt"):
        frame = frame.assign(tstamp=_local(frame["tstamp"]))
    loops = [c for c in frame.columns if c not in ["run_id", *_DIMENSIONS, *names]]
    loops = [c for c in loops if not (c.endswith("_value") and _restates_index(frame, c[: -len("_value")]))]
    frame = frame[_DIMENSIONS + loops + names]
    frame = frame[~frame.astype(str).duplicated()]
    return frame.reset_index(drop=True)


def _local(stamps: "pandas.Series") -> "pandas.Series":
    """UTC times as FlorDB's: naive local time, to the microsecond."""
    if not len(stamps):
        return stamps
    from dateutil.tz import tzlocal  # the offset of each time's own date, summer or not

    return stamps.dt.tz_convert(tzlocal()).dt.tz_localize(None).dt.floor("us")


def _restates_index(frame: "pandas.DataFrame", loop_name: str) -> bool:
    """Whether a loop's values are its indexes (a loop over ``[0, 1, 2]``): FlorDB shows only
    the index then."""
    import pandas as pd

    if loop_name not in frame.columns:
        return False

    def text(value: Any) -> str | None:
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            return None
        return str(value)

    return all(text(a) == text(b) for a, b in zip(frame[loop_name].tolist(), frame[f"{loop_name}_value"].tolist()))


def _sources(frame: "pandas.DataFrame", names: list[str]) -> list[str]:
    """``replay`` on rows holding a value that a replay (not the run itself) logged."""
    from trellis.queries.dataframe import _in, _key_ranges
    from trellis.queries.runs import resolve

    if frame.empty:
        return []
    with trellis._reading() as store:
        ids = {uuid: resolve(store, uuid)["id"] for uuid in frame["run_id"].dropna().unique()}
        keys, bounds = _key_ranges(list(ids.values()))
        replayed = set(store.execute(
            f"SELECT DISTINCT run, name FROM logs WHERE source <> 'forward' AND name IN {_in(names)}"
            f" AND {keys}", [*names, *bounds],
        ))
    if not replayed:
        return ["forward"] * len(frame)
    runs = frame["run_id"].map(ids).tolist()
    present = {name: frame[name].notna().tolist() for name in names}
    return [
        "replay" if any((run, name) in replayed and present[name][row] for name in names) else "forward"
        for row, run in enumerate(runs)
    ]


def _latest(frame: "pandas.DataFrame") -> "pandas.DataFrame":
    """The rows of the newest ``tstamp`` in ``frame`` (FlorDB's ``utils.latest``)."""
    if frame.empty:
        return frame
    return frame[frame["tstamp"] == frame["tstamp"].max()]


utils = SimpleNamespace(latest=_latest)


def query(sql: str) -> "pandas.DataFrame | None":
    """SQL over FlorDB's table, ``logs`` (``projid, tstamp, filename, ctx, value_name, value,
    value_type, source``), made from the store: args and logged values (``value_type`` 1), each
    line of the runs' output (2, ``io::stdout``/``io::stderr``, with the ``ctx`` it was written at)
    and FlorDB's timings (3: ``time::setup``, per loop instance
    ``time::iter`` with ``::std`` and ``::n`` and ``time::loop``, then ``time::script`` and
    ``time::teardown``), computed from the recorded iterations. Columns that hold only numbers (or
    times) come back as such; a query with no rows gives ``None``, as in FlorDB. trellis's own
    tables: ``trellis.query``."""
    import sqlite3

    import pandas as pd

    database = sqlite3.connect(":memory:")
    try:
        database.execute(
            "CREATE TABLE logs (projid TEXT, tstamp TEXT, filename TEXT, ctx TEXT, value_name TEXT,"
            " value TEXT, value_type INTEGER, source TEXT)"
        )
        database.executemany("INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, 1, ?)", _flor_log_rows())
        database.executemany("INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, 'forward')", _flor_run_rows())
        try:
            cursor = database.execute(sql)
        except sqlite3.Error as error:
            raise TrellisError(f"query failed: {error}") from None
        columns = [d[0] for d in cursor.description or ()]
        rows = cursor.fetchall()
        if not rows:
            return None
        frame = pd.DataFrame.from_records(rows, columns=columns)
    finally:
        database.close()
    import warnings

    for column in frame.columns:
        if pd.api.types.is_object_dtype(frame[column]) or pd.api.types.is_string_dtype(frame[column]):
            for convert in (pd.to_numeric, pd.to_datetime):
                try:
                    with warnings.catch_warnings():  # a column of text is tried as times, and stays text
                        warnings.simplefilter("ignore", UserWarning)
                        frame[column] = convert(frame[column])
                    break
                except (ValueError, TypeError):
                    pass
    return frame


def _flor_log_rows() -> list[tuple]:
    """A row of FlorDB's ``logs`` table per arg and logged value: values as text, loop
    coordinates as its JSON ``ctx``."""
    import json

    import pandas as pd

    from trellis.queries.dataframe import COMMIT_MARK, DIMENSIONS

    names = [name for (name,) in _read("SELECT DISTINCT name FROM log_names WHERE name <> ?", (COMMIT_MARK,))]
    names += [name for (name,) in _read("SELECT DISTINCT name FROM params") if name not in names]
    rows = []
    for name in sorted(names):
        frame = trellis.dataframe(name, tstamp="commit")
        sources = _sources(frame, [name])
        loops = [c for c in frame.columns if c not in (*DIMENSIONS, name) and not c.endswith("_value")]
        stamps = _local(frame["tstamp"]).dt.strftime("%Y-%m-%dT%H:%M:%S.%f").tolist() if len(frame) else []
        for at, record in enumerate(frame.to_dict("records")):
            ctx = []
            for loop_name in loops:
                index = record[loop_name]
                if index is None or index is pd.NA:
                    continue
                shown = record.get(f"{loop_name}_value")
                ctx.append({"name": loop_name, "iteration": int(index),
                            "value": str(index) if shown is None else str(shown)})
            rows.append((record["projid"], stamps[at], record["filename"], json.dumps(ctx) if ctx else None,
                         name, str(record[name]), sources[at]))
    return rows


class _Iterations:
    """A run's recorded iterations, to tell the loop coordinates of a moment (FlorDB's ``ctx``)."""

    def __init__(self, run: int) -> None:
        from trellis.store.schema import run_keys
        from trellis.store.spans import expand

        self.low, high = run_keys(run)
        self.by_id: dict[int, tuple] = {}  # id: (loop, idx, value, parent, started, ended)
        for ident, parent, name, idx, value, began, stopped, count, starts_us in _read(
            "SELECT id, parent, loop, idx, value, started, ended, count, starts_us FROM iterations"
            " WHERE id >= ? AND id < ? ORDER BY id", (self.low, high)
        ):
            for key, index, start, end in expand(ident, idx, began, stopped, count, starts_us):
                self.by_id[key] = (name, index, value, parent, start, end)
        self.children: dict[int, list[tuple[float, int]]] = {}
        for key, (_, _, _, parent, start, _) in self.by_id.items():
            self.children.setdefault(parent, []).append((start, key))
        for starts in self.children.values():
            starts.sort()

    def chain(self, ident: int | None) -> list[dict[str, Any]]:
        """The coordinates of iteration ``ident``, outermost first."""
        import json

        chain = []
        while ident in self.by_id:
            name, index, value, parent, _, _ = self.by_id[ident]
            chain.append({"name": name, "iteration": index,
                          "value": str(index) if value is None else str(json.loads(value))})
            ident = parent
        return chain[::-1]

    def at(self, moment: float) -> int | None:
        """The innermost iteration running at ``moment``, or None at the top level."""
        found, parent = None, self.low
        while parent in self.children:
            starts = self.children[parent]
            position = bisect.bisect_right(starts, (moment, float("inf"))) - 1
            if position < 0:
                break
            ident = starts[position][1]
            end = self.by_id[ident][5]
            if end is not None and moment >= end:
                break
            found = parent = ident
        return found


def _output_lines(run: int, started: float, stdout: str | None, stderr: str | None,
                  output_times: str | None, iterations: "_Iterations | None" = None) -> list[tuple]:
    """(channel, line, ctx) of each line a run wrote, stdout and stderr in the order written; ctx
    is the loop coordinates it was written at: the iteration running when the line began, or for
    output imported from FlorDB the iteration FlorDB named (runs recorded before either: none)."""
    import json

    try:
        times = json.loads(output_times) if output_times else {}
    except ValueError:
        times = {}
    if not isinstance(times, dict):
        times = {}
    lines = []
    for order, (column, channel, text) in enumerate((("stdout", "io::stdout", stdout), ("stderr", "io::stderr", stderr))):
        starts, written_in = times.get(column), times.get(f"{column}_iterations")  # the latter: from FlorDB
        for number, line in enumerate((text or "").splitlines()):
            ctx: list[dict[str, Any]] = []
            at = float("inf")  # a line with no time comes after those with one
            if isinstance(starts, list) and number < len(starts) and isinstance(starts[number], (int, float)):
                at = started + starts[number] / 1e6
                iterations = iterations or _Iterations(run)
                ctx = iterations.chain(iterations.at(at))
            elif isinstance(written_in, list) and number < len(written_in) and type(written_in[number]) is int:
                iterations = iterations or _Iterations(run)
                ctx = iterations.chain(written_in[number])
            lines.append((at, order, number, channel, line, ctx))
    return [line[3:] for line in sorted(lines, key=lambda line: line[:3])]  # in the order written


def _flor_run_rows() -> list[tuple]:
    """FlorDB's rows of captured output (value_type 2) and timings (3), run by run, in the order
    FlorDB writes them: setup, each loop instance's summary when it ends, script and teardown."""
    import json
    import statistics

    rows = []
    for run, projid, started, ended, filename, stdout, stderr, output_times in _read(
        "SELECT id, projid, started, ended, filename, stdout, stderr, output_times FROM runs"
        " WHERE kind = 'script' ORDER BY started, id"
    ):
        stamp = _stamp(started)
        iterations = _Iterations(run)
        rows += [(projid, stamp, filename, json.dumps(ctx) if ctx else None, channel, line, 2)
                 for channel, line, ctx in _output_lines(run, started, stdout, stderr, output_times, iterations)]
        if not iterations.by_id:
            continue
        instances: dict[tuple[int, str], list[tuple]] = {}
        for name, _, _, parent, start, end in iterations.by_id.values():
            instances.setdefault((parent, name), []).append((start, end))
        top = [(start, end) for _, _, _, parent, start, end in iterations.by_id.values() if parent == iterations.low]
        # a time that was not recorded (a run imported from FlorDB has none of its loops') is left out
        first = min(s for s, _ in top)
        if first > started:
            rows.append((projid, stamp, filename, None, "time::setup", repr(first - started), 3))
        summaries = []
        for (parent, name), spans in instances.items():
            if any(end is None for _, end in spans):
                continue
            deltas = [end - start for start, end in spans]
            summary = [("time::iter", statistics.fmean(deltas)),
                       ("time::iter::std", statistics.stdev(deltas) if len(deltas) > 1 else 0.0),
                       ("time::iter::n", len(deltas)), ("time::loop", spans[-1][1] - spans[0][0])]
            chain = iterations.chain(parent)
            where = json.dumps(chain) if chain else None
            summaries.append((spans[-1][1], [(projid, stamp, filename, where, n, repr(v), 3) for n, v in summary]))
        for _, summary in sorted(summaries, key=lambda item: item[0]):
            rows += summary
        if ended is not None:
            rows.append((projid, stamp, filename, None, "time::script", repr(ended - started), 3))
            last = max((end for _, end in top if end is not None), default=None)
            if last is not None:
                rows.append((projid, stamp, filename, None, "time::teardown", repr(ended - last), 3))
    return [row for row in rows if row[5] is not None]


def _stamp(seconds: float) -> str:
    """A run's start as FlorDB's ``tstamp`` text: local time to the microsecond."""
    import pandas as pd

    local = _local(pd.Series(pd.to_datetime([seconds], unit="s", utc=True)))
    return local.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").iloc[0]


def io(channel: str | None = None) -> "pandas.DataFrame":
    """The runs' captured output, a row per line: ``channel`` is ``io::stdout`` or ``io::stderr``
    (``channel`` picks one), with a column per loop for the iteration each line was written in
    (``<loop>_value`` too where the loop ran over other things than its indexes)."""
    import pandas as pd

    rows, loops, valued = [], [], set()
    for run, projid, started, filename, stdout, stderr, output_times in _read(
        "SELECT id, projid, started, filename, stdout, stderr, output_times FROM runs ORDER BY started, id"
    ):
        for name, line, ctx in _output_lines(run, started, stdout, stderr, output_times):
            if channel is None or name == channel or name.startswith(channel.rstrip(":") + "::"):
                coordinates = {}
                for step in ctx:
                    if step["name"] not in loops:
                        loops.append(step["name"])
                    coordinates[step["name"]] = step["iteration"]
                    if step["value"] != str(step["iteration"]):
                        valued.add(step["name"])
                    coordinates[f"{step['name']}_value"] = step["value"]
                rows.append({"projid": projid, "tstamp": started, "filename": filename, "source": "forward",
                             **coordinates, "channel": name, "line": line})
    columns = ["projid", "tstamp", "filename", "source"]
    for name in loops:
        columns += [name, f"{name}_value"] if name in valued else [name]
    frame = pd.DataFrame.from_records(rows, columns=[*columns, "channel", "line"])
    for name in loops:
        frame[name] = frame[name].astype("Int64")
    frame["tstamp"] = pd.to_datetime(frame["tstamp"], unit="s", utc=True)
    return frame.assign(tstamp=_local(frame["tstamp"]))


def restore(*_targets: Any, **_named: Any) -> None:
    """Accepted so that older FlorDB scripts run; as in FlorDB 4, it does nothing."""


def set_ckpt_interval(_seconds: float) -> None:
    """Accepted so that older FlorDB scripts run: trellis picks which iterations to checkpoint
    from what they cost (docs/flor.md)."""


def set_capture(enabled: bool | None = None, **_limits: Any) -> None:
    """Accepted so that FlorDB scripts run: trellis always records a run's output."""


def _run_of(tstamp: Any) -> str:
    """The run id of the run whose ``tstamp`` (a value of ``dataframe``'s column) this is; a run
    id prefix or ``latest`` is taken as is."""
    import pandas as pd

    if isinstance(tstamp, str):
        try:
            when = pd.Timestamp(tstamp)
        except ValueError:
            return tstamp
    else:
        when = pd.Timestamp(tstamp)
    if when.tzinfo is None:
        from dateutil.tz import tzlocal

        when = when.tz_localize(tzlocal())
    seconds = when.timestamp()
    from trellis.queries.dataframe import COMMIT_MARK

    rows = _read(
        "SELECT uuid FROM runs WHERE started BETWEEN ? AND ? UNION SELECT r.uuid FROM logs l"
        " JOIN runs r ON r.id = l.run WHERE l.name = ? AND l.float_value BETWEEN ? AND ?",
        (seconds - 1e-3, seconds + 1e-3, COMMIT_MARK, seconds - 1e-3, seconds + 1e-3),
    )
    if not rows:
        raise NoCheckpointError(f"no run has tstamp {tstamp}; take one from flor.dataframe(...)['tstamp']")
    return rows[0][0]


def checkpoints(tstamp: Any) -> list[dict[str, Any]]:
    """The checkpoints of the run with ``tstamp``."""
    from trellis.queries.checkpoints import list_checkpoints

    with trellis._reading() as store:
        return list_checkpoints(store, _run_of(tstamp))


def load_checkpoint(tstamp: Any, name: str | None = None, **_torch_options: Any) -> Any:
    """The state ``name`` saved by the run with ``tstamp`` (at its last checkpoint); with no
    name, the one state it saved. ``map_location`` and ``weights_only`` are accepted for
    FlorDB's sake: trellis restores what it saved, as it saved it."""
    states = trellis.load_checkpoint(_run_of(tstamp))
    if name is None:
        if len(states) != 1:
            raise NoCheckpointError(
                f"the run saved {', '.join(states)}: name the one to load, flor.load_checkpoint(tstamp, name)"
            )
        return next(iter(states.values()))
    if name not in states:
        raise NoCheckpointError(f"the run saved no {name!r}; it saved {', '.join(states)}")
    return states[name]


def replay(
    apply_vars: Sequence[str] | str,
    narrow_iters: Iterable[tuple[str, Any]] | None = None,
    where_clause: str | None = None,
    overrides: Iterable[tuple[str, str]] | None = None,
) -> "pandas.DataFrame":
    """Hindsight logging (``trellis.replay``): replay the new ``flor.log`` statements of
    ``apply_vars`` into past runs; returns ``dataframe(*apply_vars)`` afterwards, as FlorDB does.
    ``narrow_iters`` (``[("epoch", "0,2"), ("step", "last")]``) narrows the iterations of the
    checkpointed loop that run and the values of inner loops that are stored;
    ``overrides`` (``[("device", "cpu")]``) gives those args instead of each run's own, and what
    then differs from the run's own values is not stored (``trellis.replay``)."""
    names = [apply_vars] if isinstance(apply_vars, str) else list(apply_vars)
    where = _where(narrow_iters, where_clause)
    trellis.replay(*names, where=where, overrides=dict(overrides or ()))
    return dataframe(*names)


def _where(narrow_iters: Iterable[tuple[str, Any]] | None, where_clause: str | None) -> str | None:
    """FlorDB's ``--iter LOOP=SPEC`` (``all``, ``last``, ``none`` or indexes) as a trellis
    ``where`` on the loop's index, and'ed with ``where_clause``."""
    conditions = [f"({where_clause})"] if where_clause else []
    for name, spec in narrow_iters or ():
        text = spec if isinstance(spec, str) else _spec_text(spec)
        text = text.strip()
        if text == "all":
            continue
        if text == "last":
            conditions.append(f"{name} == last")
            continue
        if text in ("none", ""):
            conditions.append(f"{name} < 0")
            continue
        try:
            indexes = sorted({int(part) for part in text.split(",") if part.strip()})
        except ValueError:
            raise BadArgumentError(
                f"--iter {name}={text}: use all, last, none or indexes like 0,2"
            ) from None
        conditions.append(" or ".join(f"{name} == {index}" for index in indexes))
    return " and ".join(f"({c})" for c in conditions) or None


def _spec_text(spec: Any) -> str:
    kind = getattr(spec, "kind", None)
    if kind == "indices":
        return ",".join(str(i) for i in spec.indices)
    return str(kind or spec)


__all__ = [
    "log", "arg", "loop", "iteration", "checkpointing", "commit", "dataframe", "pivot", "query",
    "io", "replay", "load_checkpoint", "checkpoints", "restore", "set_ckpt_interval", "set_capture",
    "utils", "MissingArgumentError",
]

_commit_after_cells()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m trellis.flor``: FlorDB's command line (replay, dataframe, query, unpack)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m trellis.flor", description="FlorDB's commands over trellis")
    commands = parser.add_subparsers(dest="command", required=True)
    replaying = commands.add_parser("replay", help="hindsight logging into past runs")
    replaying.add_argument("VARS", nargs="?", help="comma-separated names (FlorDB's older form of --apply)")
    replaying.add_argument("--apply", help="comma-separated names of the new flor.log statements")
    replaying.add_argument("--iter", action="append", default=[], metavar="LOOP=SPEC",
                           help="iterations to replay: all, last, none or indexes like 0,2")
    replaying.add_argument("--where", help="a condition on the loop index, e.g. 'epoch >= 5'")
    replaying.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                           help="an arg's value instead of each run's own, e.g. device=cpu")
    framing = commands.add_parser("dataframe", help="print flor.dataframe of comma-separated names")
    framing.add_argument("columns", nargs="?", default="")
    querying = commands.add_parser("query", help="print the result of read-only SQL")
    querying.add_argument("q")
    commands.add_parser("unpack", help="nothing to do: trellis reads its store directly")
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "replay":
            names = [n.strip() for n in (arguments.apply or arguments.VARS or "").split(",") if n.strip()]
            if not names:
                raise BadArgumentError("nothing to apply: name the new log statements, --apply loss,val_acc")
            narrow = _pairs(arguments.iter, "--iter expects LOOP=SPEC, like epoch=0,2")
            overrides = _pairs(arguments.override, "--override expects KEY=VALUE, like device=cpu")
            print(replay(names, narrow, arguments.where, overrides).to_string())
        elif arguments.command == "dataframe":
            print(dataframe(*[c for c in arguments.columns.split(",") if c]).to_string())
        elif arguments.command == "query":
            found = query(arguments.q)
            if found is not None:  # no rows: nothing to print
                print(found.to_string())
    except TrellisError as error:
        print(f"trellis: {error}", file=sys.stderr)
        return 1
    return 0


def _pairs(given: list[str], expects: str) -> list[tuple[str, str]]:
    """Options of the form NAME=VALUE as (name, value) pairs."""
    pairs = []
    for text in given:
        name, equals, value = text.partition("=")
        if not equals or not name.strip():
            raise BadArgumentError(f"{expects}; got {text!r}")
        pairs.append((name.strip(), value))
    return pairs


if __name__ == "__main__":
    raise SystemExit(main())
