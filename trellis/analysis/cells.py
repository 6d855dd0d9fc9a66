"""What one cell (or a script's top level) does with names, found from its source alone.

``analyze_cell`` answers for any input and in bounded time: text that is not Python, null bytes,
lone surrogates, very deep nesting or an over-long cell give a result whose ``error`` says why,
never an exception. Sources over ``MAX_SOURCE_CHARS`` are not parsed at all.

How names are counted (Python's scoping rules, plus these choices):

- ``defined``: names the cell binds in the module namespace, wherever that happens: top-level
  statements, a walrus in a top-level comprehension, a function that declares ``global x`` and
  assigns it. Every branch is assumed to run; ``del x`` removes ``x``; the name of
  ``except ... as e`` is not kept, because Python deletes it when the handler ends.
  ``maybe_defined``: those of them the cell does not bind on every path (inside one branch, a
  loop or ``try`` body, a function's ``global``), which a kernel can check by looking.
- ``used``: names the cell reads from the namespace as it was before the cell ran. A top-level
  read counts unless the name is certainly bound at that point in the cell: a binding inside one
  branch of an ``if``, a loop body, a ``try`` body or the later operands of ``and``/``or`` does
  not make it certain. A read inside a function or lambda body happens when the function is
  called, at a time the source does not tell: it counts only if the cell binds the name nowhere
  (so ``def f(): return df`` uses ``df`` unless the cell also assigns ``df``, before or after).
  ``deferred_used`` says which of them are read only inside such bodies, when the cell does not
  itself call a function or lambda it made: the definition reads nothing, a call will.
  Builtins go to ``builtins_used`` instead, so that a later analysis can still link a cell to an
  earlier one that shadowed a builtin (``input = load()``).
- ``mutated``: top-level names whose object gets a new version without being rebound: stores
  into an attribute or item, ``del`` of one, mutating method calls (``fit``, ``append``, trailing
  underscore in-place methods such as torch's ``add_``, any call with ``inplace=``), functions
  that change an argument (``shuffle(x)``, ``setattr(x, ...)``, ``out=x``). Method calls on
  modules (``np.insert``, ``os.remove``) are not mutations of the module. A mutation reads the
  name too, so a mutated name that the cell did not bind first is also in ``used``. Mutations
  inside function bodies are not counted: they happen only if and when the function is called.
- ``fit_inputs``: for ``model.fit(X, y)`` and its kin, the names of the data passed in, so that
  a fitted model can be traced to its training data rather than to ``model = SVC()``.
- ``literals``: string constants that look like a file (a data extension such as ``.csv`` or a
  path with ``/``, no whitespace) or a URL; an f-string is checked as its template,
  ``data/{split}.csv``. ``loops`` counts loop statements and ``conditions`` ``if``/``elif``,
  conditional expressions and ``match``, in all scopes.
- IPython syntax is analysed as IPython runs it (see ``magics``): ``files = !ls`` binds
  ``files``, the Python in ``%time``/``%%time``/``%%capture``/``%prun`` runs in the cell's
  namespace and that of ``%timeit`` in its own.

Order matters for certainty only in module and class bodies; a ``finally`` block is taken to run
after the ``try`` body or a handler completed. Code nested deeper than the recursion limit allows
(hundreds of levels) gets an error rather than a partial answer.
"""

from __future__ import annotations

import ast
import builtins
import functools
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from trellis.analysis.magics import ISOLATED_MAGICS, PYTHON_MAGICS, to_python

MAX_SOURCE_CHARS = 500_000

# A magic's body can hold another magic (%%capture over %%time); each level is parsed on its own.
_MAX_MAGIC_DEPTH = 4
# `%timeit -n 10 -r 3 f()`: how many leading words may be options before the statement.
_MAX_OPTION_WORDS = 8

# Names every namespace has without the cell binding them. Listed beyond dir(builtins) because
# that depends on how Python started (`-S` drops exit/quit/help...) and on IPython (display).
_BUILTINS = frozenset(dir(builtins)) | {
    "exit", "quit", "help", "copyright", "credits", "license", "display",
}
# Put there by IPython itself, and read by every rewritten magic: not worth reporting.
_KERNEL_NAMES = frozenset({"get_ipython", "__IPYTHON__"})

