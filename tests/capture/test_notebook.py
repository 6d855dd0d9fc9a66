"""Notebook capture in a real kernel, run headless by `trellis run` (nbclient + ipykernel)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

import trellis

pytestmark = pytest.mark.kernel


def notebook(project, name, cells, ids=True):
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    if ids:
        for number, cell in enumerate(book.cells):
            cell["id"] = f"cell-{number}"
    else:
        book.nbformat_minor = 4
        for cell in book.cells:
            cell.pop("id", None)
    path = project.root / name
    nbformat.write(book, path)
    return path


def trellis_run(project, *args, check=True):
    done = subprocess.run(
        [sys.executable, "-m", "trellis.cli", "run", *args], cwd=project.root,
        capture_output=True, text=True, env=project.env(), timeout=300,
    )
    if check:
        assert done.returncode in (0, 1), done.stderr
    return done


def steps():
    return trellis.query(
        "SELECT id, run, cell_id, execution_count, status, error, stdout, outputs, analysis, notebook"
        " FROM steps ORDER BY started"
    )


@pytest.fixture
def in_project(project, monkeypatch):
    monkeypatch.chdir(project.root)
    return project


TRAINING = [
    "import numpy as np\nimport pickle\nimport trellis",
    "rows = np.loadtxt('data.csv', delimiter=',')\nX, y = rows[:, :2], rows[:, 2]\nprint('rows', len(rows))",
    "class Model:\n    def fit(self, X, y):\n        self.coef_ = np.linalg.lstsq(X, y, rcond=None)[0]\n        return self\n"
    "model = Model()",
    "model.fit(X, y)\ntrellis.log('coef0', float(model.coef_[0]))\nmodel.coef_",
    "with open('model.pkl', 'wb') as handle:\n    pickle.dump(model, handle)",
    "1 / 0",
    "from IPython.display import display, HTML\ndisplay(HTML('<b>bold</b>'))\nprint(bytes([255, 254]).decode('latin-1'))",
]


def test_every_execution_is_recorded_as_a_step_of_an_epoch(in_project, tmp_path, monkeypatch):
    in_project.write("data.csv", "1,2,5\n2,1,4\n3,3,9\n")
    path = notebook(in_project, "train.ipynb", TRAINING)
    # a temporary folder of its own (other tests start kernels too), with a short path
    private = Path(tempfile.mkdtemp(prefix="t-", dir="/tmp"))
    monkeypatch.setenv("TMPDIR", str(private))
    try:
        done = trellis_run(in_project, "train.ipynb")
        assert done.stdout.strip() == "7 cells executed, 1 failed", done.stderr
        assert done.stderr == ""  # the kernel listens on sockets in a private folder: no TCP warning
        assert not list(private.iterdir())  # removed after
    finally:
        monkeypatch.delenv("TMPDIR")
        shutil.rmtree(private, ignore_errors=True)
    (epoch,) = trellis.query("SELECT uuid, kind, filename, status FROM runs").to_dict("records")
    assert epoch["kind"] == "notebook" and epoch["filename"] == "train.ipynb" and epoch["status"] == "ok"
    table = steps()
    assert table["cell_id"].tolist() == [f"cell-{n}" for n in range(7)]
    assert table["execution_count"].tolist() == list(range(1, 8))
    assert table["status"].tolist() == ["ok"] * 5 + ["error", "ok"]
    assert "ZeroDivisionError" in table["error"][5]
    assert table["stdout"][1] == "rows 3\n"
    assert (table["notebook"] == "train.ipynb").all()
    outputs = [json.loads(o) for o in table["outputs"]]
    assert outputs[3][0]["output_type"] == "execute_result"
    assert outputs[3][0]["preview"].startswith("array(")
    html = outputs[6][0]
    assert html["output_type"] == "display_data" and set(html["data"]) >= {"text/html", "text/plain"}
    stored = in_project.root / ".trellis" / "objects"
    digest = html["data"]["text/html"]["object"]
    assert (stored / digest[:2] / digest).read_text() == "<b>bold</b>"
    # the notebook file itself is never changed by running it
    assert nbformat.read(path, as_version=4).cells[1].outputs == []
    values = trellis.dataframe("coef0")
    assert len(values) == 1 and values["filename"][0] == "train.ipynb"
    logged_step = trellis.query("SELECT step FROM logs WHERE name = 'coef0'")["step"][0]
    assert logged_step == table["id"][3]


def test_files_and_modules_are_attributed_to_their_executions(in_project):
    in_project.write("data.csv", "1,2,5\n2,1,4\n3,3,9\n")
    notebook(in_project, "train.ipynb", TRAINING)
    trellis_run(in_project, "train.ipynb")
    table = steps()
    files = trellis.query("SELECT step, path, mode, hash FROM files ORDER BY at")
    assert files[["path", "mode"]].values.tolist() == [["data.csv", "read"], ["model.pkl", "write"]]
    assert files["step"].tolist() == [table["id"][1], table["id"][4]]
    assert files["hash"].notna().all()
    modules = trellis.query("SELECT step, module, version FROM modules")
    numpy = modules[modules["module"] == "numpy"]
    assert numpy["step"].tolist() == [table["id"][0]]
    assert numpy["version"].iloc[0] == __import__("numpy").__version__


def test_model_lineage_reaches_the_training_data_through_fit(in_project):
    in_project.write("data.csv", "1,2,5\n2,1,4\n3,3,9\n")
    notebook(in_project, "train.ipynb", TRAINING)
    trellis_run(in_project, "train.ipynb")
    graph = trellis.lineage("model.pkl")
    nodes = {n["id"]: n for n in graph["nodes"]}
    executions = {n["cell_id"] for n in graph["nodes"] if n["kind"] == "execution"}
    assert {"cell-4", "cell-3", "cell-1"} <= executions
    assert any(n["kind"] == "file" and n["path"] == "data.csv" and n["source"] for n in graph["nodes"])
    labelled = {(nodes[e["from"]].get("cell_id"), e["relation"], nodes[e["to"]].get("cell_id")) for e in graph["edges"]}
    # the saved model comes from the execution that fit it, not the one that made it
    assert ("cell-4", "used model", "cell-3") in labelled
    assert ("cell-3", "used X", "cell-1") in labelled
    variable = trellis.lineage("train.ipynb:model")
    assert nodes_of(variable, "execution") >= {"cell-3", "cell-1"}


def nodes_of(graph, kind):
    return {n.get("cell_id") for n in graph["nodes"] if n["kind"] == kind}


def test_dependencies_and_variable_summaries(in_project):
    notebook(in_project, "deps.ipynb", [
        "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'b': [3, 4]})",
        "total = df['a'].sum()",
        "df['c'] = df['a'] * 2",
        "result = df['c'].sum() + total",
    ])
    trellis_run(in_project, "deps.ipynb")
    ids = dict(zip(steps()["cell_id"], steps()["id"]))
    deps = trellis.query("SELECT step, depends_on, name FROM dependencies")
    got = {(s, d, n) for s, d, n in deps.values.tolist()}
    assert (ids["cell-1"], ids["cell-0"], "df") in got
    assert (ids["cell-2"], ids["cell-0"], "df") in got
    assert (ids["cell-3"], ids["cell-2"], "df") in got  # the mutated version, not the first
    assert (ids["cell-3"], ids["cell-1"], "total") in got
    variables = trellis.query("SELECT step, name, type, summary FROM variables")
    frame = variables[(variables["name"] == "df") & (variables["step"] == ids["cell-2"])]
    summary = json.loads(frame["summary"].iloc[0])
    assert frame["type"].iloc[0] == "pandas.DataFrame"
    assert summary["shape"] == [2, 3] and summary["columns"] == ["a", "b", "c"] and summary["fingerprint"]


def test_restarts_are_epochs_and_files_link_them(in_project):
    notebook(in_project, "write.ipynb", ["open('shared.txt', 'w').write('v1')"])
    notebook(in_project, "read.ipynb", ["text = open('shared.txt').read()"])
    trellis_run(in_project, "write.ipynb")
    trellis_run(in_project, "read.ipynb")
    trellis_run(in_project, "read.ipynb")
    runs = trellis.query("SELECT id, filename FROM runs ORDER BY started")
    assert runs["filename"].tolist() == ["write.ipynb", "read.ipynb", "read.ipynb"]
    deps = trellis.query("SELECT step, depends_on, name, via FROM dependencies")
    writer = steps()["id"][0]
    assert (deps["depends_on"] == writer).sum() == 2 and set(deps["via"]) == {"file"}


def test_user_code_behaves_as_without_trellis(in_project, tmp_path):
    cells = [
        "import sys\nprint('out'); print('err', file=sys.stderr)",
        "def broken(:\n    pass",
        "x = [1, 2, 3]\nx",
        "raise KeyboardInterrupt",
        "'é' * 3",
        "big = 'y' * 2_000_000\nprint(len(big))",
    ]
    path = notebook(in_project, "plain.ipynb", cells, ids=False)
    traced = tmp_path / "traced.ipynb"
    trellis_run(in_project, "--output", str(traced), "plain.ipynb")
    from nbclient import NotebookClient

    plain = nbformat.read(path, as_version=4)
    NotebookClient(plain, kernel_name="python3", allow_errors=True, timeout=120).execute()
    with_trellis = nbformat.read(traced, as_version=4)

    def texts(book):
        return [[(o.get("output_type"), o.get("name"), o.get("text"), o.get("ename"),
                  json.dumps(o.get("data", {}), sort_keys=True)) for o in cell.outputs]
                for cell in book.cells]

    assert texts(with_trellis) == texts(plain)
    table = steps()
    assert table["status"].tolist() == ["ok", "error", "ok", "interrupted", "ok", "ok"]
    assert table["cell_id"].str.startswith("sha256:").all()  # no ids in nbformat 4.4
    assert "SyntaxError" in table["error"][1]


def test_kernel_install_records_every_session(in_project, tmp_path):
    env = in_project.env(JUPYTER_DATA_DIR=str(tmp_path / "jupyter"))
    done = subprocess.run([sys.executable, "-m", "trellis.cli", "kernel", "install"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    spec = json.loads((tmp_path / "jupyter" / "kernels" / "trellis" / "kernel.json").read_text())
    assert spec["display_name"] == "Python 3 (trellis)" and "--ext=trellis" in spec["argv"]
    notebook(in_project, "session.ipynb", ["value = 41 + 1", "print(value)"])
    run = """
