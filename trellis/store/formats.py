"""How objects are turned into bytes for the object folder, and back.

Objects with a ``state_dict`` (torch modules and optimizers, and anything that follows that
protocol) are saved as their state; numpy arrays as ``.npy`` without an extra copy; the rest is
pickled.

Loading a pickle can run any code its author chose (``__reduce__`` names a callable and its
arguments), and ``torch.load`` unpickles too. Objects of a run received from someone else are
therefore read without trust unless the caller says otherwise: ``.npy`` never unpickles, torch
loads with ``weights_only``, and a pickle loads only if it names no class or function at all
(plain dicts, lists, strings and numbers), since every way a pickle reaches code goes through
``find_class``.
"""

from __future__ import annotations

import io
import pickle
import random
import sys
from pathlib import Path
from typing import Any

from trellis._errors import UntrustedObjectError
from trellis.store.objects import Buffer


def state_of(obj: Any) -> Any:
    state_dict = getattr(obj, "state_dict", None)
    return state_dict() if callable(state_dict) else obj


def serialize(obj: Any) -> tuple[str, list[Buffer]]:
    """(format, byte parts) of ``obj``'s state."""
    state = state_of(obj)
    numpy = sys.modules.get("numpy")
    if numpy is not None and type(state) is numpy.ndarray and not state.dtype.hasobject:
        array = numpy.ascontiguousarray(state)
        header = io.BytesIO()
        numpy.lib.format.write_array_header_2_0(
            header, numpy.lib.format.header_data_from_array_1_0(array)
        )
        return "npy", [header.getvalue(), memoryview(array.reshape(-1)).cast("B")]
    torch = sys.modules.get("torch")
    if torch is not None and (torch.is_tensor(state) or _holds_tensors(torch, state)):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return "torch", [buffer.getbuffer()]
    return "pickle", [pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)]


def _holds_tensors(torch: Any, state: Any) -> bool:
    if isinstance(state, dict):
        return any(torch.is_tensor(v) or _holds_tensors(torch, v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return any(torch.is_tensor(v) or _holds_tensors(torch, v) for v in state)
    return False


class _PlainUnpickler(pickle.Unpickler):
    """Reads pickles of builtin values only: anything that would import a name is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise UntrustedObjectError(f"is a pickle that names {module}.{name}")


def deserialize(format: str, path: Path, trusted: bool = False) -> Any:
    """The object stored at ``path``: a local file, or a UPath into an object store.

    Unless ``trusted``, nothing that can run code while loading is loaded: such an object raises
    ``UntrustedObjectError`` whose message completes "the object ..." (what it is)."""
    with path.open("rb") as handle:
        if format == "npy":
            import numpy

            return numpy.load(handle, allow_pickle=False)
        if format == "torch":
            import torch

            if trusted:
                return torch.load(handle, weights_only=False)
            try:
                return torch.load(handle, weights_only=True)
            except pickle.UnpicklingError:
                raise UntrustedObjectError("is a torch file holding more than tensors and plain values") from None
        if trusted:
            return pickle.load(handle)
        return _PlainUnpickler(handle).load()


def restore(target: Any, state: Any) -> None:
    """Put ``state`` back into ``target`` in place, where the object allows it."""
    load_state_dict = getattr(target, "load_state_dict", None)
    if callable(load_state_dict):
        load_state_dict(state)
        return
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(target, numpy.ndarray):
        target[...] = state
        return
    generators = sys.modules.get("numpy.random")  # loaded if a generator exists: numpy imports it lazily
    if generators is not None:
        if isinstance(target, generators.Generator) and isinstance(state, generators.Generator):
            target.bit_generator.state = state.bit_generator.state
            return
        if isinstance(target, generators.RandomState) and isinstance(state, generators.RandomState):
            target.set_state(state.get_state())
            return
        if isinstance(target, generators.BitGenerator) and isinstance(state, generators.BitGenerator):
            target.state = state.state
            return
    torch = sys.modules.get("torch")
    if torch is not None:
        if torch.is_tensor(target) and torch.is_tensor(state):
            # a tensor's __dict__ holds none of its data: updating it would restore nothing
            with torch.no_grad():
                if target.shape == state.shape:
                    target.copy_(state)
                else:
                    target.set_(state.to(dtype=target.dtype, device=target.device).clone())
            return
        if isinstance(target, torch.Generator) and isinstance(state, torch.Generator):
            target.set_state(state.get_state())
            return
    if isinstance(target, random.Random) and isinstance(state, random.Random):
        target.setstate(state.getstate())
        return
    if isinstance(target, dict) and isinstance(state, dict):
        target.clear()
        target.update(state)
        return
    if isinstance(target, list) and isinstance(state, list):
        target[:] = state
        return
    if hasattr(target, "__dict__") and hasattr(state, "__dict__"):
        target.__dict__.update(state.__dict__)
        return
    raise TypeError(f"cannot restore a {type(target).__name__} in place")
