"""``trellis.widget()``: the notebook's provenance graph inside the notebook (anywidget: the same
bundle as the dashboard), redrawn after every cell execution.

The kernel sends the history as JSON (outputs inline, since there is no server to fetch them
from). Refreshing runs in IPython's ``post_run_cell`` event, after trellis has recorded the cell;
whatever goes wrong there is shown in the widget, never raised into the user's notebook.
"""

from __future__ import annotations

import functools
import threading
import weakref
from contextlib import contextmanager
from typing import Any, Iterator

from trellis._errors import TrellisError


def widget(notebook: str | None = None) -> Any:
    """The provenance graph of ``notebook`` (default: the one this kernel runs), kept current."""
    from trellis.capture.notebook import in_kernel, notebook_path

    shell = in_kernel()
    path = notebook or (notebook_path(shell) if shell is not None else None)
    if not path:
        raise TrellisError("trellis.widget() draws a notebook's history: call it in a notebook, or name one: trellis.widget('analysis.ipynb')")
    with _unrecorded():
        shown = _widget_class()(path=path)
    shown.data = _history(path)  # an unknown notebook is the caller's one-line error
    if shell is not None:
        _refresh_after_each_cell(shell, shown)
    return shown


@functools.cache
def _widget_class() -> type:
    try:
        import anywidget
        import traitlets
    except ImportError:
        raise TrellisError("the notebook widget needs: pip install 'trellis[ui]'") from None
    from trellis.ui.bundle import bundle_text

    class ProvenanceWidget(anywidget.AnyWidget):
        _esm = bundle_text()
        data = traitlets.Unicode("{}").tag(sync=True)
        message = traitlets.Unicode("").tag(sync=True)
        path = traitlets.Unicode("")

        def refresh(self) -> None:
            try:
                self.data = _history(self.path)
                self.message = ""
            except TrellisError as error:
                self.message = str(error)
            except Exception as error:  # a widget must never break the notebook it sits in
                self.message = f"trellis could not read the history: {type(error).__name__}: {error}"

    return ProvenanceWidget


def _history(path: str) -> str:
    """The notebook's graph data as JSON, with this kernel's last cell in it."""
    from trellis.capture.run import current
    from trellis.queries.notebook_graph import notebook_graph
    from trellis.queries.overview import json_text
    from trellis.store.connection import open_store

    run = current()
    if run is not None:
        run.flush()  # outside _unrecorded: a flush ends its own quiet spell on this thread
    with _unrecorded():
        store = open_store(read_only=True)
        try:
            return json_text(notebook_graph(store, path, inline_outputs=True))
        finally:
            store.close()


@contextmanager
def _unrecorded() -> Iterator[None]:
    """What the widget itself reads (the bundle, the notebook file) is not the cell's data: the
    capture ignores this thread's opens meanwhile."""
    from trellis.capture.run import current

    run = current()
    files = getattr(run, "files", None)
    me = threading.get_ident()
    if files is None or me in files.quiet_threads:
        yield
        return
    files.quiet_threads.add(me)
    try:
        yield
    finally:
        files.quiet_threads.discard(me)


def _refresh_after_each_cell(shell: Any, shown: Any) -> None:
    """Registered after trellis's own handler, so the cell just run is in the store."""
    reference = weakref.ref(shown)

    def refresh(result: Any) -> None:
        target = reference()
        if target is None:
            shell.events.unregister("post_run_cell", refresh)
        else:
            target.refresh()

    shell.events.register("post_run_cell", refresh)
