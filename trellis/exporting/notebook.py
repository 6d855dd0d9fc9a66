"""``trellis notebook embed``: the notebook's provenance in its own metadata (``metadata.trellis``).

Only the notebook-level metadata changes; cells and outputs are written back exactly as read.
Outputs are referenced by their object digests, never copied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trellis._errors import TrellisError


def embed(path: Path, described: dict[str, Any]) -> dict[str, int]:
    import nbformat

    try:
        book = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    except Exception as error:
        raise TrellisError(f"{path} is not a readable notebook: {type(error).__name__}: {error}") from None
    book.metadata["trellis"] = _compact(described)
    nbformat.write(book, path)
    return {
        "epochs": len(described["epochs"]),
        "executions": sum(len(e["executions"]) for e in described["epochs"]),
    }


def _compact(described: dict[str, Any]) -> dict[str, Any]:
    """Sources are in the cells already; the history keeps their hashes, not their text."""
    compact = {k: v for k, v in described.items() if k != "epochs"}
    compact["epochs"] = [
        {**epoch, "executions": [{k: v for k, v in e.items() if k != "source"} for e in epoch["executions"]]}
        for epoch in described["epochs"]
    ]
    return compact


def read_embedded(path: Path) -> dict[str, Any]:
    import json

    try:
        metadata = json.loads(Path(path).read_text()).get("metadata", {})
    except (OSError, ValueError) as error:
        raise TrellisError(f"{path} is not a readable notebook: {error}") from None
    embedded = metadata.get("trellis")
    if not isinstance(embedded, dict) or not isinstance(embedded.get("epochs"), list):
        raise TrellisError(f"{path} holds no trellis provenance; run `trellis notebook embed` on it first")
    return embedded
