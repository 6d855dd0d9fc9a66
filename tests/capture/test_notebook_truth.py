"""What a notebook's record says is what happened in its kernels: dependencies stay inside one
kernel session, a name bound then changed in one cell is new, every written version of a file is
its own node, and only the user's imports are the cell's libraries. Real kernels, run by
`trellis run`, shared by the tests of this module."""

from __future__ import annotations

import json
import os
import re

import pytest

import trellis
from tests.capture.test_notebook import notebook, trellis_run
from tests.conftest import new_project, Project, git
from trellis.store.schema import RUN_SHIFT

pytestmark = pytest.mark.kernel

SETUP = ("import pandas as pd\nimport joblib\nfrom sklearn.linear_model import LinearRegression\n"
         "from sklearn.preprocessing import StandardScaler")
FIT = "m = LinearRegression(); m.fit(df[['x']], df['y'])"
SCALE = "scaler = StandardScaler(); scaler.fit_transform(df[['x']])"
LOOP = "kept = [d for d in (1, 2, 3) if d > 1]\nfor d in kept:\n    if d == 2:\n        last = d"
CHURN = ["customers = pd.read_csv('data/customers.csv')", *[
    f"joblib.dump({{'depth': {depth}, 'rows': len(customers)}}, 'models/churn_model.joblib')"
    for depth in (1, 2, 3)]]
# cell-12 writes the report; cell-13's opens for writing fail; cell-14 reads what cell-12 wrote
REPORT = ["with open('models/report.txt', 'w') as out:\n    out.write('one')",
          "for path, mode in (('models/report.txt', 'x'), ('gone/report.txt', 'w')):\n"
          "    try:\n        open(path, mode)\n    except OSError:\n        pass",
          "report = open('models/report.txt').read()"]
# cell-15 has another program write a file; cell-16 reads it
DRAWN = ["!echo drawn > models/drawn.txt",
         "drawn = open('models/drawn.txt').read()"]
# cell-17 imports and sets a constant in the cell that reads customers.csv; cell-18 builds an
# output from them alone: it comes from no file
SYNTHETIC = ["import numpy as np\nsize = 10\nraw = pd.read_csv('data/customers.csv')",
             "joblib.dump(np.arange(size), 'models/synthetic.joblib')"]
