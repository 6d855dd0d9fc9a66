"""``--where``: which iterations a replay runs, and which of the values it computes it stores.

A ``--where`` is one condition or several joined by ``and``; each names one loop's index, and
``last`` is that loop's last index (of the run for the checkpointed loop, of each of its
instances for an inner loop): ``epoch >= 5 and step == last``. Conditions on the checkpointed
loop choose the iterations that run; conditions on any other loop choose which of the values
computed inside it are stored (the loop still runs in full: later iterations need its state).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Iterable

from trellis._errors import TrellisError

_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub,
            ast.Compare, ast.BinOp, ast.Mod, ast.Add, ast.Sub, ast.Mult, ast.FloorDiv,
            ast.Name, ast.Load, ast.Constant, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt,
            ast.GtE, ast.In, ast.NotIn, ast.Tuple, ast.List)


@dataclass
class Condition:
    loop: str
    source: str
    code: Any = field(default=None, repr=False, compare=False)

    def holds(self, index: int, last: int) -> bool:
        if self.code is None:
            self.code = compile(ast.parse(self.source, mode="eval"), "--where", "eval")
        return bool(eval(self.code, {"__builtins__": {}}, {"last": last, self.loop: index}))


def parse(where: str | None) -> list[Condition]:
    """The conditions of ``where``, one per loop-naming part joined by ``and``."""
    if not where:
        return []
    try:
        tree = ast.parse(where, mode="eval")
    except SyntaxError:
        raise TrellisError(f"--where {where!r} is not an expression like 'epoch >= 5'") from None
    if not all(isinstance(node, _ALLOWED) for node in ast.walk(tree)):
        raise TrellisError(f"--where {where!r}: only comparisons of loop indexes are allowed")
    body = tree.body
    parts = body.values if isinstance(body, ast.BoolOp) and isinstance(body.op, ast.And) else [body]
    conditions = []
    for part in parts:
        names = {node.id for node in ast.walk(part) if isinstance(node, ast.Name)} - {"last"}
        if len(names) != 1:
            raise TrellisError(
                f"--where {where!r}: each condition names one loop's index, like 'epoch >= 5 and step == last'"
                f" ({ast.unparse(part)!r} names {', '.join(sorted(names)) or 'none'})"
            )
        conditions.append(Condition(names.pop(), ast.unparse(part)))
    return conditions


def holds(conditions: Iterable[Condition], loop: str, index: int, last: int) -> bool:
    """Whether iteration ``index`` of ``loop`` (whose last index is ``last``) is selected."""
    return all(c.holds(index, last) for c in conditions if c.loop == loop)


def joined(conditions: Iterable[Condition]) -> str | None:
    """The conditions as one ``--where`` again (for a plan that travels as JSON)."""
    return " and ".join(f"({c.source})" for c in conditions) or None


def keeps(conditions: list[Condition], path: tuple, lasts: dict[tuple, int]) -> bool:
    """Whether a value at ``path`` ((loop, instance, index) from the top level) is selected:
    every condition on a loop it lies in holds there. ``lasts`` gives each loop instance's last
    index, by the path up to that loop and the loop's (name, instance)."""
    for depth, (loop, instance, index) in enumerate(path):
        chosen = [c for c in conditions if c.loop == loop]
        if chosen and not all(c.holds(index, lasts[(path[:depth], loop, instance)]) for c in chosen):
            return False
    return True


def last_indexes(paths: Iterable[tuple]) -> dict[tuple, int]:
    """For ``keeps``: the last index of every loop instance among recorded iteration paths."""
    lasts: dict[tuple, int] = {}
    for path in paths:
        if path:
            *outer, (loop, instance, index) = path
            key = (tuple(outer), loop, instance)
            lasts[key] = max(lasts.get(key, index), index)
    return lasts
