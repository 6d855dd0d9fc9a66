"""The kept copy of a run's output: bounded, and each kept line knows when it began (what
flor.io's loop columns are found from), checked against the whole stream as written."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trellis.capture.streams import Tee

pytestmark = pytest.mark.sqlite_only("the stream copy alone: no store")


def lines_with_starts(writes: list[str]) -> list[tuple[str, int]]:
    """The whole stream's lines, each with the number of the write it began in."""
    lines, current = [], None
    for number, chunk in enumerate(writes):
        parts = chunk.split("\n")
        for position, part in enumerate(parts):
            last = position == len(parts) - 1
            if current is None:
                if last and not part:
                    break
                current = [part, number]
            else:
                current[0] += part
            if not last:
                lines.append(tuple(current))
                current = None
    return lines + ([tuple(current)] if current is not None else [])


@settings(max_examples=400, deadline=None)
@given(limit=st.integers(2, 80), writes=st.lists(st.text("ab\n", min_size=1, max_size=12), max_size=16))
def test_every_kept_line_has_the_time_it_began_or_none(limit, writes):
    clock = iter(range(len(writes)))
    moment = [0]
    tee = Tee(io.StringIO(), limit, clock=lambda: moment[0])
    for number, chunk in enumerate(writes):
        moment[0] = next(clock)
        tee.write(chunk)
    whole = lines_with_starts(writes)
    kept, times = tee.text().splitlines(), tee.line_times()
    assert len(kept) == len(times)
    for line, began in zip(kept, times):
        if began is not None:  # the line as written then (the head's last line may be cut short)
            assert any(number == began and full.startswith(line) for full, number in whole)
    if "".join(writes) == tee.text():  # nothing dropped: every line has its time
        assert times == [number for _, number in whole]
    else:  # the end is kept too: each line after the marker but a first one cut short has its time
        after = next(i for i, line in enumerate(kept) if line.startswith("[... ")) + 1
        assert None not in times[after + 1:]
    assert len(tee.text()) <= max(len("".join(writes)), limit + 60)
