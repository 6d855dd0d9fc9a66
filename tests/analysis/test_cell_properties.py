"""Properties of analyze_cell over generated input: it always answers, and agrees with Python.

Python's own symbol tables (the `symtable` module, what the compiler uses) are the oracle for
scoping: a name read anywhere in the cell that resolves to the module namespace and that the
cell never binds there must be reported as used, and nothing may be reported as used that Python
does not read from the module namespace.
"""

from __future__ import annotations

import ast
import builtins
import symtable
import textwrap

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from trellis.analysis import analyze_cell

pytestmark = [
    pytest.mark.filterwarnings("ignore::SyntaxWarning"),
    pytest.mark.sqlite_only("analysis of code and dependencies: the store does not change what it checks"),
]  # from compiling generated code

BUILTINS = frozenset(dir(builtins))

# Cells with the constructs analysis gets wrong most easily, to mutate into near-Python.
SEEDS = [textwrap.dedent(s) for s in [
    """
    import numpy as np
    from sklearn.svm import SVC
    X = np.load("data/X.npy"); y = X[:, 0] > 0
    model = SVC(C=1.0)
    model.fit(X, y)
    """,
    """
    %%time
    df['c'] = df.a.fillna(0, inplace=True)
    !pip install pandas
    files = !ls
    """,
    """
    class A(Base, metaclass=M):
        n = 3
        xs = [n * i for i in range(n) if i]
        def f(self, a=n, *args, b, **kw):
            global g
            ks = [k for i in xs if (k := i)]
            g = lambda z=a: z + q
            return [g for g in args]
    """,
    """
    try:
        with open(p) as fh, lock:
            data = [line async for line in fh]
    except* (OSError, ValueError) as group:
        del data[0], group
    else:
        total += sum(x for x in data)
    finally:
        match data:
            case [first, *rest] if first: pass
            case {"k": v, **others}: pass
            case Point(x=0) | Point(y=0): pass
    """,
    """
    def outer():
        value = 1
        def inner():
            nonlocal value
            value += 1
            return value
        return inner
    while (chunk := read()) and not done:
        for i, (a, *b) in enumerate(chunk):
            if a: break
        else:
            continue
    """,
]]

PIECES = st.sampled_from(
    list("()[]{}:=%!?'\"\\\n\t #.,*@+-<>&|^~;") + ["    ", "lambda", "def ", "class ", "import "]
)


@st.composite
def mutated_cells(draw: st.DrawFn) -> str:
    """A seed cell with a few random deletions, insertions and duplications."""
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 6))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 20)))
        action = draw(st.sampled_from(["delete", "insert", "duplicate"]))
        if action == "delete":
            text = text[:start] + text[end:]
        elif action == "insert":
            text = text[:start] + "".join(draw(st.lists(PIECES, max_size=5))) + text[start:]
        else:
            text = text[:end] + text[start:end] + text[end:]
    return text


def assert_answers(source: str) -> None:
    result = analyze_cell(source)
    assert result.error is None or not result.error.startswith("analysis failed"), result.error
    if result.error is not None:
        assert "\n" not in result.error


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_gets_an_answer(source: str) -> None:
    assert_answers(source)


@settings(max_examples=300, deadline=None)
@given(mutated_cells())
def test_mutated_python_gets_an_answer(source: str) -> None:
    assert_answers(source)


@settings(max_examples=100, deadline=None)
@given(st.binary())
def test_any_bytes_get_an_answer(source: bytes) -> None:
    assert_answers(source)  # type: ignore[arg-type]


def module_level_names(source: str) -> tuple[set[str], set[str], set[str]]:
    """From Python's symbol tables: (names bound in the module namespace, names read from it
    that the analysis must report, names it may report)."""
    top = symtable.symtable(source, "<cell>", "exec")
    bound: set[str] = set()
    global_reads: set[str] = set()
    class_reads: set[str] = set()
    tables = [top]
    while tables:
        table = tables.pop()
        tables.extend(table.get_children())
        for symbol in table.get_symbols():
            name = symbol.get_name()
            if table is top:
                if symbol.is_assigned() or symbol.is_imported():
                    bound.add(name)
                if symbol.is_referenced():
                    global_reads.add(name)
                continue
            if symbol.is_declared_global() and symbol.is_assigned():
                bound.add(name)
            if symbol.is_referenced() and symbol.is_global():
                global_reads.add(name)
            if table.get_type() == "class" and symbol.is_referenced():
                class_reads.add(name)  # read before the class body binds it: from the module
    # `x += 1` reads x, which symtable does not mark as a reference.
    augmented = {n.target.id for n in ast.walk(ast.parse(source))
                 if isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name)}
    return bound, global_reads - bound - BUILTINS, global_reads | class_reads | augmented


