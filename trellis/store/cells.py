"""Typed cells: a value as (kind, int_value, float_value, text_value) and back."""

from __future__ import annotations

import json
import math
from typing import Any

from trellis.store.schema import BIGINT, BOOL, FLOAT, INT, JSON, NONE, OBJECT, TEXT

PLAIN = frozenset({int, float, str, bool, type(None)})
_MAX_INT = 1 << 63
# Longer strings are kept as their length and start: a store refuses a value near 1 GB, and
# one refused value would hold back every value written with it.
TEXT_LIMIT = 64 << 20


class Encoded:
    """A value already turned into text at log time, so later mutation cannot change it."""

    __slots__ = ("kind", "text")

    def __init__(self, kind: int, text: str) -> None:
        self.kind = kind
        self.text = text


def cell(value: Any) -> tuple[int, int | None, float | None, str | None]:
    """(kind, int_value, float_value, text_value) of a plain or Encoded value."""
    kind = type(value)
    if kind is float:
        # SQLite stores NaN as NULL; the text column remembers it was a float NaN.
        return (FLOAT, None, value, "nan" if math.isnan(value) else None)
    if kind is int:
        if -_MAX_INT <= value < _MAX_INT:
            return (INT, value, None, None)
        # hex: Python refuses decimal conversions of ints over 4300 digits
        return (BIGINT, None, None, str(value) if value.bit_length() < 14000 else hex(value))
    if kind is str:
        if len(value) <= TEXT_LIMIT:
            return (TEXT, None, None, value)
        return (OBJECT, None, None, json.dumps(
            {"type": "str", "repr": value[:200] + "...", "length": len(value)}))
    if kind is bool:
        return (BOOL, int(value), None, None)
    if value is None:
        return (NONE, None, None, None)
    return (value.kind, None, None, value.text)


def decode(kind: int, int_value: Any, float_value: Any, text_value: Any) -> Any:
    if kind == INT:
        return int(int_value)
    if kind == FLOAT:
        return float("nan") if float_value is None else float(float_value)
    if kind == BOOL:
        return bool(int_value)
    if kind == TEXT:
        return text_value
    if kind == BIGINT:
        return int(text_value, 0) if "x" in text_value else int(text_value)
    if kind in (JSON, OBJECT):
        return json.loads(text_value)
    return None
