"""Notebook capture: every cell execution of an IPython kernel, as a step of the kernel's run.

A kernel session is one run of kind ``notebook`` (an *epoch*): loading the extension in every
kernel (``trellis kernel install``) makes each start or restart a new epoch by construction.
For each execution the ``pre_run_cell``/``post_run_cell`` events give the cell id, source and
result; stdout/stderr come from the run's tee, outputs from the display publisher, files from
the audit hook. Static analysis says which names the cell defined, used and mutated, which gives
the dependencies on earlier executions and the variable versions whose summaries are recorded.

A variable dependency links executions of one epoch only: a new kernel starts with an empty
namespace, so nothing a cell reads can come from an earlier kernel. Files outlive kernels, so a
file read links to its last writer in any run.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.metadata
import json
import os
import queue
import sys
import threading
import time
import traceback
import types
from pathlib import Path
from typing import Any, Callable

from trellis import _config
from trellis.capture import run as _runs
from trellis.capture.environment import module_distributions, user_cache
from trellis.capture.mutation import MutationWatch
from trellis.capture.variables import summarize
from trellis.store import objects
from trellis.store.paths import recorded_path

_PREVIEW = 200
_MAX_OUTPUT_BYTES = 8 << 20
# seconds: a cell this long is scanned for files other programs wrote, whether or not it
# started one (a C library writes without ``open``)
LONG_CELL = 1.0


def notebook_path(shell: Any) -> str | None:
    """Where the kernel's notebook is: the runner's setting, Jupyter's session, or VS Code's."""
    for candidate in (
        _config.notebook_path(),
        os.environ.get("JPY_SESSION_NAME"),
        shell.user_ns.get("__vsc_ipynb_file__"),
    ):
        if candidate:
            return str(candidate)
    return None


_MAX_NOTEBOOKS_LOOKED_AT = 200


def notebook_running(source: str, cwd: str | None = None) -> str | None:
    """The notebook file that holds the cell ``source``, for a frontend that names none to the
    kernel (``jupyter nbconvert --execute``, nbclient): among the notebooks the parent process
    was given and those in the kernel's folder (where nbclient starts it), the only one with a
    code cell of exactly this source; None when there is no such single one."""
    folder = Path(cwd or os.getcwd())
    named = _notebooks_named_by_parent()
    candidates = list(dict.fromkeys([*named, *sorted(folder.glob("*.ipynb"))[:_MAX_NOTEBOOKS_LOOKED_AT]]))
    holding = [path for path in candidates if source in _code_cells(path)]
    given = [path for path in holding if path in named]
    found = given if given else holding
    return str(found[0]) if len(found) == 1 else None


def _notebooks_named_by_parent() -> list[Path]:
    """The .ipynb arguments of the process that started this kernel (Linux's /proc only)."""
    parent = Path("/proc") / str(os.getppid())
    try:
        arguments = (parent / "cmdline").read_bytes().split(b"\0")
        where = Path(os.readlink(parent / "cwd"))
    except OSError:
        return []
    found = []
    for argument in arguments:
        text = argument.decode("utf-8", "replace")
        if text.endswith(".ipynb"):
            path = (where / text).resolve()
            if path.is_file():
                found.append(path)
    return found


def _code_cells(path: Path) -> list[str]:
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return []
    sources = []
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            sources.append("".join(source) if isinstance(source, list) else str(source))
    return sources


class _Background:
    """Capture work no cell should wait for, done in order on a thread of trellis's own."""

    def __init__(self, run: "_runs.Run") -> None:
        self.run = run
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._work, name="trellis-notebook", daemon=True)
        self.thread.start()

    def submit(self, what: str, job: Callable[[], None]) -> None:
        self.jobs.put((what, job))

    def _work(self) -> None:
        if self.run.files is not None:
            self.run.files.quiet(threading.current_thread())  # reading package metadata is no data
        while (item := self.jobs.get()) is not None:
            what, job = item
            try:
                job()
            except Exception as error:
                self.run.problem(what, error)

    def finish(self) -> None:
        """Let the queued jobs end before the run's last flush writes what they found."""
        self.jobs.put(None)
        self.thread.join(60)


