"""trellis: the context and provenance of machine-learning work.

``import trellis`` in a script records the run: its code snapshot, arguments, logged values at
their loop coordinates, environment and build context. Read it back with ``trellis.dataframe``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from trellis._errors import (
    BadArgumentError,
    NoCheckpointError,
    StoreError,
    TrellisError,
    UnknownNameError,
    UnknownRunError,
    UntrustedObjectError,
)
from trellis.capture.args import arg
from trellis.capture.checkpoint import checkpointing
from trellis.capture.run import commit, iteration, log, loop

if TYPE_CHECKING:
    import pandas

from trellis._version import __version__

__all__ = [
    "log",
    "arg",
    "loop",
    "iteration",
    "checkpointing",
    "commit",
    "dataframe",
    "query",
    "runs",
    "load_checkpoint",
    "lineage",
    "status",
    "diff",
    "reproduce",
    "replay",
    "export",
    "import_runs",
    "push",
    "pull",
    "sparql",
    "widget",
    "TrellisError",
    "BadArgumentError",
    "UnknownRunError",
    "UnknownNameError",
    "NoCheckpointError",
    "StoreError",
    "UntrustedObjectError",
]


def _read_store() -> Any:
    """The store, after this process's own buffered values are written to it."""
    from trellis.capture.run import current
    from trellis.store.connection import open_store

    run = current()
    if run is not None:
        run.flush()
    return open_store(read_only=True)


def dataframe(
    *names: str, runs: str | Iterable[str] | None = None, latest: bool = False, verified: bool = False,
    broadcast: bool = False, unknown: str = "raise", tstamp: str = "run",
) -> "pandas.DataFrame":
    """Logged values, a row per loop coordinate and a typed column per name.

    A name may be a param (``arg``) too: a value at the run's top level. With no names, a row
    per run with its params. ``runs`` limits to run ids (or prefixes); ``latest`` keeps the
    newest run of each script; ``verified`` adds a ``NAME_verified`` column per name: ``logged``,
    or how a replay verified the value. FlorDB's pivot, as options: ``broadcast=True`` puts the
    values of outer loops (and of the run) on every row inside them; ``unknown="empty"`` makes a
    name nothing was logged as an empty column rather than an error; ``tstamp="commit"`` dates
    each value by the FlorDB-style commit it followed (see docs/flor.md).
    """
    from trellis.queries.dataframe import dataframe as build

    store = _read_store()
    try:
        frame = build(store, list(names), runs=runs, latest=latest, verified=verified, broadcast=broadcast,
                      unknown=unknown, tstamp=tstamp)
    finally:
        store.close()
    _note_input(frame["run_id"].unique().tolist() if len(frame) else [], "dataframe",
                ",".join(names) or "params")
    return frame


def _note_input(sources: list[str], via: str, detail: str) -> None:
    """A script that reads other runs' values depends on those runs: record it for lineage."""
    from trellis.capture.run import current

    run = current()
    if run is not None and sources:
        run.record_input(sources, via, detail)


def query(sql: str, params: Sequence[Any] = ()) -> "pandas.DataFrame":
    """Read-only SQL over the store's tables, as a DataFrame: a statement that would change
    the store (or attach another) is refused with one line."""
    import pandas

    from trellis.capture.run import current
    from trellis.store.connection import open_store

    run = current()
    if run is not None:
        run.flush()
    store = open_store(read_only=True)
    try:
        columns, rows = store.query(sql, params)
        return pandas.DataFrame.from_records(rows, columns=columns)
    except Exception as error:
        if isinstance(error, TrellisError):
            raise
        # PostgreSQL adds lines of context (the PL/pgSQL line, the statement) below the message
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrellisError(f"query failed: {message}") from None
    finally:
        store.close()


def runs(limit: int | None = None) -> list[dict[str, Any]]:
    """The recorded runs, newest first, as plain dicts."""
    from trellis.queries.runs import list_runs

    store = _read_store()
    try:
        return list_runs(store, limit)
    finally:
        store.close()


def lineage(target: str, downstream: bool = False) -> dict[str, Any]:
    """What ``target`` was derived from: runs, files with hashes, params, code versions.

    ``target`` is a file path (as a run opened it) or ``run:<id prefix>``. With
    ``downstream=True``, what was derived from it instead. Returns ``{"target", "nodes",
    "edges"}``; edges point from the derived to what it was derived from.
    """
    from trellis.queries.lineage import lineage as walk

    store = _read_store()
    try:
        return walk(store, target, downstream)
    finally:
        store.close()


