"""Code of a past run checked out beside the user's, in a ``git worktree``.

The user's branch, index, HEAD and working tree are never touched: a worktree is a separate
folder with its own index and a detached HEAD at the run's snapshot commit. Data files the run
read that the snapshot does not hold (ignored files) are copied in when their content still has
the recorded hash.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from trellis._errors import TrellisError
from trellis.capture.files import hash_file
from trellis.store.connection import Store
from trellis.store.snapshots import GitError, git


def snapshot_gone(commit: str) -> str:
    """Why the code snapshot ``commit`` cannot be used, and what to do about it."""
    return (f"its code snapshot {commit[:8]} is gone from this repository (deleted, or never fetched"
            " into this clone): fetch it from a clone that has it with"
            " git fetch REMOTE 'refs/trellis/runs/*:refs/trellis/runs/*'")


def check_out(root: Path, commit: str, folder: Path) -> Path:
    """A worktree of ``commit`` at ``folder``."""
    try:
        git(root, "worktree", "add", "--detach", str(folder), commit)
    except GitError as error:
        raise TrellisError(f"cannot check out {commit[:8]}: {error}") from error
    return folder


def remove(root: Path, folder: Path) -> None:
    try:
        git(root, "worktree", "remove", "--force", str(folder))
    except GitError:
        pass  # not a worktree (any more): removing the folder is enough
    shutil.rmtree(folder, ignore_errors=True)


def bring_inputs(store: Store, run: dict[str, Any], worktree: Path) -> tuple[list[str], list[str]]:
    """Copy in the files ``run`` read that its snapshot lacks: (copied, missing)."""
    copied, missing = [], []
    reads = store.execute("SELECT DISTINCT path, hash FROM files WHERE run = ? AND mode = 'read'", (run["id"],))
    for path, digest in reads:
        if os.path.isabs(path) or "://" in path or (worktree / path).exists():
            continue
        source = store.project / path
        if source.is_file() and (digest is None or hash_file(source) == digest):
            (worktree / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, worktree / path)
            copied.append(path)
        elif not _written_by(store, run["id"], path):
            missing.append(path)
    return copied, missing


def _written_by(store: Store, run: int, path: str) -> bool:
    return bool(store.execute("SELECT 1 FROM files WHERE run = ? AND path = ? AND mode = 'write'", (run, path)))
