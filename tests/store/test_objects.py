"""Content-addressed objects in a local folder."""

from __future__ import annotations

import os

from blake3 import blake3

from trellis.store.objects import get, object_path, put


def test_a_large_object_is_stored_whole_under_its_digest_once(tmp_path):
    # Above 1 MiB the object is hashed on a second thread while its blocks, reserved first,
    # are written: the file must hold exactly the parts, not a byte more.
    parts = [os.urandom(3 << 20), b"", bytearray(os.urandom(12345)), memoryview(os.urandom(1 << 20))]
    content = b"".join(bytes(part) for part in parts)
    digest, size = put(tmp_path, parts)
    assert digest == blake3(content).hexdigest()
    assert size == len(content) == object_path(tmp_path, digest).stat().st_size
    assert get(tmp_path, digest) == content
    assert put(tmp_path, [content]) == (digest, size)  # the same content again: the same object
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [digest]


def test_a_small_object_is_stored_under_its_digest(tmp_path):
    digest, size = put(tmp_path, [b"abc", b"def"])
    assert (digest, size) == (blake3(b"abcdef").hexdigest(), 6)
    assert get(tmp_path, digest) == b"abcdef"