def status(paths: Sequence[str] | None = None) -> dict[str, Any]:
    """Whether each recorded output (or those under ``paths``) is up to date; for each stale one
    why (an input, the script's code or the cell changed, an upstream output is stale, the file
    was deleted or changed) and what to run again: ``{"outputs", "stale", "rerun"}``."""
    from trellis.queries.status import status as judge

    store = _read_store()
    try:
        return judge(store, list(paths) if paths else None)
    finally:
        store.close()


def diff(a: str, b: str) -> dict[str, Any]:
    """What changed from ``a`` to ``b``: two runs or epochs (id prefixes, ``latest``), or two
    executions (``<epoch prefix>/<n>``). Code, params, logged values, files, environment, outputs.
    """
    from trellis.queries.diff import diff as compare

    store = _read_store()
    try:
        return compare(store, a, b)
    finally:
        store.close()


def reproduce(run: str, tolerance: float = 0.0, trusted: bool = False) -> dict[str, Any]:
    """Run a recorded script or notebook epoch again from its snapshot, in a fresh git worktree,
    and compare values, written files and outputs; ``matched`` says whether all were the same.
    A run received from someone else's store is run only if ``trusted``."""
    from trellis.replaying.reproduction import reproduce as again
    from trellis.store.connection import open_store

    store = open_store()
    try:
        return again(store, run, tolerance, trusted)
    finally:
        store.close()


def replay(
    *names: str,
    file: str | None = None,
    runs: Sequence[str] | None = None,
    where: str | None = None,
    workers: int = 1,
    executor: Any = None,
    force: bool = False,
    dry_run: bool = False,
    progress: bool = False,
    env: dict[str, str] | None = None,
    trusted: bool = False,
    include_failed: bool = False,
    tolerance: float = 0.0,
) -> dict[str, Any]:
    """Hindsight logging: replay the new ``log`` statements of ``names`` (added to today's script)
    into past runs of it, also of older code versions, from their checkpoints, in parallel.

    ``where`` narrows the checkpointed loop's iterations (``"epoch >= 5"``); ``executor`` is
    ``"process"`` (default, ``workers`` processes), ``"dask://host:port"`` or any
    ``concurrent.futures.Executor``; ``env`` sets variables for every segment (on a cluster,
    segments otherwise see the workers' environment). With ``dry_run`` only the plan is returned.
    Runs received from someone else's store are left out unless ``trusted``: replaying runs their
    recorded command line and loads their checkpoints.
    Every segment verifies itself against the values the run logged (floats bit for bit, or
    within ``tolerance``); runs that failed are skipped unless ``include_failed``.
    """
    from trellis.replaying.executing import execute
    from trellis.replaying.planning import plan_replay
    from trellis.store.connection import open_store

    store = open_store()
    try:
        plan = plan_replay(store, names, file=file, runs=runs, where=where, workers=workers, force=force,
                           trusted=trusted, include_failed=include_failed)
        if dry_run:
            return {"plan": plan.to_dict(), "description": plan.describe()}
        return {"plan": plan.to_dict(), **execute(store, plan, executor=executor, progress=progress, env=env,
                                                  tolerance=tolerance)}
    finally:
        store.close()


EXPORT_FORMATS = ("json", "prov-json", "prov-n", "prov-xml", "turtle", "trig", "json-ld", "html")


def export(target: str | None = None, everything: bool = False, format: str = "json",
           objects: bool = True) -> str:
    """A run (id prefix), a notebook's epochs (``NB.ipynb``) or ``everything`` as text in
    ``format``: ``json`` (lossless, for ``trellis.import_runs`` in another store), ``prov-json``,
    ``prov-n``, ``prov-xml`` (W3C PROV), ``turtle``, ``trig``, ``json-ld`` (PROV-O with P-Plan
    and REPRODUCE-ME) or ``html`` (a page of the graph); see docs/export.md."""
    import json

    from trellis.queries.runs import select_runs

    if format not in EXPORT_FORMATS:
        raise TrellisError(f"unknown export format {format!r}; use one of {', '.join(EXPORT_FORMATS)}")
    store = _read_store()
    try:
        run_ids = select_runs(store, target, everything)
        if format == "json":
            from trellis.sharing.json_export import export as to_json

            return json.dumps(to_json(store, run_ids, with_objects=objects))
        from trellis.queries.provenance import provenance

        data = provenance(store, run_ids)
    finally:
        store.close()
    if format == "html":
        from trellis.exporting import html

        return html.serialize(data)
    if format.startswith("prov-"):
        from trellis.exporting import prov

        return prov.serialize(data, format)
    from trellis.exporting import rdf

    return rdf.serialize(data, format)


