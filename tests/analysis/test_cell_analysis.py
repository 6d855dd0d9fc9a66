"""analyze_cell on cells chosen for their scoping, flow, mutation and IPython pitfalls."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from trellis.analysis import CellAnalysis, Import, analyze_cell
from trellis.analysis.cells import MAX_SOURCE_CHARS

pytestmark = pytest.mark.sqlite_only("analysis of code and dependencies: the store does not change what it checks")


def analyse(source: str) -> CellAnalysis:
    result = analyze_cell(textwrap.dedent(source))
    assert result.error is None, result.error
    return result


# (id, source, defined, used): exact and in order of first appearance.
NAMES = [
    ("comprehension variables do not leak", """
        squares = [x * x for x in range(n)]
        print(x)
     """, ["squares"], ["n", "x"]),
    ("nested comprehension reads its own earlier target", """
        pairs = [(i, j) for i in rows for j in cols_of[i]]
     """, ["pairs"], ["rows", "cols_of"]),
    ("class names are invisible inside a comprehension in the class", """
        class Grid:
            size = 3
            cells = [size * k for k in range(size)]
     """, ["Grid"], ["size"]),
    ("walrus binds at module level", """
        if (count := len(items)) > 10:
            print(count)
     """, ["count"], ["items"]),
    ("walrus in a comprehension condition binds outside it", """
        kept = [y for x in xs if (y := f(x))]
     """, ["y", "kept"], ["xs", "f"]),  # in order of execution
    ("a comprehension's walrus is not certain after it", """
        found = any((hit := v) > limit for v in values)
        print(hit)
     """, ["hit", "found"], ["values", "limit", "hit"]),
    ("walrus after `and` is not certain", """
        ok = flag and (m := 2)
        print(m)
     """, ["m", "ok"], ["flag", "m"]),
    ("lambda defaults are read now, the body later", """
        key = lambda row, col=col: row[col] + offset
     """, ["key"], ["col", "offset"]),
    ("a lambda's global bound later in the cell is not used", """
        get = lambda: total
        total = 3
     """, ["get", "total"], []),
    ("nested functions: parameters, closures, nonlocal", """
        def outer(a):
            b = a * scale
            def inner():
                nonlocal b
                b += 1
                return b + a + offset
            return inner
     """, ["outer"], ["scale", "offset"]),
    ("global declaration in a function defines the name", """
        def reset():
            global counter
            counter = 0
        reset()
     """, ["reset", "counter"], []),
    ("a function body reading a global bound later in the cell", """
        def shape():
            return df.shape
        df = load()
     """, ["shape", "df"], ["load"]),
    ("a function body reading a global the cell never binds", """
        def over():
            return score > threshold
     """, ["over"], ["score", "threshold"]),
    ("a function-local name shadows the global", """
        def f():
            data = 1
            return data
        result = f() + data
     """, ["f", "result"], ["data"]),
    ("try/except/finally with import fallback", """
        try:
            import ujson as json
        except ImportError as err:
            import json
            print(err)
        finally:
            done = True
     """, ["json", "done"], []),
    ("an except name is deleted when the handler ends", """
        try:
            x = risky()
        except ValueError as e:
            log(e)
        print(e)
     """, ["x"], ["risky", "log", "e"]),
    ("a handler may run before the body bound anything", """
        try:
            model = load()
        except OSError:
            print(model)
     """, ["model"], ["load", "model"]),
    ("a name bound on both branches is certain", """
        if fast:
            lr = 0.1
        else:
            lr = 0.01
        print(lr)
     """, ["lr"], ["fast"]),
    ("a name bound on one branch is not", """
        if fast:
            lr = 0.1
        print(lr)
     """, ["lr"], ["fast", "lr"]),
    ("a branch that raises does not count", """
        if cfg is None:
            raise ValueError("no config")
        else:
            lr = cfg.lr
        step = lr * 2
     """, ["lr", "step"], ["cfg"]),
    ("a loop body may not run", """
        for epoch in range(epochs):
            loss = train_step(epoch)
        print(loss, epoch)
     """, ["epoch", "loss"], ["epochs", "train_step", "loss", "epoch"]),
    ("a read before the binding in a loop body", """
        while running:
            print(state)
            state = advance()
     """, ["state"], ["running", "state", "advance"]),
    ("with ... as", """
        with open(path) as fh:
            text = fh.read()
     """, ["fh", "text"], ["path"]),
    ("del removes", """
        tmp = big.copy()
        del tmp
        del big
     """, [], ["big"]),
    ("a deleted name read again", """
        x = 1
        del x
        print(x)
     """, [], ["x"]),
    ("augmented assignment reads, then binds", """
        total += batch_loss
     """, ["total"], ["total", "batch_loss"]),
    ("assignment computes the value before binding", """
        x = x + 1
     """, ["x"], ["x"]),
    ("tuple unpacking with a starred target", """
        a, (b, *rest) = triple
     """, ["a", "b", "rest"], ["triple"]),
    ("annotated assignment binds only with a value", """
        n: int
        m: int = size
     """, ["m"], ["size"]),
    ("class body and methods", """
        class Config:
            lr = base_lr
            epochs = 10
            steps = epochs * per_epoch
            def describe(self):
                return lr
     """, ["Config"], ["base_lr", "per_epoch", "lr"]),
    ("decorators and defaults are read where the function is defined", """
        @functools.lru_cache(maxsize=cache_size)
        def cached(x, scale=factor):
            return x * scale
     """, ["cached"], ["functools", "cache_size", "factor"]),
    ("star import binds nothing visible", """
        from sklearn.metrics import *
        score = accuracy_score(y, pred)
     """, ["score"], ["accuracy_score", "y", "pred"]),
    ("match patterns bind", """
        match command:
            case {"lr": rate, **rest}:
                pass
            case [first, *others]:
                pass
            case Point(x=px):
                pass
            case _:
                rate = 0
     """, ["rate", "rest", "first", "others", "px"], ["command", "Point"]),
    ("top-level await", """
        result = await fetch(url)
     """, ["result"], ["fetch", "url"]),
    ("builtins are not used names", """
        values = sorted(set(map(int, raw)))
     """, ["values"], ["raw"]),
    ("a shadowed builtin is an ordinary name", """
        list = [1, 2]
        print(list)
     """, ["list"], []),
]


@pytest.mark.parametrize("source,defined,used", [case[1:] for case in NAMES],
                         ids=[case[0] for case in NAMES])
def test_names(source: str, defined: list[str], used: list[str]) -> None:
    result = analyse(source)
    assert list(result.defined) == defined
    assert list(result.used) == used


def test_builtins_used_are_kept_apart() -> None:
    result = analyse("values = sorted(set(map(int, raw)))")
    assert result.builtins_used == ("sorted", "set", "map", "int")


def test_imports() -> None:
    result = analyse("""
        import os.path
        import numpy as np
        from . import utils
        from ..pkg.mod import f as g, h
        from sklearn.metrics import *
    """)
    assert result.defined == ("os", "np", "utils", "g", "h")
    assert result.imports == (
        Import("os.path", (), None),
        Import("numpy", (), "np"),
        Import(".", ("utils",), None),
        Import("..pkg.mod", ("f",), "g"),
        Import("..pkg.mod", ("h",), None),
        Import("sklearn.metrics", ("*",), None),
    )
    assert result.to_dict()["imports"][1] == {"module": "numpy", "alias": "np", "names": []}


def test_functions_classes_loops_conditions() -> None:
    result = analyse("""
        def train(data):
            for row in data:
                if row:
                    pass
            return [r for r in data]
        async def fetch():
            pass
        class Model:
            def fit(self):
                while True:
                    break
        label = "big" if size > 3 else "small"
    """)
    assert result.functions == ("train", "fetch")  # methods are not cell-level functions
    assert result.classes == ("Model",)
    assert result.loops == 2  # statements; comprehensions are not counted
    assert result.conditions == 2


# -- mutation and model lineage -------------------------------------------------------------

def test_fit_mutates_and_uses_the_model_and_records_its_data() -> None:
    result = analyse("model.fit(X_train, y_train)")
    assert result.mutated == ("model",)
    assert result.used == ("model", "X_train", "y_train")
    assert result.fit_inputs == {"model": ("X_train", "y_train")}
    assert result.to_dict()["fit_inputs"] == {"model": ["X_train", "y_train"]}


def test_fit_of_a_model_made_in_the_same_cell() -> None:
    result = analyse("""
        model = SVC(C=c)
        model.fit(X, y)
    """)
    assert result.defined == ("model",)
    assert result.mutated == ("model",)
    assert result.used == ("SVC", "c", "X", "y")
    assert result.fit_inputs == {"model": ("X", "y")}


@pytest.mark.parametrize("source,model,data", [
    ("pipe.fit(df[features], df['target'], sample_weight=w)", "pipe", ("df", "features", "w")),
    ("scaled = scaler.fit_transform(X.values.reshape(-1, 1))", "scaler", ("X",)),
    ("clf.partial_fit(np.asarray(batch), labels, classes=list(range(k)))", "clf",
     ("batch", "labels", "k")),
    ("model.fit(X, y, epochs=10, verbose=False)", "model", ("X", "y")),
    ("model.fit([row for row in rows], y)", "model", ("rows", "y")),
])
def test_fit_inputs(source: str, model: str, data: tuple[str, ...]) -> None:
    result = analyse(source)
    assert model in result.mutated
    assert result.fit_inputs == {model: data}


@pytest.mark.parametrize("source,mutated", [
    ("df['c'] = df.a + 1", ["df"]),
    ("m.coef_ = w", ["m"]),
    ("a[0] += 1", ["a"]),
    ("del d[k]", ["d"]),
    ("del obj.cache", ["obj"]),
    ("df.loc[mask, 'c'] = 0", ["df"]),
    ("df.drop(columns=['a'], inplace=True)", ["df"]),
    ("df['a'].fillna(0, inplace=True)", ["df"]),
    ("df.fillna(0, inplace=False)", []),
    ("clean = df.dropna()", []),
    ("items.append(x)\ncache.update(new)\nseen.add(k)\nqueue.pop()",
     ["items", "cache", "seen", "queue"]),
    ("arr.fill(0)\nbuf.resize((2, 2))\nrows.sort()", ["arr", "buf", "rows"]),
    ("np.random.shuffle(idx)\nrandom.shuffle(rows)", ["idx", "rows"]),
    ("np.insert(arr, 0, 1)\nos.remove(path)\nxgb.train(params, dtrain)", []),
    ("import mylib\nmylib.update(x)", []),
    ("x.add_(1)\nnn.init.xavier_uniform_(layer.weight)", ["x", "layer"]),
    ("np.add(a, b, out=c)", ["c"]),
    ("setattr(cfg, 'lr', 0.1)", ["cfg"]),
    ("heapq.heappush(heap, item)", ["heap"]),
    ("optimizer.zero_grad()\noptimizer.step()", ["optimizer"]),
    ("get_frame().fillna(0, inplace=True)", []),
    ("for m in models:\n    m.fit(X, y)", ["m"]),
    ("fitted = [m.fit(X, y) for m in models]", []),
    ("def train():\n    model.fit(X, y)\n    df['c'] = 1", []),
    ("class Cache:\n    store = {}\n    store['k'] = 1", []),
    ("class Registry:\n    known['k'] = 1", ["known"]),
])
def test_mutated(source: str, mutated: list[str]) -> None:
    assert list(analyse(source).mutated) == mutated


def test_a_mutation_is_also_a_use_unless_bound_first() -> None:
    assert analyse("df['c'] = 1").used == ("df",)
    result = analyse("df = load()\ndf['c'] = 1")
    assert result.used == ("load",)
    assert result.defined == result.mutated == ("df",)


# -- literals ---------------------------------------------------------------------------------

def test_file_and_url_literals() -> None:
    result = analyse(r'''
        train = pd.read_csv("data/train.csv")
        test = pd.read_parquet(f"data/{split}.parquet")
        weights = torch.load("model.pt")
        bucket = "s3://bucket/key"
        url = "https://example.com/x.json"
        win = "C:\\data\\raw"
        out_dir = "runs/latest"
        sentence = "saved to out.csv"
        media = "text/csv"
        date = "2024/01/31"
        pattern = r"\d+/\d+"
        suffix = ".csv"
        name = "model"
    ''')
    assert result.literals == (
        "data/train.csv", "data/{split}.parquet", "model.pt", "s3://bucket/key",
        "https://example.com/x.json", "C:\\data\\raw", "runs/latest",
    )


# -- IPython syntax -------------------------------------------------------------------------

@pytest.fixture(params=["ipython", "without-ipython"])
def rewriter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each IPython test runs with IPython's rewriter and with the stand-in used without it."""
    if request.param == "ipython":
        pytest.importorskip("IPython.core.inputtransformer2")
    else:
        monkeypatch.setitem(sys.modules, "IPython.core.inputtransformer2", None)
    return request.param


