"""Where a run goes when its store cannot take it: nothing is silently dropped.

A store can fail part way (disk full, made read-only, locked by another process for longer than
``TRELLIS_LOCK_TIMEOUT``, a server gone): the script goes on, one warning says so, the values
wait in memory and every flush tries again. Text that no store can hold (NUL, lone surrogates)
is not such a failure: it is stored escaped (``trellis.store.cells.storable``). If the store is still failing at the end of the run
(or once more than ``KEEP_IN_MEMORY`` values wait), the run moves, under the same uuid, to
another store and its rest is written there: the project's own ``.trellis/`` store when the
failing one was elsewhere (a shared store: ``trellis push`` uploads it later), else a recovery
file that ``trellis import FILE`` loads; either way the rest joins the part already written.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

KEEP_IN_MEMORY = 2_000_000


def _places(run: Any) -> list[tuple[Path, str]]:
    import tempfile

    from trellis.store.connection import DB_NAME, STORE_DIR, configured_url, is_own_store, project_root

    root = project_root(run.cwd)
    local = root / STORE_DIR / DB_NAME
    name = f"{run.uuid}.db"
    places = []
    configured = configured_url(root)
    if not is_own_store(configured, root):
        places.append((local, "`trellis push` uploads it to the shared store"))
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    for path in (root / STORE_DIR / "recovery" / name, state / "trellis" / "recovery" / name,
                 Path(tempfile.gettempdir()) / f"trellis-recovery-{name}"):
        places.append((path, f"load it with `trellis import {path}`"))
    return places


def move(run: Any) -> bool:
    """Register ``run`` in the first other store that works and make it the run's store."""
    from trellis.store.connection import open_store

    failing, was_registered = run.store, run.run_id is not None
    for path, hint in _places(run):
        try:
            store = open_store(str(path), root=run.cwd, objects=str(path.parent / "objects"))
        except Exception:
            continue
        if run._register(store):
            break
        store.close()
    else:
        return False
    if failing is not None:
        try:
            failing.close()
        except Exception:
            pass
    for step in run.steps:  # written (if at all) to the failing store: write them whole here
        step.pop("written", None)
    where = failing.location if failing is not None else "the store"
    run.problems.append(f"moving: {where} failed; the rest of the run is written to {path}")
    run.moved = (where, path, hint)
    if not was_registered:
        run._capture_context()
    return True


def confirm(run: Any) -> None:
    """Once a moved run's values are written where it moved, say where, with what is there: a
    warning that a run was saved somewhere is true only once they are."""
    if run.moved is None:
        return
    from trellis.store.schema import run_keys

    where, path, hint = run.moved
    try:
        ((count,),) = run.store.execute(
            "SELECT COUNT(*) FROM logs WHERE id >= ? AND id < ?", run_keys(run.run_id))
    except Exception:
        return  # not readable yet: the next successful write says it
    run.moved = None
    warnings.warn(f"trellis: {where} could not take this run; it was saved to {path}"
                  f" ({count} values there): {hint}", stacklevel=3)
