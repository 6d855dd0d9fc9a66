"""Provenance from someone else is checked whole before anything of it is written: a notebook's
``metadata.trellis``, a JSON export, another store (``trellis import x.db``, push, pull).

The sender is real: a notebook run in a real kernel (outputs saved, history embedded) and a
script with checkpoints, in a git project. What a receiver is sent is that, tampered with.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest
from blake3 import blake3
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests import postgres
from tests.capture.test_notebook import notebook, trellis_run
from tests.conftest import Project, git
from trellis._errors import TrellisError
from trellis.store.schema import RUN_SHIFT, TABLES

pytestmark = pytest.mark.kernel

CELLS = [
    "import numpy as np",
    "x = np.arange(3)\nx",
    "from IPython.display import HTML, display\ndisplay(HTML('<b>bold</b>'))",
    "y = x * 2\nwith open('out.txt', 'w') as handle:\n    handle.write(str(y))",
]
SCRIPT = """
import numpy as np, time, trellis
weights = np.zeros(3)
with trellis.checkpointing(weights=weights):
    for epoch in trellis.loop("epoch", range(2)):
        weights += 1
        time.sleep(0.05)
        trellis.log("loss", 1.0 / (epoch + 1))
"""
STORE_TABLES = [line.split()[5] for line in TABLES.splitlines() if line.startswith("CREATE TABLE")]


def new_project(root: Path) -> Project:
    root.mkdir(parents=True)
    git(root, "init", "-q")
    return Project(root)


@pytest.fixture(scope="module")
def sender(tmp_path_factory) -> dict[str, Any]:
    """A notebook recorded with its outputs and embedded history, a script run, and their JSON export."""
    folder = tmp_path_factory.mktemp("sender")
    project = new_project(folder / "sender")
    project.write("train.py", SCRIPT)
    project.run("train.py", TRELLIS_CHECKPOINT_SHARE="1")
    notebook(project, "nb.ipynb", CELLS)
    trellis_run(project, "--output", "executed.ipynb", "nb.ipynb")
    shutil.copy(project.root / "executed.ipynb", project.root / "nb.ipynb")  # the outputs, as a frontend saves them
    project.cli("notebook", "embed", "nb.ipynb")
    project.cli("export", "--all", "-o", str(folder / "all.json"))
    exported = json.loads((folder / "all.json").read_text())
    database = folder / "sent" / "trellis.db"  # the same runs in a SQLite store, as `trellis import x.db` reads
    with _store(str(database)) as store:
        from trellis.sharing.importing import import_export

        import_export(store, exported)
    return {"project": project, "notebook": json.loads((project.root / "nb.ipynb").read_text()),
            "export": exported, "database": database, "folder": folder}


@contextlib.contextmanager
def _store(url: str | None = None, root: Path | None = None, read_only: bool = False) -> Iterator[Any]:
    from trellis.store.connection import open_store

    store = open_store(url, root=root, read_only=read_only)
    try:
        yield store
    finally:
        store.close()


def script_runs(exported: dict[str, Any]) -> dict[str, Any]:
    only = copy.deepcopy(exported)
    runs = only["tables"]["runs"]
    runs["rows"] = [row for row in runs["rows"] if row[runs["columns"].index("kind")] == "script"]
    return only


def receiver(root: Path, sender: dict[str, Any]) -> Project:
    """A colleague's project whose store already holds a run of its own (the script run)."""
    from trellis.sharing.importing import import_export

    project = new_project(root)
    postgres.configure(project.root)
    with _store(root=project.root) as store:
        import_export(store, script_runs(sender["export"]))
    return project


def import_file(project: Project, path: Path) -> None:
    """What `trellis import` and `trellis notebook import` do, in this process."""
    import trellis
    from trellis.sharing.received import read_notebook
    from trellis.sharing.importing import import_notebook
    from trellis.sharing.received import check_notebook

    was = os.getcwd()
    os.chdir(project.root)
    try:
        if path.suffix != ".ipynb":
            trellis.import_runs(path)
            return
        embedded, carried = read_notebook(path)
        check_notebook(embedded, str(path))
        with _store(root=project.root) as store:
            import_notebook(store, embedded, project.root.name, carried, where=str(path))
    finally:
        os.chdir(was)


