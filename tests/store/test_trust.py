"""Runs received from someone else's store are not trusted: a checkpoint whose unpickling would
run code is refused unless the user says they trust it, and replay and reproduce, which run a
run's recorded command line, leave such runs alone unless told ``--trust``.

"Theirs" is a colleague's project whose script checkpoints an object whose ``__reduce__`` calls
``os.system``; its runs reach "mine" through each import path a user has.
"""

from __future__ import annotations

import collections
import json
import pickle
import shlex

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trellis
from tests.conftest import Project, git

THEIR_SCRIPT = """
import os, sys, time
import numpy as np, trellis


class Payload:
    \"\"\"Unpickling this runs a shell command: what a hostile checkpoint does.\"\"\"

    def __reduce__(self):
        return (os.system, (sys.argv[2],))


weights = np.zeros(2)
plain = {"seen": [], "name": "plain values"}
objects = {"weights": weights, "plain": plain}
if sys.argv[1] == "hostile":
    objects["payload"] = Payload()
with trellis.checkpointing(**objects):
    for epoch in trellis.loop("epoch", range(2)):
        weights += 1
        plain["seen"].append(epoch)
        time.sleep(0.05)  # an epoch outlasts its checkpoint, so every epoch is saved
"""


@pytest.fixture
def theirs(tmp_path) -> Project:
    other = Project(tmp_path / "theirs")
    other.root.mkdir()
    git(other.root, "init", "-q")
    other.write("train.py", THEIR_SCRIPT)
    return other


@pytest.fixture
def mine(project, monkeypatch) -> Project:
    monkeypatch.chdir(project.root)
    return project


def _record(theirs: Project, marker, **env: str) -> dict[str, str]:
    """A hostile run and a harmless one in their store; their uuids by kind."""
    command = f"touch {shlex.quote(str(marker))}"
    theirs.run("train.py", "hostile", command, TRELLIS_CHECKPOINT_SHARE="1", **env)
    theirs.run("train.py", "harmless", "-", TRELLIS_CHECKPOINT_SHARE="1", **env)
    found = theirs.python("""
        import json, trellis
        runs = trellis.query("SELECT uuid, argv FROM runs")
        print(json.dumps({json.loads(argv)[1]: uuid for uuid, argv in runs.values.tolist()}))
    """, **env)
    return json.loads(found.stdout)


def _receive(how: str, theirs: Project, mine: Project, tmp_path, new_store, marker) -> tuple[dict[str, str], str]:
    """Record their runs and bring them into my store the ``how`` way; (uuids, where from)."""
    if how == "import json":
        uuids = _record(theirs, marker)
        exported = tmp_path / "their-runs.json"
        theirs.cli("export", "--all", "-o", str(exported))
        assert "imported 2 runs" in mine.cli("import", str(exported)).stdout
        return uuids, str(exported)
    if how == "import db":
        database = tmp_path / "their-store" / "trellis.db"
        uuids = _record(theirs, marker, TRELLIS_STORE=str(database))
        assert "imported 2 runs" in mine.cli("import", str(database)).stdout
        return uuids, str(database)
    shared, objects = new_store, str(tmp_path / "team-objects")
    uuids = _record(theirs, marker, TRELLIS_STORE=shared, TRELLIS_OBJECTS=objects)
    assert mine.cli("pull", shared, "--objects", objects, "--all").stdout.startswith("pulled 2 runs")
    return uuids, shared.split("@")[-1]


@pytest.mark.parametrize("how", ["import json", "import db", "pull"])
def test_a_received_hostile_checkpoint_is_not_unpickled_unless_trusted(how, theirs, mine, tmp_path, new_store,
                                                                      monkeypatch):
    marker = tmp_path / "the-payload-ran"
    uuids, source = _receive(how, theirs, mine, tmp_path, new_store, marker)
    if how == "pull":  # pull brings runs into the project's own store, whatever store is configured
        monkeypatch.setenv("TRELLIS_STORE", str(mine.root / ".trellis"))
    assert not marker.exists()  # saving, exporting and importing it never unpickled it

    with pytest.raises(trellis.UntrustedObjectError) as refused:
        trellis.load_checkpoint(uuids["hostile"], 1)
    message = str(refused.value)
    assert "\n" not in message
    assert uuids["hostile"][:8] in message and "'payload'" in message and "posix.system" in message
    assert "trusted=True" in message and source in message
    assert not marker.exists()

    # what cannot run code loads as it is: an array (.npy) and a pickle of plain values
    weights, plain = __import__("numpy").zeros(2), {}
    states = trellis.load_checkpoint(uuids["harmless"], 1, weights=weights, plain=plain)
    assert weights.tolist() == [2.0, 2.0] and plain == {"seen": [0, 1], "name": "plain values"}
    assert set(states) == {"weights", "plain"}

    states = trellis.load_checkpoint(uuids["hostile"], 1, trusted=True)
    assert marker.exists()  # it was a real payload: trusting it ran it
    assert states["weights"].tolist() == [2.0, 2.0]


