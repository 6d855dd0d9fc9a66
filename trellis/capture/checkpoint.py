"""Checkpoints at the iteration boundaries of the outermost loop inside ``checkpointing``.

The period adapts: after the first checkpoint measures the cost, a boundary is taken only while
the time spent on checkpoints stays within the configured share of the loop's time. A share of
1 (or more) takes every boundary, whatever it costs.

Each checkpoint also holds the state of the random number generators (``randomness``), so that a
replay resuming from it draws what the original run drew.
"""

from __future__ import annotations

import pickle
import sys
import time
from contextlib import contextmanager
from types import FrameType
from typing import Any, Iterator

from trellis import _config
from trellis.capture import randomness
from trellis.capture import run as _runs
from trellis.store import formats, objects


class Checkpointer:
    def __init__(self, named: dict[str, Any], share: float, frame: FrameType | None = None) -> None:
        self.named = named
        self.share = share
        self.frame = frame  # the code that entered checkpointing(): where its generators live
        self.loop: str | None = None
        self.loop_started = 0.0
        self.spent = 0.0
        self.last_cost: float | None = None

    def bind(self, loop: str) -> None:
        self.loop = loop
        self.loop_started = time.perf_counter()

    def unbind(self) -> None:
        self.loop = None

    def boundary(self, run: "_runs.Run", iteration: int, index: int) -> None:
        elapsed = time.perf_counter() - self.loop_started
        if self.share < 1 and self.last_cost is not None and self.spent + self.last_cost > self.share * elapsed:
            return
        run.registered.wait(60)  # the store must be open; waiting for it is not checkpoint cost
        started = time.perf_counter()
        try:
            self._save(run, iteration, index)
        except Exception as error:
            run.problem("a checkpoint", error)
        cost = time.perf_counter() - started
        self.spent += cost
        self.last_cost = cost

    def _save(self, run: "_runs.Run", iteration: int, index: int) -> None:
        if run.store is None:
            return
        for name, obj in self.named.items():
            started = time.perf_counter()
            format, parts = formats.serialize(obj)
            digest, size = objects.put(run.store.objects, parts)
            seconds = time.perf_counter() - started
            run.checkpoints.append((iteration, self.loop, index, name, digest, format, size, seconds))
        started = time.perf_counter()
        states = pickle.dumps(randomness.capture(self.frame, self.named), protocol=pickle.HIGHEST_PROTOCOL)
        digest, size = objects.put(run.store.objects, [states])
        seconds = time.perf_counter() - started
        run.checkpoints.append((iteration, self.loop, index, randomness.ENTRY, digest, "pickle", size, seconds))


@contextmanager
def checkpointing(**named: Any) -> Iterator[Checkpointer]:
    """Save the named objects' state at the boundaries of the outermost loop inside."""
    if _runs.current() is None:
        _runs.begin()
    checkpointer = Checkpointer(named, _config.checkpoint_share(), _callers_frame())
    previous = _runs.set_checkpointer(checkpointer)
    try:
        yield checkpointer
    finally:
        checkpointer.frame = None
        _runs.set_checkpointer(previous)


def _callers_frame() -> FrameType | None:
    """The first frame outside contextlib and trellis: the user's code."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] in ("contextlib", "trellis"):
        frame = frame.f_back
    return frame