MAGIC_CELLS = [
    ("line magic", "%timeit model.predict(X)\n",
     [], ["model", "X"], ["%timeit model.predict(X)"]),
    ("timeit keeps its bindings to itself", "%timeit -n 3 -r 1 y = f(x)\n",
     [], ["f", "x"], ["%timeit -n 3 -r 1 y = f(x)"]),
    ("time runs in the user namespace", "%time y = f(x)\nz = y\n",
     ["y", "z"], ["f", "x"], ["%time y = f(x)"]),
    ("prun options", "%prun -s cumulative g()\n", [], ["g"], ["%prun -s cumulative g()"]),
    ("cell magic with a Python body", "%%time\nx = df.sum()\n",
     ["x"], ["df"], ["%%time"]),
    ("stacked cell magics", "%%capture out\n%%time\nmodel.fit(X, y)\n",
     ["out"], ["model", "X", "y"], ["%%capture out", "%%time"]),
    ("cell magic whose body is not Python", "%%bash\necho $HOME\nx = 1\n",
     [], [], ["%%bash"]),
    ("shell escapes", "!pip install scikit-learn\nimport sklearn\n",
     ["sklearn"], [], ["!pip install scikit-learn"]),
    ("shell output assigned", "files = !ls data\nn = len(files)\n",
     ["files", "n"], [], ["!ls data"]),
    ("magic output assigned", "here = %pwd\n", ["here"], [], ["%pwd"]),
    ("magics in a block", "for p in paths:\n    !gzip data.csv\n    %time handle(p)\n",
     ["p"], ["paths", "handle"], ["!gzip data.csv", "%time handle(p)"]),
    ("setup magics and help", "%matplotlib inline\n%load_ext autoreload\nmodel?\n",
     [], [], ["%matplotlib inline", "%load_ext autoreload"]),
    ("indented cell", "    x = 1\n    y = x + z\n", ["x", "y"], ["z"], []),
]


