"""Settings, read from the environment so that scripts need no set-up code.

TRELLIS_STORE            store location: a folder, a ``.db`` file, ``sqlite:///path``
                         or ``postgresql+psycopg://...`` (default: ``trellis config store``,
                         else ``.trellis/`` at the project root)
TRELLIS_OBJECTS          where a PostgreSQL store keeps checkpoints and outputs: a folder
                         or an fsspec URL such as ``s3://bucket/prefix``
TRELLIS_LOCK_TIMEOUT     seconds a write waits for a store locked by another process (default 60)
TRELLIS_DISABLE          ``1`` records nothing (the API still returns its values)
TRELLIS_PROGRESS         ``0`` hides the progress bar ``loop`` shows on a terminal
TRELLIS_ECHO             ``1`` prints every logged value to stderr
TRELLIS_FLUSH_SECONDS    how often a running script's buffer is written (default 2)
TRELLIS_FLUSH_VALUES     ... or as soon as this many values are waiting (default 50000)
TRELLIS_CHECKPOINT_SHARE the largest share of loop time checkpoints may take (default 0.05)
TRELLIS_STREAM_LIMIT     characters of stdout/stderr kept per run (default 262144)
TRELLIS_HASH_LIMIT       files larger than this (bytes) are recorded unhashed (default 512 MiB)
"""

from __future__ import annotations

import os


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


def disabled() -> bool:
    # make's dry runs (which build-context capture starts) may execute recipes: not real runs.
    return _flag("TRELLIS_DISABLE", False) or bool(os.environ.get("TRELLIS_MAKE_PROBE"))


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


def store_url() -> str | None:
    return os.environ.get("TRELLIS_STORE") or None
