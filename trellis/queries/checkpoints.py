"""Listing a run's checkpoints and loading one back.

A checkpoint of a run received from someone else (``received_from``) is loaded only in ways
that cannot run code, unless the caller trusts it (``trusted``); see store/formats.py.
"""

from __future__ import annotations

from typing import Any

from trellis._errors import NoCheckpointError, UntrustedObjectError
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


def received_from(store: Store, run: int) -> str | None:
    """Where the run came from (a store it was pulled or imported from, an export file, a
    notebook), or None when it was recorded into this store."""
    if store.execute("SELECT MAX(version) FROM schema_version")[0][0] < 4:
        return None  # not yet opened by a trellis that marks received runs: none is marked
    return store.execute("SELECT received_from FROM runs WHERE id = ?", (run,))[0][0]


def load_checkpoint(
    store: Store, ref: str, iteration: int | None = None, into: dict[str, Any] | None = None,
    trusted: bool = False,
) -> dict[str, Any]:
    """The saved states at ``iteration`` of the checkpointed loop (the last one if None).

    Objects passed in ``into`` get their state restored in place (``load_state_dict`` for
    torch-style objects, element-wise for numpy arrays). A received run's objects that would run
    code when loaded raise ``UntrustedObjectError`` unless ``trusted``.
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
    source = None if trusted else received_from(store, run["id"])
    states = {}
    for idx, name, digest, format in rows:
        if idx != wanted:
            continue
        try:
            states[name] = formats.deserialize(format, object_path(store.objects, digest), trusted=source is None)
        except UntrustedObjectError as error:
            raise UntrustedObjectError(
                f"run {run['uuid'][:8]} came from {source} and its checkpoint {name!r} {error}, which can run"
                " any code when loaded: if you trust its source, load it with trusted=True"
            ) from None
    for name, target in (into or {}).items():
        if name not in states:
            raise NoCheckpointError(f"the checkpoint holds no {name!r}; it holds: {', '.join(states)}")
        formats.restore(target, states[name])
    return states