@pytest.mark.parametrize("source,defined,used,magics", [c[1:] for c in MAGIC_CELLS],
                         ids=[c[0] for c in MAGIC_CELLS])
def test_ipython_syntax(rewriter: str, source: str, defined: list[str], used: list[str],
                        magics: list[str]) -> None:
    result = analyse(source)
    assert list(result.defined) == defined
    assert list(result.used) == used
    assert list(result.magics) == magics
    assert "get_ipython" not in result.used + result.builtins_used


def test_magics_are_recorded_even_when_the_rest_does_not_parse(rewriter: str) -> None:
    result = analyze_cell("!pip install foo\ndef broken(:\n")
    assert result.error is not None and result.error.startswith("SyntaxError")
    assert result.magics == ("!pip install foo",)


def test_a_cell_without_magics_has_none() -> None:
    assert analyse('s = """\n%d items\n!important\n"""').magics == ()


def test_many_shell_escapes_stay_fast(rewriter: str) -> None:
    # IPython's rewriter re-tokenizes the cell per escape: quadratic, so it is not used here.
    source = "!echo hi\nx = 1\n" * 5000
    started = time.perf_counter()
    result = analyze_cell(source)
    assert time.perf_counter() - started < 5
    assert len(result.magics) == 5000 and result.defined == ("x",)


