"""trellis notebook show / embed / import, on a notebook run in a real kernel."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import nbformat
import pytest

import trellis
from trellis._errors import TrellisError
from tests.capture.test_notebook import TRAINING, notebook, trellis_run
from tests.conftest import Project, git

pytestmark = pytest.mark.kernel
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "notebook-provenance.schema.json").read_text())


@pytest.fixture
def recorded(project, monkeypatch):
    monkeypatch.chdir(project.root)
    project.write("data.csv", "1,2,5\n2,1,4\n3,3,9\n")
    # `js` is used only in the cell that imports it: used all the same
    notebook(project, "train.ipynb", ["import os\nimport json as js\njs.dumps(1)\n" + TRAINING[0], *TRAINING[1:5]])
    trellis_run(project, "train.ipynb")
    return project


def test_show_lists_executions_with_names_files_and_dependencies(recorded):
    shown = json.loads(recorded.cli("notebook", "show", "train.ipynb", "--json").stdout)
    (epoch,) = shown["epochs"]
    executions = epoch["executions"]
    assert [e["cell_id"] for e in executions] == [f"cell-{n}" for n in range(5)]
    fit = executions[3]
    assert fit["mutated"] == ["model"] and {"X", "y", "model"} <= set(fit["used"])
    assert {(d["execution"], d["name"]) for d in fit["depends_on"]} >= {
        (executions[1]["id"], "X"), (executions[2]["id"], "model")}
    assert executions[1]["reads"][0]["path"] == "data.csv"
    assert executions[4]["writes"][0]["path"] == "model.pkl"
    assert shown["unused_imports"] == ["os"]
    assert any(m["module"] == "numpy" for m in epoch["modules"])
    text = recorded.cli("notebook", "show", "train.ipynb").stdout
    assert "epoch 1" in text and "read data.csv" in text and "imported but never used: os" in text


def test_embed_changes_only_the_metadata_and_follows_the_schema(recorded):
    path = recorded.root / "train.ipynb"
    before = nbformat.read(path, as_version=4)
    recorded.cli("notebook", "embed", "train.ipynb")
    after = nbformat.read(path, as_version=4)
    assert after.cells == before.cells
    embedded = after.metadata["trellis"]
    jsonschema.validate(embedded, SCHEMA)
    assert "source" not in embedded["epochs"][0]["executions"][0]
    assert len(json.dumps(embedded)) < 20000


def test_import_gives_a_collaborator_the_history_and_the_lineage(recorded, tmp_path, monkeypatch):
    recorded.cli("notebook", "embed", "train.ipynb")
    original = json.loads(recorded.cli("notebook", "show", "train.ipynb", "--json").stdout)
    other = Project(tmp_path / "colleague")
    other.root.mkdir()
    git(other.root, "init", "-q")
    shutil.copy(recorded.root / "train.ipynb", other.root / "train.ipynb")
    assert "imported 1 epochs (0 already here)" in other.cli("notebook", "import", "train.ipynb").stdout
    assert "imported 0 epochs (1 already here)" in other.cli("notebook", "import", "train.ipynb").stdout
    copied = json.loads(other.cli("notebook", "show", "train.ipynb", "--json").stdout)
    keep = ("id", "cell_id", "status", "defined", "used", "mutated", "reads", "writes", "depends_on")
    assert [[{k: e[k] for k in keep} for e in ep["executions"]] for ep in copied["epochs"]] == \
        [[{k: e[k] for k in keep} for e in ep["executions"]] for ep in original["epochs"]]
    monkeypatch.chdir(other.root)
    graph = trellis.lineage("model.pkl")
    assert any(n["kind"] == "file" and n["path"] == "data.csv" for n in graph["nodes"])


def test_a_notebook_without_provenance_is_one_line(recorded):
    done = recorded.cli("notebook", "import", "train.ipynb", check=False)
    assert done.returncode == 1 and "holds no trellis provenance" in done.stderr
    assert done.stderr.count("\n") == 1


class _SavedMeanwhile(dict):
    """Provenance whose reading saves the notebook, as a frontend would while embed runs."""

    def __init__(self, described, notebook, saves):
        super().__init__(described)
        self.notebook, self.saves = notebook, saves

    def items(self):
        if self.saves:
            self.saves -= 1
            book = nbformat.read(self.notebook, as_version=4)
            book.cells.append(nbformat.v4.new_markdown_cell(f"saved meanwhile {self.saves}"))
            nbformat.write(book, self.notebook)
        return super().items()


def test_a_notebook_saved_while_embedding_keeps_the_save(recorded, monkeypatch):
    from trellis.exporting.notebook import embed
    from trellis.queries.notebooks import history, notebook_file
    from trellis.store.connection import open_store

    monkeypatch.chdir(recorded.root)
    path = recorded.root / "train.ipynb"
    cells = len(nbformat.read(path, as_version=4).cells)
    store = open_store(root=recorded.root, read_only=True)
    try:
        described = history(store, str(notebook_file("train.ipynb")))
    finally:
        store.close()
    embed(path, _SavedMeanwhile(described, path, saves=1))
    after = nbformat.read(path, as_version=4)
    assert len(after.cells) == cells + 1 and after.cells[-1].source == "saved meanwhile 0"
    jsonschema.validate(after.metadata["trellis"], SCHEMA)
    assert len(after.metadata["trellis"]["epochs"]) == len(described["epochs"]) >= 1
    assert not list(recorded.root.glob(".train.ipynb.*.tmp"))

    with pytest.raises(TrellisError, match="kept changing on disk"):
        embed(path, _SavedMeanwhile(described, path, saves=5))
    last = nbformat.read(path, as_version=4)
    assert last.cells[-1].source == "saved meanwhile 2"  # the last save stands
    assert not list(recorded.root.glob(".train.ipynb.*.tmp"))
