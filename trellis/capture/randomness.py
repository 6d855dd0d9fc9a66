"""The random number generators a script's next iterations depend on, saved with each
checkpoint and put back when a replay resumes from it.

A replay that restores the checkpointed objects but leaves a generator in its start state draws
other minibatches than the original run did. So every checkpoint also holds the state of
Python's ``random``, numpy's global generator, torch's CPU and CUDA generators (when torch is
imported), and every generator object the script can reach: the variables of the code that
entered ``checkpointing()`` (the function's and the module's), the checkpointed objects, and
one level into their attributes and those of objects of the script's own classes. Each is keyed
by where it was found, which is the same place in the replaying process.
"""

from __future__ import annotations

import random
import sys
from types import FrameType, ModuleType
from typing import Any, Iterator

from trellis.store.schema import GENERATOR_STATES as ENTRY  # the checkpoint entry that holds them

Key = tuple[str, ...]


def _numpy_random() -> ModuleType | None:
    """numpy.random if the script imported it: numpy imports it lazily (40 ms), and a script
    that never touched it has no numpy generator to save."""
    return sys.modules.get("numpy.random")


def _numpy_kinds() -> tuple[type, ...]:
    generators = _numpy_random()
    if generators is None:
        return ()
    return (generators.Generator, generators.RandomState, generators.BitGenerator)


def _torch_generator() -> type | None:
    torch = sys.modules.get("torch")
    return getattr(torch, "Generator", None) if torch is not None else None


def _is_generator(value: Any, kinds: tuple[type, ...]) -> bool:
    # SystemRandom draws from the OS and has no state to save
    return isinstance(value, kinds) and not isinstance(value, (type, ModuleType, random.SystemRandom))


def _places(frame: FrameType | None, named: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    places = [("checkpointed", named)]
    if frame is not None:
        if frame.f_locals is not frame.f_globals:
            places.append(("locals", dict(frame.f_locals)))
        places.append(("globals", frame.f_globals))
    main = sys.modules.get("__main__")
    if main is not None and (frame is None or main.__dict__ is not frame.f_globals):
        places.append(("main", vars(main)))
    return places


def _reachable(frame: FrameType | None, named: dict[str, Any]) -> Iterator[tuple[Key, Any]]:
    kinds = (*_numpy_kinds(), random.Random)
    torch_kind = _torch_generator()
    if torch_kind is not None:
        kinds += (torch_kind,)
    for place, variables in _places(frame, named):
        for name, value in list(variables.items()):
            if name.startswith("__"):
                continue
            if _is_generator(value, kinds):
                yield (place, name), value
                continue
            owner = type(value)
            if place == "checkpointed" or getattr(owner, "__module__", None) == "__main__":
                attributes = getattr(value, "__dict__", None)
                if isinstance(attributes, dict):
                    for attribute, inner in list(attributes.items()):
                        if _is_generator(inner, kinds):
                            yield (place, name, attribute), inner


def _state(generator: Any) -> Any:
    generators = _numpy_random()
    if generators is not None:
        if isinstance(generator, generators.Generator):
            return generator.bit_generator.state
        if isinstance(generator, generators.RandomState):
            return generator.get_state(legacy=False)
        if isinstance(generator, generators.BitGenerator):
            return generator.state
    if isinstance(generator, random.Random):
        return generator.getstate()
    return generator.get_state()  # a torch.Generator


def _set_state(generator: Any, state: Any) -> None:
    generators = _numpy_random()
    if generators is not None:
        if isinstance(generator, generators.Generator):
            generator.bit_generator.state = state
            return
        if isinstance(generator, generators.RandomState):
            generator.set_state(state)
            return
        if isinstance(generator, generators.BitGenerator):
            generator.state = state
            return
    if isinstance(generator, random.Random):
        generator.setstate(state)
        return
    generator.set_state(state)


def capture(frame: FrameType | None, named: dict[str, Any]) -> dict[Key, Any]:
    """The states of the process-wide generators and of every reachable generator object."""
    states: dict[Key, Any] = {("random",): random.getstate()}
    generators = _numpy_random()
    if generators is not None:
        states[("numpy",)] = generators.get_state(legacy=False)
    torch = sys.modules.get("torch")
    if torch is not None:
        states[("torch",)] = torch.get_rng_state()
        cuda = getattr(torch, "cuda", None)
        if cuda is not None and cuda.is_available() and cuda.is_initialized():
            states[("torch.cuda",)] = cuda.get_rng_state_all()
    for key, generator in _reachable(frame, named):
        states[key] = _state(generator)
    return states


def restore(frame: FrameType | None, named: dict[str, Any], states: dict[Key, Any]) -> list[str]:
    """Put ``states`` back; the keys that found no generator at their place, as text."""
    missing = []
    for key in (("random",), ("numpy",), ("torch",), ("torch.cuda",)):
        if key not in states:
            continue
        state = states[key]
        module = sys.modules.get({"numpy": "numpy.random", "torch.cuda": "torch"}.get(key[0], key[0]))
        if module is None:
            if key == ("numpy",):  # the replay has not touched numpy's generators yet
                module = sys.modules["numpy"].random if "numpy" in sys.modules else None
            if module is None:
                missing.append(key[0])
                continue
        if key == ("random",):
            random.setstate(state)
        elif key == ("numpy",):
            module.set_state(state)
        elif key == ("torch",):
            module.set_rng_state(state)
        else:
            module.cuda.set_rng_state_all(state)
    found = dict(_reachable(frame, named))
    for key, state in states.items():
        if len(key) == 1:
            continue
        generator = found.get(key)
        if generator is None:
            missing.append(".".join(key[1:]))
            continue
        _set_state(generator, state)
    return missing