# cells 19-25: objects changed through another one. pipe.fit fits the estimator bound to clf;
# writing through a view changes the array it views
THROUGH = ["from sklearn.pipeline import make_pipeline\nfrom sklearn.linear_model import LogisticRegression\n"
           "clf = LogisticRegression()\npipe = make_pipeline(StandardScaler(), clf)",
           "labels = pd.read_csv('data/labels.csv')",
           "pipe.fit(labels[['x']], labels['y'])",
           "joblib.dump(clf, 'models/clf.joblib')",
           "base = np.zeros(4)\nview = base[:2]",
           "view[:] = labels['x'].to_numpy()[:2]",
           "np.save('models/base.npy', base)"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """models.ipynb run, its data path changed, run again (a restart): two epochs."""
    project = new_project(tmp_path_factory.mktemp("truth") / "proj")
    root = project.root
    project.write("data/old.csv", "x,y\n1,2\n2,4\n3,6\n")
    project.write("data/new.csv", "x,y\n1,3\n2,5\n3,7\n4,9\n")
    project.write("data/customers.csv", "id,churn\n1,0\n2,1\n")
    project.write("data/labels.csv", "x,y\n1,0\n2,0\n3,1\n4,1\n")
    (root / "models").mkdir()
    first = [SETUP, "df = pd.read_csv('data/old.csv')", FIT, "joblib.dump(m, 'model.joblib')",
             SCALE, SCALE, "forest = 1", *CHURN, LOOP, *REPORT, *DRAWN, *SYNTHETIC, *THROUGH]
    notebook(project, "models.ipynb", first)
    trellis_run(project, "models.ipynb")
    second = [SETUP, "df = pd.read_csv('data/new.csv')", FIT, "joblib.dump(m, 'model.joblib')",
              SCALE, SCALE, "forest + 1"]
    notebook(project, "models.ipynb", second)
    trellis_run(project, "models.ipynb")
    return project


@pytest.fixture
def here(recorded, monkeypatch):
    monkeypatch.chdir(recorded.root)
    for name in list(os.environ):
        if name.startswith("TRELLIS_"):
            monkeypatch.delenv(name)
    return recorded


def epochs_and_steps():
    epochs = trellis.query("SELECT id FROM runs ORDER BY started")["id"].tolist()
    table = trellis.query("SELECT id, run, cell_id, status FROM steps ORDER BY started")
    return epochs, table


def test_dependencies_stay_inside_the_kernel_session(here):
    epochs, table = epochs_and_steps()
    assert len(epochs) == 2
    deps = trellis.query("SELECT step, depends_on, name FROM dependencies WHERE via = 'variable'")
    assert len(deps) > 0
    for step, on, name in deps.values.tolist():
        assert step >> RUN_SHIFT == on >> RUN_SHIFT, f"{name}: {step} in one epoch, {on} in another"
    # after the restart, `forest + 1` failed with NameError: it depends on nothing
    failed = table[(table["run"] == epochs[1]) & (table["cell_id"] == "cell-6")]
    assert failed["status"].tolist() == ["error"]
    assert not (deps["step"] == failed["id"].iloc[0]).any()


def test_each_model_comes_from_its_own_data(here):
    rows = json.loads(here.cli("sparql", "dataset-of-model", "--bind", "model_path=model.joblib",
                               "--json").stdout)
    written = trellis.query(
        "SELECT f.hash, r.id FROM files f JOIN runs r ON r.id = f.run"
        " WHERE f.path = 'model.joblib' AND f.mode = 'write' ORDER BY f.at")["hash"].tolist()
    assert len(set(written)) == 2
    data = {model: sorted(r["path"] for r in rows if r["model_sha256"] == model) for model in written}
    assert data == {written[0]: ["data/old.csv"], written[1]: ["data/new.csv"]}
    graph = trellis.lineage("model.joblib")
    paths = {n["path"] for n in graph["nodes"] if n["kind"] == "file"}
    assert paths == {"model.joblib", "data/new.csv"}
    newest = trellis.query("SELECT uuid FROM runs ORDER BY started DESC LIMIT 1")["uuid"][0]
    assert {n["run_id"] for n in graph["nodes"] if n["kind"] == "execution"} == {newest}


def test_an_import_or_a_constant_carries_none_of_its_cells_reads(here):
    graph = trellis.lineage("models/synthetic.joblib")
    assert {n["path"] for n in graph["nodes"] if n["kind"] == "file"} == {"models/synthetic.joblib"}
    rows = json.loads(here.cli("sparql", "dataset-of-model", "--bind",
                               "model_path=models/synthetic.joblib", "--json").stdout)
    assert rows == []
    # the cell that imported numpy still gave the output its library
    rows = json.loads(here.cli("sparql", "libraries-of-output", "--bind",
                               "output_path=models/synthetic.joblib", "--json").stdout)
    assert "numpy" in {r["library"] for r in rows}
    # and the link is still recorded: the output's cell used np and size from cell-17
    epochs, table = epochs_and_steps()
    ids = {cell: step for step, run, cell, _ in table.values.tolist() if run == epochs[0]}
    deps = trellis.query("SELECT name FROM dependencies WHERE step = ? AND depends_on = ?",
                         (ids["cell-18"], ids["cell-17"]))["name"].tolist()
    assert sorted(deps) == ["np", "size"]


def test_an_object_changed_through_another_is_a_new_version(here):
    for output in ("models/clf.joblib", "models/base.npy"):
        graph = trellis.lineage(output)
        files = {n["path"] for n in graph["nodes"] if n["kind"] == "file"}
        assert "data/labels.csv" in files, (output, files)
    epochs, table = epochs_and_steps()
    ids = {cell: step for step, run, cell, _ in table.values.tolist() if run == epochs[0]}
    analysis = {cell: json.loads(text) for cell, text in trellis.query(
        "SELECT cell_id, analysis FROM steps WHERE run = ?", (epochs[0],)).values.tolist()}
    assert analysis["cell-21"]["changed_at_run_time"] == ["clf"]
    assert analysis["cell-24"]["changed_at_run_time"] == ["base"]
    deps = trellis.query("SELECT depends_on, name FROM dependencies WHERE step = ?",
                         (ids["cell-22"],)).values.tolist()
    assert [ids["cell-21"], "clf"] in deps


def test_a_name_bound_then_changed_in_one_cell_is_a_new_value(here):
    epochs, table = epochs_and_steps()
    deps = trellis.query("SELECT step, depends_on, name FROM dependencies WHERE via = 'variable'")
    ids = {(run, cell): step for step, run, cell in table[["id", "run", "cell_id"]].values.tolist()}
    for epoch in epochs:
        for cell, name in (("cell-2", "m"), ("cell-5", "scaler"), ("cell-4", "scaler")):
            mine = deps[deps["step"] == ids[(epoch, cell)]]
            assert name not in mine["name"].tolist(), (cell, name)
        # what they do read comes from this epoch: the class from cell-0, df from cell-1
        on = deps[(deps["step"] == ids[(epoch, "cell-5")])][["depends_on", "name"]].values.tolist()
        assert sorted(on) == [[ids[(epoch, "cell-0")], "StandardScaler"], [ids[(epoch, "cell-1")], "df"]]
    shown = here.cli("notebook", "show", "models.ipynb").stdout.splitlines()
    for cell, name in (("cell-2", "m"), ("cell-4", "scaler"), ("cell-5", "scaler")):
        for line in (line for line in shown if f" cell {cell} " in line):
            assert not re.search(rf"(?<![\w]){name}<-", line), line


def test_every_written_version_of_a_file_is_its_own_node(here):
    graph = trellis.lineage("data/customers.csv", downstream=True)
    nodes = {n["id"]: n for n in graph["nodes"]}
    versions = [n for n in graph["nodes"] if n["kind"] == "file" and n["path"] == "models/churn_model.joblib"]
    written = trellis.query("SELECT step, hash FROM files WHERE path = 'models/churn_model.joblib'"
                            " AND mode = 'write' ORDER BY at").values.tolist()
    assert len({h for _, h in written}) == 3
    assert sorted(n["hash"] for n in versions) == sorted(h for _, h in written)
    generated = {(nodes[e["from"]]["hash"], int(e["to"].split(":")[1]))
                 for e in graph["edges"] if e["relation"] == "wasGeneratedBy"
                 and nodes[e["from"]].get("path") == "models/churn_model.joblib"}
    assert generated == {(h, step) for step, h in written}
    text = here.cli("lineage", "data/customers.csv", "--downstream").stdout
    assert "used:" not in text and "read by:" in text and "generated: models/churn_model.joblib" in text
    assert len({line.split("(sha256 ")[1][:12] for line in text.splitlines()
                if "generated: models/churn_model.joblib" in line}) == 3


def test_a_write_that_failed_makes_no_writer(here):
    epochs, table = epochs_and_steps()
    ids = {cell: step for step, run, cell, _ in table.values.tolist() if run == epochs[0]}
    deps = trellis.query("SELECT step, depends_on, name FROM dependencies WHERE via = 'file'")
    on = deps[deps["step"] == ids["cell-14"]][["depends_on", "name"]].values.tolist()
    assert on == [[ids["cell-12"], "models/report.txt"]]
    writes = trellis.query("SELECT step FROM files WHERE path = 'models/report.txt' AND mode = 'write'")
    assert writes["step"].tolist() == [ids["cell-12"]]
    assert not trellis.query("SELECT 1 FROM files WHERE path LIKE 'gone/%'").shape[0]


def test_a_file_another_program_wrote_in_a_cell_is_that_cells(here):
    epochs, table = epochs_and_steps()
    ids = {cell: step for step, run, cell, _ in table.values.tolist() if run == epochs[0]}
    writes = trellis.query("SELECT step, seen_after FROM files WHERE path = 'models/drawn.txt'"
                           " AND mode = 'write'").values.tolist()
    assert writes == [[ids["cell-15"], 1]]
    deps = trellis.query("SELECT depends_on, name FROM dependencies WHERE via = 'file' AND step = ?",
                         (ids["cell-16"],)).values.tolist()
    assert deps == [[ids["cell-15"], "models/drawn.txt"]]
    # a cell that started no program and ran briefly is not scanned: the notebook's own save is no write
    assert not trellis.query("SELECT 1 FROM files WHERE path LIKE '%.ipynb'").shape[0]


def test_only_the_users_imports_are_the_cells_libraries(here):
    epochs, table = epochs_and_steps()
    modules = trellis.query("SELECT step, module FROM modules WHERE step IS NOT NULL")
    assert set(modules["module"]) == {"pandas", "joblib", "sklearn", "numpy"}
    importing = set(table[table["cell_id"].isin(["cell-0", "cell-17"])]["id"])
    assert set(modules["step"]) == importing  # once per epoch, by the cell that imports them
    rdf = here.cli("export", "--format", "turtle", "--all").stdout
    for incidental in ("pygments", "stack_data", "asttokens", "executing", "pure_eval", "trellis"):
        assert f'repr:name "{incidental}"' not in rdf.lower()


def _output_objects(described: dict) -> dict:
    return {(e["id"], n, mime): entry["object"] for epoch in described["epochs"] for e in epoch["executions"]
            for n, output in enumerate(e["outputs"]) for mime, entry in output.get("data", {}).items()}


def _without_objects(described: dict) -> dict:
    copy = json.loads(json.dumps(described))
    for epoch in copy["epochs"]:
        for execution in epoch["executions"]:
            for output in execution["outputs"]:
                for entry in output.get("data", {}).values():
                    entry.pop("object", None)
    return copy


def test_embed_then_import_gives_the_same_history_and_diff(here, tmp_path):
    import jsonschema
    from pathlib import Path

    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "notebook-provenance.schema.json").read_text())
    original = json.loads(here.cli("notebook", "show", "models.ipynb", "--json").stdout)
    first, second = (epoch["run_id"] for epoch in original["epochs"])
    diff = here.cli("diff", first[:8], second[:8]).stdout
    assert "data/new.csv" in diff  # the edited cell's code differs
    here.cli("notebook", "embed", "models.ipynb")
    embedded = json.loads((here.root / "models.ipynb").read_text())["metadata"]["trellis"]
    jsonschema.validate(embedded, schema)
    sources = embedded["sources"]
    # every version that ran, once; five cells read a CSV: four paths, customers.csv twice
    assert len(sources) == len({e["source_hash"] for ep in original["epochs"] for e in ep["executions"]})
    assert sum("pd.read_csv('data/" in text for text in sources.values()) == 5

    other = Project(tmp_path / "colleague")
    other.root.mkdir()
    git(other.root, "init", "-q")
    (other.root / "models.ipynb").write_bytes((here.root / "models.ipynb").read_bytes())
    assert "imported 2 epochs" in other.cli("notebook", "import", "models.ipynb").stdout
    copied = json.loads(other.cli("notebook", "show", "models.ipynb", "--json").stdout)
    # an output keeps its object only where the notebook carries its content (docs/security.md):
    # the rest of the history is the same
    kept, had = _output_objects(copied), _output_objects(original)
    assert kept and set(kept.values()) - {None} <= set(had.values())
    assert all(kept[key] in (None, had[key]) for key in had)
    assert _without_objects(copied) == _without_objects(original)
    assert other.cli("diff", first[:8], second[:8]).stdout == diff
    # which executions are stale depends on each working copy's files, not on the history
    assert re.sub(r" \| STALE: .*", "", other.cli("notebook", "show", "models.ipynb").stdout) == \
        re.sub(r" \| STALE: .*", "", here.cli("notebook", "show", "models.ipynb").stdout)


