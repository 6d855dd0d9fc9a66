"""A project's own settings (``trellis config``), kept in ``.trellis/config.json``.

Environment variables win over them, so one shell can point elsewhere without editing the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from trellis._errors import TrellisError

NAMES = {
    "store": "where this project's runs are recorded (a folder, a .db file or postgresql+psycopg://...)",
    "objects": "where a PostgreSQL store keeps checkpoints and outputs (a folder or s3://bucket/prefix)",
}


def _file(root: Path) -> Path:
    return root / ".trellis" / "config.json"


def read(root: Path) -> dict[str, Any]:
    path = _file(root)
    try:
        found = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise TrellisError(f"{path} is not readable JSON ({error}); fix or delete it") from None
    return found if isinstance(found, dict) else {}


def write(root: Path, name: str, value: str | None) -> dict[str, Any]:
    """Set (or with ``None`` remove) one setting; returns them all."""
    if name not in NAMES:
        raise TrellisError(f"unknown setting {name!r}; use one of {', '.join(NAMES)}")
    current = read(root)
    if value is None:
        current.pop(name, None)
    else:
        current[name] = value
    path = _file(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(current, indent=2) + "\n")
    os.replace(temporary, path)
    return current