_MUTATING_METHODS = frozenset({
    # estimators and trainers
    "fit", "partial_fit", "fit_transform", "fit_predict", "fit_resample", "train",
    "train_on_batch", "set_params", "load_state_dict", "compile", "step", "zero_grad",
    # containers
    "append", "extend", "insert", "pop", "popitem", "remove", "clear", "update", "setdefault",
    "add", "discard", "sort", "reverse", "appendleft", "extendleft", "popleft",
    "difference_update", "intersection_update", "symmetric_difference_update",
    # arrays
    "resize", "fill",
})
_FIT_METHODS = frozenset({
    "fit", "partial_fit", "fit_transform", "fit_predict", "fit_resample", "train",
    "train_on_batch",
})
# Functions that change their first argument in place.
_ARGUMENT_MUTATORS = frozenset({
    "shuffle", "copyto", "fill_diagonal", "putmask", "setattr", "delattr",
    "heappush", "heappop", "heapify", "heapreplace", "heappushpop", "insort",
})
# Conventional aliases of modules, so that `np.insert(...)` or `xgb.train(...)` in a cell that
# did not itself import them is not taken for a mutation of `np` or `xgb`.
_WELL_KNOWN_MODULES = frozenset({
    "np", "numpy", "pd", "pandas", "os", "sys", "shutil", "random", "plt", "sns", "torch", "nn",
    "F", "tf", "keras", "jax", "jnp", "xgb", "lgb", "sklearn", "scipy", "cv2", "mlflow",
    "wandb", "re", "heapq", "bisect",
})

DATA_EXTENSIONS = frozenset({
    "csv", "tsv", "json", "jsonl", "parquet", "feather", "arrow", "avro", "orc", "pkl",
    "pickle", "joblib", "npy", "npz", "txt", "h5", "hdf5", "pt", "pth", "ckpt", "safetensors",
    "onnx", "xlsx", "xls", "zip", "gz", "bz2", "xz", "tar", "tgz", "yaml", "yml", "db",
    "sqlite",
})
_URL = re.compile(r"(?:https?|s3|gs|ftp)://\S+", re.IGNORECASE)
_POSIX_PATH = re.compile(r"[\w.~\-/+@=,:{}*?\[\]]+")
_WINDOWS_PATH = re.compile(r"(?:[A-Za-z]:\\|\\\\)\S+")
_MEDIA_TYPE = re.compile(r"(?:application|text|image|audio|video|multipart|font|model)/[\w.+\-]+")

_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_PARSE_FAILURES = (SyntaxError, ValueError, RecursionError, MemoryError)


@dataclass(frozen=True)
class Import:
    """One name an import statement binds: ``import a.b as c`` or ``from x import y as z``."""

    module: str  # dotted; a relative import keeps its leading dots (`..pkg`)
    names: tuple[str, ...]  # () for `import module`, ("y",) for `from x import y`, ("*",)
    alias: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "alias": self.alias, "names": list(self.names)}


@dataclass(frozen=True)
class CellAnalysis:
    """What a cell binds, reads, changes, imports and mentions; see the module doc for the rules."""

    defined: tuple[str, ...] = ()
    maybe_defined: tuple[str, ...] = ()
    used: tuple[str, ...] = ()
    deferred_used: tuple[str, ...] = ()
    mutated: tuple[str, ...] = ()
    fit_inputs: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    builtins_used: tuple[str, ...] = ()
    imports: tuple[Import, ...] = ()
    functions: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    loops: int = 0
    conditions: int = 0
    literals: tuple[str, ...] = ()
    magics: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and dicts, ready for JSON."""
        return {
            "defined": list(self.defined),
            "maybe_defined": list(self.maybe_defined),
            "used": list(self.used),
            "deferred_used": list(self.deferred_used),
            "mutated": list(self.mutated),
            "fit_inputs": {model: list(data) for model, data in self.fit_inputs.items()},
            "builtins_used": list(self.builtins_used),
            "imports": [record.to_dict() for record in self.imports],
            "functions": list(self.functions),
            "classes": list(self.classes),
            "loops": self.loops,
            "conditions": self.conditions,
            "literals": list(self.literals),
            "magics": list(self.magics),
            "error": self.error,
        }


def analyze_cell(source: str) -> CellAnalysis:
    """Names the cell defines, uses and mutates, its imports, file literals and magics."""
    try:
        return _analyze(source)
    except Exception as failure:  # a bug here must not become an error in the user's kernel
        message = f"analysis failed: {type(failure).__name__}: {failure}"
        return CellAnalysis(error=_one_line(message))


def _analyze(source: object) -> CellAnalysis:
    if isinstance(source, bytes):
        source = source.decode("utf-8", errors="replace")
    if not isinstance(source, str):
        return CellAnalysis(error=f"expected source text (str), got {type(source).__name__}")
    if len(source) > MAX_SOURCE_CHARS:
        return CellAnalysis(
            error=f"source of {len(source)} characters is over the {MAX_SOURCE_CHARS} analysed"
        )
    tree, magics, error = _parse_cell(source)
    if tree is None:
        return CellAnalysis(magics=magics, error=error)
    visitor = _CellVisitor()
    try:
        visitor.visit_cell(tree)
    except RecursionError:
        return CellAnalysis(magics=magics, error="code nested too deeply to analyse")
    return visitor.result(magics)


@functools.lru_cache(maxsize=4096)
def code_names(source: str) -> frozenset[str]:
    """The names a cell binds only to code or constants: by ``import``, ``def``, ``class``, or an
    assignment of a literal (``n_trees = 100``), and nowhere else in the cell. Whatever the cell
    read from files did not flow into them, so lineage does not follow a later cell's use of one
    back into this cell's reads."""
    try:
        tree, _, _ = _parse_cell(source) if isinstance(source, str) and len(source) <= MAX_SOURCE_CHARS else (None, (), None)
        if tree is None:
            return frozenset()
        code: set[str] = set()
        data: set[str] = set()
        statements = list(tree.body)
        while statements:
            statement = statements.pop()
            if isinstance(statement, (ast.Import, ast.ImportFrom)):
                code.update(_import_binding(alias) for alias in statement.names if alias.name != "*")
            elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                code.add(statement.name)
                data.update(_stored_names(statement.decorator_list))
            elif isinstance(statement, (ast.If, ast.Try)) or type(statement).__name__ == "TryStar":
                data.update(_stored_names([getattr(statement, "test", None)]))
                for handler in getattr(statement, "handlers", ()):
                    if handler.name:
                        data.add(handler.name)
                    statements.extend(handler.body)
                for block in ("body", "orelse", "finalbody"):
                    statements.extend(getattr(statement, block, ()))
            elif (isinstance(statement, (ast.Assign, ast.AnnAssign)) and statement.value is not None
                  and _is_literal(statement.value)):
                targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                for target in targets:
                    (code if isinstance(target, ast.Name) else data).update(_stored_names([target]))
            else:
                data.update(_stored_names([statement]))
        return frozenset(code - data)
    except (RecursionError, *_PARSE_FAILURES):
        return frozenset()