import nbformat
from nbclient import NotebookClient
book = nbformat.read('session.ipynb', as_version=4)
for _ in range(2):  # two kernel sessions: two epochs
    NotebookClient(book, kernel_name='trellis', timeout=60).execute()
"""
    done = subprocess.run([sys.executable, "-c", run], cwd=in_project.root, capture_output=True,
                          text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr
    epochs = trellis.query("SELECT kind, status FROM runs")
    assert epochs["kind"].tolist() == ["notebook", "notebook"]
    assert len(steps()) == 4


def test_trellis_run_script_records_an_unmodified_script(in_project):
    in_project.write("plain.py", """
        import json, sys
        json.dump({"args": sys.argv[1:]}, open("out.json", "w"))
    """)
    done = subprocess.run([sys.executable, "-m", "trellis.cli", "run", "plain.py", "--lr", "3"],
                          cwd=in_project.root, capture_output=True, text=True, env=in_project.env())
    assert done.returncode == 0, done.stderr
    assert json.loads((in_project.root / "out.json").read_text()) == {"args": ["--lr", "3"]}
    run = trellis.query("SELECT filename, argv, status FROM runs").iloc[0]
    assert run["filename"] == "plain.py" and json.loads(run["argv"]) == ["plain.py", "--lr", "3"]
    files = trellis.query("SELECT path, mode FROM files")
    assert files.values.tolist() == [["out.json", "write"]]


def test_a_corrupt_notebook_is_one_line(in_project):
    (in_project.root / "bad.ipynb").write_text("{not json")
    done = trellis_run(in_project, "bad.ipynb", check=False)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "bad.ipynb is not a readable notebook" in done.stderr


def test_a_kernel_killed_mid_cell_keeps_what_was_recorded(in_project):
    from jupyter_client.manager import start_new_kernel

    env = in_project.env(TRELLIS_NOTEBOOK=str(in_project.root / "killed.ipynb"))
    manager, client = start_new_kernel(kernel_name="python3", extra_arguments=["--ext=trellis"],
                                       cwd=str(in_project.root), env=env)
    try:
        reply = client.execute_interactive("import trellis\ntrellis.log('before', 1)", timeout=60)
        assert reply["content"]["status"] == "ok"
        client.execute("import time\ntime.sleep(600)")
        # a loaded machine can take long to start the cell: wait for its row, then kill
        deadline = time.time() + 180
        seen = False
        while not seen and time.time() < deadline:
            try:
                seen = "running" in set(steps()["status"])
            except trellis.StoreError:
                pass
            time.sleep(0.2)
        assert seen, "the running cell was never recorded"
    finally:
        os.kill(manager.provisioner.pid, 9)  # no atexit, no final flush
        manager.shutdown_kernel(now=True)
        client.stop_channels()
    table = steps()
    assert table["status"].tolist() == ["ok", "running"]
    assert trellis.dataframe("before")["before"].tolist() == [1]
    in_project.write("next.py", "import trellis\n")
    in_project.run("next.py")
    assert steps()["status"].tolist() == ["ok", "interrupted"]
    assert trellis.query("SELECT status FROM runs ORDER BY started")["status"].tolist() == ["interrupted", "ok"]


def test_duplicated_reordered_and_deleted_cells(in_project):
    path = notebook(in_project, "edit.ipynb", ["a = 1", "b = a + 1", "c = b * 2"])
    trellis_run(in_project, "edit.ipynb")
    book = nbformat.read(path, as_version=4)
    book.cells = [book.cells[2], book.cells[0], book.cells[1], nbformat.v4.new_code_cell("d = a")]
    book.cells[3]["id"] = "cell-0"  # a copied cell keeps its id, as after a paste in some editors
    book.cells[0].source = "c = 5"  # edited, moved first; cell-1 was deleted... and cell-1 kept
    del book.cells[2]
    path.write_text(json.dumps(book))  # nbformat.write would renumber the duplicated id
    trellis_run(in_project, "edit.ipynb")
    shown = json.loads(in_project.cli("notebook", "show", "edit.ipynb", "--json").stdout)
    first, second = shown["epochs"]
    assert [e["cell_id"] for e in second["executions"]] == ["cell-2", "cell-0", "cell-0"]
    assert [e["status"] for e in second["executions"]] == ["ok", "ok", "ok"]
    # the pasted copy uses `a` from the execution just before it, in this epoch
    assert second["executions"][2]["depends_on"] == [
        {"execution": second["executions"][1]["id"], "name": "a", "via": "variable"}]
    diff = trellis.diff(first["run_id"][:8], second["run_id"][:8])
    assert diff["code"]["gone_cells"] == ["cell-1"] and "+c = 5" in diff["code"]["cells"]["cell-2"]


def test_the_notebook_path_comes_from_the_jupyter_session(in_project):
    from jupyter_client.manager import start_new_kernel

    env = in_project.env(JPY_SESSION_NAME=str(in_project.root / "lab" / "analysis.ipynb"))
    manager, client = start_new_kernel(kernel_name="python3", extra_arguments=["--ext=trellis"],
                                       cwd=str(in_project.root), env=env)
    try:
        assert client.execute_interactive("x = 1", timeout=60)["content"]["status"] == "ok"
    finally:
        manager.shutdown_kernel()
        client.stop_channels()
    epoch = trellis.query("SELECT kind, filename, status FROM runs").iloc[0]
    assert (epoch["kind"], epoch["filename"], epoch["status"]) == ("notebook", "lab/analysis.ipynb", "ok")
    assert steps()["notebook"].tolist() == ["lab/analysis.ipynb"]


def test_a_temporary_folder_too_deep_for_a_socket_still_runs_the_notebook(in_project, tmp_path, monkeypatch):
    """A Unix socket's path holds 107 bytes: under a deep TMPDIR the kernel's go to /tmp."""
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 5)
    deep.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(deep))
    notebook(in_project, "small.ipynb", ["x = 1", "print(x + 1)"])
    done = trellis_run(in_project, "small.ipynb")
    assert done.stdout.strip() == "2 cells executed, 0 failed", done.stderr
    assert done.stderr == ""


def test_the_notebook_path_comes_from_vs_code(in_project):
    """VS Code starts the kernel first, then assigns ``__vsc_ipynb_file__`` in a silent execution
    of its own; its cells arrive with no ``metadata.cellId`` that trellis could use."""
    from jupyter_client.manager import start_new_kernel

    folder = in_project.root / "analysis"
    folder.mkdir()
    env = in_project.env()
    env.pop("JPY_SESSION_NAME", None)
    manager, client = start_new_kernel(kernel_name="python3", extra_arguments=["--ext=trellis"],
                                       cwd=str(folder), env=env)
    cells = ["rows = [3, 1, 2]", "total = sum(rows)\nprint(total)"]
    try:
        startup = client.execute_interactive(
            f"__vsc_ipynb_file__ = {str(folder / 'explore.ipynb')!r}", silent=True,
            store_history=False, timeout=60)
        assert startup["content"]["status"] == "ok"
        for source in cells:
            assert client.execute_interactive(source, timeout=60)["content"]["status"] == "ok"
    finally:
        manager.shutdown_kernel()
        client.stop_channels()
    epoch = trellis.query("SELECT kind, filename, status FROM runs").iloc[0]
    assert (epoch["kind"], epoch["filename"], epoch["status"]) == ("notebook", "analysis/explore.ipynb", "ok")
    table = steps()
    assert table["notebook"].tolist() == ["analysis/explore.ipynb"] * 2  # the startup code is no cell
    assert table["cell_id"].tolist() == [
        "sha256:" + hashlib.sha256(source.encode()).hexdigest()[:16] for source in cells]
    assert table["stdout"][1] == "6\n"
    graph = trellis.lineage("analysis/explore.ipynb:total")
    assert nodes_of(graph, "execution") == set(table["cell_id"])


def test_a_kernel_shut_down_while_its_workers_stop_ended_normally(in_project):
    """joblib's worker processes make a kernel slow to exit after a shutdown request, and its
    manager sends SIGTERM after a while; the session was ended, not interrupted."""
    from jupyter_client.manager import start_new_kernel

    env = in_project.env(TRELLIS_NOTEBOOK=str(in_project.root / "parallel.ipynb"))
    manager, client = start_new_kernel(kernel_name="python3", extra_arguments=["--ext=trellis"],
                                       cwd=str(in_project.root), env=env)
    try:
        reply = client.execute_interactive(
            "from joblib import Parallel, delayed\n"
            "squares = Parallel(n_jobs=2)(delayed(pow)(n, 2) for n in range(8))", timeout=60)
        assert reply["content"]["status"] == "ok"
    finally:
        manager.shutdown_kernel()
        client.stop_channels()
    epoch = trellis.query("SELECT status, error FROM runs").iloc[0]
    assert (epoch["status"], epoch["error"]) == ("ok", None)
    assert steps()["status"].tolist() == ["ok"]
    assert "joblib" in trellis.query("SELECT module FROM modules")["module"].tolist()
