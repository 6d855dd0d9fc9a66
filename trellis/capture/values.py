"""Turning what users log into typed cells, without ever raising into their code."""

from __future__ import annotations

import json
import reprlib
import sys
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


def encode(name: str, value: Any) -> Any:
    """A plain value, or an Encoded one; anything unknown becomes its type and a bounded repr."""
    value = _plain_scalar(value)
    if type(value) in PLAIN:
        return value
    if isinstance(value, (list, tuple, dict)):
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
            f"trellis.log({name!r}, ...): a {type(value).__name__} is recorded as its type and a"
            " short repr; log numbers, strings, or lists/dicts of them to keep the value",
            stacklevel=3,
        )
    try:
        shown = _short_repr.repr(value)
    except Exception:
        shown = f"<unprintable {type(value).__name__}>"
    return Encoded(OBJECT, json.dumps({"type": type(value).__qualname__, "repr": shown}))


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