def _stored_names(nodes: Sequence[ast.AST | None]) -> set[str]:
    """Every name bound anywhere in ``nodes`` (a conservative superset of what they bind)."""
    return {found.id for node in nodes if node is not None for found in ast.walk(node)
            if isinstance(found, ast.Name) and isinstance(found.ctx, (ast.Store, ast.Del))}


def _is_literal(node: ast.expr) -> bool:
    """A value built from constants only: numbers, strings, and containers and operators of them."""
    return all(isinstance(part, (ast.Constant, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.UnaryOp,
                                 ast.BinOp, ast.unaryop, ast.operator, ast.expr_context))
               for part in ast.walk(node))


def _parse_cell(source: str) -> tuple[ast.Module | None, tuple[str, ...], str | None]:
    """(tree, magics, error) of a cell that may use IPython syntax."""
    # Plain Python first: IPython's forms are all invalid Python, so a cell that parses has none,
    # and the rewrite (the slow part) is needed only for the cells that do not.
    try:
        return _parse_python(source), (), None
    except _PARSE_FAILURES:
        pass
    python, magics = to_python(source)
    try:
        return _parse_python(python), magics, None
    except _PARSE_FAILURES as failure:
        return None, magics, _describe_parse_failure(failure)


def _parse_python(source: str) -> ast.Module:
    # Invalid escapes such as "\d" warn while parsing; the user's code is not ours to warn about.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(source)


def _describe_parse_failure(failure: BaseException) -> str:
    if isinstance(failure, SyntaxError):
        where = f" (line {failure.lineno})" if failure.lineno else ""
        return _one_line(f"{type(failure).__name__}: {failure.msg}{where}")
    if isinstance(failure, (RecursionError, MemoryError)):
        return "code nested too deeply to parse"
    return _one_line(f"{type(failure).__name__}: {failure}")


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def _looks_like_location(text: str) -> bool:
    """A string constant that names a file or URL: `data/train.csv`, `s3://b/k`, `out/{run}`."""
    if not text or len(text) > 4096 or any(c.isspace() for c in text):
        return False
    if _URL.fullmatch(text):
        return True
    stem, dot, extension = text.rpartition(".")
    if dot and extension.lower() in DATA_EXTENSIONS and stem and stem[-1] not in "/\\.":
        return True
    if _WINDOWS_PATH.fullmatch(text):
        return True
    return (
        "/" in text
        and _POSIX_PATH.fullmatch(text) is not None
        and any(c.isalpha() for c in text)  # not a date or a fraction: 2024/01/31, 1/2
        and _MEDIA_TYPE.fullmatch(text) is None  # not text/csv
    )


