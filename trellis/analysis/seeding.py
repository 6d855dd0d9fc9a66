"""Does code draw random numbers that no seed fixes? Read from the source, by the names it binds.

Unseeded are: a generator made without a seed (``default_rng()``, ``RandomState()``,
``random.Random()``, ``torch.Generator()`` never given ``manual_seed``, ``SystemRandom``), and
draws from a module's global generator (``np.random.rand``, ``random.random``, ``torch.rand``)
when the code never seeds that module (``np.random.seed``, ``random.seed``,
``torch.manual_seed``). A generator made with any seed, a variable included, is seeded.
"""

from __future__ import annotations

import ast
from typing import Iterable

_NUMPY_RANDOM = "numpy.random"
# Names in the random modules that make, seed or inspect generators rather than draw.
_NOT_DRAWS = {
    _NUMPY_RANDOM: {"seed", "default_rng", "RandomState", "Generator", "PCG64", "PCG64DXSM", "MT19937",
                    "Philox", "SFC64", "SeedSequence", "BitGenerator", "get_state", "set_state"},
    "random": {"seed", "Random", "SystemRandom", "getstate", "setstate"},
    "torch": set(),
}
_TORCH_DRAWS = {"rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like",
                "normal", "bernoulli", "multinomial", "poisson"}
_MAKERS = {(_NUMPY_RANDOM, "default_rng"), (_NUMPY_RANDOM, "RandomState"), ("random", "Random"),
           ("torch", "Generator")}
_SEEDERS = {(_NUMPY_RANDOM, "seed"): _NUMPY_RANDOM, ("random", "seed"): "random",
            ("torch", "manual_seed"): "torch", ("torch.random", "manual_seed"): "torch",
            ("torch.cuda", "manual_seed_all"): "torch"}


def _bindings(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted module or module member it stands for."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def _dotted(node: ast.AST, bound: dict[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in bound:
        return None
    return ".".join([bound[node.id], *reversed(parts)])


def _split(dotted: str) -> tuple[str, str]:
    module, _, member = dotted.rpartition(".")
    return module, member


def draws_unseeded(sources: Iterable[str]) -> bool:
    """True when the code (a script, or a notebook's cells) draws randomness no seed fixes."""
    seeded: set[str] = set()
    global_draws: set[str] = set()
    unseeded_makers = False
    torch_generators: set[str] = set()
    torch_seeded: set[str] = set()
    trees = []
    for source in sources:
        try:
            trees.append(ast.parse(source or ""))
        except SyntaxError:
            continue  # a cell of magics; what parses elsewhere still counts
    bound: dict[str, str] = {}
    for tree in trees:  # a notebook's cells share their names
        bound.update(_bindings(tree))
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                dotted = _dotted(node.func, bound)
                if dotted is None:
                    if (isinstance(node.func, ast.Attribute) and node.func.attr == "manual_seed"
                            and isinstance(node.func.value, ast.Name)):
                        torch_seeded.add(node.func.value.id)
                    continue
                module, member = _split(dotted)
                if dotted == "random.SystemRandom":
                    unseeded_makers = True
                elif (module, member) in _MAKERS:
                    given = [*node.args, *(k.value for k in node.keywords)]
                    if module == "torch":
                        continue  # seeded by .manual_seed on the generator, found below
                    if not given or all(isinstance(a, ast.Constant) and a.value is None for a in given):
                        unseeded_makers = True
                elif (module, member) in _SEEDERS:
                    seeded.add(_SEEDERS[(module, member)])
                elif module in (_NUMPY_RANDOM, "random") and member not in _NOT_DRAWS[module]:
                    global_draws.add(module)
                elif module == "torch" and member in _TORCH_DRAWS:
                    global_draws.add("torch")
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                maker = _dotted(node.value.func, bound)
                if maker == "torch.Generator":
                    torch_generators |= {t.id for t in node.targets if isinstance(t, ast.Name)}
                elif isinstance(node.value.func, ast.Attribute) and node.value.func.attr == "manual_seed":
                    # g = torch.Generator().manual_seed(0)
                    inner = node.value.func.value
                    if isinstance(inner, ast.Call) and _dotted(inner.func, bound) == "torch.Generator":
                        torch_seeded |= {t.id for t in node.targets if isinstance(t, ast.Name)}
                        torch_generators |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return unseeded_makers or bool(global_draws - seeded) or bool(torch_generators - torch_seeded)
