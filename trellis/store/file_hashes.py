"""The digest recorded for a file a run read or wrote (the ``hash`` column of ``files``).

One function, used by capture when it records a file and by ``trellis status`` when it checks
the file again, so that the two digests compare.
"""

from __future__ import annotations

import hashlib
import os

from trellis import _config


def file_digest(path: str, expected: tuple[int, int] | None = None) -> tuple[str | None, int | None]:
    """sha256 and size of a file; no hash when it changed since it was opened (its
    ``(st_mtime_ns, st_size)`` is no longer ``expected``) or is larger than the hash limit."""
    try:
        stat = os.stat(path)
    except OSError:
        return None, None
    if expected is not None and (stat.st_mtime_ns, stat.st_size) != expected:
        return None, stat.st_size
    if stat.st_size > _config.hash_limit() or not os.path.isfile(path):
        return None, stat.st_size
    hasher = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
    except OSError:
        return None, stat.st_size
    return hasher.hexdigest(), stat.st_size
