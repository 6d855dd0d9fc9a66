"""The dependencies trellis records in a real kernel, against a ground truth written by hand.

Each file in ``dependency_cases/`` is one tricky case: the kernel sessions to run (each a list of
cell sources, run in that order in a new kernel) and every variable dependency that truly holds,
as ``"S.P name <- S.Q"``: execution P of session S read ``name`` as execution Q of session S left
it (sessions and executions counted from 1). The expected edges were worked out by hand from
Python's semantics, not from trellis's output. One test runs them all and measures precision and
recall over the whole corpus.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import nbformat
import pytest

import trellis

pytestmark = pytest.mark.sqlite_only("analysis of code and dependencies: the store does not change what it checks")

CASES = sorted((Path(__file__).parent / "dependency_cases").glob("*.toml"))
THRESHOLD = 0.98


def load(path: Path) -> dict:
    case = tomllib.loads(path.read_text(encoding="utf-8"))
    edges = set()
    for edge in case["edges"]:
        reader, name, arrow, source = edge.split()
        assert arrow == "<-", f"{path.name}: {edge!r} is not 'S.P name <- S.Q'"
        edges.add((reader, name, source))
    return {"name": path.stem, "sessions": case["sessions"], "edges": edges}


def run_sessions(root: Path, case: dict) -> None:
    from trellis.capture.runner import run_notebook

    path = root / f"{case['name']}.ipynb"
    for session in case["sessions"]:
        book = nbformat.v4.new_notebook()
        book.cells = [nbformat.v4.new_code_cell(source) for source in session]
        for number, cell in enumerate(book.cells, 1):
            cell["id"] = f"c{number}"
        nbformat.write(book, path)
        run_notebook(path, timeout=120)


def recorded_edges(name: str) -> set[tuple[str, str, str]]:
    steps = trellis.query(
        "SELECT s.id, r.id AS run FROM steps s JOIN runs r ON r.id = s.run WHERE r.filename = ?"
        " ORDER BY r.started, r.id, s.started, s.id", [f"{name}.ipynb"])
    place, runs = {}, []
    for step, run in steps.values.tolist():
        if run not in runs:
            runs.append(run)
        position = sum(1 for key in place if key >> 32 == run) + 1
        place[step] = f"{runs.index(run) + 1}.{position}"
    found = trellis.query("SELECT step, name, depends_on FROM dependencies WHERE via = 'variable'")
    return {(place[step], variable, place[on]) for step, variable, on in found.values.tolist()
            if step in place and on in place}


def test_cases_are_well_formed():
    assert len(CASES) >= 40
    for path in CASES:
        case = load(path)
        sizes = [len(session) for session in case["sessions"]]
        for reader, _, source in case["edges"]:
            for label in (reader, source):
                session, position = map(int, label.split("."))
                assert 1 <= session <= len(sizes) and 1 <= position <= sizes[session - 1], (path.name, label)
            assert reader.split(".")[0] == source.split(".")[0], f"{path.name}: an edge across sessions"


@pytest.mark.kernel
@pytest.mark.sqlite_only("store-independent")
def test_recorded_dependencies_match_the_ground_truth(project, monkeypatch, capsys):
    monkeypatch.chdir(project.root)
    monkeypatch.setenv("TRELLIS_PROGRESS", "0")
    true_positive = false_positive = false_negative = 0
    misses = []
    for path in CASES:
        case = load(path)
        run_sessions(project.root, case)
        got = recorded_edges(case["name"])
        true_positive += len(got & case["edges"])
        false_positive += len(got - case["edges"])
        false_negative += len(case["edges"] - got)
        if got != case["edges"]:
            misses.append(f"{case['name']}: extra {sorted(got - case['edges'])},"
                          f" missing {sorted(case['edges'] - got)}")
    precision = true_positive / (true_positive + false_positive)
    recall = true_positive / (true_positive + false_negative)
    with capsys.disabled():
        print(f"\ndependency ground truth: {len(CASES)} cases, {true_positive + false_negative} edges,"
              f" precision {precision:.3f}, recall {recall:.3f}")
        for miss in misses:
            print(f"  {miss}")
    assert precision >= THRESHOLD and recall >= THRESHOLD, misses
