"""Readers and writers that bypass ``open`` (and so the audit hook), seen by wrapping them.

pyarrow's parquet functions (which ``pandas.read_parquet``/``to_parquet`` call) and
``torch.save``/``torch.load`` open files in C++; ``requests`` fetches URLs through sockets. Each
module is wrapped when it is first imported (or at once, if it already is: ``imports.py``).
``urllib`` needs no wrapper: it raises a ``urllib.Request`` audit event of its own.
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
    "torch": [("save", WRITE, 1, "f"), ("load", READ, 0, "f")],
    "duckdb": [("read_parquet", READ, 0, "file_glob"), ("read_csv", READ, 0, "path_or_buffer")],
    "requests": [("get", READ, 0, "url"), ("post", READ, 0, "url")],
}


def _path_of(args: tuple, kwargs: dict, position: int, keyword: str) -> str | None:
    value = kwargs.get(keyword, args[position] if len(args) > position else None)
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
        try:
            path = _path_of(args, kwargs, position, keyword)
            if path is not None:
                watcher.note(path, _direction(direction, args, kwargs))
        except Exception:
            watcher.failed = True
        return function(*args, **kwargs)

    recorded.__trellis_wrapped__ = True  # type: ignore[attr-defined]
    return recorded


def _patch(module: Any, watcher: FileWatcher) -> None:
    for name, direction, position, keyword in _TARGETS.get(module.__name__, []):
        function = getattr(module, name, None)
        if callable(function):
            setattr(module, name, _wrap(function, watcher, direction, position, keyword))


def watch_readers(watcher: FileWatcher) -> None:
    for name in _TARGETS:
        when_imported(name, lambda module: _patch(module, watcher))
