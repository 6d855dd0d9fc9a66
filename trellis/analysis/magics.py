"""IPython's own syntax in a cell: find its magics and shell escapes, and turn the cell into Python.

IPython runs a cell only after rewriting its syntax into calls on the shell: ``%timeit f()``
becomes ``get_ipython().run_line_magic('timeit', 'f()')``, ``!ls`` becomes
``get_ipython().system('ls')``, ``files = !ls`` becomes ``files = get_ipython().getoutput('ls')``
and a ``%%time`` cell becomes one ``run_cell_magic`` call with the body as a string. Analysing the
rewritten text sees what the kernel really runs, including the names those forms bind.

IPython's rewriter is used when IPython is installed (imported here, only when a cell needs it,
so that ``import trellis.analysis`` stays free of it); otherwise a line-based rewriter of the same
forms stands in. The magics themselves are always read from the raw source, so both ways report
the same list.
"""

from __future__ import annotations

import re
import warnings
from typing import Callable

# Magics whose argument or body is Python run in the user's namespace, with the same effect on
# names as running it directly.
NAMESPACE_MAGICS = frozenset({"time", "prun", "capture"})
# %timeit runs its statement in a namespace of its own: it reads the user's names, but what it
# binds is gone afterwards.
ISOLATED_MAGICS = frozenset({"timeit"})
PYTHON_MAGICS = NAMESPACE_MAGICS | ISOLATED_MAGICS

# IPython re-tokenizes the whole cell once per construct it rewrites, so its cost grows with
# constructs x size (400 shell escapes in a 6 kB cell took 3.5 s, one in 100 kB 0.3 s). Past this
# budget of characters tokenized, the line-based rewriter, linear in the cell, is used instead.
_IPYTHON_BUDGET = 200_000
# On text that is not Python either way (a half-typed cell), or with a very long line (its
# tokenizer backtracks), IPython's rewriter can be much slower still: fuzzed 4-6 kB cells took
# 9-30 s. Such a cell is left to the line-based rewriter unless it is short.
_IPYTHON_BROKEN_LIMIT = 1000

# Only \r\n, \r and \n end a line for Python; str.splitlines() would also split on \x0c, \x1c...
_LINE_END = re.compile(r"\r\n|\r|\n")
_ESCAPED = re.compile(r"(?P<indent>[ \t]*)(?P<escape>[%!].*)")
_ASSIGNED = re.compile(
    r"(?P<indent>[ \t]*)(?P<target>[\w.]+(?:[ \t]*,[ \t]*[\w.]+)*)[ \t]*=[ \t]*(?P<escape>[%!].*)"
)
_HELP = re.compile(r"(?P<indent>[ \t]*)(?:\?{1,2}[\w.]+|[\w.]+\?{1,2})[ \t]*")


def to_python(source: str) -> tuple[str, tuple[str, ...]]:
    """The Python text IPython would run for a cell, and the magics and shell escapes it has."""
    rewritten, magics, constructs = _rewrite(source)
    if (constructs + 1) * len(source) <= _IPYTHON_BUDGET and (
        len(source) <= _IPYTHON_BROKEN_LIMIT or _parses(rewritten)
    ) and max(map(len, _LINE_END.split(source))) <= _IPYTHON_BROKEN_LIMIT:
        transform = _ipython_transform()
        if transform is not None:
            try:
                # It warns about odd input; the user's kernel should not hear about our analysis.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return transform(source), magics
            except Exception:  # IPython's rewriter has choked on odd input; ours still answers
                pass
    return rewritten, magics


def _parses(text: str) -> bool:
    import ast

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _ipython_transform() -> Callable[[str], str] | None:
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except Exception:  # not installed, or installed but broken: the line rewriter stands in
        return None
    return TransformerManager().transform_cell


def _rewrite(source: str) -> tuple[str, tuple[str, ...], int]:
    """Line-based stand-in for IPython's rewriter: (Python text, magics, constructs rewritten).

    It looks at physical lines, so a line of a multi-line string that starts with ``%`` or ``!``
    is taken for a magic; IPython's tokenizing rewriter does not make that mistake. Blank lines
    are kept so that line numbers in error messages match the cell.
    """
    lines = _LINE_END.split(source)
    first = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    if first < len(lines):
        # Like IPython, forgive an indented cell (pasted from inside a block).
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip(" \t"))]
        if indent:
            lines = [line[len(indent):] if line.startswith(indent) else line for line in lines]
        if lines[first].startswith("%%"):
            return _rewrite_cell_magic(lines, first)
    rewritten, magics, constructs = _rewrite_lines(lines)
    return "\n".join(rewritten) + "\n", tuple(magics), constructs


def _rewrite_cell_magic(lines: list[str], first: int) -> tuple[str, tuple[str, ...], int]:
    """A cell that starts with ``%%name line``: one run_cell_magic call with the rest as body."""
    name, line = _name_and_line(lines[first][2:])
    body = "\n".join(lines[first + 1:])
    call = f"get_ipython().run_cell_magic({name!r}, {line!r}, {body!r})\n"
    magics = [lines[first].strip()]
    # The body of %%time and the like is itself a cell, which may stack another cell magic
    # (%%capture over %%time) and contain line magics: list those too.
    body_lines = lines[first + 1:]
    while name in PYTHON_MAGICS:
        start = next((i for i, text in enumerate(body_lines) if text.strip()), len(body_lines))
        if start == len(body_lines) or not body_lines[start].startswith("%%"):
            magics.extend(_rewrite_lines(body_lines)[1])
            break
        magics.append(body_lines[start].strip())
        name = _name_and_line(body_lines[start][2:])[0]
        body_lines = body_lines[start + 1:]
    return "\n" * first + call, tuple(magics), 1


def _rewrite_lines(lines: list[str]) -> tuple[list[str], list[str], int]:
    rewritten: list[str] = []
    magics: list[str] = []
    constructs = 0
    for line in lines:
        if escaped := _ESCAPED.fullmatch(line):
            escape = escaped["escape"].rstrip()
            rewritten.append(escaped["indent"] + _shell_call(escape, captured=False))
        elif assigned := _ASSIGNED.fullmatch(line):
            escape = assigned["escape"].rstrip()
            call = _shell_call(escape, captured=True)
            rewritten.append(f"{assigned['indent']}{assigned['target']} = {call}")
        elif helped := _HELP.fullmatch(line):
            # `obj?` shows help and binds nothing; `pass` keeps a block that held only it valid.
            rewritten.append(helped["indent"] + "pass")
            constructs += 1
            continue
        else:
            rewritten.append(line)
            continue
        magics.append(escape)
        constructs += 1
    return rewritten, magics, constructs


def _shell_call(escape: str, *, captured: bool) -> str:
    """The call IPython makes for a magic (``%name args``) or shell escape (``!cmd``, ``!!cmd``)."""
    if escape.startswith("!"):
        if escape.startswith("!!"):
            return f"get_ipython().getoutput({escape[2:]!r})"
        method = "getoutput" if captured else "system"
        return f"get_ipython().{method}({escape[1:]!r})"
    name, line = _name_and_line(escape[1:])
    return f"get_ipython().run_line_magic({name!r}, {line!r})"


def _name_and_line(text: str) -> tuple[str, str]:
    """`timeit -n 3 f()` -> ('timeit', '-n 3 f()')."""
    parts = text.strip().split(None, 1)
    return (parts[0] if parts else "", parts[1] if len(parts) > 1 else "")
