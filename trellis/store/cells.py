"""Typed cells: a value as (kind, int_value, float_value, text_value) and back."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from trellis.store.schema import BIGINT, BOOL, FLOAT, INT, JSON, NONE, OBJECT, TEXT

PLAIN = frozenset({int, float, str, bool, type(None)})
_MAX_INT = 1 << 63
# Longer strings are kept as their length and start: a store refuses a value near 1 GB, and
# one refused value would hold back every value written with it.
TEXT_LIMIT = 64 << 20


# Text a store cannot hold as it is: NUL (PostgreSQL refuses it, SQLite functions stop at it) and
# lone surrogates (what ``os.fsdecode`` makes of bytes that are not UTF-8: neither store takes them).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_TO_ESCAPE = re.compile("[\\\\\x00\ud800-\udfff]")
_ESCAPE_SEQUENCE = re.compile(r"\\(\\|u[0-9a-f]{4})")
ESCAPED = "\ufffd"


def fits(text: str) -> bool:
    """Whether ``text`` can be stored as it is."""
    if text.isascii():
        return "\x00" not in text
    return _UNSTORABLE.search(text) is None and not text.startswith(ESCAPED)


def storable(text: str) -> str:
    """``text`` as both stores can hold it, and ``readable`` gives back exactly.

    Text that ``fits`` is stored as it is. Other text (names, paths, output holding NUL or lone
    surrogates, such as a file name that is not UTF-8: ``os.fsdecode(b"data_\\xff.csv")``) is
    stored as U+FFFD followed by the text with each backslash doubled and each NUL or surrogate
    written ``\\uXXXX``: ``"\ufffddata_\\udcff.csv"``. Text that itself starts with U+FFFD is
    escaped too, so that no two texts are stored alike. A logged *value* does not go this way:
    ``cell`` stores such a string as the JSON string of it, kind ``JSON``, which any reader
    decodes to the same str.
    """
    if fits(text):
        return text
    return ESCAPED + _TO_ESCAPE.sub(_escape, text)


def readable(text: Any) -> Any:
    """What ``storable`` was given, from what it stored (anything else unchanged)."""
    if type(text) is not str or not text.startswith(ESCAPED):
        return text
    return _ESCAPE_SEQUENCE.sub(_unescape, text[len(ESCAPED):])


def _escape(found: re.Match) -> str:
    character = found.group()
    return "\\\\" if character == "\\" else f"\\u{ord(character):04x}"


def _unescape(found: re.Match) -> str:
    sequence = found.group(1)
    return "\\" if sequence == "\\" else chr(int(sequence[1:], 16))


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
            if fits(value):
                return (TEXT, None, None, value)
            # JSON escapes NUL and surrogates as \\uXXXX and reads them back: the same str
            return (JSON, None, None, json.dumps(value))
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
