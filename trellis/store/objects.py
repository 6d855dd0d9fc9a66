"""Content-addressed objects (checkpoints, outputs, artifacts): ``objects/<2 hex>/<blake3>``.

BLAKE3 hashes 100 MB in about 9 ms on two cores where sha256 takes 65 ms (more than writing the
bytes), and large objects are hashed in a second thread while they are written, since both
release the GIL: a checkpoint costs about what writing it costs, and identical content is
stored once.

A shared store keeps its objects where every machine reaches them: a shared folder, or an
object store through fsspec (a ``UPath`` such as ``s3://bucket/prefix``). There an object is
one PUT under its final name, which an object store makes visible whole or not at all.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any, Iterable, Sequence

from blake3 import blake3

Buffer = bytes | bytearray | memoryview

_THREADED_ABOVE = 1 << 20


def object_path(folder: Path, digest: str) -> Path:
    return folder / digest[:2] / digest


def put(folder: Path, parts: Sequence[Buffer]) -> tuple[str, int]:
    """Store the concatenation of ``parts``; returns its BLAKE3 digest and size."""
    size = sum(memoryview(part).nbytes for part in parts)
    if not isinstance(folder, Path):
        return _put_remote(folder, parts, size)
    # one thread hashes while this one writes: on two cores, more hashing threads only slow the write
    hasher = blake3()
    if size <= _THREADED_ABOVE:
        for part in parts:
            hasher.update(part)
        digest = hasher.hexdigest()
        final = object_path(folder, digest)
        if not final.exists():
            _write(final, parts)
        return digest, size
    hashing = threading.Thread(target=lambda: [hasher.update(part) for part in parts])
    hashing.start()
    temporary = folder / f"tmp-{uuid.uuid4().hex}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            _reserve(handle.fileno(), size)
            for part in parts:
                handle.write(part)
    finally:
        hashing.join()
    digest = hasher.hexdigest()
    final = object_path(folder, digest)
    if final.exists():
        temporary.unlink()
    else:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temporary, final)
    return digest, size


_fallocate: Any = None


def _reserve(fd: int, size: int) -> None:
    """Allocate a large object's blocks before writing it, where the filesystem can: the write
    then skips reserving them page by page (about a sixth of a 100 MiB checkpoint on ext4).

    Linux's ``fallocate(2)`` fails cleanly where it is not supported; ``os.posix_fallocate`` would
    instead write into every block to emulate it, doubling the cost.
    """
    global _fallocate
    if _fallocate is None:
        import ctypes

        try:
            call = ctypes.CDLL(None, use_errno=True).fallocate
            call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
            _fallocate = call
        except (AttributeError, OSError):
            _fallocate = False
    if _fallocate:
        _fallocate(fd, 0, 0, size)  # on failure the write allocates, as without it


def _write(final: Path, parts: Sequence[Buffer]) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f"tmp-{uuid.uuid4().hex}")
    with open(temporary, "wb") as handle:
        for part in parts:
            handle.write(part)
    os.replace(temporary, final)


def _put_remote(folder: Any, parts: Sequence[Buffer], size: int) -> tuple[str, int]:
    hasher = blake3()
    for part in parts:
        hasher.update(part)
    digest = hasher.hexdigest()
    final = object_path(folder, digest)
    if not final.exists():
        with final.open("wb") as handle:
            for part in parts:
                handle.write(part)
    return digest, size


def copy_objects(source: Any, target: Any, digests: Iterable[str]) -> int:
    """Copy, streaming, the objects named by ``digests`` that ``target`` lacks; returns how many."""
    copied = 0
    for digest in digests:
        origin, final = object_path(source, digest), object_path(target, digest)
        if not origin.exists() or final.exists():
            continue
        with origin.open("rb") as reader:
            if isinstance(target, Path):
                final.parent.mkdir(parents=True, exist_ok=True)
                temporary = final.with_name(f"tmp-{uuid.uuid4().hex}")
                with open(temporary, "wb") as writer:
                    shutil.copyfileobj(reader, writer, 1 << 20)
                os.replace(temporary, final)
            else:
                with final.open("wb") as writer:
                    shutil.copyfileobj(reader, writer, 1 << 20)
        copied += 1
    return copied


def get(folder: Path, digest: str) -> bytes:
    return object_path(folder, digest).read_bytes()
