"""Carry new ``log`` statements from today's script into an older version of it.

Pure functions over source text. A statement is placed by code structure, never by line number:
the chain of enclosing blocks (function by name, ``trellis.loop`` by loop name, other compound
statements by their header) is followed down the old version's tree, and inside the matched block
the two statement lists are aligned; the new statements land between the same neighbours.
Anything that does not match exactly one place is reported with its reason, never guessed.
"""

from __future__ import annotations

import ast
import difflib
import textwrap
from dataclasses import dataclass, field

from trellis.analysis.cells import analyze_cell

# Methods that change the state a checkpoint holds; `eval()`/`train()` only flip a mode flag.
_STATE_CHANGING = frozenset({
    "step", "update", "fit", "partial_fit", "fit_transform", "load_state_dict", "set_params",
    "fill", "resize", "add_", "sub_", "mul_", "div_", "copy_", "zero_", "fill_", "clamp_",
})


class PlacementError(Exception):
    """The statement has no single place in that version; the message says why."""


@dataclass
class Found:
    """A new log statement in today's script: the block chain down to it and the block itself."""

    names: list[str]
    top: list[ast.stmt]  # the module's statements
    chain: list[ast.stmt]  # enclosing compound statements, outermost first
    block: list[ast.stmt]  # the statement list that holds it
    index: int  # its position in ``block``


@dataclass
class Placement:
    """Where a group of new statements goes in an old version, and what it needs to run."""

    names: list[str]
    text: str  # the statements, dedented
    line: int  # insert before this 1-based line of the old source
    indent: str
    loops: list[str]  # enclosing trellis loops in the old version, outermost first
    inside_function: str | None
    after_loop: str | None = None  # "before"/"after" the checkpointed loop when outside it
    light: bool = False  # inner loops may be restored instead of executed
    why_full: str | None = None
    uses: list[str] = field(default_factory=list)


# -- reading a script ---------------------------------------------------------------------------


# The modules that offer log/loop/checkpointing: trellis itself and its FlorDB names.
_API_MODULES = ("trellis", "trellis.flor")


def _trellis_aliases(tree: ast.Module) -> tuple[set[str], set[str], set[str]]:
    """Names bound to the trellis module (or ``trellis.flor``), to its ``log`` and to its
    ``loop``: ``import trellis [as t]``, ``import trellis.flor as flor``, ``from trellis import
    flor, log, loop``, ``from trellis.flor import log``. A dotted name such as ``trellis.flor``
    stands for ``trellis.flor.log(...)`` after a plain ``import trellis.flor``."""
    modules, logs, loops = {"trellis", "trellis.flor"}, set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in _API_MODULES:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module in _API_MODULES and not node.level:
            for alias in node.names:
                if alias.name == "log":
                    logs.add(alias.asname or "log")
                elif alias.name == "loop":
                    loops.add(alias.asname or "loop")
                elif alias.name == "flor" and node.module == "trellis":
                    modules.add(alias.asname or "flor")
    return modules, logs, loops


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


