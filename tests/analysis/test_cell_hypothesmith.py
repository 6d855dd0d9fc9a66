"""analyze_cell over programs drawn from Python's whole grammar (hypothesmith), checked against
Python's symbol tables like the scope-dense programs of test_cell_properties."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from test_cell_properties import check_generated

hypothesmith = pytest.importorskip("hypothesmith")
pytestmark = [
    pytest.mark.filterwarnings("ignore::SyntaxWarning"),
    pytest.mark.sqlite_only("analysis of code and dependencies: the store does not change what it checks"),
]  # from compiling generated code


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(hypothesmith.from_grammar())
def test_grammar_generated_python_agrees_with_symtable(source: str) -> None:
    check_generated(source)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(hypothesmith.from_node())
def test_syntax_tree_generated_python_agrees_with_symtable(source: str) -> None:
    check_generated(source)
