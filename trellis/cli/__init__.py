"""``trellis``: a thin command line over the library; every command calls one public function."""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import click

import trellis
from trellis._errors import TrellisError
from trellis._version import __version__
from trellis.cli import rendering


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[_short(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def _short(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _print_frame(frame: Any, as_csv: bool, as_json: bool) -> None:
    if as_csv:
        click.echo(frame.to_csv(index=False), nl=False)
    elif as_json:
        click.echo(frame.to_json(orient="records", date_format="iso", default_handler=str))
    else:
        import pandas

        frame = frame.copy()
        for column in frame.columns:
            if isinstance(frame[column].dtype, pandas.DatetimeTZDtype):
                frame[column] = frame[column].dt.tz_convert(None).dt.strftime("%Y-%m-%d %H:%M:%S")
        with pandas.option_context("display.max_rows", 200, "display.width", 200):
            click.echo(frame.to_string(index=False) if len(frame) else "(no rows)")


def _one_line_errors(command: Callable) -> Callable:
    """A user's mistake ends the command with one line, not a traceback."""

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TrellisError as error:
            raise click.ClickException(str(error)) from None

    run.__name__ = command.__name__
    run.__doc__ = command.__doc__
    return run


@click.group()
@click.version_option(__version__, prog_name="trellis")
def cli() -> None:
    """Context and provenance of ML runs, read from this project's store."""


@cli.command()
@click.option("--limit", type=int, default=50, show_default=True, help="Newest runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_one_line_errors
def runs(limit: int, as_json: bool) -> None:
    """A table of runs, newest first."""
    found = trellis.runs(limit)
    if as_json:
        click.echo(json.dumps(found, indent=2, default=str))
        return
    for row in found:
        row["id"] = row["run_id"][:8]
    click.echo(
        _table(found, ["id", "filename", "status", "started", "duration", "target", "params"])
        if found else "no runs yet"
    )


@cli.command()
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_one_line_errors
def show(run: str, as_json: bool) -> None:
    """Everything captured for RUN (an id prefix, or 'latest')."""
    described = trellis.show(run)
    if as_json:
        click.echo(json.dumps(described, indent=2, default=str))
        return
    for key, value in described.items():
        if key in ("environment", "stdout", "stderr"):
            continue
        shown = json.dumps(value, default=str) if isinstance(value, (dict, list)) else value
        click.echo(f"{key}: {shown}")
    environment = described["environment"] or {}
    packages = environment.get("packages") or {}
    click.echo(f"environment: python {environment.get('python_version', '?')},"
               f" {len(packages)} packages")
    for stream in ("stdout", "stderr"):
        if described[stream]:
            click.echo(f"--- {stream} ---\n{described[stream].rstrip()}")


@cli.command()
@click.argument("names", nargs=-1)
@click.option("--run", "run_refs", multiple=True, help="Only this run (repeatable).")
@click.option("--latest", is_flag=True, help="Only the newest run of each script.")
@click.option("--broadcast", is_flag=True,
              help="Put the run's params and outer loops' values on every row inside them (FlorDB's pivot).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
@_one_line_errors
def dataframe(names: tuple[str, ...], run_refs: tuple[str, ...], latest: bool, broadcast: bool,
              as_csv: bool, as_json: bool) -> None:
    """Logged NAMES (or params), a row per loop coordinate (no names: a row per run with its params)."""
    frame = trellis.dataframe(*names, runs=list(run_refs) or None, latest=latest, broadcast=broadcast)
    _print_frame(frame, as_csv, as_json)


@cli.command()
@click.argument("sql")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
@_one_line_errors
def query(sql: str, as_csv: bool, as_json: bool) -> None:
    """Read-only SQL over the store (tables: runs, params, logs, iterations, checkpoints, environments)."""
    _print_frame(trellis.query(sql), as_csv, as_json)


@cli.command()
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_one_line_errors
def checkpoints(run: str, as_json: bool) -> None:
    """The checkpoints of RUN."""
    found = trellis.checkpoints(run)
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        click.echo(
            _table(found, ["loop", "iteration", "name", "format", "size", "seconds", "object"])
            if found else "no checkpoints"
        )


@cli.command()
@click.argument("target")
@click.option("--downstream", is_flag=True, help="What was derived from TARGET instead.")
@click.option("--json", "as_json", is_flag=True, help="Print the graph as JSON.")
@_one_line_errors
def lineage(target: str, downstream: bool, as_json: bool) -> None:
    """What TARGET (a file path, or run:<id>) was derived from: runs, data files, params."""
    graph = trellis.lineage(target, downstream=downstream, group=not as_json and not downstream)
    click.echo(json.dumps(graph, indent=2, default=str) if as_json else rendering.lineage(graph, downstream))


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_one_line_errors
def status(paths: tuple[str, ...], as_json: bool) -> None:
    """Whether each recorded output (or PATHs) is up to date, why not, and what to run again;
    exit status 1 when something is stale."""
    result = trellis.status(list(paths))
    click.echo(json.dumps(result, indent=2) if as_json else rendering.status(result))
    if result["stale"]:
        raise SystemExit(1)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("path", type=click.Path(path_type=__import__("pathlib").Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--output", type=click.Path(path_type=__import__("pathlib").Path),
              help="Write the executed notebook here (the input is never changed).")
@click.option("--timeout", type=int, default=600, show_default=True, help="Seconds per cell.")
@_one_line_errors
def run(path, args: tuple[str, ...], output, timeout: int) -> None:
    """Run a notebook (.ipynb) or a script under capture, unchanged: trellis run PATH [ARGS]."""
    from trellis.capture.runner import run_notebook, run_script

    if path.suffix == ".ipynb":
        if args:
            raise TrellisError(
                f"a notebook takes no arguments; put options before it: trellis run --output OUT {path}"
            )
        result = run_notebook(path, output=output, timeout=timeout)
        click.echo(f"{result['cells']} cells executed, {result['failed']} failed")
        if result["failed"]:
            raise SystemExit(1)
    else:
        run_script(path, list(args))


@cli.group()
def kernel() -> None:
    """The Jupyter kernel that records every notebook session."""


@kernel.command("install")
@click.option("--sys-prefix", is_flag=True, help="Install into this environment, not the user's.")
@_one_line_errors
def kernel_install(sys_prefix: bool) -> None:
    """Install the "Python 3 (trellis)" kernel: each start or restart is a recorded epoch."""
    from trellis.capture.runner import install_kernel

    click.echo(f"installed {install_kernel(user=not sys_prefix)}")


@cli.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as data.")
@_one_line_errors
def diff_command(a: str, b: str, as_json: bool) -> None:
    """What changed from A to B: two runs/epochs (id prefixes), or two executions (EPOCH/N)."""
    result = trellis.diff(a, b)
    click.echo(json.dumps(result, indent=2, default=str) if as_json else rendering.diff(result))


@cli.command("reproduce")
@click.argument("run")
@click.option("--tolerance", type=float, default=0.0, show_default=True,
              help="Relative and absolute tolerance for comparing floats.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as data.")
@click.option("--trust", is_flag=True, help="Run it even if it came from someone else's store.")
@_one_line_errors
def reproduce_command(run: str, tolerance: float, as_json: bool, trust: bool) -> None:
    """Run RUN again from its snapshot and compare; exit status 0 only if everything matched."""
    report = trellis.reproduce(run, tolerance, trusted=trust)
    click.echo(json.dumps(report, indent=2, default=str) if as_json else rendering.reproduction(report))
    if not report["matched"]:
        raise SystemExit(1)


@cli.command("replay")
@click.argument("names", nargs=-1, required=True)
@click.option("--file", help="The script holding the new log statements (found by itself if one does).")
@click.option("--run", "runs", multiple=True, help="Replay into this run only (repeatable); default: every run of the script.")
@click.option("--where", help="Iterations to replay: of the checkpointed loop, e.g. 'epoch >= 5' or"
              " 'epoch == last', and with 'and', of inner loops whose values to store, e.g. 'step == last'.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True, help="Processes in parallel.")
@click.option("--executor", help="'process' (default) or dask://host:port for a Dask cluster.")
@click.option("--force", is_flag=True, help="Replay again names replayed before.")
@click.option("--include-failed", is_flag=True, help="Also replay into runs that failed or were interrupted.")
@click.option("--tolerance", type=click.FloatRange(0), default=0.0,
              help="Verify floats within this share of the larger magnitude instead of bit for bit.")
@click.option("--env", "variables", multiple=True, metavar="NAME[=VALUE]",
              help="Set NAME for every segment, to VALUE or to its value here (repeatable): a cluster's"
                   " workers otherwise run segments in their own environment.")
@click.option("--override", "overrides", multiple=True, metavar="NAME=VALUE",
              help="Give the arg NAME this value instead of each run's own (repeatable), e.g. device=cpu;"
                   " values that then differ from what the run logged are not stored.")
@click.option("--show-code", "show_code", metavar="RUN", help="Print the patched source planned for RUN and stop.")
@click.option("--dry-run", is_flag=True, help="Print the plan and stop.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--trust", is_flag=True,
              help="Also replay runs pulled or imported from someone else's store (runs their command"
                   " lines, loads their checkpoints).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (exit 1 when a segment failed).")
@_one_line_errors
def replay_command(names: tuple[str, ...], file: str | None, runs: tuple[str, ...], where: str | None,
                   workers: int, executor: str | None, force: bool, include_failed: bool, tolerance: float,
                   variables: tuple[str, ...], overrides: tuple[str, ...], show_code: str | None, dry_run: bool,
                   yes: bool, trust: bool, as_json: bool) -> None:
    """Hindsight logging: replay NAMES, newly logged in today's script, into its past runs."""
    options = dict(file=file, runs=runs or None, where=where, workers=workers, force=force,
                   include_failed=include_failed, trusted=trust, overrides=_overrides(overrides))
    if show_code or dry_run:
        planned = trellis.replay(*names, dry_run=True, **options)
        if dry_run:
            click.echo(json.dumps(planned["plan"], indent=2) if as_json else planned["description"])
            return
        click.echo(_planned_code(planned, show_code), nl=False)
        return

    def confirm(description: str) -> bool:
        if not as_json:
            click.echo(description)
        return yes or click.confirm("Replay?", default=True)

    report = trellis.replay(*names, executor=executor, progress=not as_json, env=_variables(variables),
                            tolerance=tolerance, confirm=confirm, **options)
    if report.get("cancelled"):
        raise SystemExit(1)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        click.echo(rendering.replay_report(report))
    if any(run["failed"] or run["status"] == "inexact" for run in report["runs"]):
        raise SystemExit(1)


def _planned_code(planned: dict[str, Any], ref: str) -> str:
    wanted = trellis.runs(1)[0]["run_id"] if ref == "latest" and trellis.runs(1) else ref
    chosen = [run for run in planned["plan"]["runs"] if run["uuid"].startswith(wanted)]
    if len(chosen) != 1:
        raise TrellisError(f"no patched code for run {ref}: it is not a run of {planned['plan']['file']}"
                           if not chosen else f"{ref!r} names several runs; give more of the id")
    if chosen[0]["uuid"] not in planned["patched"]:
        reason = chosen[0]["reason"] or "nothing to replay"
        raise TrellisError(f"no patched code for run {chosen[0]['uuid'][:8]}: {reason}")
    return planned["patched"][chosen[0]["uuid"]]


def _overrides(given: tuple[str, ...]) -> dict[str, str]:
    """``--override NAME=VALUE`` options as a mapping."""
    overrides = {}
    for text in given:
        name, equals, value = text.partition("=")
        if not equals or not name:
            raise TrellisError(f"--override expects NAME=VALUE, like device=cpu; got {text!r}")
        overrides[name] = value
    return overrides


def _variables(given: tuple[str, ...]) -> dict[str, str]:
    """``--env`` options as variables: ``NAME=VALUE``, or ``NAME`` with its value here."""
    variables = {}
    for item in given:
        name, sep, value = item.partition("=")
        if not name:
            raise TrellisError(f"--env {item}: give NAME or NAME=VALUE")
        if not sep:
            if name not in os.environ:
                raise TrellisError(f"--env {name}: {name} is not set here; give {name}=VALUE")
            value = os.environ[name]
        variables[name] = value
    return variables


EXPORT_FORMATS = list(trellis.EXPORT_FORMATS)


@cli.command("export")
@click.argument("target", required=False)
@click.option("--all", "everything", is_flag=True, help="Every run in the store.")
@click.option("--format", "format_", type=click.Choice(EXPORT_FORMATS), default="json", show_default=True,
              help="The format: the lossless JSON export, or a provenance standard (PROV, RDF, HTML).")
@click.option("-o", "--output", type=click.Path(path_type=__import__("pathlib").Path),
              help="Write here instead of standard output.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("--no-objects", is_flag=True, help="JSON: leave checkpoints and outputs out.")
@_one_line_errors
def export_command(target: str | None, everything: bool, format_: str, output: Any, force: bool,
                   no_objects: bool) -> None:
    """Export a run (id prefix), a notebook's epochs (NB.ipynb) or --all, in FORMAT."""
    if output is not None and output.exists() and not force:
        raise TrellisError(f"{output} exists; add --force to overwrite it")
    text = trellis.export(target, everything=everything, format=format_, objects=not no_objects)
    if output is None:
        click.echo(text)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}", err=True)


@cli.command("openlineage")
@click.argument("run", default="latest")
@click.option("--url", help="The OpenLineage HTTP endpoint (a server such as Marquez, or its full /api/v1/lineage URL).")
@click.option("--file", "file_", type=click.Path(dir_okay=False),
              help="Append the events to this file as JSON lines instead.")
@_one_line_errors
def openlineage_command(run: str, url: str | None, file_: str | None) -> None:
    """Send RUN's (id prefix, default latest) OpenLineage events: START and COMPLETE/FAIL/ABORT.
    Without --url or --file: TRELLIS_OPENLINEAGE_URL, else the OpenLineage client's own settings."""
    if url and file_:
        raise TrellisError("give --url or --file, not both")
    sent = trellis.openlineage(run, url=url, file=file_)
    for event in sent:
        click.echo(f"{event['eventType']} {event['run']['runId']} {event['job']['name']}"
                   f" ({len(event.get('inputs', []))} inputs, {len(event.get('outputs', []))} outputs)")


@cli.command("sparql")
@click.argument("query")
@click.option("--bind", "bindings", multiple=True, metavar="NAME=VALUE",
              help="A string value for ?NAME in the query (repeatable).")
@click.option("--run", "target", help="Only this run id prefix or notebook (default: every run).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@_one_line_errors
def sparql_command(query: str, bindings: tuple[str, ...], target: str | None, as_json: bool) -> None:
    """SPARQL SELECT over the provenance (PROV-O, P-Plan, REPRODUCE-ME): QUERY is the text,
    @FILE, or an example: dataset-of-model, cells-of-epoch, libraries-of-output, runs-using-file."""
    from pathlib import Path

    if query.startswith("@"):
        try:
            query = Path(query[1:]).read_text(encoding="utf-8")
        except OSError as error:
            raise TrellisError(f"cannot read the query file {query[1:]}: {error.strerror}") from None
    values = {}
    for binding in bindings:
        name, equals, value = binding.partition("=")
        if not equals or not name:
            raise TrellisError(f"--bind takes NAME=VALUE, not {binding!r}")
        values[name.lstrip("?")] = value
    rows = trellis.sparql(query, values, target)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    else:
        columns = list(dict.fromkeys(name for row in rows for name in row))
        click.echo(_table(rows, columns) if rows else "(no rows)")


@cli.command("import")
@click.argument("path")
@_one_line_errors
def import_command(path: str) -> None:
    """Load into this project's store a JSON export (from `trellis export --format json`), another
    store's .db file, a notebook's embedded history, a FlorDB project's .flor/ folder, or an MLflow
    tracking store (an mlruns/ folder, an mlflow.db file or its sqlite:/// URI)."""
    counts = trellis.import_runs(path)
    replays = f", {counts['replays']} replays into them added" if counts["replays"] else ""
    click.echo(f"imported {counts['imported']} runs ({counts['skipped']} already here{replays})")


def _synced(counts: dict[str, Any], verb: str) -> str:
    line = f"{verb} {counts['copied']} runs, {counts['objects']} objects ({counts['store']})"
    extra = [f"{counts['merged']} completed", f"{counts['replays']} replays into runs already there",
             f"{counts['skipped']} already there",
             f"{counts['running']} still running, left for later"]
    return line + "; " + ", ".join(e for e in extra if not e.startswith("0 "))


@cli.command("push")
@click.argument("store", required=False)
@click.option("--objects", help="Where the shared store keeps objects (a folder or s3://bucket/prefix).")
@_one_line_errors
def push_command(store: str | None, objects: str | None) -> None:
    """Copy this project's runs that the shared STORE lacks, with their objects."""
    click.echo(_synced(trellis.push(store, objects), "pushed").rstrip("; "))


@cli.command("pull")
@click.argument("store", required=False)
@click.option("--objects", help="Where the shared store keeps objects (a folder or s3://bucket/prefix).")
@click.option("--run", "run_refs", multiple=True, help="Only this run (id prefix; repeatable).")
@click.option("--all", "everything", is_flag=True, help="Every run, not only this project's.")
@_one_line_errors
def pull_command(store: str | None, objects: str | None, run_refs: tuple[str, ...], everything: bool) -> None:
    """Copy runs of the shared STORE (by default this project's) into the project's own store."""
    click.echo(_synced(trellis.pull(store, objects, run_refs, everything), "pulled").rstrip("; "))


@cli.command("config")
@click.argument("name", required=False, type=click.Choice(["store", "objects"]))
@click.argument("value", required=False)
@click.option("--unset", is_flag=True, help="Remove the setting.")
@_one_line_errors
def config_command(name: str | None, value: str | None, unset: bool) -> None:
    """Show this project's settings, or set NAME (store, objects) to VALUE."""
    from trellis.store import settings
    from trellis.store.connection import project_root

    root = project_root()
    if name is None:
        current = settings.read(root)
        for key, meaning in settings.NAMES.items():
            click.echo(f"{key}: {current.get(key, '(not set)')}  # {meaning}")
        return
    if value is None and not unset:
        click.echo(settings.read(root).get(name, "(not set)"))
        return
    settings.write(root, name, None if unset else value)
    click.echo(f"{name}: {'(not set)' if unset else value}")


@cli.group()
def notebook() -> None:
    """A notebook's recorded history: show it, embed it in the notebook, import it."""


@notebook.command("show")
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print the history as data.")
@_one_line_errors
def notebook_show(path: str, as_json: bool) -> None:
    """Epochs and executions of PATH: names defined and used, files, dependencies, and which
    executions are stale (a file or variable they used changed since, or their cell did)."""
    if as_json:  # the history as recorded; staleness is about this working copy
        click.echo(json.dumps(trellis.notebook_history(path), indent=2, default=str))
    else:
        click.echo(rendering.notebook_history(trellis.notebook_history(path, stale=True)))


@notebook.command("embed")
@click.argument("path")
@_one_line_errors
def notebook_embed(path: str) -> None:
    """Write PATH's provenance into its metadata (cells and outputs are left as they are)."""
    counts = trellis.embed_notebook(path)
    click.echo(f"embedded {counts['epochs']} epochs, {counts['executions']} executions into {path}")


@notebook.command("import")
@click.argument("path")
@_one_line_errors
def notebook_import(path: str) -> None:
    """Load the provenance embedded in PATH into this project's store."""
    if not path.endswith(".ipynb"):
        raise TrellisError(f"{path} is not a notebook (.ipynb); `trellis import` takes exports and stores")
    counts = trellis.import_runs(path)
    click.echo(f"imported {counts['imported']} epochs ({counts['skipped']} already here)")


@cli.command("forget")
@click.argument("targets", nargs=-1, required=True)
@click.option("--export", "export_to", type=click.Path(path_type=__import__("pathlib").Path),
              help="Write the runs as a JSON export (for `trellis import`) here first.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask: forget (exporting only with --export).")
@_one_line_errors
def forget_command(targets: tuple[str, ...], export_to: Any, yes: bool) -> None:
    """Remove a notebook's history (NB.ipynb) or runs (id prefixes) from the store, after
    offering to export them."""
    from datetime import datetime
    from pathlib import Path

    counts = trellis.forget(*targets, dry_run=True)
    click.echo(f"this forgets {counts['runs']} runs and their {counts['executions']} executions"
               f" ({', '.join(targets)})")
    if export_to is None and not yes and click.confirm("Export them first?", default=True):
        export_to = Path(click.prompt("Export to", default=f"trellis-forgotten-{datetime.now():%Y%m%d-%H%M%S}.json"))
    if export_to is not None and export_to.exists():
        raise TrellisError(f"{export_to} exists; nothing was forgotten: give another file")
    if not yes and not click.confirm(f"Forget {counts['runs']} runs?", default=False):
        raise TrellisError("nothing was forgotten")
    counts = trellis.forget(*targets, export_to=export_to)
    if export_to is not None:
        click.echo(f"exported to {export_to} (bring them back with `trellis import {export_to}`)")
    click.echo(f"forgot {counts['runs']} runs, {counts['executions']} executions")


@cli.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; any other than loopback needs the printed token.")
@click.option("--port", type=int, default=8770, show_default=True, help="Port (0: any free one).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@_one_line_errors
def ui_command(host: str, port: int, no_browser: bool) -> None:
    """A read-only dashboard of this project's runs, notebooks, lineage and diffs."""
    from trellis.ui.server import serve

    serve(host, port, open_browser=not no_browser, announce=click.echo)


def main() -> None:
    cli(prog_name="trellis")

