"""A cheap summary of a variable after a cell: what it is, its shape, and a fingerprint.

Summaries must cost little next to the cell itself: sizes come from attributes, fingerprints
are taken only of arrays and frames small enough to hash in about a millisecond.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any

_FINGERPRINT_LIMIT = 4 << 20
_REPR_LIMIT = 120


def summarize(value: Any) -> dict[str, Any]:
    kind = type(value)
    summary: dict[str, Any] = {"type": f"{kind.__module__}.{kind.__qualname__}"
                               if kind.__module__ != "builtins" else kind.__qualname__}
    try:
        _describe(value, summary)
    except Exception as error:
        summary["summary_error"] = f"{type(error).__name__}"
    return summary


def _describe(value: Any, summary: dict[str, Any]) -> None:
    if isinstance(value, type):  # a class: its attributes are descriptors, not data
        summary["class"] = f"{value.__module__}.{value.__qualname__}"
        return
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        summary["shape"] = list(shape)
    dtype = getattr(value, "dtype", None)
    if dtype is not None and not callable(dtype):
        summary["dtype"] = str(dtype)
    columns = getattr(value, "columns", None)
    if columns is not None and hasattr(columns, "tolist"):
        names = [str(c) for c in columns.tolist()[:100]]
        summary["columns"] = names
    get_params = getattr(value, "get_params", None)
    if callable(get_params) and hasattr(value, "fit"):
        summary["params"] = {k: repr(v)[:_REPR_LIMIT] for k, v in get_params(deep=False).items()}
        summary["fitted"] = any(k.endswith("_") and not k.startswith("_") for k in vars(value))
    if isinstance(value, (list, tuple, dict, set, frozenset, str, bytes)):
        summary["len"] = len(value)
    if isinstance(value, (int, float, bool, complex)) or value is None:
        summary["value"] = repr(value)[:_REPR_LIMIT]
    elif isinstance(value, str):
        summary["value"] = value[:_REPR_LIMIT]
    fingerprint = _fingerprint(value)
    if fingerprint:
        summary["fingerprint"] = fingerprint


def _fingerprint(value: Any) -> str | None:
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray) and not value.dtype.hasobject:
        if value.nbytes <= _FINGERPRINT_LIMIT:
            return hashlib.sha256(numpy.ascontiguousarray(value).tobytes()).hexdigest()
        return None
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, (pandas.DataFrame, pandas.Series)):
        if value.memory_usage(deep=False).sum() <= _FINGERPRINT_LIMIT:
            hashed = pandas.util.hash_pandas_object(value, index=True).to_numpy()
            return hashlib.sha256(hashed.tobytes()).hexdigest()
        return None
    if isinstance(value, (int, float, bool, str, bytes)) and len(repr(value)) <= _FINGERPRINT_LIMIT:
        return hashlib.sha256(repr(value).encode()).hexdigest()
    return None