def test_show_names_each_changed_name_once_and_the_control_flow(here):
    shown = here.cli("notebook", "show", "models.ipynb").stdout.splitlines()
    fit = next(line for line in shown if " cell cell-2 " in line)
    assert " defines m uses " in fit  # bound and fitted: named once
    (loop,) = [line for line in shown if " cell cell-11 " in line]
    assert " defines kept,d,last uses " in loop and "| 1 loop, 1 condition" in loop
    described = json.loads(here.cli("notebook", "show", "models.ipynb", "--json").stdout)
    executions = {e["cell_id"]: e for e in described["epochs"][0]["executions"]}
    assert (executions["cell-11"]["loops"], executions["cell-11"]["conditions"]) == (1, 1)
    assert (executions["cell-2"]["loops"], executions["cell-2"]["conditions"]) == (0, 0)


def test_a_class_held_in_a_variable_has_a_summary(here):
    variables = trellis.query("SELECT name, type, summary FROM variables WHERE name = 'LinearRegression'")
    assert len(variables) == 2
    for summary in variables["summary"]:
        found = json.loads(summary)
        assert "summary_error" not in found
        assert found["class"] == "sklearn.linear_model._base.LinearRegression"


def test_a_notebook_run_by_nbconvert_is_found(project, tmp_path, monkeypatch):
    """nbconvert starts the kernel in the notebook's folder and names the file to nobody."""
    import subprocess
    import sys

    monkeypatch.chdir(project.root)
    env = project.env(JUPYTER_DATA_DIR=str(tmp_path / "jupyter"))
    installed = subprocess.run([sys.executable, "-m", "trellis.cli", "kernel", "install"],
                               capture_output=True, text=True, env=env, timeout=60)
    assert installed.returncode == 0, installed.stderr
    (project.root / "lab").mkdir()
    notebook(project, "lab/report.ipynb", ["total = 40 + 2", "print(total)"])
    notebook(project, "lab/other.ipynb", ["something = 'else'"])
    done = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.kernel_name=trellis", "--output", str(tmp_path / "out.ipynb"),
         "lab/report.ipynb"], cwd=project.root, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr
    epoch = trellis.query("SELECT kind, filename FROM runs").iloc[0]
    assert (epoch["kind"], epoch["filename"]) == ("notebook", "lab/report.ipynb")
    assert trellis.query("SELECT notebook FROM steps")["notebook"].tolist() == ["lab/report.ipynb"] * 2