class _Script:
    def __init__(self, source: str, filename: str) -> None:
        try:
            self.tree = ast.parse(source, filename)
        except SyntaxError as error:
            raise PlacementError(f"{filename} does not parse: {error.msg} (line {error.lineno})") from None
        self.source = source
        self.lines = source.splitlines(keepends=True)
        self.modules, self.logs, self.loops = _trellis_aliases(self.tree)

    def _is_call_of(self, node: ast.AST, attribute: str, bare: set[str]) -> bool:
        if not isinstance(node, ast.Call):
            return False
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == attribute:
            return _dotted(func.value) in self.modules
        return isinstance(func, ast.Name) and func.id in bare

    def logged_names(self, node: ast.AST) -> list[str]:
        names = []
        for inner in ast.walk(node):
            if self._is_call_of(inner, "log", self.logs) and inner.args:
                first = inner.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.append(first.value)
        return names

    def loop_name(self, node: ast.stmt) -> str | None:
        """The name of the trellis loop a ``for`` statement iterates, if it iterates one."""
        if not isinstance(node, (ast.For, ast.AsyncFor)):
            return None
        for inner in ast.walk(node.iter):
            if self._is_call_of(inner, "loop", self.loops) and inner.args:
                first = inner.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    return first.value
        return None

    def is_checkpointing(self, node: ast.stmt) -> bool:
        if not isinstance(node, (ast.With, ast.AsyncWith)):
            return False
        return any(self._is_call_of(item.context_expr, "checkpointing", set()) for item in node.items)

    def key(self, node: ast.stmt) -> tuple:
        """What identifies a statement across versions: its header if compound, else its text."""
        loop = self.loop_name(node)
        if loop is not None:
            return ("loop", loop)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return (type(node).__name__, node.name)
        if self.is_checkpointing(node):
            return ("checkpointing",)
        if isinstance(node, (ast.For, ast.AsyncFor)):
            return ("for", ast.unparse(node.target), ast.unparse(node.iter))
        if isinstance(node, (ast.While, ast.If)):
            return (type(node).__name__, ast.unparse(node.test))
        if isinstance(node, (ast.With, ast.AsyncWith)):
            return ("with", *(ast.unparse(item) for item in node.items))
        if isinstance(node, ast.Try):
            return ("try",)
        return ("statement", ast.unparse(node))

    def checkpointed_names(self) -> set[str]:
        """Names passed to any ``checkpointing(...)`` call, in a ``with`` or assigned first."""
        names: set[str] = set()
        for node in ast.walk(self.tree):
            if self._is_call_of(node, "checkpointing", set()):
                for keyword in node.keywords:  # type: ignore[attr-defined]
                    names |= {n.id for n in ast.walk(keyword.value) if isinstance(n, ast.Name)}
        return names


def _blocks(node: ast.AST) -> list[tuple[str, list[ast.stmt]]]:
    """The statement lists directly inside ``node``, each with the field it came from."""
    found = []
    for name in ("body", "orelse", "finalbody"):
        block = getattr(node, name, None)
        if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
            found.append((name, block))
    for number, handler in enumerate(getattr(node, "handlers", []) or []):
        found.append((f"handler {number}", handler.body))
    for number, case in enumerate(getattr(node, "cases", []) or []):
        found.append((f"case {number}", case.body))
    return found


def find_statements(source: str, names: list[str] | None, filename: str = "script") -> list[Found]:
    """Statements of ``source`` that log any of ``names`` (every log statement if None)."""
    script = _Script(source, filename)
    found: list[Found] = []

    def visit(block: list[ast.stmt], chain: list[ast.stmt], fields: list[str]) -> None:
        for index, statement in enumerate(block):
            inner = _blocks(statement)
            logged = script.logged_names(statement)
            if not logged:
                continue
            wanted = [n for n in logged if names is None or n in names]
            if not wanted:
                continue
            if inner and _logs_only_inside(script, statement):
                for field_name, child in inner:
                    visit(child, chain + [statement], fields + [field_name])
            else:
                found.append(Found(list(dict.fromkeys(wanted)), script.tree.body, chain, block, index))

    visit(script.tree.body, [], [])
    return found


def _logs_only_inside(script: _Script, statement: ast.stmt) -> bool:
    """The statement's own header holds no log call: it is only a container of them."""
    blocks = {id(s) for _, block in _blocks(statement) for s in block}
    for node in ast.iter_child_nodes(statement):
        if id(node) not in blocks and script.logged_names(node):
            return False
    return True


# -- placing into an old version ----------------------------------------------------------------


