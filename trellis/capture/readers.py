"""Readers and writers that bypass ``open`` (and so the audit hook), seen by wrapping them.

pyarrow's parquet functions (which ``pandas.read_parquet``/``to_parquet`` call) and
``torch.save`` open files in C++; ``requests`` and ``urllib`` fetch URLs through sockets. Each
module is wrapped when it is first imported (or at once, if it already is: ``imports.py``).
A use is noted only once the call has returned: a fetch that failed (offline, 404) or a write
that raised read or wrote nothing, and must not feed lineage. ``torch.load`` is not wrapped: it
opens its file with ``open``, which the audit hook sees, and a wrapper frame would be where
torch's own warnings point.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

from trellis.capture.files import READ, WRITE, FileWatcher
from trellis.capture.imports import when_imported

# module -> [(function name, direction or "mode", which argument is the path: position, keyword)]
_TARGETS: dict[str, list[tuple[str, str, int, str]]] = {
    "pyarrow.parquet": [("read_table", READ, 0, "source"), ("write_table", WRITE, 1, "where"),
                        ("ParquetFile", READ, 0, "source")],
    # pandas.to_parquet opens its target as pyarrow.OSFile(path, "wb"), in C++
    "pyarrow": [("OSFile", "mode", 0, "path")],
    "torch": [("save", WRITE, 1, "f")],
    "duckdb": [("read_parquet", READ, 0, "file_glob"), ("read_csv", READ, 0, "path_or_buffer")],
    "requests": [("get", READ, 0, "url"), ("post", READ, 0, "url")],
}
# what ``urlopen`` and every opener go through; its first argument is a URL or a Request
_URL_OPENER = ("urllib.request", "OpenerDirector", "open")


def _path_of(args: tuple, kwargs: dict, position: int, keyword: str) -> str | None:
    value = kwargs.get(keyword, args[position] if len(args) > position else None)
    value = getattr(value, "full_url", value)  # a urllib Request
    if isinstance(value, (str, bytes, os.PathLike)):
        return os.fsdecode(value)
    return None


def _direction(direction: str, args: tuple, kwargs: dict) -> str:
    """A fixed direction, or (for "mode") the one the call's mode argument says."""
    if direction != "mode":
        return direction
    mode = kwargs.get("mode", args[1] if len(args) > 1 else "r")
    return READ if set(str(mode)) <= {"r", "b", "t"} else WRITE


def _wrap(function: Callable, watcher: FileWatcher, direction: str, position: int,
          keyword: str) -> Callable:
    if getattr(function, "__trellis_wrapped__", False):
        return function

    @functools.wraps(function)
    def recorded(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # noqa: F841 - IPython and pytest leave this frame out
        result = function(*args, **kwargs)
        try:
            path = _path_of(args, kwargs, position, keyword)
            # a response object says whether data came back (requests: 4xx and 5xx are not ok)
            if path is not None and getattr(result, "ok", True) is not False:
                watcher.note(path, _direction(direction, args, kwargs))
        except Exception:
            watcher.failed = True
        return result

    recorded.__trellis_wrapped__ = True  # type: ignore[attr-defined]
    return recorded


def _patch(module: Any, watcher: FileWatcher) -> None:
    for name, direction, position, keyword in _TARGETS.get(module.__name__, []):
        function = getattr(module, name, None)
        if callable(function):
            setattr(module, name, _wrap(function, watcher, direction, position, keyword))


def _patch_url_opener(module: Any, watcher: FileWatcher) -> None:
    _, class_name, method = _URL_OPENER
    opener = getattr(module, class_name, None)
    if opener is not None and callable(getattr(opener, method, None)):
        # the method's arguments start with self
        setattr(opener, method, _wrap(getattr(opener, method), watcher, READ, 1, "fullurl"))


def watch_readers(watcher: FileWatcher) -> None:
    for name in _TARGETS:
        when_imported(name, lambda module: _patch(module, watcher))
    when_imported(_URL_OPENER[0], lambda module: _patch_url_opener(module, watcher))
