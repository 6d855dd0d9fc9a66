"""Rows of ``iterations`` that stand for several consecutive iterations of one loop instance.

A row holds ``count`` iterations: keys ``id`` onwards, indexes ``idx`` onwards, ``started`` the
first one's start, ``ended`` the last one's end, and ``starts_us`` (NULL when ``count`` is 1) a
JSON array of each one's start in whole microseconds after ``started``, so SQL can list them:
``SELECT i.idx + j.key, i.started + j.value / 1e6 FROM iterations i, json_each(i.starts_us) j``
on SQLite (``jsonb_array_elements`` on PostgreSQL). Each iteration ends where the next starts,
and ``value``, when there is one, is every one's value (a data loader's batches all show
``"<Tensor (32, 3)>"``; the last, smaller batch starts a row of its own).
"""

from __future__ import annotations

import json
from typing import Iterator


def pack_starts(starts: list[float]) -> str:
    first = starts[0]
    return json.dumps([round((start - first) * 1e6) for start in starts], separators=(",", ":"))


def unpack_starts(started: float, starts_us: str) -> list[float]:
    return [started + offset / 1e6 for offset in json.loads(starts_us)]


def expand(
    ident: int, idx: int, started: float, ended: float | None, count: int, starts_us: str | None
) -> Iterator[tuple[int, int, float, float | None]]:
    """``(id, idx, started, ended)`` of each iteration a row stands for."""
    if count == 1:
        yield ident, idx, started, ended
        return
    times = unpack_starts(started, starts_us)
    for k in range(count):
        yield ident + k, idx + k, times[k], times[k + 1] if k + 1 < count else ended
