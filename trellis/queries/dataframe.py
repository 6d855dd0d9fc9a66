"""Logged values as one typed pandas DataFrame: a row per coordinate, a column per name.

Values are filtered in SQL by name (and run) and read in three homogeneous queries, one per
storage column, so every column arrives typed; loop coordinates are then resolved for all rows
at once by walking the iteration tree one level per step. A name never logged but given to
``arg`` is a run's param: a value at the run's top level, before everything it logged.

By default each value keeps a row at its own loop level. ``broadcast`` joins the names on the
coordinates they share instead, so a run's params and an epoch's values sit on every row inside
them (FlorDB's pivot); ``tstamp="commit"`` dates each value by the ``commit`` it followed.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from trellis._errors import BadArgumentError, UnknownNameError
from trellis.queries.frames import read_frame
from trellis.queries.runs import resolve
from trellis.store.cells import decode, storable
from trellis.store.connection import Store
from trellis.store.schema import BOOL, FLOAT, INT, INT_KINDS, NONE, RUN_SHIFT, TEXT, TEXT_KINDS

DIMENSIONS = ["projid", "run_id", "tstamp", "filename"]
_KEY = ["run", "iteration", "occurrence"]
# Logged (at a run's top level) by a FlorDB-style commit, which starts a new tstamp.
COMMIT_MARK = "trellis::commit"


def _in(values: Sequence[Any]) -> str:
    return "(" + ", ".join("?" * len(values)) + ")"


def _run_ids(store: Store, runs: str | Iterable[str] | None) -> list[int] | None:
    if runs is None:
        return None
    refs = [runs] if isinstance(runs, str) else list(runs)
    return [resolve(store, ref)["id"] for ref in refs]


def _runs_logging(
    store: Store, names: Sequence[str], run_ids: list[int] | None, params: Sequence[str] = ()
) -> list[int]:
    """The runs, among ``run_ids`` if given, that logged any of ``names`` or have any of
    ``params``."""
    runs: set[int] = set()
    for table, wanted in (("log_names", names), ("params", params)):
        if not wanted:
            continue
        where = f"name IN {_in(wanted)}"
        values: list[Any] = list(wanted)
        if run_ids is not None:
            where += f" AND run IN {_in(run_ids)}"
            values += run_ids
        runs.update(run for (run,) in store.execute(f"SELECT DISTINCT run FROM {table} WHERE {where}", values))
    return sorted(runs)


def _logged(store: Store, name: str) -> bool:
    return bool(store.execute("SELECT 1 FROM log_names WHERE name = ? LIMIT 1", (name,)))


def _a_param(store: Store, name: str) -> bool:
    return bool(store.execute("SELECT 1 FROM params WHERE name = ? LIMIT 1", (name,)))


def _key_ranges(run_ids: list[int]) -> tuple[str, list[int]]:
    """A condition on ``id`` that selects the logs of ``run_ids`` (consecutive runs merged)."""
    spans: list[list[int]] = []
    for run in sorted(run_ids):
        if spans and spans[-1][1] == run:
            spans[-1][1] = run + 1
        else:
            spans.append([run, run + 1])
    condition = " OR ".join("(id >= ? AND id < ?)" for _ in spans)
    return f"({condition})", [bound << RUN_SHIFT for span in spans for bound in span]


def _latest_per_file(
    store: Store, names: Sequence[str], run_ids: list[int] | None, params: Sequence[str] = ()
) -> list[int]:
    """The newest run of each script among those that logged any of ``names``."""
    runs = _runs_logging(store, names, run_ids, params)
    candidates = store.execute(
        f"SELECT id, filename, started FROM runs WHERE id IN {_in(runs)}", runs
    ) if runs else []
    newest: dict[Any, tuple[float, int]] = {}
    for run, filename, started in candidates:
        if filename not in newest or (started, run) > newest[filename]:
            newest[filename] = (started, run)
    return [run for _, run in newest.values()]


def dataframe(
    store: Store,
    names: Sequence[str],
    runs: str | Iterable[str] | None = None,
    latest: bool = False,
    verified: bool = False,
    broadcast: bool = False,
    unknown: str = "raise",
    tstamp: str = "run",
) -> pd.DataFrame:
    """``unknown="empty"`` gives a name nothing was logged as an empty column, instead of
    raising; ``tstamp`` is ``"run"`` (when the run started) or ``"commit"``."""
    if unknown not in ("raise", "empty"):
        raise BadArgumentError(f"unknown must be 'raise' or 'empty', not {unknown!r}")
    if tstamp not in ("run", "commit"):
        raise BadArgumentError(f"tstamp must be 'run' or 'commit', not {tstamp!r}")
    run_ids = _run_ids(store, runs)
    if not names:
        return runs_frame(store, run_ids)
    # A name that no store holds as it is (a NUL, a lone surrogate) was stored escaped, and is
    # asked and labelled so: pandas cannot hold it as a column label either.
    names = [storable(name) for name in dict.fromkeys(names)]
    logged = {name for name in names if _logged(store, name)}
    params = [name for name in names if name not in logged and _a_param(store, name)]
    unknown_names = [name for name in names if name not in logged and name not in params]
    if unknown_names and unknown == "raise":
        known = {name for (name,) in store.execute("SELECT DISTINCT name FROM log_names")}
        known |= {name for (name,) in store.execute("SELECT DISTINCT name FROM params")}
        listed = ", ".join(sorted(known - {COMMIT_MARK})) or "none yet"
        raise UnknownNameError(
            f"nothing was logged as {', '.join(map(repr, unknown_names))}; logged names: {listed}"
        )
    found = [name for name in names if name not in unknown_names]
    if not found:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in DIMENSIONS + names})
    if latest:
        run_ids = _latest_per_file(store, [n for n in found if n not in params], run_ids, params)

    def frame_of(wanted: list[str]) -> pd.DataFrame:
        wanted_params = [name for name in wanted if name in params]
        long = _read_values(store, wanted, run_ids, wanted_params)
        columns = wanted
        if verified:
            long, columns = _with_verification(store, long, wanted)
        return _with_dimensions(store, _widen(long, columns), columns, by_commit=tstamp == "commit")

    if broadcast and len(found) > 1:
        frame = _joined([frame_of([name]) for name in found], found)
    else:
        frame = frame_of(found)
    for name in unknown_names:
        frame[name] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    labels = [_value_label(name) for name in names]
    return frame[[c for c in frame.columns if c not in labels] + labels]


def _value_label(name: str) -> str:
    """A value's column: its name, unless that is a run's column (then " (logged)" after it)."""
    return f"{name} (logged)" if name in DIMENSIONS else name


def _joined(frames: list[pd.DataFrame], names: list[str]) -> pd.DataFrame:
    """The frames of single names, joined where they share every coordinate column: a value
    of an outer loop (or of the run) lands on each row of the inner loops within it."""
    joined = frames[0]
    for frame in frames[1:]:
        shared = [c for c in joined.columns if c in frame.columns and c not in names]
        joined = joined.merge(frame, on=shared, how="outer")
    loops = [c for c in joined.columns if c not in DIMENSIONS and c not in names]
    return joined[DIMENSIONS + loops + names].reset_index(drop=True)


def _with_verification(store: Store, long: pd.DataFrame, names: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """A ``NAME_verified`` column beside each name: ``logged`` for the run's own values, and for
    replayed ones how the replay verified them (``exact``, ``rerun``, ``checkpoint``,
    ``unchecked``; ``replay`` for values replayed before replays verified)."""
    extra = [f"{name}_verified" for name in names]
    if long.empty:
        return long, names + extra
    keys = long["seq"].to_numpy(np.int64)
    condition, bounds = _key_ranges(sorted(set((keys >> RUN_SHIFT).tolist())))
    replayed = dict(store.execute(
        f"SELECT id, COALESCE(verified, source) FROM logs WHERE {condition} AND source = 'replay'"
        f" AND name IN {_in(names)}",
        bounds + list(names),
    ))
    marks = long.copy()
    marks["code"] = marks["code"].astype(np.int64) + len(names)
    marks["kind"] = TEXT
    marks["value"] = [replayed.get(int(key), "logged") for key in keys]
    return pd.concat([long, marks], ignore_index=True), names + extra


def _read_values(
    store: Store, names: list[str], run_ids: list[int] | None, params: Sequence[str] = ()
) -> pd.DataFrame:
    """Columns run, seq (the log key, in log order), iteration, code (of the name), kind, value.

    ``params`` (among ``names``) are read from the runs' params, as values at the run's top
    level logged before any other."""
    logged = [name for name in names if name not in params]
    parts = [_read_params(store, names, params, run_ids)] if params else []
    runs = _runs_logging(store, logged, run_ids) if logged else []
    if not runs:
        parts = [part for part in parts if not part.empty]
        if not parts:
            return pd.DataFrame(columns=["run", "seq", "iteration", "code", "kind", "value"])
        long = parts[0]
        long["run"] = long["seq"].to_numpy(np.int64) >> RUN_SHIFT
        return long
    keys, bounds = _key_ranges(runs)
    # Names travel as small integers (a million repeated strings cost more than the values),
    # and not at all when there is one; the run is the high half of the key.
    single = len(names) == 1
    code = "" if single else "CASE name " + "WHEN ? THEN ? " * len(names) + "END AS code, "
    code_params: list[Any] = [] if single else [x for i, n in enumerate(names) for x in (n, i)]
    where = f"name IN {_in(logged)} AND {keys}"
    params_of_query: list[Any] = list(logged) + bounds
    queries = [
        (f"kind, int_value FROM logs WHERE {where} AND kind IN {_in(INT_KINDS)}", list(INT_KINDS), None),
        # A NULL float is a NaN: SQLite cannot store NaN.
        (f"float_value FROM logs WHERE {where} AND kind = ?", [FLOAT], FLOAT),
        (f"kind, text_value FROM logs WHERE {where} AND kind IN {_in(TEXT_KINDS)}", list(TEXT_KINDS), None),
        (f"NULL FROM logs WHERE {where} AND kind = ?", [NONE], NONE),
    ]
    # One scan says which kinds are there, so that a name logged only as floats (the usual
    # case) is not scanned again for ints, text and None that it does not have.
    present = {kind for (kind,) in store.execute(f"SELECT DISTINCT kind FROM logs WHERE {where}", params_of_query)}
    for tail, kinds, constant_kind in queries:
        if not present.intersection(kinds):
            continue
        columns = ["seq", "iteration"] + ([] if single else ["code"])
        columns += ["value"] if constant_kind is not None else ["kind", "value"]
        sql = f"SELECT id, iteration, {code}{tail}"
        part = read_frame(store, sql, code_params + params_of_query + kinds, columns)
        if part.empty:
            continue
        if constant_kind is not None:
            part["kind"] = constant_kind
        if single:
            part["code"] = 0
        parts.append(part)
    parts = [part for part in parts if not part.empty]
    if not parts:
        return pd.DataFrame(columns=["run", "seq", "iteration", "code", "kind", "value"])
    long = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    long["run"] = long["seq"].to_numpy(np.int64) >> RUN_SHIFT
    return long


def _read_params(
    store: Store, names: list[str], params: Sequence[str], run_ids: list[int] | None
) -> pd.DataFrame:
    """The params as rows of ``_read_values``: key and iteration both the run's first key."""
    where = f"name IN {_in(params)}"
    values: list[Any] = list(params)
    if run_ids is not None:
        where += f" AND run IN {_in(run_ids)}"
        values += run_ids
    rows = store.execute(
        f"SELECT run, name, kind, int_value, float_value, text_value FROM params WHERE {where}"
        " ORDER BY run", values,
    )
    codes = {name: code for code, name in enumerate(names)}
    records = []
    for run, name, kind, i, f, t in rows:
        value = f if kind == FLOAT else i if kind in INT_KINDS else None if kind == NONE else t
        records.append((run << RUN_SHIFT, run << RUN_SHIFT, codes[name], kind, value))
    return pd.DataFrame.from_records(records, columns=["seq", "iteration", "code", "kind", "value"])


