"""Which earlier execution each execution read its names from, and the variable versions.

Executions are given in the order they ran, not the order of the cells in the notebook: a cell
run again later makes new versions of what it binds, and later readers link to that run. Each
execution id must be unique (a cell id with its execution count, a step number...).

A binding or a mutation makes a new version of a name. A mutation also reads the version before
it, which ``analyze_cell`` already reports as a use. Names read but never bound by an earlier
execution (data from elsewhere, builtins nobody shadowed) get no dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Hashable, Iterable, Iterator

from trellis.analysis.cells import CellAnalysis


@dataclass(frozen=True)
class VariableVersion:
    """The value a name had after an execution bound or mutated it."""

    name: str
    execution: Hashable


def dependencies(
    executions: Iterable[tuple[Hashable, CellAnalysis]],
) -> dict[Hashable, dict[str, Hashable]]:
    """For each execution: name -> the latest earlier execution that bound or mutated it."""
    return {execution: inputs for execution, _, inputs in _resolve(executions)}


def version_graph(
    executions: Iterable[tuple[Hashable, CellAnalysis]],
) -> dict[VariableVersion, tuple[VariableVersion, ...]]:
    """Every version the executions made, with the versions it was computed from.

    A version comes from every version its execution read. A fitted model also comes from the
    data passed to ``fit`` when that data was made in the same execution
    (``X = df[cols]; model.fit(X, y)``), so that a saved model reaches its training data.
    """
    graph: dict[VariableVersion, tuple[VariableVersion, ...]] = {}
    for execution, analysis, inputs in _resolve(executions):
        made = dict.fromkeys(chain(analysis.defined, analysis.mutated))
        read = [VariableVersion(name, source) for name, source in inputs.items()]
        for name in made:
            fit_data = [
                VariableVersion(data, execution)
                for data in analysis.fit_inputs.get(name, ())
                if data in made
            ]
            graph[VariableVersion(name, execution)] = tuple(read + fit_data)
    return graph


def _resolve(
    executions: Iterable[tuple[Hashable, CellAnalysis]],
) -> Iterator[tuple[Hashable, CellAnalysis, dict[str, Hashable]]]:
    """(execution, analysis, name -> execution that made the version it read), in order."""
    latest: dict[str, Hashable] = {}
    for execution, analysis in executions:
        inputs = {
            name: latest[name]
            for name in chain(analysis.used, analysis.builtins_used)
            if name in latest
        }
        yield execution, analysis, inputs
        for name in chain(analysis.defined, analysis.mutated):
            latest[name] = execution
