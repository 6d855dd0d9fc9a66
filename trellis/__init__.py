"""trellis: the context and provenance of machine-learning work.

``import trellis`` in a script records the run: its code snapshot, arguments, logged values at
their loop coordinates, environment and build context. Read it back with ``trellis.dataframe``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

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
from trellis.exporting import FORMATS as _PROVENANCE_FORMATS

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
    "show",
    "checkpoints",
    "load_checkpoint",
    "lineage",
    "status",
    "diff",
    "reproduce",
    "replay",
    "export",
    "openlineage",
    "import_runs",
    "forget",
    "notebook_history",
    "embed_notebook",
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


def _reading() -> Any:
    """The store opened to read, after this process's own buffered values are written to it: the
    read session of every reading function here, and so of the command line."""
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

    with _reading() as store:
        frame = build(store, list(names), runs=runs, latest=latest, verified=verified, broadcast=broadcast,
                      unknown=unknown, tstamp=tstamp)
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

    with _reading() as store:
        columns, rows = store.query(sql, params)
    return pandas.DataFrame.from_records(rows, columns=columns)


def runs(limit: int | None = None) -> list[dict[str, Any]]:
    """The recorded runs, newest first, as plain dicts."""
    from trellis.queries.runs import list_runs

    with _reading() as store:
        return list_runs(store, limit)


def show(run: str) -> dict[str, Any]:
    """Everything captured for ``run`` (an id prefix, or ``latest``): params, values logged,
    loops, files, environment, code snapshot, build context, output."""
    from trellis.queries.runs import show_run

    with _reading() as store:
        return show_run(store, run)


def checkpoints(run: str) -> list[dict[str, Any]]:
    """The checkpoints of ``run``: loop, iteration, name, format, size, seconds, object."""
    from trellis.queries.checkpoints import list_checkpoints

    with _reading() as store:
        return list_checkpoints(store, run)


def notebook_history(path: str, stale: bool = False) -> dict[str, Any]:
    """A notebook's recorded epochs (kernel sessions) and executions: sources, names defined and
    used, files, dependencies within each epoch, outputs. With ``stale``, each execution that is
    out of date in this working copy carries ``stale``: why (see ``status``)."""
    from trellis.queries.notebooks import history

    with _reading() as store:
        described = history(store, path)
        if stale:
            from trellis.queries.status import notebook_staleness

            found = notebook_staleness(store, path)
            for epoch in described["epochs"]:
                for execution in epoch["executions"]:
                    if execution["id"] in found:
                        execution["stale"] = found[execution["id"]]
        return described


def embed_notebook(path: str) -> dict[str, int]:
    """Write the notebook's recorded history into its own metadata (cells and outputs stay as
    they are), so it travels with the file; ``import_runs`` of the file reads it back."""
    from trellis.exporting.notebook import embed
    from trellis.queries.notebooks import history, notebook_file

    with _reading() as store:
        described = history(store, str(notebook_file(path)))
    return embed(notebook_file(path), described)


def forget(*targets: str, export_to: Any = None, dry_run: bool = False) -> dict[str, int]:
    """Remove runs (id prefixes) or a notebook's epochs (``NB.ipynb``) from the store, in one
    transaction, after writing them as a JSON export to ``export_to`` if given (an existing file
    is refused). ``dry_run`` only counts what would go. Objects stay: others may share them."""
    from pathlib import Path

    from trellis.forgetting import describe, forget as remove
    from trellis.queries.runs import select_runs
    from trellis.sharing.json_export import export_text
    from trellis.store.connection import open_store

    with open_store() as store:
        run_ids = list(dict.fromkeys(run for target in targets for run in select_runs(store, target, False)))
        counts = describe(store, run_ids)
        if dry_run:
            return counts
        if export_to is not None:
            if Path(export_to).exists():
                raise TrellisError(f"{export_to} exists; nothing was forgotten: give another file")
            Path(export_to).write_text(export_text(store, run_ids))
        remove(store, run_ids)
    return counts


def lineage(target: str, downstream: bool = False, group: bool = False) -> dict[str, Any]:
    """What ``target`` was derived from: runs, files with hashes, params, code versions.

    ``target`` is a file path (as a run opened it) or ``run:<id prefix>``. With
    ``downstream=True``, what was derived from it instead. Returns ``{"target", "nodes",
    "edges"}``; edges point from the derived to what it was derived from. With ``group=True``,
    six or more source files of one folder read alike (a data set) are one node of kind
    ``files`` (``folder``, ``paths``, ``count``), as ``trellis lineage`` prints them.
    """
    from trellis.queries.lineage import grouped, lineage as walk

    with _reading() as store:
        graph = walk(store, target, downstream)
    return grouped(graph) if group else graph


def status(paths: Sequence[str] | None = None) -> dict[str, Any]:
    """Whether each recorded output (or those under ``paths``) is up to date; for each stale one
    why (an input, the script's code or the cell changed, an upstream output is stale, the file
    was deleted or changed) and what to run again: ``{"outputs", "stale", "rerun"}``."""
    from trellis.queries.status import status as judge

    with _reading() as store:
        return judge(store, list(paths) if paths else None)


def diff(a: str, b: str) -> dict[str, Any]:
    """What changed from ``a`` to ``b``: two runs or epochs (id prefixes, ``latest``), or two
    executions (``<epoch prefix>/<n>``). Code, params, logged values, files, environment, outputs.
    """
    from trellis.queries.diff import diff as compare

    with _reading() as store:
        return compare(store, a, b)


def reproduce(run: str, tolerance: float = 0.0, trusted: bool = False) -> dict[str, Any]:
    """Run a recorded script or notebook epoch again from its snapshot, in a fresh git worktree,
    and compare values, written files and outputs; ``matched`` says whether all were the same.
    A run received from someone else's store is run only if ``trusted``."""
    from trellis.replaying.reproduction import reproduce as again
    from trellis.store.connection import open_store

    with open_store() as store:
        return again(store, run, tolerance, trusted)


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
    confirm: Callable[[str], bool] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Hindsight logging: replay the new ``log`` statements of ``names`` (added to today's script)
    into past runs of it, also of older code versions, from their checkpoints, in parallel.

    ``where`` narrows the checkpointed loop's iterations (``"epoch >= 5"``; ``last`` is each
    run's last index of it), and conditions on inner loops joined by ``and`` narrow the values
    stored (``"epoch >= 5 and step == last"``); ``executor`` is ``"process"`` (default,
    ``workers`` processes), ``"dask://host:port"`` or any ``concurrent.futures.Executor``;
    ``env`` sets variables for every segment (on a cluster,
    segments otherwise see the workers' environment). With ``dry_run`` only the plan is returned,
with the patched source planned for each run; ``confirm`` is asked with the plan's description
before anything runs, and nothing runs when it answers False (``"cancelled": True``).
    Runs received from someone else's store are left out unless ``trusted``: replaying runs their
    recorded command line and loads their checkpoints.
    Every segment verifies itself against the values the run logged (floats bit for bit, or
    within ``tolerance``); runs that failed are skipped unless ``include_failed``.
    ``overrides`` (``{"device": "cpu"}``) gives ``arg`` those values instead of each run's own
    (text is read as the type of the arg's default); verification still compares with what the
    run logged, so an override that changes the results stores nothing, and the replay records
    the overrides it used.
    """
    from trellis.replaying.executing import execute
    from trellis.replaying.planning import plan_replay
    from trellis.store.connection import open_store

    with open_store() as store:
        plan = plan_replay(store, names, file=file, runs=runs, where=where, workers=workers, force=force,
                           trusted=trusted, include_failed=include_failed, overrides=overrides)
        if dry_run:
            return {"plan": plan.to_dict(), "description": plan.describe(),
                    "patched": {run.uuid: run.patched for run in plan.runs if run.patched is not None}}
        if confirm is not None and not confirm(plan.describe()):
            return {"plan": plan.to_dict(), "cancelled": True}
        return {"plan": plan.to_dict(), **execute(store, plan, executor=executor, progress=progress, env=env,
                                                  tolerance=tolerance)}


EXPORT_FORMATS = ("json", *_PROVENANCE_FORMATS)


def export(target: str | None = None, everything: bool = False, format: str = "json",
           objects: bool = True) -> str:
    """A run (id prefix), a notebook's epochs (``NB.ipynb``) or ``everything`` as text in
    ``format``: ``json`` (lossless, for ``trellis.import_runs`` in another store), ``prov-json``,
    ``prov-n``, ``prov-xml`` (W3C PROV), ``turtle``, ``trig``, ``json-ld`` (PROV-O with P-Plan
    and REPRODUCE-ME) or ``html`` (a page of the graph); see docs/export.md."""
    from trellis.exporting import serialize
    from trellis.queries.provenance import provenance
    from trellis.queries.runs import select_runs
    from trellis.sharing.json_export import export_text

    if format not in EXPORT_FORMATS:
        raise TrellisError(f"unknown export format {format!r}; use one of {', '.join(EXPORT_FORMATS)}")
    with _reading() as store:
        run_ids = select_runs(store, target, everything)
        if format == "json":
            return export_text(store, run_ids, with_objects=objects)
        data = provenance(store, run_ids)
        if format == "html" and target is not None and target.endswith(".ipynb"):
            from trellis.queries.notebook_graph import notebook_graph

            # a notebook's page is its own view, as the dashboard and the widget draw it
            data["notebook_graph"] = notebook_graph(store, target, inline_outputs=True)
    return serialize(data, format)


def sparql(query: str, bindings: dict[str, str] | None = None,
           target: str | None = None) -> list[dict[str, Any]]:
    """Rows of a SPARQL SELECT over the provenance (PROV-O, P-Plan, REPRODUCE-ME) of ``target``
    (a run id prefix or a notebook; default: every run). ``query`` is SPARQL text or the name
    of an example in docs/export.md; ``bindings`` give string values to its variables."""
    from trellis.exporting.rdf import sparql as select

    with _reading() as store:
        return select(store, query, bindings, target)


def widget(notebook: str | None = None) -> Any:
    """The provenance graph of this notebook (or of ``notebook``), drawn in the notebook and
    redrawn after every cell execution. Needs ``pip install 'trellis[ui]'``."""
    from trellis.ui.widget import widget as show

    return show(notebook)


def import_runs(path: Any) -> dict[str, int]:
    """Load a JSON export (or the runs of another SQLite store, such as a recovery file, a
    notebook's embedded history, a FlorDB project's ``.flor/`` folder, or an MLflow tracking store:
    an ``mlruns/`` folder or ``sqlite:///mlflow.db``) into this project's store, all or nothing; runs already
    here are skipped. What comes in is checked whole first; a file that is not what it claims is
    refused with one line."""
    from trellis.sharing.importing import import_path

    return import_path(path)


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

    with _reading() as store:
        states = load(store, run, iteration, into, trusted)
        source = resolve(store, run)["uuid"]
    _note_input([source], "checkpoint", ",".join(states))
    return states


def openlineage(run: str = "latest", url: str | None = None, file: str | None = None) -> list[dict[str, Any]]:
    """Send a recorded run's OpenLineage events (START, then COMPLETE, FAIL or ABORT once it
    has ended) to the HTTP endpoint ``url``, or append them to ``file`` as JSON lines, or else
    where ``TRELLIS_OPENLINEAGE_URL`` or the OpenLineage client's own settings say. Returns the
    events sent, as dicts."""
    from trellis.exporting.openlineage import send_run
    from trellis.queries.runs import resolve

    with _reading() as store:
        return send_run(store, resolve(store, run)["id"], url=url, file=file)


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


def _send_lineage_when_configured() -> None:
    """Every run sends OpenLineage events once they are configured; the client is imported
    only then (it takes most of a second)."""
    from trellis import _config

    if _config.openlineage_configured():
        from trellis.capture.run import observers
        from trellis.exporting.openlineage import LiveSender

        if not any(isinstance(observer, LiveSender) for observer in observers):
            observers.append(LiveSender())


_send_lineage_when_configured()


def _replay_a_segment_when_asked() -> None:
    """A process started to replay a segment of a past run (``TRELLIS_REPLAY``) records no run
    of its own: the segment stands in for it."""
    from trellis import _config

    if _config.replay_spec():
        from trellis.capture import run
        from trellis.replaying import segment

        run.stand_in = segment.start


_replay_a_segment_when_asked()

if _imported_by_main_script():
    from trellis.capture.run import begin as _begin

    _begin()