def test_every_import_marks_where_a_run_came_from_and_own_runs_stay_trusted(theirs, mine, tmp_path):
    mine.write("own.py", """
        import collections, time, trellis
        counts = collections.Counter()
        with trellis.checkpointing(counts=counts):
            for epoch in trellis.loop("epoch", range(2)):
                counts[epoch] += 1
                time.sleep(0.05)
    """)
    mine.run("own.py", TRELLIS_CHECKPOINT_SHARE="1")
    marker = tmp_path / "the-payload-ran"
    uuids, source = _receive("import json", theirs, mine, tmp_path, None, marker)
    received = trellis.query("SELECT uuid, received_from FROM runs ORDER BY started")
    assert received["received_from"].fillna("recorded here").tolist() == ["recorded here", source, source]
    assert json.loads(mine.cli("show", uuids["hostile"][:8], "--json").stdout)["received_from"] == source
    assert f"received_from: {source}" in mine.cli("show", uuids["hostile"][:8]).stdout
    # a pickle naming a class (collections.Counter) loads from my own run as before
    assert trellis.load_checkpoint(received["uuid"][0], 1)["counts"] == {0: 1, 1: 1}


def test_a_crafted_export_cannot_claim_to_be_local(theirs, mine, tmp_path):
    marker = tmp_path / "the-payload-ran"
    _record(theirs, marker)
    exported = tmp_path / "their-runs.json"
    theirs.cli("export", "--all", "-o", str(exported))
    document = json.loads(exported.read_text())
    runs = document["tables"]["runs"]
    if "received_from" not in runs["columns"]:
        runs["columns"].append("received_from")
        for row in runs["rows"]:
            row.append(None)
    at = runs["columns"].index("received_from")
    for row in runs["rows"]:
        row[at] = None  # "recorded here"
    exported.write_text(json.dumps(document))
    mine.cli("import", str(exported))
    assert set(trellis.query("SELECT received_from FROM runs")["received_from"]) == {str(exported)}


def test_replay_and_reproduce_leave_received_runs_alone_unless_trusted(theirs, mine, tmp_path):
    marker = tmp_path / "the-payload-ran"
    uuids, source = _receive("import json", theirs, mine, tmp_path, None, marker)
    hostile = uuids["hostile"]

    refused = mine.cli("reproduce", hostile[:8], check=False)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert f"came from {source}" in refused.stderr and "--trust" in refused.stderr
    trusted = mine.cli("reproduce", hostile[:8], "--trust", check=False)
    # past the trust check: it stops at the next one, their code is not in my repository
    assert trusted.returncode == 1 and "--trust" not in trusted.stderr and "cannot be reproduced" in trusted.stderr

    mine.write("train.py", THEIR_SCRIPT.replace("weights += 1", "weights += 1\n        trellis.log('w', float(weights[0]))"))
    plan = mine.cli("replay", "w", "--run", hostile[:8], "--dry-run", "--json")
    assert f"came from {source}" in json.loads(plan.stdout)["runs"][0]["reason"]
    plan = mine.cli("replay", "w", "--run", hostile[:8], "--dry-run", "--json", "--trust")
    assert "came from" not in json.loads(plan.stdout)["runs"][0]["reason"]
    assert not marker.exists()


@pytest.mark.kernel
def test_a_notebook_import_marks_its_epochs_as_received(tmp_path, monkeypatch):
    from tests.capture.test_notebook import TRAINING, notebook, trellis_run

    author = Project(tmp_path / "author")
    author.root.mkdir()
    git(author.root, "init", "-q")
    author.write("data.csv", "1,2,5\n2,1,4\n3,3,9\n")
    notebook(author, "train.ipynb", TRAINING[:4])
    trellis_run(author, "train.ipynb")
    author.cli("notebook", "embed", "train.ipynb")
    reader = Project(tmp_path / "reader")
    reader.root.mkdir()
    git(reader.root, "init", "-q")
    (reader.root / "train.ipynb").write_bytes((author.root / "train.ipynb").read_bytes())
    assert "imported 1 epochs" in reader.cli("notebook", "import", "train.ipynb").stdout
    monkeypatch.chdir(reader.root)
    received = trellis.query("SELECT received_from FROM runs")["received_from"].tolist()
    assert received == [str(reader.root / "train.ipynb")]


_PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner) | st.tuples(inner, inner) | st.dictionaries(st.text() | st.integers(), inner)
    | st.frozensets(st.integers() | st.text()),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_PLAIN, protocol=st.integers(4, pickle.HIGHEST_PROTOCOL))
def test_plain_values_load_without_trust_and_anything_naming_code_does_not(tmp_path_factory, value, protocol):
    """Protocol 4 and later (trellis writes 5) write builtin values without naming anything."""
    from trellis.store.formats import deserialize

    folder = tmp_path_factory.mktemp("objects")
    plain, hostile = folder / "plain", folder / "hostile"
    plain.write_bytes(pickle.dumps(value, protocol=protocol))
    assert deserialize("pickle", plain) == pickle.loads(plain.read_bytes())
    # the same value with a callable inside: what a __reduce__ payload is
    hostile.write_bytes(pickle.dumps([value, collections.OrderedDict(a=1)], protocol=protocol))
    with pytest.raises(trellis.UntrustedObjectError, match="collections.OrderedDict"):
        deserialize("pickle", hostile)
    assert deserialize("pickle", hostile, trusted=True)[1] == {"a": 1}
