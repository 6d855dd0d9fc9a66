"""Settings, read from the environment so that scripts need no set-up code.

This module is the one place that reads ``TRELLIS_*`` variables; ``VARIABLES`` lists them all
and ``docs/environment.md`` is generated from it (``scripts/reference``).
"""

from __future__ import annotations

import os
from typing import NamedTuple


class Variable(NamedTuple):
    name: str
    default: str
    meaning: str
    public: bool = True


VARIABLES = (
    Variable("TRELLIS_STORE", "`trellis config store`, else `.trellis/` at the project root",
             "store location: a folder, a `.db` file, `sqlite:///path` or `postgresql+psycopg://...`"),
    Variable("TRELLIS_OBJECTS", "`trellis config objects`, else beside the store",
             "where a store keeps checkpoints and outputs: a folder or an fsspec URL such as"
             " `s3://bucket/prefix`"),
    Variable("TRELLIS_LOCK_TIMEOUT", "60", "seconds a write waits for a store locked by another process"),
    Variable("TRELLIS_DISABLE", "0", "`1` records nothing (the API still returns its values)"),
    Variable("TRELLIS_PROGRESS", "1", "`0` hides the progress bar `loop` shows on a terminal"),
    Variable("TRELLIS_ECHO", "0", "`1` prints every logged value to stderr"),
    Variable("TRELLIS_FLUSH_SECONDS", "2", "how often a running script's buffer is written"),
    Variable("TRELLIS_FLUSH_VALUES", "50000", "... or as soon as this many values are waiting"),
    Variable("TRELLIS_CHECKPOINT_SHARE", "0.05", "the largest share of loop time checkpoints may take; 1 keeps one at every boundary"),
    Variable("TRELLIS_STREAM_LIMIT", "262144", "characters of stdout/stderr kept per run"),
    Variable("TRELLIS_HASH_LIMIT", "536870912 (512 MiB)", "files larger than this (bytes) are recorded unhashed"),
    Variable("TRELLIS_OPENLINEAGE_URL", "unset: no events, unless the client is configured",
             "an OpenLineage HTTP endpoint (such as Marquez's `http://localhost:5000`) every run sends"
             " its START and COMPLETE/FAIL events to; the client's own settings (`OPENLINEAGE_URL`,"
             " `OPENLINEAGE_CONFIG`, `openlineage.yml`, `OPENLINEAGE__TRANSPORT__*`) are used when"
             " this is unset (docs/openlineage.md)"),
    Variable("TRELLIS_NOTEBOOK", "", "the notebook a kernel started by `trellis run` executes", public=False),
    Variable("TRELLIS_PARENT_RUN", "", "the run a reproduction reproduces", public=False),
    Variable("TRELLIS_REPLAY", "", "the segment file a replay worker executes", public=False),
    Variable("TRELLIS_MAKE_PROBE", "", "set in make's dry runs, which are not real runs", public=False),
)


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() not in ("0", "false", "no", "off")


def _number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def _text(name: str) -> str | None:
    return os.environ.get(name) or None


def disabled() -> bool:
    # make's dry runs (which build-context capture starts) may execute recipes: not real runs.
    return _flag("TRELLIS_DISABLE", False) or in_make_probe()


def in_make_probe() -> bool:
    return bool(os.environ.get("TRELLIS_MAKE_PROBE"))


def progress() -> bool:
    return _flag("TRELLIS_PROGRESS", True)


def echo() -> bool:
    return _flag("TRELLIS_ECHO", False)


def flush_seconds() -> float:
    return max(0.05, _number("TRELLIS_FLUSH_SECONDS", 2.0))


def flush_values() -> int:
    return max(1, int(_number("TRELLIS_FLUSH_VALUES", 50000)))


def checkpoint_share() -> float:
    return min(1.0, max(0.0, _number("TRELLIS_CHECKPOINT_SHARE", 0.05)))


def stream_limit() -> int:
    return int(_number("TRELLIS_STREAM_LIMIT", 262144))


def lock_timeout() -> float:
    return max(0.001, _number("TRELLIS_LOCK_TIMEOUT", 60.0))


def hash_limit() -> int:
    return int(_number("TRELLIS_HASH_LIMIT", 512 << 20))


def store_url() -> str | None:
    return _text("TRELLIS_STORE")


def objects_url() -> str | None:
    return _text("TRELLIS_OBJECTS")


def openlineage_url() -> str | None:
    return _text("TRELLIS_OPENLINEAGE_URL")


def openlineage_configured() -> bool:
    """Whether runs send OpenLineage events: ``TRELLIS_OPENLINEAGE_URL``, or any of the settings
    the OpenLineage client reads itself (looked at without importing it, which takes long)."""
    if openlineage_url():
        return True
    if os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OPENLINEAGE_URL") or os.environ.get("OPENLINEAGE_CONFIG"):
        return True
    if any(name.startswith("OPENLINEAGE__TRANSPORT") for name in os.environ):
        return True
    return any(os.path.isfile(path) for path in (
        "openlineage.yml", os.path.join(os.path.expanduser("~"), ".openlineage", "openlineage.yml")))


def notebook_path() -> str | None:
    return _text("TRELLIS_NOTEBOOK")


def parent_run() -> str | None:
    return _text("TRELLIS_PARENT_RUN")


def replay_spec() -> str | None:
    return _text("TRELLIS_REPLAY")