def _root_name(node: ast.AST) -> str | None:
    """`df` for `df`, `df.loc[m, 'c']`, `df.c.values`; None when the chain starts elsewhere."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _data_names(expression: ast.expr) -> Iterator[str]:
    """Names the value of an argument is computed from, leaving out the functions it calls:
    `scale(X[cols]).values` gives X and cols, `np.asarray(X)` gives np (a module, dropped by the
    caller) and X."""
    pending: list[ast.AST] = [expression]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Call):
            pending.extend(reversed([*node.args, *(k.value for k in node.keywords)]))
            if isinstance(node.func, ast.Attribute):
                pending.append(node.func.value)  # a method's receiver is data: X.reshape(-1, 1)
        elif isinstance(node, _COMPREHENSIONS):
            pending.extend(reversed([g.iter for g in node.generators]))
        elif not isinstance(node, ast.Lambda):
            pending.extend(reversed(list(ast.iter_child_nodes(node))))


def _is_false(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and not node.value


def _magic_call(node: ast.Call) -> tuple[str, list[str]] | None:
    """('run_line_magic', ['time', 'f()']) for `get_ipython().run_line_magic('time', 'f()')`."""
    method = node.func
    texts = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    if (
        isinstance(method, ast.Attribute)
        and isinstance(method.value, ast.Call)
        and isinstance(method.value.func, ast.Name)
        and method.value.func.id == "get_ipython"
        and not node.keywords
        and len(texts) == len(node.args)
    ):
        return method.attr, texts
    return None


def _statement_after_options(line: str) -> ast.Module | None:
    """The statement of `%timeit -n 10 -r 3 f(x)`: drop leading words until the rest parses."""
    candidate = line
    for _ in range(_MAX_OPTION_WORDS + 1):
        try:
            return _parse_python(candidate)
        except _PARSE_FAILURES:
            pass
        words = candidate.split(None, 1)
        if not line.startswith("-") or len(words) < 2:
            return None
        candidate = words[1]
    return None


def _local_names(
    arguments: ast.arguments | None, body: Sequence[ast.AST]
) -> tuple[set[str], set[str], set[str]]:
    """(locals, globals, nonlocals) of a function body.

    Python decides once for the whole body which names are local: any binding anywhere in it,
    before or after a read, makes the name local, unless declared global or nonlocal. Nested
    function and class bodies are their own scopes; a walrus in a comprehension binds here.
    Walks with an explicit stack, so deep code does not exhaust the recursion limit.
    """
    bound: set[str] = set()
    global_names: set[str] = set()
    nonlocal_names: set[str] = set()
    if arguments is not None:
        bound.update(
            a.arg for a in (*arguments.posonlyargs, *arguments.args, arguments.vararg,
                            *arguments.kwonlyargs, arguments.kwarg) if a is not None
        )
    pending: list[ast.AST] = list(body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Name):
            if not isinstance(node.ctx, ast.Load):
                bound.add(node.id)
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bound.add(node.name)
            pending.extend([*node.decorator_list, node.args])
            if node.returns is not None:
                pending.append(node.returns)
        elif isinstance(node, ast.Lambda):
            pending.append(node.args)
        elif isinstance(node, ast.ClassDef):
            bound.add(node.name)
            pending.extend([*node.decorator_list, *node.bases, *node.keywords])
        elif isinstance(node, _COMPREHENSIONS):
            # Only a walrus can bind here from inside; the loop targets are the comprehension's.
            for generator in node.generators:
                pending.extend([generator.iter, *generator.ifs])
            pending.extend([node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt])
        elif isinstance(node, ast.Global):
            global_names.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            nonlocal_names.update(node.names)
        else:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                bound.update(_import_binding(a) for a in node.names if a.name != "*")
            elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
                bound.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                bound.add(node.rest)
            pending.extend(ast.iter_child_nodes(node))
    return bound - global_names - nonlocal_names, global_names, nonlocal_names


def _import_binding(alias: ast.alias) -> str:
    """The name an import binds: `import a.b` binds a, `import a.b as c` binds c."""
    return alias.asname or alias.name.partition(".")[0]


class _Flow:
    """The names certainly bound at the current point of a module or class body.

    Alternative paths (branches of an ``if``, a loop body that may not run, exception handlers)
    are explored one after another from the same state: each path keeps a journal of the first
    change to every name, so that undoing it costs what the path changed, not the number of
    names in the cell.
    """

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self._journals: list[dict[str, bool]] = []

    def add(self, name: str) -> None:
        if name not in self.bound:
            self._note(name, was_bound=False)
            self.bound.add(name)

    def discard(self, name: str) -> None:
        if name in self.bound:
            self._note(name, was_bound=True)
            self.bound.discard(name)

    def _note(self, name: str, *, was_bound: bool) -> None:
        if self._journals:
            self._journals[-1].setdefault(name, was_bound)

    def begin(self) -> None:
        self._journals.append({})

    def undo(self) -> dict[str, bool]:
        """Return to the state at the matching begin(); give the names the path changed, each
        with whether it was bound at the end of the path."""
        journal = self._journals.pop()
        changes = {name: not was for name, was in journal.items() if (name in self.bound) != was}
        for name, was_bound in journal.items():
            if was_bound:
                self.bound.add(name)
            else:
                self.bound.discard(name)
        return changes


class _Scope:
    def __init__(
        self,
        kind: str,
        parent: _Scope | None,
        *,
        deferred: bool,
        local_names: set[str] | None = None,
        global_names: set[str] | None = None,
        nonlocal_names: set[str] | None = None,
        flow: _Flow | None = None,
    ) -> None:
        self.kind = kind  # module, class, function or comprehension
        self.parent = parent
        # Code of a deferred scope (a function body) runs when called, not when the cell runs.
        self.deferred = deferred
        self.local_names = local_names or set()  # function and comprehension scopes
        self.global_names = global_names or set()
        self.nonlocal_names = nonlocal_names or set()
        # Module and class bodies run top to bottom: what they bind is looked up as bound so far.
        self.flow = flow


class _CellVisitor(ast.NodeVisitor):
    """One pass over a cell's tree, in execution order, keeping scopes and the module's flow."""

    def __init__(self) -> None:
        self.module_flow = _Flow()
        self.module = _Scope("module", None, deferred=False, flow=self.module_flow)
        self.scope = self.module
        self.reachable = True  # whether the statement just visited can complete normally
        self.magic_depth = 0
        self.defined: dict[str, None] = {}  # dicts as ordered sets
        self.ever_defined: set[str] = set()
        self.reads: list[tuple[str, bool]] = []  # (name, read inside a function body)
        self.mutated: dict[str, None] = {}
        self.fit_inputs: dict[str, dict[str, None]] = {}
        self.imports: list[Import] = []
        self.module_names: set[str] = set()  # bound by `import x`: calls on them mutate nothing
        self.functions: dict[str, None] = {}
        self.classes: dict[str, None] = {}
        self.loops = 0
        self.conditions = 0
        self.literals: dict[str, None] = {}
        self.own_code: set[str] = set()  # functions and lambdas the cell binds
        self.calls_own_code = False  # ...and refers to outside their bodies

    def visit_cell(self, tree: ast.Module) -> None:
        self._run_block(tree.body)

    def result(self, magics: tuple[str, ...]) -> CellAnalysis:
        used: dict[str, None] = {}
        builtins_used: dict[str, None] = {}
        read_now: set[str] = set()
        for name, in_function in self.reads:
            if name in _KERNEL_NAMES or (in_function and name in self.ever_defined):
                continue
            (builtins_used if name in _BUILTINS else used)[name] = None
            if not in_function:
                read_now.add(name)
        deferred = () if self.calls_own_code else tuple(n for n in used if n not in read_now)
        return CellAnalysis(
            defined=tuple(self.defined),
            maybe_defined=tuple(n for n in self.defined if n not in self.module_flow.bound),
            used=tuple(used),
            deferred_used=deferred,
            mutated=tuple(self.mutated),
            fit_inputs={model: tuple(data) for model, data in self.fit_inputs.items() if data},
            builtins_used=tuple(builtins_used),
            imports=tuple(self.imports),
            functions=tuple(self.functions),
            classes=tuple(self.classes),
            loops=self.loops,
            conditions=self.conditions,
            literals=tuple(self.literals),
            magics=magics,
        )

    # -- names ------------------------------------------------------------------------------

    def _owner(self, name: str) -> _Scope:
        """The scope whose binding of `name` a read in the current scope reaches."""
        scope = self.scope
        innermost = True
        while scope.parent is not None:
            if name in scope.global_names:
                return self.module
            if name in scope.nonlocal_names:
                return scope
            if scope.kind == "class":
                # A class body sees its own names only from its own statements, not from the
                # functions or comprehensions inside it.
                if innermost and scope.flow is not None and name in scope.flow.bound:
                    return scope
            elif name in scope.local_names:
                return scope
            scope = scope.parent
            innermost = False
        return scope

    def _read(self, name: str) -> None:
        if name in self.own_code and not self.scope.deferred:
            self.calls_own_code = True
        if self._owner(name) is not self.module:
            return
        if self.scope.deferred:
            self.reads.append((name, True))
        elif name not in self.module_flow.bound:
            self.reads.append((name, False))

    def _bind(self, name: str, scope: _Scope | None = None) -> None:
        scope = scope or self.scope
        if name in scope.global_names:
            scope = self.module
        if scope is self.module:
            self.defined[name] = None
            self.ever_defined.add(name)
            if self.scope.deferred:
                return  # bound when the function runs: not certainly bound in the cell
        if scope.flow is not None:
            scope.flow.add(name)

    def _unbind(self, name: str) -> None:
        scope = self.module if name in self.scope.global_names else self.scope
        if scope is self.module:
            self.defined.pop(name, None)
            if self.scope.deferred:
                return
        if scope.flow is not None:
            scope.flow.discard(name)

    def _mutate(self, target: ast.AST) -> None:
        name = _root_name(target)
        if name is not None and not self.scope.deferred and self._owner(name) is self.module:
            self.mutated[name] = None

    def _is_module(self, name: str) -> bool:
        return name in self.module_names or name in _WELL_KNOWN_MODULES

    # -- control flow -----------------------------------------------------------------------

    def _current_flow(self) -> _Flow | None:
        """The flow bindings here change: a comprehension's walrus binds in the scope around it."""
        scope = self.scope
        while scope.kind == "comprehension" and scope.parent is not None:
            scope = scope.parent
        return scope.flow

    @contextmanager
    def _entered(self, scope: _Scope) -> Iterator[None]:
        outer, reachable = self.scope, self.reachable
        self.scope = scope
        yield
        self.scope, self.reachable = outer, reachable

    @contextmanager
    def _tentative(self) -> Iterator[None]:
        """Bindings made inside happen only on some evaluations (a later operand of `and`/`or`, a
        comprehension over what may be empty): seen by the reads inside, not certain after."""
        flow = self._current_flow()
        if flow is not None:
            flow.begin()
        yield
        if flow is not None:
            flow.undo()

    def _run_block(self, statements: Sequence[ast.stmt]) -> None:
        """Visit statements; then `reachable` says whether the block can complete normally."""
        completes = True
        for statement in statements:
            self.reachable = True
            self.visit(statement)
            completes = completes and self.reachable
        self.reachable = completes

    def _alternatives(self, paths: Sequence[Callable[[], None]], *, may_skip: bool) -> None:
        """Paths that start from the same state, of which one runs (or none, if may_skip): a
        name is certainly bound after them only if every path that completes binds it."""
        flow = self._current_flow()
        if flow is None:  # inside a function body only scoping matters, not order
            for path in paths:
                path()
            self.reachable = True
            return
        outcomes: list[dict[str, bool]] = [{}] if may_skip else []
        for path in paths:
            flow.begin()
            self.reachable = True
            path()
            changes = flow.undo()
            if self.reachable:
                outcomes.append(changes)
        self.reachable = bool(outcomes)
        for name in set().union(*outcomes):
            if all(outcome.get(name, name in flow.bound) for outcome in outcomes):
                flow.add(name)
            else:
                flow.discard(name)

    def visit_If(self, node: ast.If) -> None:
        self.conditions += 1
        self.visit(node.test)
        self._alternatives(
            [lambda: self._run_block(node.body), lambda: self._run_block(node.orelse)],
            may_skip=False,
        )

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.loops += 1
        self.visit(node.iter)

        def body() -> None:
            self.visit(node.target)
            self._run_block(node.body)

        # The body may run zero times, and `break` skips the else clause.
        self._alternatives([body, lambda: self._run_block(node.orelse)], may_skip=True)

    visit_AsyncFor = visit_For

    def visit_While(self, node: ast.While) -> None:
        self.loops += 1
        self.visit(node.test)
        self._alternatives(
            [lambda: self._run_block(node.body), lambda: self._run_block(node.orelse)],
            may_skip=True,
        )

    def visit_Try(self, node: ast.Try | ast.TryStar) -> None:
        def body_and_else() -> None:
            self._run_block(node.body)
            completes = self.reachable
            self._run_block(node.orelse)
            self.reachable = completes and self.reachable

        # A handler may start after any statement of the body, so it assumes none of them ran.
        handlers = [lambda handler=handler: self._handler(handler) for handler in node.handlers]
        self._alternatives([body_and_else, *handlers], may_skip=False)
        # The finally block is analysed as running after the body or a handler completed.
        completes = self.reachable
        self._run_block(node.finalbody)
        self.reachable = completes and self.reachable

    visit_TryStar = visit_Try

    def _handler(self, handler: ast.ExceptHandler) -> None:
        if handler.type is not None:
            self.visit(handler.type)
        if not handler.name:
            self._run_block(handler.body)
            return
        kept = handler.name in self.defined
        self._bind(handler.name)
        self._run_block(handler.body)
        # Python deletes the name when the handler ends. A binding from before the `try` stays
        # in `defined`, since the handler may not run, but is no longer certain.
        if not kept:
            self.defined.pop(handler.name, None)
        flow = self._current_flow()
        if flow is not None:
            flow.discard(handler.name)

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item)
        self._run_block(node.body)

    visit_AsyncWith = visit_With

    def visit_Match(self, node: ast.Match) -> None:
        self.conditions += 1
        self.visit(node.subject)

        def case_path(case: ast.match_case) -> Callable[[], None]:
            def run() -> None:
                self.visit(case.pattern)
                if case.guard is not None:
                    self.visit(case.guard)
                self._run_block(case.body)
            return run

        catch_all = any(
            case.guard is None
            and isinstance(case.pattern, ast.MatchAs)
            and case.pattern.pattern is None
            for case in node.cases
        )
        self._alternatives([case_path(case) for case in node.cases], may_skip=not catch_all)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        self.generic_visit(node)
        if node.name:
            self._bind(node.name)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self.generic_visit(node)
        if node.rest:
            self._bind(node.rest)

    def _exit(self, node: ast.Return | ast.Raise | ast.Break | ast.Continue) -> None:
        self.generic_visit(node)
        self.reachable = False

    visit_Return = visit_Raise = visit_Break = visit_Continue = _exit

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        self.visit(node.values[0])
        with self._tentative():
            for value in node.values[1:]:
                self.visit(value)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.conditions += 1
        self.visit(node.test)
        self._alternatives(
            [lambda: self.visit(node.body), lambda: self.visit(node.orelse)], may_skip=False
        )

    # -- bindings ---------------------------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._read(node.id)
        elif isinstance(node.ctx, ast.Store):
            self._bind(node.id)
        else:
            self._unbind(node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)  # the value is computed before any target is bound
        if isinstance(node.value, ast.Lambda):
            self.own_code.update(t.id for t in node.targets if isinstance(t, ast.Name))
        for target in node.targets:
            self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.annotation)
        if node.value is not None:  # `x: int` alone binds nothing
            self.visit(node.value)
            self.visit(node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):  # `x += 1` reads x, then binds it
            self._read(node.target.id)
            self.visit(node.value)
            self._bind(node.target.id)
        else:
            self.visit(node.target)
            self.visit(node.value)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        scope = self.scope
        while scope.kind == "comprehension" and scope.parent is not None:
            scope = scope.parent
        self._bind(node.target.id, scope)

    def visit_Attribute(self, node: ast.Attribute | ast.Subscript) -> None:
        self.generic_visit(node)
        if not isinstance(node.ctx, ast.Load):  # `df['c'] = ...`, `m.coef_ = ...`, `del d[k]`
            self._mutate(node)

    visit_Subscript = visit_Attribute

    def visit_Global(self, node: ast.Global) -> None:
        if self.scope is not self.module:
            self.scope.global_names.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        if self.scope is not self.module:
            self.scope.nonlocal_names.update(node.names)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.imports.append(Import(alias.name, (), alias.asname))
            self.module_names.add(_import_binding(alias))
            self._bind(_import_binding(alias))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = "." * node.level + (node.module or "")
        for alias in node.names:
            self.imports.append(Import(module, (alias.name,), alias.asname))
            if alias.name != "*":  # what a star import binds is not in the source
                self._bind(_import_binding(alias))

    # -- scopes -----------------------------------------------------------------------------

    def _function_scope(
        self, arguments: ast.arguments | None, body: Sequence[ast.AST], *, deferred: bool = True
    ) -> _Scope:
        local_names, global_names, nonlocal_names = _local_names(arguments, body)
        return _Scope(
            "function", self.scope, deferred=deferred, local_names=local_names,
            global_names=global_names, nonlocal_names=nonlocal_names,
        )

    def _visit_signature(self, arguments: ast.arguments, returns: ast.expr | None) -> None:
        """Defaults and annotations are evaluated where the function is defined."""
        for default in (*arguments.defaults, *arguments.kw_defaults):
            if default is not None:
                self.visit(default)
        for argument in (*arguments.posonlyargs, *arguments.args, arguments.vararg,
                         *arguments.kwonlyargs, arguments.kwarg):
            if argument is not None and argument.annotation is not None:
                self.visit(argument.annotation)
        if returns is not None:
            self.visit(returns)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._visit_signature(node.args, node.returns)
        if self.scope is self.module:
            self.functions[node.name] = None
        self.own_code.add(node.name)
        self._bind(node.name)
        with self._entered(self._function_scope(node.args, node.body)):
            self._run_block(node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_signature(node.args, None)
        with self._entered(self._function_scope(node.args, [node.body])):
            self.visit(node.body)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expression in (*node.decorator_list, *node.bases, *node.keywords):
            self.visit(expression)
        body = _Scope("class", self.scope, deferred=self.scope.deferred, flow=_Flow())
        with self._entered(body):
            self._run_block(node.body)
        if self.scope is self.module:
            self.classes[node.name] = None
        self._bind(node.name)

    def visit_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> None:
        self._comprehension(node.generators, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node.generators, [node.key, node.value])

    def _comprehension(self, generators: list[ast.comprehension], results: list[ast.expr]) -> None:
        # The first iterable is evaluated in the enclosing scope, the rest in the comprehension's.
        self.visit(generators[0].iter)
        targets = {
            name.id for generator in generators for name in ast.walk(generator.target)
            if isinstance(name, ast.Name)
        }
        scope = _Scope(
            "comprehension", self.scope, deferred=self.scope.deferred, local_names=targets
        )
        with self._tentative(), self._entered(scope):
            for index, generator in enumerate(generators):
                if index:
                    self.visit(generator.iter)
                self.visit(generator.target)
                for condition in generator.ifs:
                    self.visit(condition)
            for result in results:
                self.visit(result)

    # -- expressions ------------------------------------------------------------------------

    def visit_BinOp(self, node: ast.BinOp) -> None:
        # `a + b + c + ...` nests to the left as deep as it is long: walk that spine in a loop
        # so that a long concatenation does not exhaust the recursion limit.
        operands: list[ast.expr] = []
        left: ast.expr = node
        while isinstance(left, ast.BinOp):
            operands.append(left.right)
            left = left.left
        self.visit(left)
        for operand in reversed(operands):
            self.visit(operand)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and _looks_like_location(node.value):
            self.literals[node.value] = None

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        # f"data/{split}.csv" is checked as the template `data/{split}.csv`.
        template = "".join(
            str(part.value) if isinstance(part, ast.Constant) else f"{{{ast.unparse(part.value)}}}"
            for part in node.values
            if isinstance(part, (ast.Constant, ast.FormattedValue))
        )
        if _looks_like_location(template):
            self.literals[template] = None
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                self.visit(part)

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        self._call_effects(node)
        self._run_magic(node)

    def _call_effects(self, node: ast.Call) -> None:
        """Mutations a call makes: of its receiver, of an argument, of an `out=` array."""
        function = node.func
        if isinstance(function, ast.Attribute):
            callee, receiver = function.attr, _root_name(function.value)
        elif isinstance(function, ast.Name):
            callee, receiver = function.id, None
        else:
            return
        on_module = receiver is not None and self._is_module(receiver)
        in_place = callee.endswith("_") and not callee.startswith("_")  # torch: x.add_(1)
        if receiver is not None and not on_module and (
            callee in _MUTATING_METHODS
            or in_place
            or any(k.arg == "inplace" and not _is_false(k.value) for k in node.keywords)
        ):
            self._mutate(function)
            if callee in _FIT_METHODS:
                self._fit(receiver, node)
        if node.args and (callee in _ARGUMENT_MUTATORS or (on_module and in_place)):
            self._mutate(node.args[0])  # shuffle(x), nn.init.normal_(w)
        for keyword in node.keywords:
            if keyword.arg == "out":
                self._mutate(keyword.value)

    def _fit(self, model: str, call: ast.Call) -> None:
        if self.scope.deferred or self._owner(model) is not self.module:
            return
        data = self.fit_inputs.setdefault(model, {})
        for argument in (*call.args, *(k.value for k in call.keywords)):
            for name in _data_names(argument):
                if (
                    name != model
                    and name not in _BUILTINS
                    and name not in _KERNEL_NAMES
                    and not self._is_module(name)
                    and self._owner(name) is self.module
                ):
                    data[name] = None

    def _run_magic(self, node: ast.Call) -> None:
        """Analyse the Python inside %time, %%time, %%capture, %prun, %timeit as run by them."""
        found = _magic_call(node)
        if found is None or self.magic_depth >= _MAX_MAGIC_DEPTH:
            return
        method, arguments = found
        if len(arguments) < 2 or arguments[0] not in PYTHON_MAGICS:
            return
        name = arguments[0]
        if method == "run_line_magic" and len(arguments) == 2:
            tree = _statement_after_options(arguments[1])
        elif method == "run_cell_magic" and len(arguments) == 3:
            tree = _parse_cell(arguments[2])[0]
        else:
            return
        if tree is None:
            return
        self.magic_depth += 1
        reachable = self.reachable
        if name in ISOLATED_MAGICS:
            isolated = self._function_scope(None, tree.body, deferred=self.scope.deferred)
            with self._entered(isolated):
                self._run_block(tree.body)
        else:
            self._run_block(tree.body)
        self.reachable = reachable
        self.magic_depth -= 1
        if name == "capture" and method == "run_cell_magic":
            # `%%capture [--no-stdout ...] out` stores the captured output in `out`.
            words = [w for w in arguments[1].split() if not w.startswith("-")]
            if words and words[-1].isidentifier():
                self._bind(words[-1])