def sparql(query: str, bindings: dict[str, str] | None = None,
           target: str | None = None) -> list[dict[str, Any]]:
    """Rows of a SPARQL SELECT over the provenance (PROV-O, P-Plan, REPRODUCE-ME) of ``target``
    (a run id prefix or a notebook; default: every run). ``query`` is SPARQL text or the name
    of an example in docs/export.md; ``bindings`` give string values to its variables."""
    from trellis.exporting.rdf import sparql as select

    store = _read_store()
    try:
        return select(store, query, bindings, target)
    finally:
        store.close()


def widget(notebook: str | None = None) -> Any:
    """The provenance graph of this notebook (or of ``notebook``), drawn in the notebook and
    redrawn after every cell execution. Needs ``pip install 'trellis[ui]'``."""
    from trellis.ui.widget import widget as show

    return show(notebook)


def import_runs(path: Any) -> dict[str, int]:
    """Load a JSON export (or the runs of another SQLite store, such as a recovery file, or a
    FlorDB project's ``.flor/`` folder) into this project's store, all or nothing; runs already
    here are skipped. What comes in is checked whole first; a file that is not what it claims is
    refused with one line."""
    from pathlib import Path

    from trellis.store.connection import open_store
    from trellis.sharing.flor_import import flor_folder, import_flor
    from trellis.sharing.importing import import_export

    if (folder := flor_folder(Path(path))) is not None:  # a FlorDB project's history
        store = open_store()
        try:
            return import_flor(store, folder)
        finally:
            store.close()

    if Path(path).suffix in (".db", ".sqlite", ".sqlite3"):  # a store, such as a recovery file
        from trellis.sharing.transfer import copy_runs

        from trellis.sharing.received import check_store

        source = open_store(str(path), read_only=True)
        try:
            check_store(source)  # before this project's store is opened or changed
            store = open_store()
            try:
                counts = copy_runs(source, store)
            finally:
                store.close()
        finally:
            source.close()
        return {"imported": counts["copied"] + counts["merged"], "skipped": counts["skipped"],
                "replays": counts["replays"]}
    from trellis.sharing.received import check_export, parse_json

    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise TrellisError(f"no file at {path}") from None
    except OSError as error:
        raise TrellisError(f"cannot read {path}: {error.strerror or error}") from None
    exported = parse_json(raw, str(path))
    check_export(exported)  # before the store is opened: a bad file leaves no trace
    store = open_store()
    try:
        return import_export(store, exported, received_from=str(Path(path).absolute()))
    finally:
        store.close()


def push(store: str | None = None, objects: str | None = None) -> dict[str, Any]:
    """Copy the runs of this project's own store (``.trellis/``) that a shared store lacks, with
    their checkpoints and outputs: runs recorded offline, uploaded later. ``store`` defaults to
    ``TRELLIS_STORE`` / ``trellis config store``; ``objects`` to where that store keeps them."""
    from trellis.sharing.transfer import push as upload

    return upload(store, objects)


def pull(store: str | None = None, objects: str | None = None, runs: Sequence[str] | None = None,
         everything: bool = False) -> dict[str, Any]:
    """Copy runs of a shared store into this project's own store: ``runs`` (id prefixes),
    ``everything``, or by default those of this project."""
    from trellis.sharing.transfer import pull as download

    return download(store, objects, list(runs) if runs else None, everything)


def load_checkpoint(run: str, iteration: int | None = None, *, trusted: bool = False,
                    **into: Any) -> dict[str, Any]:
    """The states saved at ``iteration`` of ``run``'s checkpointed loop (the last if None).

    Pass the live objects by name to restore them in place:
    ``trellis.load_checkpoint("latest", 3, model=model)``. A run pulled or imported from
    someone else's store loads only objects that cannot run code (arrays, tensors, plain values)
    unless you pass ``trusted=True``: unpickling runs whatever code its author put in it.
    """
    from trellis.queries.checkpoints import load_checkpoint as load

    from trellis.queries.runs import resolve

    store = _read_store()
    try:
        states = load(store, run, iteration, into, trusted)
        source = resolve(store, run)["uuid"]
    finally:
        store.close()
    _note_input([source], "checkpoint", ",".join(states))
    return states


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext trellis``: record this kernel session and every cell execution."""
    from trellis.capture.notebook import install

    install(ipython)


for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("trellis."):
        try:
            _obj.__module__ = "trellis"
        except (AttributeError, TypeError):
            pass


def _imported_by_main_script() -> bool:
    """True when the importing code is the ``__main__`` script itself (not a library, test or CLI)."""
    frame = sys._getframe(2)  # past this module's own top level
    while frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
        frame = frame.f_back
    if frame is None or frame.f_globals.get("__name__") != "__main__":
        return False
    script = frame.f_globals.get("__file__") or ""
    return script.endswith(".py") and __path__[0] not in script


if _imported_by_main_script():
    from trellis.capture.run import begin as _begin

    _begin()
