"""The code snapshots runs recorded, and the one way trellis calls git.

A run's snapshot is a commit of the project's own repository on ``refs/trellis/runs/<run id>``
(made by ``capture/snapshot.py``). Every reader — the dashboard, diffs, replay, reproduction —
reads files of a snapshot through ``source_at`` and ``files_at`` here, and every git command runs
through ``git``, in an environment that cannot be pointed at another repository.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REF_PREFIX = "refs/trellis/runs/"
TIMEOUT = 120.0

_IDENTITY = {
    "GIT_AUTHOR_NAME": "trellis",
    "GIT_AUTHOR_EMAIL": "trellis@localhost",
    "GIT_COMMITTER_NAME": "trellis",
    "GIT_COMMITTER_EMAIL": "trellis@localhost",
}
# Variables that would point git at another repository, index or object store than `root`'s
# (set, for instance, when the user's script runs from inside a git hook).
_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)


class GitError(Exception):
    """A git command failed; the message is its one-line reason."""


def git_env() -> dict[str, str]:
    """The environment for git commands: the user's, less repository overrides, plus an identity."""
    env = {name: value for name, value in os.environ.items() if name not in _LOCATION_VARS}
    env.update(_IDENTITY)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_OPTIONAL_LOCKS"] = "0"
    return env


def git(root: Path, *args: str, env: dict[str, str] | None = None, data: bytes | None = None,
        strip: bool = True) -> str:
    """Run ``git args`` in ``root`` (``data`` on its stdin) and return its stdout.

    Raises GitError with git's own message when the command fails.
    """
    try:
        proc = subprocess.run(
            ["git", *args], cwd=root, env=env or git_env(), input=data,
            stdin=None if data is not None else subprocess.DEVNULL, capture_output=True,
            timeout=TIMEOUT,
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise GitError(f"git {args[0]}: {error}") from error
    if proc.returncode != 0:
        reason = proc.stderr.decode("utf-8", errors="replace").strip()
        raise GitError(f"git {args[0]}: {reason or f'exit status {proc.returncode}'}")
    out = proc.stdout.decode("utf-8", errors="surrogateescape")
    return out.strip() if strip else out


def has_commit(root: Path, commit: str) -> bool:
    try:
        git(root, "cat-file", "-e", f"{commit}^{{commit}}")
    except GitError:
        return False
    return True


def files_at(root: Path, commit: str) -> list[str]:
    """The paths (relative to the repository root) of every file in ``commit``; none when it
    cannot be read."""
    try:
        listing = git(Path(root), "ls-tree", "-r", "-z", "--name-only", commit, strip=False)
    except GitError:
        return []
    return [name for name in listing.split("\0") if name]


def source_at(root: Path, commit: str, path: str) -> str | None:
    """The text of ``path`` as it was in ``commit``, or None when it is not there.

    ``path`` is relative to the repository root (an absolute path inside ``root`` is accepted
    too). Bytes that are not UTF-8 are replaced, so binary files come back mangled.
    """
    relative = Path(path)
    if relative.is_absolute():
        try:
            relative = relative.relative_to(Path(root).absolute())
        except ValueError:
            return None
    try:
        proc = subprocess.run(["git", "cat-file", "blob", f"{commit}:{relative.as_posix()}"],
                              cwd=root, env=git_env(), capture_output=True, timeout=TIMEOUT)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8", errors="replace")
