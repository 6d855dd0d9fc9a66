"""Teeing stdout/stderr: the user still sees everything, the run keeps a bounded copy."""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Any, Callable, TextIO


class Tee:
    """Writes through to the real stream and keeps its first and last ``limit/2`` characters."""

    def __init__(self, stream: TextIO, limit: int, clock: Callable[[], float] = time.time) -> None:
        self._stream = stream
        self._clock = clock
        self._half = max(1, limit // 2)
        self._head: list[str] = []
        self._head_size = 0
        self._tail: list[str] = []
        self._tail_size = 0
        self._dropped = 0
        self.changed = False
        self._cell: list[str] | None = None
        self._cell_size = 0
        self.cell_changed = False  # since the cell's text was last taken
        # When each kept line began, for the loop iteration it was written in (see line_times):
        # the head's lines, and the tail's by their offset in all that was written.
        self._written = 0
        self._line_open = False
        self._head_starts: list[float] = []
        self._tail_starts: deque[tuple[int, float]] = deque()

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        try:
            self._keep(text)
        except Exception:
            pass
        return written

    def start_cell(self) -> None:
        """Also keep what is written from now on, until ``end_cell``, for one cell execution."""
        self._cell, self._cell_size = [], 0
        self.cell_changed = False

    def cell_text(self) -> str | None:
        """What the running cell wrote so far: written while it runs, it outlives a kill."""
        self.cell_changed = False
        kept = self._cell
        return "".join(kept) if kept else None

    def end_cell(self) -> str | None:
        kept, self._cell = self._cell, None
        self.cell_changed = False
        return "".join(kept) if kept else None

    def _keep(self, text: str) -> None:
        if not isinstance(text, str) or not text:
            return
        self.changed = True
        self._note_line_starts(text)
        if self._cell is not None and self._cell_size < self._half:
            self._cell.append(text[: self._half - self._cell_size])
            self._cell_size += len(text)
            self.cell_changed = True
        self._written += len(text)
        if self._head_size < self._half:
            room = self._half - self._head_size
            self._head.append(text[:room])
            self._head_size += min(room, len(text))
            text = text[room:]
        if text:
            self._tail.append(text)
            self._tail_size += len(text)
            while self._tail_size > self._half and len(self._tail) > 1:
                removed = self._tail.pop(0)
                self._tail_size -= len(removed)
                self._dropped += len(removed)
            if self._tail_size > self._half:
                excess = self._tail_size - self._half
                self._tail[0] = self._tail[0][excess:]
                self._tail_size -= excess
                self._dropped += excess
            tail_begins = self._written - self._tail_size
            while self._tail_starts and self._tail_starts[0][0] < tail_begins:
                self._tail_starts.popleft()

    def _note_line_starts(self, text: str) -> None:
        now = self._clock()
        start = 0 if not self._line_open else text.find("\n") + 1
        while 0 < start < len(text) or (start == 0 and not self._line_open):
            offset = self._written + start
            if offset < self._half:
                self._head_starts.append(now)
            else:
                self._tail_starts.append((offset, now))
            following = text.find("\n", start) + 1
            if following == 0:
                break
            start = following
        self._line_open = not text.endswith("\n")

    def line_times(self) -> list[float | None]:
        """When each line of ``text()`` began, line for line; None where that is not known (the
        line that says what was not kept, a line whose start was not kept)."""
        times: list[float | None] = list(self._head_starts)
        if not self._dropped:
            return times + [moment for _, moment in self._tail_starts]
        if "".join(self._head).endswith("\n"):
            times.append(None)  # text() puts the marker after a newline: an empty line
        times.append(None)  # the marker
        tail_begins = self._written - self._tail_size
        if not self._tail_starts or self._tail_starts[0][0] != tail_begins:
            times.append(None)  # the tail begins inside a line
        return times + [moment for _, moment in self._tail_starts]

    def text(self) -> str:
        head = "".join(self._head)
        tail = "".join(self._tail)
        if self._dropped:
            return f"{head}\n[... {self._dropped} characters not kept ...]\n{tail}"
        return head + tail

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def install(limit: int) -> tuple[Tee, Tee]:
    sys.stdout = Tee(sys.stdout, limit)
    sys.stderr = Tee(sys.stderr, limit)
    return sys.stdout, sys.stderr


def uninstall(out: Tee, err: Tee) -> None:
    if sys.stdout is out:
        sys.stdout = out._stream
    if sys.stderr is err:
        sys.stderr = err._stream
