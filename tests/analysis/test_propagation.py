"""Placing a new statement into an older version of a script, by structure."""

from __future__ import annotations

import textwrap

import pytest

from trellis.analysis.propagation import PlacementError, find_statements, patch, place

pytestmark = pytest.mark.sqlite_only("analysis of code and dependencies: the store does not change what it checks")


def placed(today: str, old: str, names: list[str], loop: str | None = "epoch") -> str:
    today, old = textwrap.dedent(today), textwrap.dedent(old)
    found = find_statements(today, names)
    assert found, "the statement was not found in today's script"
    return patch(old, [place(today, f, old, loop, names=names) for f in found])


def test_a_statement_lands_between_the_same_neighbours_though_lines_moved():
    today = """
        import trellis
        def train(model):
            for epoch in trellis.loop("epoch", range(3)):
                model.step()
                trellis.log("norm", model.norm())
                model.report()
    """
    old = """
        import trellis
        # a comment and blank lines shift everything


        def train(model):
            setup = 1
            for epoch in trellis.loop("epoch", range(3)):
                model.step()
                model.report()
    """
    result = placed(today, old, ["norm"])
    assert 'model.step()\n        trellis.log("norm", model.norm())\n        model.report()' in result
    assert "setup = 1" in result and "# a comment" in result


def test_an_alias_of_trellis_and_a_new_enclosing_block_are_carried():
    today = """
        import trellis as tr
        for epoch in tr.loop("epoch", range(3)):
            loss = epoch * 2
            if epoch % 2 == 0:
                tr.log("even_loss", loss)
    """
    old = """
        import trellis as tr
        for epoch in tr.loop("epoch", range(3)):
            loss = epoch * 2
    """
    result = placed(today, old, ["even_loss"])
    assert result.endswith('    loss = epoch * 2\n    if epoch % 2 == 0:\n        tr.log("even_loss", loss)\n')


def test_only_the_asked_names_are_carried():
    today = """
        import trellis
        for epoch in trellis.loop("epoch", range(3)):
            trellis.log("a", 1)
            trellis.log("b", 2)
    """
    old = """
        import trellis
        for epoch in trellis.loop("epoch", range(3)):
            pass
    """
    result = placed(today, old, ["b"])
    assert 'trellis.log("b", 2)' in result and '"a"' not in result


def test_statements_sharing_a_line_bring_it_once():
    today = """
        import trellis
        for epoch in trellis.loop("epoch", range(3)):
            x = epoch * 2
            norm = x ** 0.5; trellis.log("norm", norm)
    """
    old = """
        import trellis
        for epoch in trellis.loop("epoch", range(3)):
            x = epoch * 2
    """
    result = placed(today, old, ["norm"])
    assert result.count("norm = x ** 0.5") == 1 and result.count('trellis.log("norm", norm)') == 1


@pytest.mark.parametrize("old, reason", [
    ("""
        import trellis
        for epoch in trellis.loop("epoch", range(3)):
            x = 1
        for epoch in trellis.loop("epoch", range(3)):
            x = 1
    """, "appears 2 times"),
    ("""
        import trellis
        for epoch in trellis.loop("epoch", range(3)):
            x = 2
            y = 2
    """, "changed in this version"),
    ("""
        import trellis
        for epoch in trellis.loop("epoch", range(3)):
            x = 1
            trellis.log("x", x)
    """, "already has the statement"),
])
def test_ambiguous_or_present_statements_are_refused_with_the_reason(old, reason):
    today = """
        import trellis
        for epoch in trellis.loop("epoch", range(3)):
            x = 1
            trellis.log("x", x)
    """
    with pytest.raises(PlacementError, match=reason):
        placed(today, old, ["x"])


def test_the_replay_mode_follows_what_the_inner_loop_computes():
    today = """
        import trellis
        model = make_model()
        with trellis.checkpointing(model=model):
            for epoch in trellis.loop("epoch", range(3)):
                total = 0
                for step in trellis.loop("step", range(5)):
                    total += model.step()
                trellis.log("norm", model.norm())
                trellis.log("total", total)
    """
    old = """
        import trellis
        model = make_model()
        with trellis.checkpointing(model=model):
            for epoch in trellis.loop("epoch", range(3)):
                total = 0
                for step in trellis.loop("step", range(5)):
                    total += model.step()
    """
    today, old = textwrap.dedent(today), textwrap.dedent(old)
    norm, total = (place(today, f, old, "epoch", names=f.names) for f in find_statements(today, None))
    assert norm.light and norm.loops == ["epoch"]
    assert not total.light and "total" in total.why_full  # computed in the step loop: must run it
    changing = old + "        model.schedule.step()\n"
    today_changing = today.replace("        trellis.log(\"norm\"", "        model.schedule.step()\n        trellis.log(\"norm\"")
    (norm_after_step,) = [place(today_changing, f, changing, "epoch", names=["norm"])
                          for f in find_statements(today_changing, ["norm"])]
    # Stepping the schedule after the restored inner loop would step it twice: run in full.
    assert not norm_after_step.light and "changes checkpointed model" in norm_after_step.why_full


def test_a_statement_that_needs_a_new_helper_is_refused():
    today = """
        import trellis
        def helper(x):
            return x
        for epoch in trellis.loop("epoch", range(3)):
            trellis.log("h", helper(epoch))
    """
    old = """
        import trellis
        for epoch in trellis.loop("epoch", range(3)):
            pass
    """
    with pytest.raises(PlacementError, match="uses helper, which this version does not define"):
        placed(today, old, ["h"])
