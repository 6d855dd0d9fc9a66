"""Generated FlorDB scripts (nested loops of random sizes, values of random types at every
level, commits between epochs) and generated pivots over them: FlorDB 4.0.1 is the truth
trellis.flor must match."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from tests.flor.conftest import same_frames

pytestmark = pytest.mark.sqlite_only("compares with FlorDB 4.0.1 and does not depend on the store")

values = st.one_of(
    st.integers(-1000, 1000),
    # + 0.0: SQLite keeps no negative zero, so trellis reads -0.0 back as 0.0 (a known limit)
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 3) + 0.0),
    st.booleans(),
    st.text("abc xyz", min_size=1, max_size=6),
)
NAMES = ["p", "top", "x", "y", "never"]


@st.composite
def scripts(draw):
    outer = draw(st.integers(1, 3))
    inner = draw(st.lists(st.integers(0, 3), min_size=outer, max_size=outer))
    x_first = draw(st.booleans())
    p = draw(values)
    top = draw(values)
    xs = draw(st.lists(values, min_size=outer, max_size=outer))
    ys = [draw(st.lists(values, min_size=n, max_size=n)) for n in inner]
    commits = draw(st.lists(st.booleans(), min_size=outer, max_size=outer))  # after which epochs
    x_line = "    flor.log('x', X[a])\n"
    source = (
        "import flordb as flor\n"
        f"X, Y = {xs!r}, {ys!r}\n"
        f"p = flor.arg('p', {p!r})\n"
        f"flor.log('top', {top!r})\n"
        f"for a in flor.loop('a', range({outer})):\n"
        + (x_line if x_first else "")
        + f"    for b in flor.loop('b', range({inner!r}[a])):\n"
        "        flor.log('y', Y[a][b])\n"
        + ("" if x_first else x_line)
        + f"    if {commits!r}[a]:\n        flor.commit()\n"
    )
    queries = draw(st.lists(
        st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True).map(tuple),
        min_size=1, max_size=4,
    ))
    return source, queries


# Each example runs four processes, too slow to shrink: the failing script is shown instead.
@settings(max_examples=6, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(example=scripts())
def test_generated_pivots_match_flordb(both, example):
    source, queries = example
    note(f"script:\n{source}\nqueries: {queries}")
    # each example gets a file of its own, so earlier examples' runs are not read back
    filename = f"gen_{abs(hash(source)) % 10**8}.py"
    both.write(filename, source)
    both.run(filename)
    wanted = [tuple(q) for q in queries]
    theirs, ours = both.frames(*wanted)
    same_frames(
        [_only(frame, filename) for frame in theirs], [_only(frame, filename) for frame in ours], wanted
    )


def _only(frame: dict, filename: str) -> dict:
    """The rows of this example's script (the store holds the earlier examples' too)."""
    return {**frame, "rows": [r for r in frame["rows"] if r.get("filename") in (filename, None)]}
