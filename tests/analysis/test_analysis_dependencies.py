"""Dependencies between executions and the variable versions they make."""

from __future__ import annotations

import pytest

from trellis.analysis import VariableVersion, analyze_cell, dependencies, version_graph

pytestmark = pytest.mark.sqlite_only("analysis of code and dependencies: the store does not change what it checks")

LOAD = "import pandas as pd\ndf = pd.read_csv('data.csv')"
SPLIT = "X = df[features]\ny = df['label']"
TRAIN = "model = SVC()\nmodel.fit(X, y)"
CLEAN = "df = df.dropna()"
REFIT = "model.fit(X, y)"
SAVE = "pickle.dump(model, open('model.pkl', 'wb'))"


def run(*executions: tuple[str, str]) -> list[tuple[str, object]]:
    return [(execution, analyze_cell(source)) for execution, source in executions]


def test_five_executions_with_redefinition_and_rerun() -> None:
    # Cells run out of order: the split cell is run again after the data was cleaned.
    executions = run(("1", LOAD), ("2", SPLIT), ("3", TRAIN), ("4", CLEAN), ("5", SPLIT))
    assert dependencies(executions) == {
        "1": {},
        "2": {"df": "1"},  # `features` was never bound: no dependency
        "3": {"X": "2", "y": "2"},
        "4": {"df": "1"},
        "5": {"df": "4"},  # the rerun reads the cleaned data, not the first load
    }


def test_a_mutation_is_a_new_version_that_reads_the_old_one() -> None:
    executions = run(("load", LOAD), ("split", SPLIT), ("make", "model = SVC()"),
                     ("fit", REFIT), ("save", SAVE))
    found = dependencies(executions)
    assert found["fit"] == {"model": "make", "X": "split", "y": "split"}
    assert found["save"] == {"model": "fit"}  # the fitted model, not `model = SVC()`


def test_in_place_changes_are_versions() -> None:
    executions = run(("a", "df = load()"), ("b", "df.fillna(0, inplace=True)"),
                     ("c", "df['ratio'] = df.x / df.y"), ("d", "summary = df.describe()"))
    assert dependencies(executions) == {
        "a": {}, "b": {"df": "a"}, "c": {"df": "b"}, "d": {"df": "c"},
    }


def test_a_shadowed_builtin_is_a_dependency() -> None:
    executions = run(("a", "input = load()"), ("b", "print(input, len(input))"))
    assert dependencies(executions)["b"] == {"input": "a"}


def test_a_failed_parse_has_no_dependencies_and_makes_nothing() -> None:
    executions = run(("a", "x = 1"), ("b", "x = (\n"), ("c", "y = x"))
    assert dependencies(executions) == {"a": {}, "b": {}, "c": {"x": "a"}}


def test_version_graph_reaches_training_data_from_the_saved_model() -> None:
    executions = run(("load", LOAD), ("split", SPLIT), ("train", TRAIN), ("save", SAVE))
    graph = version_graph(executions)
    model = VariableVersion("model", "train")
    assert set(graph[model]) == {VariableVersion("X", "split"), VariableVersion("y", "split")}
    assert graph[VariableVersion("X", "split")] == (VariableVersion("df", "load"),)
    assert VariableVersion("model", "save") not in graph  # saving reads the model, makes none

    def upstream(version: VariableVersion) -> set[VariableVersion]:
        found, pending = set(), [version]
        while pending:
            for parent in graph.get(pending.pop(), ()):
                if parent not in found:
                    found.add(parent)
                    pending.append(parent)
        return found

    assert VariableVersion("df", "load") in upstream(model)


def test_version_graph_links_fit_data_made_in_the_same_execution() -> None:
    executions = run(("load", LOAD), ("all", "X = df[cols]\nmodel = SVC()\nmodel.fit(X, y)"))
    graph = version_graph(executions)
    assert graph[VariableVersion("model", "all")] == (
        VariableVersion("df", "load"), VariableVersion("X", "all"),
    )
