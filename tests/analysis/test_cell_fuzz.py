"""A fuzzing run of the cell analyser: pathological shapes (deep nesting, huge literals, long
chains) and a few thousand seeded mutations of real cells. It must always answer, with at most a
one-line error, and no input may cost it more than a fixed ceiling: that would be a hang or a
blow-up, not a slow case. (How long typical cells take is measured in benchmarks/.)"""

from __future__ import annotations

import random
import time

import pytest
from test_cell_properties import SEEDS, assert_answers

from trellis.analysis.cells import MAX_SOURCE_CHARS

pytestmark = [
    pytest.mark.filterwarnings("ignore::SyntaxWarning"),
    pytest.mark.sqlite_only("analysis of code and dependencies: the store does not change what it checks"),
]

CEILING = 10.0  # seconds for any one cell, on a loaded two-core machine

PATHOLOGICAL = {
    "parentheses": "x = " + "(" * 200 + "1" + ")" * 200,
    "lists": "x = " + "[" * 5000 + "]" * 5000,
    "dicts": "x = " + "{'a': " * 3000 + "1" + "}" * 3000,
    "lambdas": "f = " + "lambda: " * 5000 + "0",
    "conditional expressions": "x = " + "a if b else " * 5000 + "c",
    "nested blocks": "".join("    " * i + "if x:\n" for i in range(99)) + "    " * 99 + "y = 1\n",
    "nested functions": "".join("    " * i + f"def f{i}(a{i}):\n" for i in range(99)) + "    " * 99 + "return z\n",
    "long sum": "x = " + " + ".join(["a"] * 100_000),
    "long comparison": "x = " + " < ".join(["a"] * 50_000),
    "long attribute chain": "x = a" + ".b" * 50_000,
    "long subscript chain": "x = a" + "[0]" * 50_000,
    "unary minus": "x = " + "-" * 100_000 + "1",
    "huge tuple": "x = " + ",".join(["a"] * 100_000),
    "huge string": "s = '" + "a" * (MAX_SOURCE_CHARS - 20) + "'",
    "huge number": "n = " + "9" * 100_000,
    "huge bytes": "b = b'" + "\\x00" * 100_000 + "'",
    "many generators": "x = [a " + " ".join(f"for a{i} in b{i}" for i in range(2000)) + "]",
    "nested f-strings": "x = f'{" + "f'{" * 3 + "a" + "}'" * 3 + "}'",
    "nested walrus": "(" + "a := (" * 150 + "1" + ")" * 151,
    "many statements": "x = y + 1\n" * (MAX_SOURCE_CHARS // 10 - 1),
    "many magics": "%time x = 1\n!ls\n" * 5_000,
    "null bytes": "x = 1\x00\x00\ny = x",
    "lone surrogates": "x = '\ud800'\ny = x",
    "over the limit": "x = 1\n" * (MAX_SOURCE_CHARS // 6 + 1),
}


def _timed(source: str) -> float:
    started = time.perf_counter()
    assert_answers(source)
    return time.perf_counter() - started


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_cells_are_answered_within_the_ceiling(name: str) -> None:
    assert _timed(PATHOLOGICAL[name]) < CEILING


def _mutate(chance: random.Random, text: str) -> str:
    for _ in range(chance.randint(1, 8)):
        start = chance.randrange(len(text) + 1)
        end = min(len(text), start + chance.randint(0, 40))
        action = chance.randrange(6)
        if action == 0:
            text = text[:start] + text[end:]
        elif action == 1:
            text = text[:start] + chance.choice("()[]{}:=%!'\"\\\n\t #.,*@;") * chance.randint(1, 50) + text[start:]
        elif action == 2:
            text = text[:end] + text[start:end] * chance.randint(1, 200) + text[end:]
        elif action == 3:
            text = text[:start] + chance.choice(SEEDS) + text[start:]  # splice another cell in
        elif action == 4:
            text = text[:start] + "".join(chr(chance.randrange(0x110000)) for _ in range(5)) + text[end:]
        else:
            text = text[:start] + "    " * chance.randint(1, 120) + text[start:]
    return text


def test_a_fuzzing_run_over_mutated_cells() -> None:
    chance = random.Random(20261123)
    slowest = 0.0
    for _ in range(3000):
        slowest = max(slowest, _timed(_mutate(chance, chance.choice(SEEDS))))
    assert slowest < CEILING
