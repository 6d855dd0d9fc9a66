"""``trellis export --format json``: runs as trellis's own lossless JSON (see docs/json-export.md).

Every row of the selected runs, table by table, with the objects they refer to (checkpoints,
outputs) inlined as base64 unless asked not to. ``trellis import`` loads it into another store.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from trellis._version import __version__
from trellis.sharing.records import object_digests, records
from trellis.store.connection import Store
from trellis.store.objects import object_path
from trellis.store.schema import SCHEMA_VERSION

FORMAT = "trellis-export/1"


def export(store: Store, run_ids: list[int], with_objects: bool = True) -> dict[str, Any]:
    tables = records(store, run_ids)
    objects: dict[str, str] = {}
    if with_objects:
        for digest in sorted(object_digests(tables)):
            path = object_path(store.objects, digest)
            if path.exists():
                objects[digest] = base64.b64encode(path.read_bytes()).decode("ascii")
    return {"format": FORMAT, "schema_version": SCHEMA_VERSION, "trellis": __version__,
            "tables": tables, "objects": objects}


def export_text(store: Store, run_ids: list[int], with_objects: bool = True) -> str:
    return json.dumps(export(store, run_ids, with_objects))