def _typed(part: pd.DataFrame) -> pd.Series:
    """One name's values as the column type they share, else as decoded Python objects."""
    kinds = part["kind"].unique()
    values = part["value"]
    if len(kinds) == 1:
        kind = kinds[0]
        if kind == FLOAT:
            return values.astype("float64")
        # Nullable dtypes, so that rows lacking this name do not turn ints into floats.
        if kind == INT:
            return values.astype("int64").astype("Int64")
        if kind == BOOL:
            return values.astype("int64").astype("boolean")
        if kind == TEXT:
            return values.astype(object)
    decoded = [
        decode(k, v, v, v) if k != FLOAT else float(v)
        for k, v in zip(part["kind"].tolist(), values.tolist())
    ]
    return pd.Series(decoded, index=part.index, dtype=object)


def _widen(long: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """A row per coordinate; the values of ``names[i]`` in column ``i`` (an int: a logged name
    may be anything, "seq" or "run" included)."""
    if long.empty:
        return pd.DataFrame(columns=["run", "iteration", "seq", *range(len(names))])
    if not long["seq"].is_monotonic_increasing:
        long = long.sort_values("seq", kind="stable")
    # Iteration keys are unique across runs, so (iteration, name) identifies a coordinate.
    if len(names) == 1:
        repeated = not pd.Index(long["iteration"]).is_unique
    else:
        repeated = long.duplicated(["iteration", "code"]).any()
    if repeated:
        long["occurrence"] = long.groupby(["iteration", "code"]).cumcount()
    else:
        long["occurrence"] = 0
    wide: pd.DataFrame | None = None
    for code, name in enumerate(names):
        part = long if len(names) == 1 else long[long["code"] == code]
        column = part[_KEY + ["seq"]].copy()
        column[code] = _typed(part)
        if wide is None:
            wide = column
        else:
            wide = wide.merge(column, on=_KEY, how="outer", suffixes=("", "_other"))
            wide["seq"] = wide[["seq", "seq_other"]].min(axis=1)
            wide = wide.drop(columns="seq_other")
    assert wide is not None
    if len(names) > 1:
        wide = wide.sort_values("seq", kind="stable")
    return wide.reset_index(drop=True)


def _narrow(column: pd.Series) -> pd.Series:
    """An object column of Python ints, bools or floats as the matching (nullable) dtype."""
    if column.dtype == object:
        present = column.dropna()
        if len(present) and all(type(v) is int for v in present.head(1000)):
            try:
                return column.astype("Int64")
            except (TypeError, ValueError):
                return column
        if len(present) and all(type(v) is bool for v in present.head(1000)):
            return column.astype("boolean")
        if len(present) and all(type(v) is float for v in present):
            return column.astype("float64")
    return column


def _with_dimensions(
    store: Store, wide: pd.DataFrame, names: list[str], by_commit: bool = False
) -> pd.DataFrame:
    """The run's columns, the loops' and the values', in that order. A loop's column that has
    the name of another column gets " (loop)" after it, and a value named like a run's column
    " (logged)": every column has a name of its own, the names asked for keep theirs.
    ``by_commit`` dates each value by the commit it followed (FlorDB's tstamp)."""
    run_ids = sorted({int(r) for r in wide["run"].unique()}) if len(wide) else []
    coordinates, loop_columns = _coordinates(store, wide, run_ids)
    runs = _runs_table(store, run_ids)
    frame = wide.merge(runs, left_on="run", right_index=True, how="left")
    if by_commit and run_ids:
        frame["tstamp"] = _commit_times(store, frame, run_ids)
    values = frame[list(range(len(names)))].reset_index(drop=True)
    joined = pd.concat([frame[DIMENSIONS].reset_index(drop=True),
                        coordinates.reset_index(drop=True), values], axis=1)
    value_labels = [_value_label(name) for name in names]
    taken = set(DIMENSIONS) | set(value_labels)
    loop_labels = []
    for label in loop_columns:
        while label in taken:
            label += " (loop)"
        taken.add(label)
        loop_labels.append(label)
    joined.columns = DIMENSIONS + loop_labels + value_labels
    return joined


def _commit_times(store: Store, frame: pd.DataFrame, run_ids: list[int]) -> pd.Series:
    """Per row, the time of the last commit logged before its value, else its run's start."""
    keys, bounds = _key_ranges(run_ids)
    marks = store.execute(
        f"SELECT id, float_value FROM logs WHERE name = ? AND {keys} ORDER BY id", [COMMIT_MARK, *bounds]
    )
    if not marks:
        return frame["tstamp"]
    mark_keys = np.array([key for key, _ in marks], dtype=np.int64)
    mark_times = pd.to_datetime(np.array([when for _, when in marks], dtype="float64"), unit="s").to_numpy()
    seqs = frame["seq"].to_numpy(np.int64)
    at = np.searchsorted(mark_keys, seqs, side="left") - 1
    same_run = (at >= 0) & ((mark_keys[np.maximum(at, 0)] >> RUN_SHIFT) == (seqs >> RUN_SHIFT))
    started = frame["tstamp"].dt.tz_convert(None).to_numpy()
    chosen = np.where(same_run, mark_times[np.maximum(at, 0)], started)
    return pd.Series(chosen, index=frame.index).dt.tz_localize("UTC")


def _runs_table(store: Store, run_ids: list[int]) -> pd.DataFrame:
    if not run_ids:
        return pd.DataFrame(columns=DIMENSIONS)
    rows = store.execute(
        f"SELECT id, projid, uuid, started, filename FROM runs WHERE id IN {_in(run_ids)}", run_ids
    )
    runs = pd.DataFrame.from_records(rows, columns=["id", "projid", "run_id", "tstamp", "filename"])
    runs["tstamp"] = pd.to_datetime(runs["tstamp"], unit="s", utc=True)
    return runs.set_index("id")


def _coordinates(
    store: Store, wide: pd.DataFrame, run_ids: list[int]
) -> tuple[pd.DataFrame, list[str]]:
    """Per row, the index (and non-index value) of every loop around the value."""
    empty = pd.DataFrame(index=wide.index)
    if not run_ids:
        return empty, []
    # Iteration keys start with the run, so each run is a range of the primary key.
    run_filter = " OR ".join(["id BETWEEN ? AND ?"] * len(run_ids))
    bounds = [b for run in run_ids for b in (run << RUN_SHIFT, ((run + 1) << RUN_SHIFT) - 1)]
    loops = store.execute(
        f"SELECT loop, MIN(depth), MAX(has_values) FROM loops WHERE run IN {_in(run_ids)}"
        " GROUP BY loop",
        run_ids,
    )
    if not loops:
        return empty, []
    order = [loop for loop, *_ in sorted(loops, key=lambda row: (row[1], row[0]))]
    code = "CASE loop " + "WHEN ? THEN ? " * len(order) + "END"
    iterations = read_frame(
        store,
        f"SELECT id, parent, idx, {code}, count FROM iterations WHERE {run_filter} ORDER BY id",
        [x for i, loop in enumerate(order) for x in (loop, i)] + bounds,
        ["id", "parent", "idx", "loop", "count"],
    )
    shown: dict[int, str] = {}
    if any(has_values for *_, has_values in loops):
        shown = dict(store.execute(
            f"SELECT id, value FROM iterations WHERE ({run_filter}) AND value IS NOT NULL", bounds
        ))
    ids = iterations["id"].to_numpy(np.int64)
    ends = ids + iterations["count"].to_numpy(np.int64)
    parents = iterations["parent"].to_numpy(np.int64)
    loop_codes = iterations["loop"].to_numpy(np.int64)
    indexes = iterations["idx"].to_numpy(np.int64)

    def row_of(keys: np.ndarray) -> np.ndarray:
        """The row whose span of keys holds each key, or -1."""
        at = np.searchsorted(ids, keys, side="right") - 1
        inside = at >= 0
        inside[inside] = keys[inside] < ends[at[inside]]
        return np.where(inside, at, -1)

    rows = len(wide)
    index_columns = {loop: np.full(rows, -1, dtype=np.int64) for loop in order}
    value_columns: dict[str, np.ndarray] = {}
    keys = wide["iteration"].to_numpy(np.int64)
    position = row_of(keys)
    while (found := position >= 0).any():
        at = position[found]
        for number in pd.unique(loop_codes[at]):
            loop = order[number]
            here = found.copy()
            here[found] = loop_codes[at] == number
            chosen = position[here]
            index_columns[loop][here] = indexes[chosen] + keys[here] - ids[chosen]
            if shown:
                items = [shown.get(i) for i in ids[chosen].tolist()]
                if any(item is not None for item in items):
                    column = value_columns.setdefault(loop, np.full(rows, None, dtype=object))
                    column[here] = [None if v is None else json.loads(v) for v in items]
        keys = np.where(found, parents[np.maximum(position, 0)], -1)
        position = np.where(found, row_of(keys), -1)
    columns: dict[str, Any] = {}
    names: list[str] = []
    for loop in order:
        if not (index_columns[loop] >= 0).any():
            continue
        column = pd.array(index_columns[loop], dtype="Int64")
        column[index_columns[loop] < 0] = pd.NA
        columns[loop] = column
        names.append(loop)
        if loop in value_columns:
            columns[f"{loop}_value"] = value_columns[loop]
            names.append(f"{loop}_value")
    return pd.DataFrame(columns, index=wide.index), names


def runs_frame(store: Store, run_ids: list[int] | None) -> pd.DataFrame:
    """One row per run, with its status, timing and params as typed columns."""
    where, params = "", []
    if run_ids is not None:
        if not run_ids:
            return pd.DataFrame(columns=DIMENSIONS)
        where, params = f" WHERE id IN {_in(run_ids)}", run_ids
    rows = store.execute(
        f"SELECT id, projid, uuid, started, filename, status, ended FROM runs{where} ORDER BY started, id",
        params,
    )
    frame = pd.DataFrame.from_records(
        rows, columns=["id", "projid", "run_id", "tstamp", "filename", "status", "ended"]
    )
    frame["duration"] = frame["ended"] - frame["tstamp"]
    frame["tstamp"] = pd.to_datetime(frame["tstamp"], unit="s", utc=True)
    param_rows = store.execute(
        "SELECT run, name, kind, int_value, float_value, text_value FROM params"
        + (f" WHERE run IN {_in(run_ids)}" if run_ids is not None else ""),
        params,
    )
    by_name: dict[str, dict[int, Any]] = {}
    for run, name, kind, i, f, t in param_rows:
        by_name.setdefault(name, {})[run] = decode(kind, i, f, t)
    for name in sorted(by_name):
        column = pd.Series([by_name[name].get(run) for run in frame["id"]], dtype=object)
        frame[name] = _narrow(column)
    return frame.drop(columns=["id", "ended"])