def test_a_notebook_that_cannot_be_known_is_named_by_its_folder(project, monkeypatch):
    from jupyter_client.manager import start_new_kernel

    monkeypatch.chdir(project.root)
    folder = project.root / "scratch"
    folder.mkdir()
    env = project.env()
    env.pop("JPY_SESSION_NAME", None)
    manager, client = start_new_kernel(kernel_name="python3", extra_arguments=["--ext=trellis"],
                                       cwd=str(folder), env=env)
    try:
        reply = client.execute_interactive("open('out.txt', 'w').write('x')", timeout=60)
        assert reply["content"]["status"] == "ok"
    finally:
        manager.shutdown_kernel()
        client.stop_channels()
    assert trellis.query("SELECT filename FROM runs")["filename"].isna().all()
    text = project.cli("lineage", "scratch/out.txt").stdout
    assert "of unnamed notebook in scratch/" in text and "None" not in text
    graph = json.loads(project.cli("lineage", "scratch/out.txt", "--json").stdout)
    names = [n.get("notebook") or n.get("filename") for n in graph["nodes"] if n["kind"] != "file"]
    assert names and all(name == "unnamed notebook in scratch/" for name in names)
    listed = json.loads(project.cli("runs", "--json").stdout)
    assert [run["filename"] for run in listed] == ["unnamed notebook in scratch/"]
