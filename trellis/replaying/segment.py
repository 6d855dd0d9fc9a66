"""The replaying side of hindsight logging: one segment of a past run, in its own process.

Started instead of a normal run when ``TRELLIS_REPLAY`` names a segment file written by the
planner. No run is registered and nothing is written to the store: the segment drives the
checkpointed loop (skipping iterations it need not execute, restoring checkpointed objects
instead, with the random number generators as they were), answers ``arg`` with the run's
historical values, and at exit writes the values of the replayed names, with their loop
coordinates, to a result file the planner stores. The values of every other name go there too:
the original run logged them, so the planner compares them to verify the segment.

Coordinates are paths of ``(loop, instance, index)`` from the top level, where ``instance``
counts earlier loops of the same name under the same parent; the planner maps them to the
original run's iteration keys, since the replay numbers its iterations differently.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import pickle
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from trellis import _config
from trellis.capture import randomness
from trellis.capture.args import cast
from trellis.capture import run as _runs
from trellis.store import formats
from trellis.store.connection import objects_location
from trellis.store.objects import object_path
from trellis.store.cells import cell

Path_ = tuple[tuple[str, int, int], ...]
# The state after a light iteration: its checkpoint's, changed by the rest of its body.
DIRTY = -2


class SegmentStop(SystemExit):
    """The segment did all it was asked; the rest of the script is not needed."""


class ReplayRun:
    """Stands in for a Run while a segment replays; see the module doc."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.replaying = self
        self.names = set(spec["names"])
        self.loop: str | None = spec["loop"]
        self.modes = {int(k): v for k, v in spec["modes"].items()}
        self.keep = set(spec["keep"])
        self.checkpoints = {int(k): v for k, v in spec["checkpoints"].items()}  # index -> name -> [format, digest]
        # where the store keeps them: a folder or an object store, as the replay passed it on
        self.object_folder = objects_location(_config.objects_url(), Path.cwd())
        self.params = {}
        self.historical = spec["params"]
        self.overrides = spec.get("overrides") or {}
        self.ids = itertools.count(1)
        self.iteration_ids = self.ids
        self.iterations: list = []  # hand-driven iterations are not replayed
        self.paths: dict[int, Path_] = {0: ()}
        self.instances: dict[tuple[int, str], int] = {}
        self.entered = False
        self.state = -1  # the controlled loop's state is that after this index (-1: its start)
        self.light: int | None = None
        self.light_restored = False
        self.loop_started_at: int | None = None
        self.loop_ended_at: int | None = None
        self.executed: list[int] = []
        self.restores = 0
        self.restore_seconds = 0.0
        self.problems: list[str] = []
        self.missing_generators: set[str] = set()
        self.stopped = False
        self.finished = False
        self.status = None

    # -- what the logging API calls -----------------------------------------------------------

    def problem(self, where: str, error: BaseException) -> None:
        self.problems.append(f"{where}: {type(error).__name__}: {error}")

    def flush(self, *args: Any, **kwargs: Any) -> None:
        """Nothing is written during a replay; the result file is written at exit."""

    def arg(self, name: str, value: Any) -> Any:
        if name in self.overrides:  # given as text on a command line: the type of the arg's default
            given = self.overrides[name]
            return cast(name, given, value) if type(given) is str else given
        return self.historical.get(name, value)

    def iterate(self, name: str, iterable: Iterable) -> Iterator:
        depth = _runs._depth
        if self.light is not None and self.entered and depth > self.loop_depth:
            return self._restored_instead(iterable)
        if not self.entered and name == self.loop and _runs._checkpointer is not None:
            return self._controlled(name, iterable)
        return self._plain(name, iterable)

    # -- loops --------------------------------------------------------------------------------

    def _path(self, parent: int, name: str) -> Path_ | None:
        base = self.paths.get(parent)
        if base is None:
            return None
        key = (parent, name)
        instance = self.instances.get(key, 0)
        self.instances[key] = instance + 1
        return base + ((name, instance, -1),)

    def _plain(self, name: str, iterable: Iterable) -> Iterator:
        parent, depth = _runs._current, _runs._depth
        prefix = self._path(parent, name)
        _runs._depth = depth + 1
        try:
            for index, item in enumerate(iterable):
                ident = next(self.ids)
                if prefix is not None:
                    self.paths[ident] = prefix[:-1] + ((name, prefix[-1][1], index),)
                _runs._current = ident
                try:
                    yield item
                finally:
                    _runs._current = parent
        finally:
            _runs._depth = depth

    def _restored_instead(self, iterable: Iterable) -> Iterator:
        """An inner loop of a light iteration: its effect comes from the iteration's checkpoint."""
        if not self.light_restored:
            self._restore(self.light)  # type: ignore[arg-type]
            self.light_restored = True
        return iter(())

    def _controlled(self, name: str, iterable: Iterable) -> Iterator:
        self.entered = True
        self.objects = _runs._checkpointer.named
        parent, depth = _runs._current, _runs._depth
        self.loop_depth = depth
        prefix = self._path(parent, name)
        self.loop_started_at = len(_runs._values)
        if self.spec["stop_at_loop"]:
            self._stop()
        last_needed = max(self.modes, default=-1)
        last = -1
        _runs._depth = depth + 1
        try:
            for index, item in enumerate(iterable):
                last = index
                mode = self.modes.get(index)
                if mode is None:
                    if index > last_needed and not self.spec["tail"]:
                        self._stop()
                    continue
                if mode == "full" and self.state != index - 1:
                    self._restore(index - 1)
                ident = next(self.ids)
                if prefix is not None:
                    self.paths[ident] = prefix[:-1] + ((name, prefix[-1][1], index),)
                self.light, self.light_restored = (index if mode == "light" else None), False
                _runs._current = ident
                try:
                    yield item
                finally:
                    _runs._current = parent
                if self.light is not None and not self.light_restored:
                    self._restore(index)
                self.state = index if self.light is None else DIRTY
                self.light = None
                self.executed.append(index)
                if index == last_needed and not self.spec["tail"]:
                    self._stop()
        finally:
            _runs._depth = depth
        if self.state != last:
            self._restore(last)  # the code after the loop sees the state after its last iteration
        self.loop_ended_at = len(_runs._values)

    def _restore(self, index: int) -> None:
        if index == self.state:
            return
        saved = self.checkpoints.get(index)
        if saved is None:
            raise RuntimeError(f"trellis replay: no checkpoint after iteration {index} to restore")
        started = time.perf_counter()
        states = None
        for name, (format, digest) in saved.items():
            path = object_path(self.object_folder, digest)
            if name == randomness.ENTRY:
                with path.open("rb") as handle:
                    states = pickle.load(handle)
                continue
            # the planner replays only this store's own runs and those the user trusts (--trust)
            formats.restore(self.objects[name], formats.deserialize(format, path, trusted=True))
        if states is not None:  # after the objects: a checkpointed generator gets its own state back
            checkpointer = _runs._checkpointer
            frame = checkpointer.frame if checkpointer is not None else None
            self.missing_generators.update(randomness.restore(frame, self.objects, states))
        self.restore_seconds += time.perf_counter() - started
        self.restores += 1
        self.state = index

    def _stop(self) -> None:
        self.stopped = True
        raise SegmentStop(0)

    # -- the result ---------------------------------------------------------------------------

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        values, checks = [], []
        for position, (name, iteration, value) in enumerate(list(_runs._values)):
            if name is None:
                continue
            path = self.paths.get(iteration)
            if name not in self.names:
                if path is not None:
                    checks.append([name, [list(step) for step in path], *cell(value)])
                continue
            if path is None:
                self.problems.append(f"a value of {name!r} was logged outside the loops trellis drives")
                continue
            if not self._kept(path, position):
                continue
            values.append([name, [list(step) for step in path], *cell(value)])
        if self.missing_generators:
            self.problems.append("random generators saved with the checkpoint were not found to restore: "
                                 + ", ".join(sorted(self.missing_generators)))
        result = {
            "values": values, "checks": checks, "executed": self.executed, "stopped": self.stopped,
            "reached_end": self.loop_ended_at is not None or (self.loop is None and not self.stopped),
            "restores": self.restores, "restore_seconds": self.restore_seconds,
            "problems": self.problems,
        }
        target = Path(self.spec["result"])
        partial = target.with_suffix(".partial")
        partial.write_text(json.dumps(result))
        os.replace(partial, target)

    def _kept(self, path: Path_, position: int) -> bool:
        for loop, _, index in path:
            if loop == self.loop:
                return index in self.keep
        before = self.loop_started_at is None or position < self.loop_started_at
        after = self.loop_ended_at is not None and position >= self.loop_ended_at
        return (before and self.spec["prologue"]) or (after and self.spec["tail"])


def start() -> ReplayRun:
    spec = json.loads(Path(_config.replay_spec() or "").read_text())
    replay = ReplayRun(spec)
    atexit.register(replay.finish)
    return replay
