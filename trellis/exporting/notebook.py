"""``trellis notebook embed``: the notebook's provenance in its own metadata (``metadata.trellis``).

Only the notebook-level metadata changes; cells and outputs are written back exactly as read.
Outputs are referenced by their object digests, never copied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trellis._errors import TrellisError


_ATTEMPTS = 3


def embed(path: Path, described: dict[str, Any]) -> dict[str, int]:
    """Write ``described`` into the notebook's metadata.

    A frontend may save the notebook while this runs: the new file is written beside it and
    put in place only if the notebook on disk is still the one read, else the newer notebook is
    read and the provenance embedded into it, so a save made meanwhile is never overwritten.
    """
    import os
    import tempfile

    import nbformat

    path = Path(path)
    for _ in range(_ATTEMPTS):
        try:
            read = path.read_bytes()
            book = nbformat.reads(read.decode("utf-8"), as_version=nbformat.NO_CONVERT)
        except Exception as error:
            raise TrellisError(f"{path} is not a readable notebook: {type(error).__name__}: {error}") from None
        book.metadata["trellis"] = _compact(described)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                nbformat.write(book, out)
            os.chmod(temporary, path.stat().st_mode & 0o7777)
            if path.read_bytes() != read:
                continue  # saved meanwhile: embed into what is there now
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        return {
            "epochs": len(described["epochs"]),
            "executions": sum(len(e["executions"]) for e in described["epochs"]),
        }
    raise TrellisError(f"{path} kept changing on disk while its provenance was being embedded;"
                       " nothing was written: run `trellis notebook embed` again once it is saved")


def _compact(described: dict[str, Any]) -> dict[str, Any]:
    """Each execution names its source by hash; every version of every cell that ran is kept once,
    in ``sources``, so that a colleague who imports the history sees the code each execution ran,
    also where the cells were edited since."""
    compact = {k: v for k, v in described.items() if k != "epochs"}
    sources: dict[str, str] = {}
    for epoch in described["epochs"]:
        for execution in epoch["executions"]:
            if execution.get("source") is not None:
                sources.setdefault(execution["source_hash"], execution["source"])
    compact["epochs"] = [
        {**epoch, "executions": [{k: v for k, v in e.items() if k != "source"} for e in epoch["executions"]]}
        for epoch in described["epochs"]
    ]
    compact["sources"] = sources
    return compact
