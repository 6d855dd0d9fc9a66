"""Readers and writers that bypass ``open`` (and so the audit hook), seen by wrapping them.

pyarrow's parquet functions (which ``pandas.read_parquet``/``to_parquet`` call) and
``torch.save``/``torch.load`` open files in C++; ``requests`` fetches URLs through sockets. Each
module is wrapped when it is first imported (or at once, if it already is), by a finder placed
in front of ``sys.meta_path`` that hands the import on and patches the module after it runs.
``urllib`` needs no wrapper: it raises a ``urllib.Request`` audit event of its own.
"""

from __future__ import annotations

import functools
import importlib.abc
import os
import sys
from typing import Any, Callable

from trellis.capture.files import READ, WRITE, FileWatcher

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


class _PatchingFinder(importlib.abc.MetaPathFinder):
    def __init__(self, watcher: FileWatcher) -> None:
        self.watcher = watcher

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in _TARGETS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                execute = spec.loader.exec_module
                watcher = self.watcher

                def exec_module(module: Any, execute: Callable = execute) -> None:
                    execute(module)
                    _patch(module, watcher)

                spec.loader.exec_module = exec_module
                return spec
            if spec is not None:
                return spec
        return None


def watch_readers(watcher: FileWatcher) -> None:
    for name in _TARGETS:
        if name in sys.modules:
            _patch(sys.modules[name], watcher)
    if not any(isinstance(f, _PatchingFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchingFinder(watcher))
