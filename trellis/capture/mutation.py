"""Objects a cell changed without naming them, seen at run time.

The source says ``pipe.fit(X, y)`` changes ``pipe``; it does not say that the estimators inside
the pipeline, still bound to ``scaler`` and ``clf``, were fitted too, nor that ``v[:] = 0``
changed the array ``v`` is a view of, nor that ``optimizer.step()`` changed the model it was
built from. After each cell, every array, frame, estimator and torch module or optimizer in the
namespace gets a cheap state; one that is still the same object but whose state differs from the
last look was changed by that cell, whatever call did it.

States are cheap by construction: an array or frame up to ``WHOLE_BYTES`` is hashed whole, a
larger one through ``SAMPLE`` evenly spaced elements or rows (a change that touches none of them
goes unseen); an estimator by its fitted attributes; a torch module by the version counters of
its tensors, which every in-place change bumps; an optimizer by its step counts.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any, Hashable

WHOLE_BYTES = 1 << 20
SAMPLE = 4096
_DEPTH = 2  # how far into an estimator's fitted attributes states look


def state_of(value: Any, depth: int = 0) -> Hashable | None:
    """A value that changes when ``value``'s content does, or None for what is not watched."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return _array_state(numpy, value)
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, (pandas.DataFrame, pandas.Series)):
        return _frame_state(pandas, value)
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(value, torch.nn.Module):
            return tuple(t._version for t in (*value.parameters(), *value.buffers()))
        if isinstance(value, torch.optim.Optimizer):
            return tuple(sorted((id(k), repr(s.get("step"))) for k, s in value.state.items()))
        if isinstance(value, torch.Tensor):
            return value._version
    if depth < _DEPTH and callable(getattr(value, "get_params", None)) and hasattr(value, "fit"):
        return _estimator_state(value, depth)
    return None


def _array_state(numpy: Any, array: Any) -> Hashable | None:
    if array.dtype.hasobject:
        return None
    if array.nbytes > WHOLE_BYTES:
        flat = array.reshape(-1)
        array = flat[:: max(1, flat.size // SAMPLE)]
    return array.shape, str(array.dtype), hashlib.blake2b(numpy.ascontiguousarray(array).tobytes(),
                                                          digest_size=16).digest()


def _frame_state(pandas: Any, frame: Any) -> Hashable:
    sample = frame
    if frame.memory_usage(deep=False).sum() > WHOLE_BYTES:
        sample = frame.iloc[:: max(1, len(frame) // SAMPLE)]
    hashed = pandas.util.hash_pandas_object(sample, index=True).to_numpy()
    columns = tuple(map(str, frame.columns)) if hasattr(frame, "columns") else frame.name
    return frame.shape, columns, hashlib.blake2b(hashed.tobytes(), digest_size=16).digest()


def _estimator_state(estimator: Any, depth: int) -> Hashable:
    """The fitted attributes (scikit-learn's trailing underscore) and what they hold."""
    parts = []
    for name, held in sorted(vars(estimator).items()):
        if not name.endswith("_") or name.startswith("_"):
            continue
        inner = state_of(held, depth + 1)
        if inner is None:
            inner = (type(held).__name__, id(held)) if not isinstance(held, (int, float, str, bool)) else held
        parts.append((name, inner))
    return tuple(parts)


class MutationWatch:
    """Remembers each watched name's object and state from one look to the next."""

    def __init__(self) -> None:
        self.known: dict[str, tuple[int, Hashable]] = {}

    def look(self, namespace: dict[str, Any]) -> list[str]:
        """The names whose object is the one of the last look, with a different state."""
        changed = []
        seen: dict[str, tuple[int, Hashable]] = {}
        for name, value in list(namespace.items()):
            if name.startswith("_"):
                continue
            try:
                state = state_of(value)
            except Exception:
                continue  # an object that cannot say its state is not watched
            if state is None:
                continue
            seen[name] = (id(value), state)
            before = self.known.get(name)
            if before is not None and before[0] == id(value) and before[1] != state:
                changed.append(name)
        self.known = seen
        return changed