def place(today: str, found: Found, old: str, checkpoint_loop: str | None,
          names: list[str] | None = None, filename: str = "script") -> Placement:
    """Where ``found`` (from ``today``) goes in ``old``; raises PlacementError with the reason.

    Of the statements today's block adds around it, those that log only other names than
    ``names`` stay behind.
    """
    new_script, old_script = _Script(today, filename), _Script(old, filename)
    block_new, block_old = found.top, old_script.tree.body
    old_chain: list[ast.stmt] = []
    target = found.block[found.index]
    for depth, container in enumerate(found.chain):
        wanted = new_script.key(container)
        matches = [s for s in block_old if old_script.key(s) == wanted]
        if len(matches) > 1:
            raise PlacementError(f"{_describe(wanted)} appears {len(matches)} times in this version")
        if not matches:
            # The container is new itself: carry it whole.
            target = container
            break
        field_name = _field_of(container, found.chain[depth + 1] if depth + 1 < len(found.chain) else found.block[found.index])
        block_new = _block_by_field(container, field_name)
        block_old = _block_by_field(matches[0], field_name)
        if block_old is None:
            raise PlacementError(f"{_describe(wanted)} has no {field_name} block in this version")
        old_chain.append(matches[0])
    position = next(i for i, s in enumerate(block_new) if s is target)
    start, end, index = _aligned_group(new_script, old_script, block_new, block_old, position)
    group = [
        s for s in block_new[start:end]
        if names is None or not new_script.logged_names(s) or set(new_script.logged_names(s)) & set(names)
    ]
    line, indent = _insertion_point(block_old, index)
    text = _dedented(new_script, group)
    uses = _undefined_names(text, old_script)
    if uses:
        raise PlacementError(
            f"the new statement uses {', '.join(uses)}, which this version does not define"
        )
    logged = list(dict.fromkeys(n for s in group for n in new_script.logged_names(s)))
    loops = [name for s in old_chain if (name := old_script.loop_name(s)) is not None]
    function = next((s.name for s in reversed(old_chain)
                     if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    placement = Placement(logged, text, line, indent, loops, function)
    _classify(placement, old_script, block_old, line, checkpoint_loop)
    return placement


def _field_of(container: ast.stmt, child: ast.stmt) -> str:
    for name, block in _blocks(container):
        if any(s is child for s in block):
            return name
    raise PlacementError("internal: a statement outside its container")


def _block_by_field(node: ast.stmt, field_name: str) -> list[ast.stmt] | None:
    return dict(_blocks(node)).get(field_name)


def _describe(key: tuple) -> str:
    kind, *rest = key
    if kind == "loop":
        return f"the loop {rest[0]!r}"
    if kind in ("FunctionDef", "AsyncFunctionDef"):
        return f"the function {rest[0]}"
    if kind == "ClassDef":
        return f"the class {rest[0]}"
    return f"`{kind} {' '.join(rest)}`".strip()


def _aligned_group(new: _Script, old: _Script, block_new: list, block_old: list,
                   position: int) -> tuple[int, int, int]:
    """The statements around ``position`` that today's block adds to the old one, as
    ``(start, end)`` in today's block, and the index in the old block they go before.

    Where old statements were edited around it, the place is only clear when they were edited
    one for one: then the new statements go after the old counterpart of their predecessor.
    """
    keys_new = [new.key(s) for s in block_new]
    keys_old = [old.key(s) for s in block_old]
    matcher = difflib.SequenceMatcher(a=keys_old, b=keys_new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if not j1 <= position < j2:
            continue
        if tag == "equal":
            raise PlacementError("this version already has the statement")
        if tag == "insert":
            return j1, j2, i1
        start = end = position
        while start > j1 and new.logged_names(block_new[start - 1]):
            start -= 1
        while end + 1 < j2 and new.logged_names(block_new[end + 1]):
            end += 1
        edited = (j2 - j1) - (end + 1 - start)
        stubs = sum(isinstance(s, ast.Pass) for s in block_old[i1:i2])  # `pass` only held the place
        if edited != i2 - i1 and edited != i2 - i1 - stubs:
            raise PlacementError("the statements around it changed in this version, so its place is ambiguous")
        return start, end + 1, i1 + (start - j1)
    raise PlacementError("internal: the statement was not aligned")


def _insertion_point(block_old: list, index: int) -> tuple[int, str]:
    """The old line to insert before, to land before ``block_old[index]``, and the indentation."""
    indent = " " * block_old[0].col_offset
    if index == 0:
        return _first_line(block_old[0]), indent
    return block_old[index - 1].end_lineno + 1, indent  # type: ignore[operator]


def _first_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", None) or []
    return min([node.lineno, *(d.lineno for d in decorators)])


def _dedented(script: _Script, group: list[ast.stmt]) -> str:
    # statements that share a line (``a = f(); log("a", a)``) bring it once
    numbers = dict.fromkeys(n for s in group for n in range(_first_line(s) - 1, s.end_lineno))  # type: ignore[arg-type]
    return textwrap.dedent("".join(script.lines[n] for n in numbers))


def _undefined_names(text: str, old: _Script) -> list[str]:
    used = set(analyze_cell(text).used)
    return sorted(used - _bound_names(old.tree))


def _bound_names(tree: ast.Module) -> set[str]:
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


# -- what a replay must execute -----------------------------------------------------------------


def _classify(placement: Placement, old: _Script, block: list[ast.stmt], line: int,
              checkpoint_loop: str | None) -> None:
    """Decide whether the checkpointed loop's inner loops can be restored rather than run."""
    if checkpoint_loop is None:
        placement.why_full = "the run saved no checkpoints"
        return
    if checkpoint_loop not in placement.loops:
        if placement.inside_function is not None and not placement.loops:
            placement.why_full = f"it is inside {placement.inside_function}(), which may run anywhere"
            return
        if placement.loops:
            placement.why_full = f"it is in the loop {placement.loops[-1]!r}"
            return
        loop_lines = [s.lineno for s in ast.walk(old.tree)
                      if isinstance(s, ast.stmt) and old.loop_name(s) == checkpoint_loop]
        if len(loop_lines) != 1:
            raise PlacementError(f"the loop {checkpoint_loop!r} appears {len(loop_lines)} times in this version")
        placement.after_loop = "before" if line <= loop_lines[0] else "after"
        return
    if placement.loops[-1] != checkpoint_loop:
        placement.why_full = f"it is in the loop {placement.loops[-1]!r}"
        return
    looping = _functions_with_loops(old)
    inner = [i for i, s in enumerate(block) if _runs_a_loop(old, s, looping)]
    placed_at = next((i for i, s in enumerate(block) if _first_line(s) >= line), len(block))
    if not inner:
        placement.light = False
        placement.why_full = f"the body of {checkpoint_loop!r} has no inner trellis loop to restore"
        return
    if any(i >= placed_at for i in inner):
        placement.why_full = "an inner loop runs after it"
        return
    checkpointed = old.checkpointed_names()
    tainted: set[str] = set()
    for index in range(inner[0], placed_at):
        statement = block[index]
        facts = analyze_cell(ast.unparse(statement))
        changed = set(facts.defined) | set(facts.mutated)
        if index in inner:
            tainted |= changed - checkpointed
            continue
        if set(facts.used) & tainted:
            tainted |= changed - checkpointed
        touched = (changed & checkpointed) | _state_changing_calls(statement, checkpointed)
        if touched:
            placement.why_full = (
                f"`{ast.unparse(statement).splitlines()[0]}` changes checkpointed {', '.join(sorted(touched))}"
                " after the inner loop"
            )
            return
    needs = set(analyze_cell(placement.text).used) & tainted
    if needs:
        placement.why_full = f"it uses {', '.join(sorted(needs))}, computed in the inner loop"
        return
    placement.light = True


def _functions_with_loops(script: _Script) -> set[str]:
    return {
        node.name for node in ast.walk(script.tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and any(isinstance(n, ast.stmt) and script.loop_name(n) for n in ast.walk(node))
    }


def _runs_a_loop(script: _Script, statement: ast.stmt, looping: set[str]) -> bool:
    """The statement holds a trellis loop, or calls a function of the script that does."""
    for node in ast.walk(statement):
        if isinstance(node, ast.stmt) and script.loop_name(node):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in looping:
            return True
    return False


def _state_changing_calls(statement: ast.stmt, names: set[str]) -> set[str]:
    touched = set()
    for node in ast.walk(statement):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in _STATE_CHANGING and isinstance(node.func.value, ast.Name)
                and node.func.value.id in names):
            touched.add(node.func.value.id)
    return touched


def patch(old: str, placements: list[Placement], filename: str = "script") -> str:
    """``old`` with every placement inserted; the result must compile."""
    lines = old.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for placement in sorted(placements, key=lambda p: p.line, reverse=True):
        inserted = textwrap.indent(placement.text, placement.indent)
        if not inserted.endswith("\n"):
            inserted += "\n"
        lines[placement.line - 1:placement.line - 1] = [inserted]
    patched = "".join(lines)
    try:
        compile(patched, filename, "exec")
    except SyntaxError as error:
        raise PlacementError(f"the patched version does not compile: {error.msg} (line {error.lineno})") from None
    return patched