class NotebookCapture:
    """Turns IPython's cell events into step records of the current run."""

    def __init__(self, shell: Any, run: "_runs.Run") -> None:
        self.shell = shell
        self.run = run
        self.notebook = notebook_path(shell)
        self.looked_for_the_file = False  # in the notebooks near the kernel, once
        self.current: dict[str, Any] | None = None
        self.outputs: list[dict[str, Any]] = []
        self.modules_recorded: set[str] = set()  # top-level modules the user's code imported
        self.distributions: dict[str, list[str]] | None = None
        self.definers: dict[str, int] = {}  # name -> step of this epoch that made its latest version
        self.namespace_before: dict[str, int] = {}  # name -> id() of its value when the cell began
        self.writers: dict[str, int] = {}  # path -> step that last wrote it
        self.mutations = MutationWatch()  # objects changed without being named
        # Mapping modules to distributions reads every installed distribution's file list (140 ms
        # and more) and importing the cell analysis takes 20-40 ms: done here, while the kernel
        # waits for its first cell, no cell waits for them.
        self.background = _Background(run)
        self.background.submit("the cell analysis", _load_analysis)
        self.background.submit("imported modules", self._load_distributions)

    # -- events -----------------------------------------------------------------------------

    def pre_run_cell(self, info: Any) -> None:
        try:
            self._begin(info)
        except Exception as error:
            self.run.problem("a cell's start", error)

    def post_run_cell(self, result: Any) -> None:
        try:
            self._end(result)
        except Exception as error:
            self.run.problem("a cell's result", error)
        finally:
            self.current = None
            _runs.set_step(0)
            self.run.flush_soon()

    def shutdown(self) -> None:
        """The frontend shuts the kernel down: the epoch ends now, while the kernel is whole,
        not in the SIGTERM that a kernel manager sends when the exit is slow (joblib's worker
        processes take seconds to stop), which would record it as interrupted."""
        try:
            self.background.finish()
            self.run.finish()
        except Exception as error:
            self.run.problem("the end of the session", error)

    # -- recording --------------------------------------------------------------------------

    def _begin(self, info: Any) -> None:
        source = info.raw_cell or ""
        if self.notebook is None:
            self._find_notebook(source)
        digest = hashlib.sha256(source.encode("utf-8", "replace")).hexdigest()
        number = self.run.next_step()
        self.current = {
            "number": number,
            "kind": "cell",
            "notebook": self.notebook,
            "cell_id": getattr(info, "cell_id", None) or f"sha256:{digest[:16]}",
            "execution_count": None,
            "source": source,
            "source_hash": digest,
            "started": time.time(),
            "ended": None,
            "status": "running",
            "error": None,
            "outputs": None,
            "analysis": None,
        }
        self.outputs = []
        self.namespace_before = {name: id(value) for name, value in self.shell.user_ns.items()}
        if not self.mutations.known:
            try:
                self.mutations.look(self.shell.user_ns)
            except Exception as error:
                self.run.problem("the state of the namespace", error)
        self.run.steps.append(self.current)
        _runs.set_step(number)
        if self.run.out is not None:
            self.run.out.start_cell()
        if self.run.err is not None:
            self.run.err.start_cell()
        # written as running at once, so a kernel killed mid-cell still shows what it was doing
        self.run.flush_soon(consistent=False)

    def _end(self, result: Any) -> None:
        step = self.current
        if step is None:
            return
        # Everything is gathered first and published in one dict update, status included: the
        # recorder may write this step at any moment, and must see it whole or still running.
        ended = {"ended": time.time(), "execution_count": getattr(result, "execution_count", None)}
        error = result.error_before_exec or result.error_in_exec
        if error is None:
            status = "ok"
        else:
            status = "interrupted" if isinstance(error, KeyboardInterrupt) else "error"
            ended["error"] = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        if result.result is not None:
            self._output("execute_result", result.result)
        ended["outputs"] = json.dumps(self.outputs)
        ended["stdout"] = self.run.out.end_cell() if self.run.out is not None else None
        ended["stderr"] = self.run.err.end_cell() if self.run.err is not None else None
        from trellis.analysis.cells import analyze_cell

        analysis = analyze_cell(step["source"])
        try:
            self._record_modules(step["number"], analysis)
        except Exception as error:
            self.run.problem("imported modules", error)
        try:
            self._find_written_after(step, ended["ended"])
        except Exception as error:
            self.run.problem("files written by other programs", error)
        try:
            if self.run.files is not None:
                self.run.files.settle(step["number"])
        except Exception as error:
            self.run.problem("hashing the files a cell wrote", error)
        ended["analysis"] = self._analyze(step, analysis, status)
        ended["status"] = status
        step.update(ended)

    def _find_written_after(self, step: dict[str, Any], ended: float) -> None:
        """A cell that started another program (``!cmd``, ``subprocess``), or ran long enough for
        a scan of the project to cost little beside it, gets the files changed while it ran."""
        files = self.run.files
        if files is None:
            return
        if files.spawned_in(step["number"]) or ended - step["started"] >= LONG_CELL:
            own = (os.path.abspath(self.notebook),) if self.notebook else ()
            files.find_written_after(step["number"], step["started"], exclude=own)

    def _output(self, kind: str, value: Any) -> None:
        """A mime bundle of a result or display, content-addressed; the step keeps references."""
        if kind == "execute_result":
            bundle, _ = self.shell.display_formatter.format(value)
        else:
            bundle = value
        self.run.registered.wait(60)
        if self.run.store is None:
            return
        entry: dict[str, Any] = {"output_type": kind, "data": {}}
        for mime, content in bundle.items():
            raw = content if isinstance(content, (bytes, bytearray)) else (
                content if isinstance(content, str) else json.dumps(content)
            ).encode("utf-8", "replace")
            if len(raw) > _MAX_OUTPUT_BYTES:
                entry["data"][mime] = {"size": len(raw), "object": None}
                continue
            digest, size = objects.put(self.run.store.objects, [raw])
            entry["data"][mime] = {"size": size, "object": digest}
            if mime == "text/plain":
                entry["preview"] = raw[:_PREVIEW].decode("utf-8", "replace")
        self.outputs.append(entry)

    def display_published(self, data: dict[str, Any]) -> None:
        if self.current is not None:
            try:
                self._output("display_data", data)
            except Exception as error:
                self.run.problem("a cell's display output", error)

    def _analyze(self, step: dict[str, Any], analysis: Any, status: str) -> str:
        found = analysis.to_dict()
        number = step["number"]
        me = self.run.global_step(number)  # definers and writers hold store-wide step ids
        dependencies = []
        # A mutation of a name the cell did not bind first is in "used" already; one of a name it
        # bound (`m = Model(); m.fit(X)`) reads only the cell's own new value. A function body
        # reads its globals when called: not where it is defined, but in the cell calling it.
        deferred = set(analysis.deferred_used)
        read_now = [name for name in analysis.used if name not in deferred]
        try:
            called_reads, called_changes = self._called_code(read_now)
        except Exception as error:
            self.run.problem("the code a cell called", error)
            called_reads, called_changes = [], []
        for name in dict.fromkeys([*read_now, *analysis.builtins_used, *called_reads]):
            earlier = self.definers.get(name)
            if earlier is not None and earlier != me:
                dependencies.append((earlier, name, "variable"))
        for path in self.run.files.paths_read_in(number) if self.run.files else ():
            writer = self.writers.get(path)
            if writer is None:
                writer = self.run.earlier_writer(path)
            if writer is not None and writer != me:
                dependencies.append((writer, path, "file"))
        rebound = self._rebound()
        if status == "ok":
            # what the source binds for certain, what it may bind and did, what it changed, and
            # what code it called rebound (a function's `global`, a star import)
            maybe = set(analysis.maybe_defined)
            certain = [name for name in analysis.defined if name not in maybe or name in rebound]
            changed = list(dict.fromkeys([*certain, *analysis.mutated, *called_changes, *rebound]))
        else:  # what a failed execution bound before its error
            changed = list(rebound)
        try:
            # what the cell changed through another object (`pipe.fit` fits the estimators
            # bound to other names; `optimizer.step()` changes the model)
            unnamed = [name for name in self.mutations.look(self.shell.user_ns) if name not in changed]
        except Exception as error:
            self.run.problem("the state of the namespace", error)
            unnamed = []
        for name in unnamed:
            earlier = self.definers.get(name)
            if earlier is not None and earlier != me and (earlier, name, "variable") not in dependencies:
                dependencies.append((earlier, name, "variable"))
        changed += unnamed
        if unnamed:
            found["changed_at_run_time"] = unnamed
        for name in changed:
            self.definers[name] = me
        for name in self._deleted():
            self.definers.pop(name, None)
        if status == "ok":
            variables = []
            for name in changed:
                if name in self.shell.user_ns:
                    summary = summarize(self.shell.user_ns[name])
                    variables.append((name, summary.pop("type"), json.dumps(summary, default=str),
                                      summary.get("fingerprint")))
            self.run.variables.extend((number, *v) for v in variables)
        for path in self.run.files.paths_written_in(number) if self.run.files else ():
            self.writers[path] = me
        self.run.dependencies.extend((number, *d) for d in dependencies)
        return json.dumps(found)

    def _called_code(self, names: list[str]) -> tuple[list[str], list[str]]:
        """(globals read, globals changed) by the notebook's own functions, classes and their
        instances among ``names``, and by the notebook's functions those call in turn."""
        namespace = self.shell.user_ns
        reads: dict[str, None] = {}
        changes: dict[str, None] = {}
        seen: set[int] = set()
        pending = list(names)
        while pending:
            value = namespace.get(pending.pop())
            for function in self._own_functions(value):
                if id(function.__code__) in seen:
                    continue
                seen.add(id(function.__code__))
                global_names, mutated = self._function_globals(function)
                for name in global_names:
                    if name in namespace and name not in reads:
                        reads[name] = None
                        pending.append(name)
                changes.update(dict.fromkeys(mutated))
        return list(reads), list(changes)

    def _own_functions(self, value: Any) -> list[Any]:
        namespace = self.shell.user_ns
        if isinstance(value, types.FunctionType):
            return [value] if value.__globals__ is namespace else []
        # calling a class runs its constructor; an instance may run any of its methods
        cls, wanted = (value, ("__new__", "__init__")) if isinstance(value, type) else (type(value), None)
        if cls.__module__ != "__main__":
            return []
        return [v for k, v in vars(cls).items() if (wanted is None or k in wanted)
                and isinstance(v, types.FunctionType) and v.__globals__ is namespace]

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one capture per kernel
    def _function_globals(self, function: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The global names a function (nested code included) refers to, and those its body
        changes (`log.append(m)`), from its source as the cell analysis reads a cell."""
        names: dict[str, None] = {}
        codes = [function.__code__]
        while codes:
            code = codes.pop()
            names.update(dict.fromkeys(code.co_names))
            codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        global_names = tuple(n for n in names if n not in function.__code__.co_varnames)
        mutated: tuple[str, ...] = ()
        try:
            import ast
            import inspect
            import textwrap

            from trellis.analysis.cells import analyze_cell

            tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
            definition = tree.body[0]
            if isinstance(definition, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = analyze_cell("\n".join(ast.unparse(statement) for statement in definition.body))
                if body.error is None:  # what it reads, not what it only assigns (`global x`)
                    mutated = tuple(n for n in body.mutated if n in global_names)
                    read = {*body.used, *body.builtins_used}
                    global_names = tuple(n for n in global_names if n in read)
        except (OSError, TypeError, SyntaxError, IndexError):
            pass  # no source (a lambda on a shared line, code made by exec): every name it names
        return global_names, mutated

    def _rebound(self) -> dict[str, None]:
        """Names whose value is another object than when the execution began (a name rebound
        to the very same object is not seen); IPython's own `_`-names left out."""
        before = self.namespace_before
        return {name: None for name, value in list(self.shell.user_ns.items())
                if not name.startswith("_") and before.get(name) != id(value)}

    def _deleted(self) -> list[str]:
        """Names the execution unbound (`del`, an `except ... as` name that shadowed one)."""
        namespace = self.shell.user_ns
        return [name for name in self.namespace_before if name not in namespace]

    def _find_notebook(self, source: str) -> None:
        """VS Code names the notebook only after the kernel (and this extension) started, in a
        silent execution of its own before the first cell; nbconvert and nbclient name it not
        at all, and the file that holds the first cell is looked for."""
        self.notebook = notebook_path(self.shell)
        if self.notebook is None and not self.looked_for_the_file and source.strip():
            self.looked_for_the_file = True
            try:
                self.notebook = notebook_running(source)
            except Exception as error:
                self.run.problem("looking for the notebook file", error)
        if self.notebook is None:
            return
        self.run.filename = self.notebook
        self.background.submit("the notebook's path", self._record_notebook)

    def _record_notebook(self) -> None:
        run = self.run
        run.registered.wait(60)
        if run.run_id is None:
            return
        with run.store.transaction() as store:
            store.execute("UPDATE runs SET filename = ? WHERE id = ?",
                          (recorded_path(self.notebook, store.project), run.run_id))

    def _record_modules(self, number: int, analysis: Any) -> None:
        """The modules this execution's own import statements loaded, the first time in the epoch;
        their versions are looked up off the kernel's thread, and written with the run's next
        flush. Modules loaded on the way (IPython's traceback formatting, a library's own
        imports, trellis's) are not the user's libraries."""
        imported = {record.module.split(".")[0] for record in analysis.imports
                    if record.module and not record.module.startswith(".")}
        new = sorted(m for m in imported - self.modules_recorded if m in sys.modules)
        if new:
            self.modules_recorded.update(new)
            self.background.submit("imported modules", functools.partial(self._versions, number, new))

    def _load_distributions(self) -> None:
        self.distributions = module_distributions(user_cache())

    def _versions(self, number: int, modules: list[str]) -> None:
        if self.distributions is None:  # the first look failed: try again, and say why
            self._load_distributions()
        self.run.modules.extend((number, *m) for m in module_versions(modules, self.distributions))


def _load_analysis() -> None:
    import trellis.analysis.cells  # noqa: F401


def module_versions(
    modules: list[str], distributions: dict[str, list[str]]
) -> list[tuple[str, str | None, str | None]]:
    """(top-level module, distribution, version) of modules, as installed where they run."""
    found = []
    for module in sorted({m.split(".")[0] for m in modules if not m.startswith("_")}):
        names = distributions.get(module) or []
        version = None
        if names:
            try:
                version = importlib.metadata.version(names[0])
            except importlib.metadata.PackageNotFoundError:
                pass
        found.append((module, names[0] if names else None, version))
    return found


def install(shell: Any) -> NotebookCapture | None:
    """Record this kernel as a notebook run (an epoch) and each cell execution as a step."""
    existing = getattr(shell, "_trellis_capture", None)
    if existing is not None:
        return existing
    # `trellis reproduce` runs an epoch again: a run of its own kind, linked to the original
    # (its parent), never another epoch of the notebook
    kind = "reproduction" if _config.parent_run() else "notebook"
    run = _runs.begin(kind=kind, filename=notebook_path(shell))
    if run is None:
        return None
    capture = NotebookCapture(shell, run)
    atexit.register(capture.background.finish)  # registered after the run's: runs before it
    shell.events.register("pre_run_cell", capture.pre_run_cell)
    shell.events.register("post_run_cell", capture.post_run_cell)
    publisher = shell.display_pub
    original = publisher.publish

    def publish(data: dict, *args: Any, **kwargs: Any) -> Any:
        capture.display_published(data)
        return original(data, *args, **kwargs)

    publisher.publish = publish
    kernel = getattr(shell, "kernel", None)
    if kernel is not None and callable(getattr(kernel, "do_shutdown", None)):
        shut_down = kernel.do_shutdown

        def do_shutdown(restart: bool, *args: Any, **kwargs: Any) -> Any:
            capture.shutdown()
            return shut_down(restart, *args, **kwargs)

        kernel.do_shutdown = do_shutdown
    shell._trellis_capture = capture
    return capture


def in_kernel() -> Any:
    """The running IPython shell, if this process is one."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        return ipython.get_ipython()
    except Exception:
        return None
