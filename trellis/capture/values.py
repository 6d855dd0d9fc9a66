"""Turning what users log into typed cells, without ever raising into their code."""

from __future__ import annotations

import json
import reprlib
import sys
import threading
import warnings
from typing import Any

from trellis.store.cells import PLAIN, Encoded
from trellis.store.schema import JSON, OBJECT

JSON_LIMIT = 1 << 20
_MAX_INT = 1 << 63
_short_repr = reprlib.Repr()
_short_repr.maxstring = _short_repr.maxother = 200
_short_repr.maxlist = _short_repr.maxdict = 20
_warned: set[str] = set()


def _plain_scalar(value: Any) -> Any:
    """numpy and torch scalars (and 0-d arrays/tensors) as the Python scalar they hold."""
    module = type(value).__module__
    if module.startswith(("numpy", "torch")) and getattr(value, "ndim", None) == 0:
        try:
            item = value.item()
        except Exception:
            return value
        if type(item) in PLAIN:
            return item
    return value


def _json_default(value: Any) -> Any:
    item = _plain_scalar(value)
    if item is value:
        raise TypeError(type(value).__name__)
    return item


def encode(name: str, value: Any, caller: str = "trellis.log") -> Any:
    """A plain value, or an Encoded one; anything unknown becomes its type and a bounded repr,
    with one warning per name that says what ``caller`` could keep instead."""
    value = _plain_scalar(value)
    if type(value) in PLAIN:
        return value
    if isinstance(value, (list, tuple, dict)) and _may_fit(value, JSON_LIMIT):
        try:
            text = json.dumps(value, default=_json_default)
        except (TypeError, ValueError, RecursionError):
            pass
        else:
            if len(text) <= JSON_LIMIT:
                return Encoded(JSON, text)
    if name not in _warned:
        _warned.add(name)
        warnings.warn(
            f"{caller}({name!r}, ...): a {type(value).__name__} is recorded as its type and a"
            " short repr; use numbers, strings, or lists/dicts of them to keep the value",
            stacklevel=3,
        )
    return Encoded(OBJECT, json.dumps({"type": type(value).__qualname__, "repr": bounded_repr(value)}))


def _may_fit(value: Any, limit: int) -> bool:
    """False when the JSON of ``value`` would surely be longer than ``limit`` or cannot exist:
    counts at least one character per item without building anything, so a huge list, a list
    shared 2**60 times over or one that contains itself costs at most ``limit`` steps instead of
    being serialized whole (or forever) and thrown away."""
    size, stack, inside = 0, [value], set()  # inside: the containers around the current item
    while stack:
        item = stack.pop()
        if type(item) is _Leave:
            inside.discard(item.container)
            continue
        if type(item) is str:
            size += len(item) + 2
        elif isinstance(item, (list, tuple, dict)):
            if id(item) in inside:
                return False
            inside.add(id(item))
            stack.append(_Leave(id(item)))
            size += (2 * len(item) if isinstance(item, dict) else len(item)) + 2
            if size <= limit and isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif size <= limit:
                stack.extend(item)
        else:
            size += 1
        if size > limit:
            return False
    return True


class _Leave:
    __slots__ = ("container",)

    def __init__(self, container: int) -> None:
        self.container = container


REPR_SECONDS = 1.0
_slow_repr: set[type] = set()


def bounded_repr(value: Any) -> str:
    """A short repr that costs at most REPR_SECONDS: a ``__repr__`` is the user's code, and may
    raise, hang or build something huge. One that does not finish in time runs on in a daemon
    thread, and its type is not asked again."""
    kind = type(value)
    if isinstance(value, (bytes, bytearray)):
        return repr(value[:64]) + (f"... ({len(value)} bytes)" if len(value) > 64 else "")
    if kind in _slow_repr:
        return f"<{kind.__name__}: repr took over {REPR_SECONDS:g} s>"
    result: list[str] = []

    def describe() -> None:
        try:
            result.append(_short_repr.repr(value))
        except BaseException:
            result.append(f"<unprintable {kind.__name__}>")

    if kind.__module__ in ("builtins", "numpy") and kind not in (list, tuple, dict, set, frozenset):
        describe()  # scalars and arrays print themselves in bounded time: no thread needed
        return result[0]
    worker = threading.Thread(target=describe, name="trellis-repr", daemon=True)
    worker.start()
    worker.join(REPR_SECONDS)
    if not result:
        _slow_repr.add(kind)
        return f"<{kind.__name__}: repr took over {REPR_SECONDS:g} s>"
    return result[0]


def describe_item(item: Any) -> Any:
    """What a loop iteration's item is recorded as: plain values as they are, else a type name."""
    if type(item) in PLAIN:
        return item
    item = _plain_scalar(item)
    if type(item) in PLAIN:
        return item
    if isinstance(item, (list, tuple)) and len(item) <= 8 and all(type(v) in PLAIN for v in item):
        return list(item)
    shape = getattr(item, "shape", None)
    name = type(item).__qualname__
    return f"<{name} {tuple(shape)}>" if isinstance(shape, tuple) else f"<{name}>"


def echo(name: str, value: Any, coordinates: str) -> None:
    print(f"trellis: {name} = {value!r}{coordinates}", file=sys.stderr)