def test_import_does_not_load_ipython() -> None:
    code = "import sys, trellis.analysis; assert 'IPython' not in sys.modules, 'IPython imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- errors and bounds ----------------------------------------------------------------------

@pytest.mark.parametrize("source,message", [
    ("def broken(:\n    pass", "SyntaxError: invalid syntax (line 1)"),
    ("x = 1\x00", "null bytes"),
    ("x = '\ud800'", "surrogates not allowed"),
    ("if x:\ny = 1", "IndentationError"),
    ("(" * 5000 + ")" * 5000, "too many nested parentheses"),
    ("not " * 100_000 + "x", "nested too deeply"),
    ("x = a" + ".b" * 2000, "nested too deeply"),
    (None, "expected source text (str), got NoneType"),
])
def test_errors_are_one_line_results(source: object, message: str) -> None:
    result = analyze_cell(source)  # type: ignore[arg-type]
    assert result.error is not None and message in result.error
    assert "\n" not in result.error
    assert result.defined == result.used == ()


def test_bytes_are_decoded_leniently() -> None:
    result = analyze_cell(b"x = '\xff\xfe' + y")  # type: ignore[arg-type]
    assert result.error is None and result.used == ("y",)


def test_long_operator_chains_are_analysed() -> None:
    result = analyse("total = " + " + ".join(f"a{i}" for i in range(600)))
    assert len(result.used) == 600


@pytest.mark.parametrize("source", [
    "x = '" + "a" * 10_000_000 + "'",
    "x = y + 1\n" * (MAX_SOURCE_CHARS // 10),
    "".join(f"if c{i}:\n    v{i} = {i}\nelse:\n    w = v{i}\n" for i in range(10_000)),
    "x = (" * 5000 + ")" * 5000,
])
def test_pathological_input_finishes_quickly(source: str) -> None:
    started = time.perf_counter()
    analyze_cell(source)
    assert time.perf_counter() - started < 5


def test_size_limit() -> None:
    result = analyze_cell("x = 1\n" * (MAX_SOURCE_CHARS // 6 + 1))
    assert result.error is not None and "over the" in result.error


def test_to_dict_is_plain_json() -> None:
    import json

    found = analyse("import numpy as np\nmodel.fit(X, y)\n").to_dict()
    assert json.loads(json.dumps(found)) == found
    assert set(found) == {
        "defined", "maybe_defined", "used", "deferred_used", "mutated", "fit_inputs", "builtins_used", "imports", "functions",
        "classes", "loops", "conditions", "literals", "magics", "error",
    }
