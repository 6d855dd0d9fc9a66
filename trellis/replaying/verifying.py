"""Whether a replayed segment computed what the original run computed.

The old code still holds the statements the original run logged, so a segment recomputes them;
their values are compared with the stored ones: ints, strings and other text exactly, floats bit
for bit unless a tolerance is given. One difference means the state the segment resumed from was
not the original's (a generator, a data loader's position, a global outside ``checkpointing()``)
and none of its values can be trusted.
"""

from __future__ import annotations

import json
import math
import struct
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from trellis.store.cells import decode
from trellis.store.schema import FLOAT, JSON, OBJECT

Path_ = tuple[tuple[str, int, int], ...]
Cell = tuple[int, Any, Any, Any]


@dataclass
class Verdict:
    compared: int
    mismatch: str | None = None  # the first difference, as a sentence

    @property
    def exact(self) -> bool:
        return self.mismatch is None


def coordinate(path: Path_) -> str:
    """``epoch 3, step 2``; ``the top level`` outside every loop."""
    return ", ".join(f"{loop} {index}" for loop, _, index in path) or "the top level"


def recorded_values(rows: Iterable[Sequence[Any]], paths: dict[int, Path_]) -> dict[tuple[str, Path_], list[Cell]]:
    """Stored ``(name, iteration, kind, int, float, text)`` rows, in logging order, by name and
    coordinates."""
    recorded: dict[tuple[str, Path_], list[Cell]] = defaultdict(list)
    for name, iteration, kind, int_value, float_value, text_value in rows:
        path = paths.get(iteration)
        if path is not None:
            recorded[(name, path)].append((kind, int_value, float_value, text_value))
    return recorded


def verify(checks: Sequence[Sequence[Any]], recorded: dict[tuple[str, Path_], list[Cell]],
           loop: str | None, full: set[int], reached_end: bool, tolerance: float = 0.0) -> Verdict:
    """Compare a segment's recomputed values with the recorded ones.

    Every recomputed value must equal the recorded one at the same coordinates and occurrence.
    Where the segment ran the whole of a place — an iteration of ``loop`` in ``full``, or the top
    level when it ``reached_end`` — it must also have logged every value recorded there.
    """
    seen: dict[tuple[str, Path_], int] = defaultdict(int)
    shapes: set[tuple[str, ...]] = {()}  # the nestings of loops the segment saw values in
    compared = 0
    for name, raw_path, *produced in checks:
        path: Path_ = tuple((step[0], step[1], step[2]) for step in raw_path)
        shapes.add(tuple(step[0] for step in path))
        key = (name, path)
        occurrence = seen[key]
        seen[key] = occurrence + 1
        stored = recorded.get(key, [])
        if occurrence >= len(stored):
            return Verdict(compared, f"{name} at {coordinate(path)}: the replay logged"
                                     f" {_shown(produced)}, the run logged no such value")
        outcome = _equal(tuple(produced), stored[occurrence], tolerance)
        if outcome is False:
            return Verdict(compared, f"{name} at {coordinate(path)}: {_shown(produced)} replayed,"
                                     f" {_shown(stored[occurrence])} recorded")
        compared += outcome is True
    for (name, path), stored in recorded.items():
        if tuple(step[0] for step in path) not in shapes:
            continue  # e.g. inside a hand-driven trellis.iteration, which a replay does not follow
        whole = (reached_end if not path else
                 any(step[0] == loop and step[2] in full for step in path[:1]))
        if whole and seen.get((name, path), 0) < len(stored):
            return Verdict(compared, f"{name} at {coordinate(path)}: the run logged"
                                     f" {_shown(stored[seen.get((name, path), 0)])}, the replay did not")
    return Verdict(compared)


def _equal(produced: Cell, stored: Cell, tolerance: float) -> bool | None:
    """True or False; None for a value that cannot be compared (a repr naming a memory address)."""
    kind = produced[0]
    if kind != stored[0]:
        return False
    if kind == FLOAT:
        return _floats_equal(decode(*produced), decode(*stored), tolerance)
    if kind == OBJECT and (" at 0x" in (produced[3] or "") or "repr took over" in (produced[3] or "")):
        return None
    if kind == JSON and tolerance:
        return _structures_equal(json.loads(produced[3]), json.loads(stored[3]), tolerance)
    return decode(*produced) == decode(*stored)


def _floats_equal(a: float, b: float, tolerance: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if tolerance:
        return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))
    return struct.pack("<d", a) == struct.pack("<d", b)


def _structures_equal(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and _floats_equal(float(a), float(b), tolerance)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_structures_equal(x, y, tolerance) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_structures_equal(a[k], b[k], tolerance) for k in a)
    return a == b


def _shown(value: Sequence[Any]) -> str:
    shown = repr(decode(*value))
    return shown if len(shown) <= 40 else shown[:37] + "..."