def refuses(project: Project, path: Path, words: str) -> None:
    before = contents(project)
    with pytest.raises(TrellisError, match=words) as raised:
        import_file(project, path)
    assert "\n" not in str(raised.value)
    assert contents(project) == before


def contents(project: Project) -> dict[str, Any]:
    """Every row of every table, and every object, of the project's store."""
    with _store(root=project.root, read_only=True) as store:
        rows = {table: sorted(map(repr, store.execute(f"SELECT * FROM {table}"))) for table in STORE_TABLES}
        folder = Path(store.objects)
    objects = {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}
    return {"rows": rows, "objects": objects}


def write_notebook(project: Project, document: dict[str, Any], name: str = "nb.ipynb") -> Path:
    path = project.root / name
    path.write_text(json.dumps(document))
    return path


def refused(done, *words: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


def first_execution(document: dict[str, Any]) -> dict[str, Any]:
    return document["metadata"]["trellis"]["epochs"][0]["executions"][0]


# --- 1. keys ---------------------------------------------------------------------------------

@pytest.mark.parametrize("number", ["4294967297", "-1"])
def test_an_execution_number_outside_its_epochs_keys_is_refused_and_local_runs_stay_whole(
        sender, tmp_path, number):
    other = receiver(tmp_path / "colleague", sender)
    before = contents(other)
    document = copy.deepcopy(sender["notebook"])
    execution = first_execution(document)
    execution["id"] = execution["id"].rsplit("/", 1)[0] + "/" + number
    write_notebook(other, document)
    refused(other.cli("notebook", "import", "nb.ipynb", check=False), "nothing was imported")
    assert contents(other) == before
    if number == "-1":
        return
    # the colleague's own next session of the notebook records every cell it executes
    shutil.copy(sender["project"].root / "executed.ipynb", other.root / "nb.ipynb")
    assert trellis_run(other, "nb.ipynb").stdout.strip().startswith("4 cells executed")
    with _store(root=other.root, read_only=True) as store:
        assert store.execute("SELECT COUNT(*) FROM steps")[0][0] == 4


def test_an_execution_listed_in_another_epoch_is_refused(sender, tmp_path):
    other = receiver(tmp_path / "colleague", sender)
    document = copy.deepcopy(sender["notebook"])
    execution = first_execution(document)
    execution["id"] = "00000000-0000-4000-8000-000000000000/1"
    refuses(other, write_notebook(other, document), "names another")


EXPORT_KEYS = [
    ("runs", "id", lambda run, value: 1 << 40, "not a run id"),
    ("runs", "id", lambda run, value: -3, "not a run id"),
    ("logs", "id", lambda run, value: ((run + 7) << RUN_SHIFT) + 1, "does not belong"),  # another run's key
    ("logs", "iteration", lambda run, value: -1, "does not belong"),
    ("iterations", "parent", lambda run, value: (1 << 62) + 5, "does not belong"),
    ("steps", "id", lambda run, value: value + (1 << RUN_SHIFT), "does not belong"),
    ("checkpoints", "iteration", lambda run, value: value - (1 << RUN_SHIFT), "does not belong"),
]


@pytest.mark.parametrize("table,column,change,words", EXPORT_KEYS)
def test_an_export_key_outside_the_run_it_claims_is_refused(sender, tmp_path, table, column, change, words):
    other = receiver(tmp_path / "colleague", sender)
    before = contents(other)
    exported = copy.deepcopy(sender["export"])
    found = exported["tables"][table]
    row = found["rows"][0]
    at = found["columns"].index(column)
    run = row[found["columns"].index("run")] if "run" in found["columns"] else row[at]
    row[at] = change(run, row[at])
    if (table, column) == ("runs", "id"):  # keep the run's own rows with it
        for name, rows in exported["tables"].items():
            if "run" in rows["columns"]:
                for other_row in rows["rows"]:
                    if other_row[rows["columns"].index("run")] == run:
                        other_row[rows["columns"].index("run")] = row[at]
    (tmp_path / "bad.json").write_text(json.dumps(exported))
    refuses(other, tmp_path / "bad.json", words)


# --- 2. objects ------------------------------------------------------------------------------

def test_an_output_naming_a_local_file_is_refused(sender, tmp_path):
    other = receiver(tmp_path / "colleague", sender)
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY\n")
    before = contents(other)
    for name in (str(secret), "../../../id_rsa", "ab/../../id_rsa"):
        document = copy.deepcopy(sender["notebook"])
        outputs = [e for e in document["metadata"]["trellis"]["epochs"][0]["executions"] if e["outputs"]]
        next(iter(outputs[0]["outputs"][0]["data"].values()))["object"] = name
        refuses(other, write_notebook(other, document), "nothing was imported")
    assert contents(other) == before
    exported = copy.deepcopy(sender["export"])
    checkpoints = exported["tables"]["checkpoints"]
    checkpoints["rows"][0][checkpoints["columns"].index("object")] = str(secret)
    (tmp_path / "bad.json").write_text(json.dumps(exported))
    refuses(other, tmp_path / "bad.json", "not a trellis object digest")
    assert "PRIVATE KEY" not in other.cli("export", "--all").stdout


def test_outputs_keep_only_the_content_the_notebook_carries(sender, tmp_path):
    other = receiver(tmp_path / "colleague", sender)
    own = b"the colleague's own output\n"
    with _store(root=other.root) as store:
        from trellis.store import objects

        mine, _ = objects.put(store.objects, [own])
    document = copy.deepcopy(sender["notebook"])
    executions = document["metadata"]["trellis"]["epochs"][0]["executions"]
    shown = {e["cell_id"]: e["outputs"] for e in executions if e["outputs"]}
    assert set(shown) == {"cell-1", "cell-2"}
    html = shown["cell-2"][0]["data"]["text/html"]
    html["object"] = mine  # names an object the receiver has, which the notebook does not carry
    write_notebook(other, document)
    other.cli("notebook", "import", "nb.ipynb")
    exported = json.loads(other.cli("export", "nb.ipynb").stdout)
    steps = exported["tables"]["steps"]
    outputs = {row[steps["columns"].index("cell_id")]: json.loads(row[steps["columns"].index("outputs")])
               for row in steps["rows"]}
    array = outputs["cell-1"][0]["data"]["text/plain"]
    assert base64.b64decode(exported["objects"][array["object"]]) == b"array([0, 1, 2])"
    assert outputs["cell-2"][0]["data"]["text/html"]["object"] is None
    assert mine not in exported["objects"]


def test_embedded_objects_must_have_the_digest_they_are_filed_under(sender, tmp_path):
    other = receiver(tmp_path / "colleague", sender)
    before = contents(other)
    exported = copy.deepcopy(sender["export"])
    digest = sorted(exported["objects"])[0]
    exported["objects"][digest] = base64.b64encode(b"something else").decode()
    (tmp_path / "bad.json").write_text(json.dumps(exported))
    refuses(other, tmp_path / "bad.json", "not the object it claims")


# --- 3. the schema ---------------------------------------------------------------------------

def _set(path: str, value: Any) -> Any:
    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = document["metadata"]["trellis"]
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is KeyError:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return change


MALFORMED = {
    "outputs not a list": _set("epochs.0.executions.0.outputs", "x"),
    "epochs not a list": _set("epochs", {"a": 1}),
    "execution count a float": _set("epochs.0.executions.0.execution_count", 1.5),
    "execution count huge": _set("epochs.0.executions.0.execution_count", 1 << 70),
    "file size negative": _set("epochs.0.executions.3.writes.0.size", -1),
    "time not a time": _set("epochs.0.started", "yesterday"),
    "run id not a uuid": _set("epochs.0.run_id", "x' OR 1=1"),
    "a key missing": _set("epochs.0.executions.0.status", KeyError),
    "imports of the wrong shape": _set("epochs.0.executions.0.imports", [{"module": "np", "names": 5}]),
    "a summary fingerprint not text": _set("epochs.0.executions.1.variables.0.summary", {"fingerprint": 3}),
    "a notebook above the project": _set("notebook", "../../elsewhere.ipynb"),
    "a lone surrogate": _set("epochs.0.executions.0.cell_id", "\ud800"),
}


@pytest.mark.parametrize("problem", sorted(MALFORMED))
def test_provenance_that_breaks_the_schema_is_one_line_and_changes_nothing(sender, tmp_path, problem):
    other = receiver(tmp_path / "colleague", sender)
    before = contents(other)
    document = copy.deepcopy(sender["notebook"])
    MALFORMED[problem](document)
    refuses(other, write_notebook(other, document), "nothing was imported")


def test_the_published_schema_is_the_one_imports_check(sender):
    from trellis.sharing.received import SCHEMA_FILE, schema_problem

    published = Path(__file__).resolve().parents[2] / "docs" / "notebook-provenance.schema.json"
    assert published.read_text() == SCHEMA_FILE.read_text()
    assert schema_problem(sender["notebook"]["metadata"]["trellis"]) is None


EXPORT_VALUES = [
    ("logs", "name", 5, "not text"),
    ("logs", "float_value", "0.5", "not a number"),
    ("logs", "int_value", 1 << 64, "does not fit 64 bits"),
    ("runs", "started", 1e300, "not a time"),
    ("runs", "argv", "not json", "not JSON"),
    ("steps", "outputs", '"x"', "not a JSON array"),
    ("steps", "outputs", '[{"output_type": "display_data", "data": {"text/plain": {"size": 1, "object": "/etc/passwd"}}}]',
     "the outputs at"),
    ("iterations", "idx", True, "not an integer"),
]


@pytest.mark.parametrize("table,column,value,words", EXPORT_VALUES)
def test_an_export_value_of_the_wrong_type_is_refused(sender, tmp_path, table, column, value, words):
    other = receiver(tmp_path / "colleague", sender)
    before = contents(other)
    exported = copy.deepcopy(sender["export"])
    found = exported["tables"][table]
    row = next(r for r in found["rows"] if table != "steps" or r[found["columns"].index("outputs")] != "[]")
    row[found["columns"].index(column)] = value
    (tmp_path / "bad.json").write_text(json.dumps(exported))
    refuses(other, tmp_path / "bad.json", words)


def test_an_unknown_column_is_refused_not_written_into_sql(sender, tmp_path):
    other = receiver(tmp_path / "colleague", sender)
    before = contents(other)
    exported = copy.deepcopy(sender["export"])
    exported["tables"]["params"] = {"columns": ["run", "name) VALUES (1, 2); --"], "rows": []}
    (tmp_path / "bad.json").write_text(json.dumps(exported))
    refuses(other, tmp_path / "bad.json", "does not know")


# --- 4. not what it claims to be -------------------------------------------------------------

def _foreign_database(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE runs (id INTEGER, name TEXT)")
        connection.execute("INSERT INTO runs VALUES (1, 'not trellis')")
        connection.commit()


def _newer_store(path: Path, sender: dict[str, Any]) -> None:
    shutil.copy(sender["database"], path)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("UPDATE schema_version SET version = 99")
        connection.commit()


FILES = {
    "random.db": (lambda path, sender: path.write_bytes(os.urandom(4096)), "not"),
    "empty.db": (lambda path, sender: path.write_bytes(b""), "not a trellis store"),
    "foreign.db": (lambda path, sender: _foreign_database(path), "not a trellis store"),
    "newer.db": (_newer_store, "upgrade trellis"),
    "random.json": (lambda path, sender: path.write_bytes(os.urandom(512)), "not valid JSON"),
    "list.json": (lambda path, sender: path.write_text("[1, 2]"), "not a trellis JSON export"),
    "deep.json": (lambda path, sender: path.write_text("[" * 100000 + "]" * 100000), "nested too deeply"),
    "newer.json": (lambda path, sender: path.write_text(json.dumps({**sender["export"], "schema_version": 99})),
                   "upgrade trellis"),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_file_that_is_not_an_import_is_one_line_and_changes_nothing(sender, tmp_path, name):
    other = receiver(tmp_path / "colleague", sender)
    before = contents(other)
    make, words = FILES[name]
    make(tmp_path / name, sender)
    refused(other.cli("import", str(tmp_path / name), check=False), words)
    assert contents(other) == before


NOTEBOOKS = {
    "random bytes": (lambda: os.urandom(2048), "not valid JSON"),
    "a JSON list": (lambda: b"[]", "not a notebook"),
    "provenance not an object": (lambda: json.dumps({"cells": [], "metadata": {"trellis": []}}).encode(),
                                 "holds no trellis provenance"),
    "metadata not an object": (lambda: json.dumps({"cells": [], "metadata": 5}).encode(), "not a notebook"),
    "NaN": (lambda: b'{"metadata": {"trellis": {"schema": "trellis-notebook-provenance/1", "x": NaN}}}',
            "does not follow the notebook provenance schema"),
}


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_a_notebook_that_is_not_one_is_one_line_and_changes_nothing(sender, tmp_path, name):
    other = receiver(tmp_path / "colleague", sender)
    before = contents(other)
    make, words = NOTEBOOKS[name]
    (other.root / "nb.ipynb").write_bytes(make())
    refused(other.cli("notebook", "import", "nb.ipynb", check=False), words)
    assert contents(other) == before


def test_a_store_whose_rows_name_local_files_copies_nothing(sender, tmp_path):
    other = receiver(tmp_path / "colleague", sender)
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy\n")
    sent = tmp_path / "sent" / "trellis.db"
    sent.parent.mkdir()
    shutil.copy(sender["database"], sent)
    with contextlib.closing(sqlite3.connect(sent)) as connection:
        connection.execute("UPDATE checkpoints SET object = ?", (os.path.relpath(secret, sent.parent / "objects" / "xx"),))
        connection.execute("UPDATE runs SET uuid = '00000000-0000-4000-8000-000000000001' WHERE kind = 'script'")
        connection.commit()
    refuses(other, sent, "not a trellis object digest")
    assert not [p for p in Path(tmp_path).rglob("*") if p.is_file() and p.read_bytes() == b"do not copy\n"
                and p != secret]


# --- the fuzz: random changes to valid documents and stores -----------------------------------

# a failure is shown as found: shrinking an example that recreates stores takes minutes.
# FUZZ_EXAMPLES=1000 explores further, with new random examples each time.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES == 50,
                phases=[Phase.explicit, Phase.reuse, Phase.generate],
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

ODD_VALUES = st.one_of(
    st.none(), st.booleans(),
    st.integers(-(1 << 70), 1 << 70),
    st.sampled_from([-1, 0, 1, (1 << 32) + 1, (1 << 31), (1 << 63) - 1, 1 << 63, 4294967295]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["", "/etc/passwd", "../../x", "\ud800", "\x00", "x' OR 1=1", "[]", "{}", "null",
                     "00000000-0000-4000-8000-000000000000/4294967297", "a" * 64, "1.5"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _nodes(document: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _nodes(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _nodes(value, (*path, index))


@st.composite
def mutated(draw, document: Any, within: tuple = ()) -> Any:
    """``document`` with one to three of its values (under ``within``) replaced, tweaked or removed."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        base = document
        for part in within:
            base = base[part]
        nodes = [path for path in _nodes(base) if path]
        if not nodes:
            break
        path = draw(st.sampled_from(nodes))
        parent = base
        for part in path[:-1]:
            parent = parent[part]
        old = parent[path[-1]]
        action = draw(st.sampled_from(["replace", "remove", "tweak"]))
        if action == "remove":
            del parent[path[-1]]
        elif action == "tweak" and isinstance(old, bool):
            parent[path[-1]] = not old
        elif action == "tweak" and isinstance(old, int):
            parent[path[-1]] = old + draw(st.sampled_from([-1, 1, 1 << 32, -(1 << 32), 1 << 40]))
        elif action == "tweak" and isinstance(old, str) and old:
            at = draw(st.integers(0, len(old) - 1))
            parent[path[-1]] = old[:at] + draw(st.sampled_from(["0", "/", "-", "a", "", "9" * 12])) + old[at + 1:]
        else:
            parent[path[-1]] = draw(ODD_VALUES)
    return document


@contextlib.contextmanager
def fuzz_receiver(sender: dict[str, Any]) -> Iterator[Project]:
    """A receiving project made for one example, with a run of its own, and as current folder."""
    with tempfile.TemporaryDirectory() as folder:
        project = new_project(Path(folder) / "colleague")
        postgres.configure(project.root)
        was = os.getcwd()
        os.chdir(project.root)
        try:
            from trellis.sharing.importing import import_export

            with _store(root=project.root) as store:
                import_export(store, script_runs(sender["export"]))
            yield project
        finally:
            os.chdir(was)


def still_readable(project: Project) -> None:
    """What the store holds after an import can be exported again, and its notebooks shown."""
    from trellis.sharing.json_export import export
    from trellis.queries.notebooks import history

    with _store(root=project.root, read_only=True) as store:
        runs = [run for (run,) in store.execute("SELECT id FROM runs")]
        json.dumps(export(store, runs))
        for (name,) in store.execute("SELECT DISTINCT filename FROM runs WHERE kind = 'notebook'"):
            history(store, name)


def imports_or_refuses(project: Project, load) -> None:
    before = contents(project)
    try:
        load()
    except TrellisError:
        assert contents(project) == before
    else:
        still_readable(project)


@FUZZ
@given(data=st.data())
def test_fuzz_notebook_provenance(sender, data):
    document = data.draw(mutated(sender["notebook"], ("metadata", "trellis")))
    with fuzz_receiver(sender) as project:
        path = write_notebook(project, document)
        imports_or_refuses(project, lambda: import_file(project, path))


@FUZZ
@given(data=st.data())
def test_fuzz_json_export(sender, data):
    document = data.draw(mutated(sender["export"]))
    with fuzz_receiver(sender) as project:
        path = project.root / "sent.json"
        path.write_text(json.dumps(document))
        imports_or_refuses(project, lambda: import_file(project, path))


SQLITE_VALUES = st.one_of(
    st.none(), st.integers(-(1 << 63), (1 << 63) - 1), st.floats(allow_nan=False), st.text(max_size=8),
    st.binary(max_size=8),
    st.sampled_from([(1 << 32) + 1, -1, "/etc/passwd", "../../x", "[]", '"x"', "a" * 64, 99]),
)


@FUZZ
@given(data=st.data())
def test_fuzz_store_file(sender, data):
    with fuzz_receiver(sender) as project:
        sent = project.root.parent / "sent" / "trellis.db"
        sent.parent.mkdir()
        shutil.copy(sender["database"], sent)
        with contextlib.closing(sqlite3.connect(sent)) as connection:
            for _ in range(data.draw(st.integers(1, 3))):
                table = data.draw(st.sampled_from(STORE_TABLES))
                action = data.draw(st.sampled_from(["set", "set", "set", "drop"]))
                columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
                if action == "drop" or not columns:  # not columns: dropped already
                    connection.execute(f"DROP TABLE IF EXISTS {table}")
                    continue
                count = connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                if not count:
                    continue
                column = data.draw(st.sampled_from(columns))
                offset = data.draw(st.integers(0, count - 1))
                with contextlib.suppress(sqlite3.IntegrityError):  # a value its column refuses
                    connection.execute(
                        f"UPDATE {table} SET {column} = ? WHERE rowid = (SELECT rowid FROM {table} LIMIT 1 OFFSET ?)",
                        (data.draw(SQLITE_VALUES), offset))
            connection.commit()
        if data.draw(st.booleans()):  # and now and then, damage to the file itself
            raw = bytearray(sent.read_bytes())
            for _ in range(data.draw(st.integers(1, 8))):
                raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
            sent.write_bytes(bytes(raw))
        imports_or_refuses(project, lambda: import_file(project, sent))
