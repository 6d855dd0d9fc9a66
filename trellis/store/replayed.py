"""Values written by a replay into a past run.

They are keyed from the middle of the run's key range up, apart from the values the run logged
itself, and there is at most one per (name, iteration): replaying a name again replaces it.
Each says how its replay verified it (``verified``): ``exact`` (the segment that computed it
recomputed the run's own values equal), ``rerun`` (equal after re-running from an earlier point
than planned), ``checkpoint`` (computed from its own iteration's checkpoint, with none of the
run's values to compare), ``unchecked`` (resumed from an earlier checkpoint with nothing to
compare).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trellis.store.schema import NOTE_LOG_NAME, RUN_SHIFT, run_keys

REPLAY_KEYS = 1 << (RUN_SHIFT - 1)


def put_replayed(store: Any, run: int, rows: Sequence[Sequence[Any]]) -> None:
    """Store ``(name, iteration, kind, int_value, float_value, text_value[, verified])`` rows
    for ``run``, replacing replayed values at the same (name, iteration). Call inside a
    transaction."""
    low, high = run_keys(run)
    store.executemany(
        "DELETE FROM logs WHERE id >= ? AND id < ? AND source = 'replay' AND name = ? AND iteration = ?",
        sorted({(low + REPLAY_KEYS, high, name, iteration) for name, iteration, *_ in rows}),
    )
    (top,) = store.execute("SELECT MAX(id) FROM logs WHERE id >= ? AND id < ?", (low + REPLAY_KEYS, high))[0]
    first = (top if top is not None else low + REPLAY_KEYS) + 1
    store.executemany(
        "INSERT INTO logs (id, run, name, iteration, kind, int_value, float_value, text_value, verified, source)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'replay')",
        [(key, run, *row[:6], row[6] if len(row) > 6 else None) for key, row in enumerate(rows, first)],
    )
    store.executemany(NOTE_LOG_NAME, [(run, name) for name in {row[0] for row in rows}])
