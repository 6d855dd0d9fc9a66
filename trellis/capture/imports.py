"""Act on a module when the program first imports it (or at once, if it already has): a finder
placed in front of ``sys.meta_path`` hands the import on and calls the hooks after the module ran.
Capture wraps functions this way without importing their modules itself, which keeps
``import trellis`` from paying for libraries the program may never use."""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any, Callable

_HOOKS: dict[str, list[Callable[[Any], None]]] = {}


def when_imported(name: str, hook: Callable[[Any], None]) -> None:
    """Call ``hook(module)`` once module ``name`` is imported: now, if it is."""
    _HOOKS.setdefault(name, []).append(hook)
    if name in sys.modules:
        hook(sys.modules[name])
    if not any(isinstance(finder, _HookingFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _HookingFinder())


class _HookingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in _HOOKS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                execute = spec.loader.exec_module

                def exec_module(module: Any, execute: Callable = execute) -> None:
                    execute(module)
                    for hook in _HOOKS.get(module.__name__, []):
                        hook(module)

                spec.loader.exec_module = exec_module
                return spec
            if spec is not None:
                return spec
        return None
