"""Listing a run's checkpoints and loading one back."""

from __future__ import annotations

from typing import Any

from trellis._errors import NoCheckpointError
from trellis.queries.runs import resolve
from trellis.store import formats
from trellis.store.connection import Store
from trellis.store.objects import object_path
from trellis.store.schema import GENERATOR_STATES


def list_checkpoints(store: Store, ref: str) -> list[dict[str, Any]]:
    run = resolve(store, ref)
    rows = store.execute(
        "SELECT loop, idx, name, object, format, size, seconds FROM checkpoints WHERE run = ? AND name != ?"
        " ORDER BY idx, name",
        (run["id"], GENERATOR_STATES),
    )
    return [
        {"loop": loop, "iteration": idx, "name": name, "object": digest, "format": format,
         "size": size, "seconds": round(seconds, 4)}
        for loop, idx, name, digest, format, size, seconds in rows
    ]


def load_checkpoint(
    store: Store, ref: str, iteration: int | None = None, into: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The saved states at ``iteration`` of the checkpointed loop (the last one if None).

    Objects passed in ``into`` get their state restored in place (``load_state_dict`` for
    torch-style objects, element-wise for numpy arrays).
    """
    run = resolve(store, ref)
    rows = store.execute(
        "SELECT idx, name, object, format FROM checkpoints WHERE run = ? AND name != ? ORDER BY idx",
        (run["id"], GENERATOR_STATES),
    )
    available = sorted({idx for idx, *_ in rows})
    if not available:
        raise NoCheckpointError(f"run {run['uuid'][:8]} has no checkpoints")
    wanted = available[-1] if iteration is None else int(iteration)
    if wanted not in available:
        shown = ", ".join(map(str, available[:20])) + (" ..." if len(available) > 20 else "")
        raise NoCheckpointError(
            f"run {run['uuid'][:8]} has no checkpoint at iteration {wanted}; it has: {shown}"
        )
    states = {
        name: formats.deserialize(format, object_path(store.objects, digest))
        for idx, name, digest, format in rows
        if idx == wanted
    }
    for name, target in (into or {}).items():
        if name not in states:
            raise NoCheckpointError(f"the checkpoint holds no {name!r}; it holds: {', '.join(states)}")
        formats.restore(target, states[name])
    return states