def may_unbind(source: str) -> set[str]:
    """Names that `del`, the end of an except handler or a bare annotation (`x: int`, which
    symtable counts as an assignment) may leave unbound."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Delete):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if node.value is None:
                names.add(node.target.id)
    return names


def check_generated(source: str) -> None:
    try:
        symtable.symtable(source, "<cell>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        assume(False)  # parses, but the compiler rejects it (nonlocal at module level...)
    check_against_symtable(source)


def check_against_symtable(source: str) -> None:
    bound, must_use, may_use = module_level_names(source)
    result = analyze_cell(source)
    if result.error is not None:
        assert result.error == "code nested too deeply to analyse"
        return
    used = set(result.used)
    assert must_use <= used, f"missing uses {must_use - used}"
    assert used <= may_use, f"not read from the module: {used - may_use}"
    assert not used & BUILTINS.union(result.defined) - may_use
    assert set(result.builtins_used) <= BUILTINS | {"display"}
    assert set(result.defined) <= bound, f"not bound: {set(result.defined) - bound}"
    # Every binding counts, whatever branch it is on, unless something may unbind the name.
    missing = bound - may_unbind(source) - set(result.defined)
    assert not missing, f"bound but not defined: {missing}"
    # A mutation reads the name: unless the cell bound it first, it is a use.
    assert set(result.mutated) <= used | bound


# -- generated programs dense in scopes, over few names so that they collide ------------------

NAMES = st.sampled_from(["a", "b", "c", "df", "model"])
# Two different names: Python rejects `lambda a, a: ...` and a walrus that rebinds a
# comprehension's own loop variable.
NAME_PAIRS = st.lists(NAMES, min_size=2, max_size=2, unique=True)


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    name, other = draw(NAME_PAIRS)
    if depth >= 2:
        return draw(st.sampled_from([name, "1", "'data/x.csv'"]))
    template = draw(st.sampled_from([
        "{n}",
        "{0} + {1}",
        "[{0} for {n} in {1}]",
        "[{0} for {n} in {1} if ({o} := {2})]",
        "{{{n}: {0} for {n}, {o} in {1}}}",
        "(lambda {n}, {o}={0}: {1})",
        "{0}.attr",
        "{0}[{1}]",
        "f({0}, key={1})",
        "({n} := {0})",
        "({0} and {1})",
        "({0} if {1} else {2})",
    ]))
    # Draw only the operands the template has, so that examples stay small.
    operands = [draw(expressions(depth + 1)) for i in range(3) if "{%d}" % i in template]
    return template.format(*operands, n=name, o=other)


@st.composite
def blocks(draw: st.DrawFn, depth: int = 0, in_function: bool = False,
           in_loop: bool = False) -> list[str]:
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        lines.extend(draw(statements(depth, in_function, in_loop)))
    return lines


SIMPLE_STATEMENTS = [
    "{n} = {v}",
    "{n}, (*{o}, c) = {v}",
    "{n}[{v}] = {v}",
    "{n}.attr = {v}",
    "{n} += {v}",
    "{n}.fit({v}, {o})",
    "{n}.append({v})",
    "{v}",
    "del {n}",
    "import os.path as {n}",
    "from pkg import {n}",
]
COMPOUND_STATEMENTS = {
    "def": ["@{o}", "def {n}({o}, q={v}, *args, **kw):", "FUNCTION"],
    # A global declaration must come before any use of the name in the function.
    "global": ["def {n}():", "    global {o}", "    {o} = {v}", "FUNCTION"],
    "class": ["class {n}({o}):", "CLASS"],
    "if": ["if {v}:", "BODY", "else:", "BODY"],
    "for": ["for {n} in {v}:", "LOOP", "else:", "BODY"],
    "while": ["while {v}:", "LOOP"],
    "try": ["try:", "BODY", "except E as {n}:", "BODY", "finally:", "BODY"],
    "try-else": ["try:", "BODY", "except E:", "BODY", "else:", "BODY"],
    "with": ["with {v} as {n}, {o}:", "BODY"],
}


@st.composite
def statements(draw: st.DrawFn, depth: int, in_function: bool, in_loop: bool) -> list[str]:
    name, other = draw(NAME_PAIRS)
    simple = SIMPLE_STATEMENTS + (["return {v}"] if in_function else []) + (
        ["break", "continue"] if in_loop else [])
    kinds = ["simple"] * 3 + (list(COMPOUND_STATEMENTS) if depth < 2 else [])
    kind = draw(st.sampled_from(kinds))
    template = [draw(st.sampled_from(simple))] if kind == "simple" else COMPOUND_STATEMENTS[kind]
    contexts = {
        "FUNCTION": (True, False), "CLASS": (False, False),
        "LOOP": (in_function, True), "BODY": (in_function, in_loop),
    }
    lines: list[str] = []
    for line in template:
        if line in contexts:
            function, loop = contexts[line]
            lines.extend("    " + inner for inner in draw(blocks(depth + 1, function, loop)))
        else:
            value = draw(expressions()) if "{v}" in line else ""
            lines.append(line.format(n=name, o=other, v=value))
    return lines


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(blocks())
def test_scope_dense_programs_agree_with_symtable(lines: list[str]) -> None:
    check_generated("\n".join(lines) + "\n")


@pytest.mark.parametrize("source", SEEDS[:1] + SEEDS[2:])
def test_seed_cells_agree_with_symtable(source: str) -> None:
    check_against_symtable(source)
