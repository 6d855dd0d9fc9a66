"""The one spelling of a path the store records, for the writers and the readers alike."""

from __future__ import annotations

import os
from pathlib import Path


def recorded_path(path: str | os.PathLike, root: Path, cwd: Path | None = None) -> str:
    """``path`` as the store records it: relative to the project ``root`` when inside it,
    absolute otherwise. A relative ``path`` is taken from ``cwd`` (default: the current folder);
    ``.``, ``..`` and doubled separators fold away as they read, and a path that reaches into the
    project through a symbolic link counts as inside it."""
    given = Path(os.fsdecode(path)).expanduser()
    if not given.is_absolute():
        given = (cwd or Path.cwd()) / given
    lexical = Path(os.path.normpath(given))
    try:
        return str(lexical.relative_to(root))
    except ValueError:
        pass
    try:
        return str(lexical.resolve().relative_to(root))
    except (ValueError, OSError, RuntimeError):
        return str(lexical)
