"""Objects received from another store (``trellis import their.db``, a JSON export, ``trellis
pull``) are named by digests the sender chose: a crafted name or content never writes outside
the objects folder, never lands under a name its content does not have, and leaves the
receiving store as it was."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from pathlib import Path

import pytest
from blake3 import blake3
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import Project, git
from trellis._errors import TrellisError
from trellis.store.objects import check_digest, copy_objects, object_path, put, put_received

SCRIPT = """
import numpy as np, trellis
weights = np.zeros(3)
with trellis.checkpointing(weights=weights):
    for epoch in trellis.loop("epoch", range(2)):
        weights += 1
        trellis.log("loss", 1.0 / (epoch + 1))
"""


def _sender(tmp_path: Path) -> Path:
    """A colleague's own SQLite store with one run and its checkpoints; returns the .db."""
    sender = Project(tmp_path / "sender")
    sender.root.mkdir()
    git(sender.root, "init", "-q")
    sender.write("train.py", SCRIPT)
    store = sender.root / ".trellis"
    sender.run("train.py", TRELLIS_STORE=str(store), TRELLIS_CHECKPOINT_SHARE="1")
    return store / "trellis.db"


def _digests(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [d for (d,) in connection.execute("SELECT DISTINCT object FROM checkpoints ORDER BY object")]


def _state(project: Project) -> tuple:
    """What the receiving store holds: its runs and every object file."""
    store = project.store()
    try:
        runs = sorted(store.execute("SELECT uuid, status FROM runs"))
        folder = store.objects
    finally:
        store.close()
    files = sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())
    return runs, files


def _refused(done, words: str) -> None:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], done.stderr
    assert "Traceback" not in done.stderr


TRAVERSALS = ["../../../planted.pth", "<absolute>", "..", "ab/../../x", "A" * 64,
              "0" * 63, "0" * 65, "g" * 64]


@pytest.mark.parametrize("name", TRAVERSALS)
def test_a_store_with_a_crafted_object_name_imports_nothing(project, tmp_path, name):
    db = _sender(tmp_path)
    good = _digests(db)[0]
    name = name.replace("<absolute>", str(tmp_path / "elsewhere" / "planted.pth"))
    objects = db.parent / "objects"
    # the sender places the payload where its crafted name leads from its own objects folder
    planted_there = Path(os.path.normpath(objects / name[:2] / name))
    if not planted_there.exists():
        planted_there.parent.mkdir(parents=True, exist_ok=True)
        planted_there.write_bytes(b"import os; os.system('touch pwned')\n")
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE checkpoints SET object = ? WHERE object = ?", (name, good))
    project.write("mine.py", "import trellis\ntrellis.log('x', 1)\n")
    project.run("mine.py")
    before, files = _state(project), _files_outside_stores(tmp_path)

    done = project.cli("import", str(db), check=False)

    _refused(done, "not a trellis object digest")
    assert _state(project) == before
    assert _files_outside_stores(tmp_path) == files


def _files_outside_stores(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` but the stores' own, with its size and change time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file() and ".trellis" not in p.parts and ".git" not in p.parts}


def test_an_object_whose_content_is_not_its_name_is_refused(project, tmp_path):
    db = _sender(tmp_path)
    digest = _digests(db)[0]
    object_path(db.parent / "objects", digest).write_bytes(b"something else entirely")
    project.write("mine.py", "import trellis\ntrellis.log('x', 1)\n")
    project.run("mine.py")
    before = _state(project)

    done = project.cli("import", str(db), check=False)

    _refused(done, "is not the object it claims to be")
    assert _state(project) == before  # the objects copied before the bad one are gone too


def test_a_link_in_the_senders_objects_cannot_carry_a_local_file_in(project, tmp_path):
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY\n")
    db = _sender(tmp_path)
    digest = _digests(db)[0]
    path = object_path(db.parent / "objects", digest)
    path.unlink()
    path.symlink_to(secret)
    project.write("mine.py", "import trellis\ntrellis.log('x', 1)\n")
    project.run("mine.py")
    before = _state(project)

    done = project.cli("import", str(db), check=False)

    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert _state(project) == before


def test_a_link_in_the_receiving_objects_folder_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    source, target = tmp_path / "source", tmp_path / "target"
    digest, _ = put(source, [b"payload"])
    target.mkdir()
    (target / digest[:2]).symlink_to(outside, target_is_directory=True)
    with pytest.raises(TrellisError, match="outside the folder"):
        copy_objects(source, target, [digest])
    assert list(outside.iterdir()) == []


def _exported(source_project: Project, tmp_path: Path) -> dict:
    path = tmp_path / "runs.json"
    source_project.cli("export", "--all", "-o", str(path))
    return json.loads(path.read_text())


@pytest.mark.parametrize("tamper", ["name", "content", "base64"])
def test_a_json_export_with_a_crafted_object_imports_nothing(project, tmp_path, tamper):
    sender = Project(tmp_path / "json-sender")
    sender.root.mkdir()
    git(sender.root, "init", "-q")
    sender.write("train.py", SCRIPT)
    sender.run("train.py", TRELLIS_CHECKPOINT_SHARE="1")
    document = _exported(sender, tmp_path)
    digest = sorted(document["objects"])[-1]
    if tamper == "name":
        document["objects"]["../../../planted.pth"] = document["objects"].pop(digest)
    elif tamper == "content":
        document["objects"][digest] = base64.b64encode(b"not the checkpoint").decode()
    else:
        document["objects"][digest] = "%%% not base64 %%%"
    crafted = tmp_path / "crafted.json"
    crafted.write_text(json.dumps(document))
    project.write("mine.py", "import trellis\ntrellis.log('x', 1)\n")
    project.run("mine.py")
    before = _state(project)

    done = project.cli("import", str(crafted), check=False)

    _refused(done, {"name": "not a trellis object digest", "content": "is not the object it claims",
                    "base64": "not base64"}[tamper])
    assert _state(project) == before
    assert not (project.root.parent / "planted.pth").exists()


def test_pull_from_a_shared_store_with_a_crafted_object_name_writes_nothing(project, tmp_path, new_store):
    team_objects = tmp_path / "team-objects"
    colleague = Project(tmp_path / "colleague")
    colleague.root.mkdir()
    git(colleague.root, "init", "-q")
    colleague.write("train.py", SCRIPT)
    colleague.run("train.py", TRELLIS_STORE=str(colleague.root / ".trellis"), TRELLIS_CHECKPOINT_SHARE="1")
    colleague.cli("push", new_store, "--objects", str(team_objects),
                  env={"TRELLIS_STORE": str(colleague.root / ".trellis")})
    from trellis.store.connection import open_store

    shared = open_store(new_store, objects=str(team_objects))
    try:
        (digest,) = shared.execute("SELECT object FROM checkpoints ORDER BY object LIMIT 1")[0]
        name = "../../planted.pth"
        with shared.transaction():
            shared.execute("UPDATE checkpoints SET object = ? WHERE object = ?", (name, digest))
    finally:
        shared.close()
    (tmp_path / "planted.pth").write_text("import os\n")  # where the name leads from the team folder
    project.env()  # the project's store is configured before it is looked at
    mine = project.root / ".trellis"
    before = sorted(p.name for p in mine.rglob("*")) if mine.exists() else []

    done = project.cli("pull", new_store, "--objects", str(team_objects), "--all", check=False)

    _refused(done, "not a trellis object digest")
    assert not (project.root / "planted.pth").exists()
    after = sorted(p.name for p in mine.rglob("*")) if mine.exists() else []
    assert [n for n in after if n not in before and not n.startswith("trellis.db")] == []


@given(st.text(alphabet="0123456789abcdefABCDEF./\\-_ \x00g", max_size=70))
def test_only_the_digests_trellis_writes_name_objects(name):
    valid = len(name) == 64 and all(c in "0123456789abcdef" for c in name)
    try:
        check_digest(name)
    except TrellisError:
        assert not valid
    else:
        assert valid


def test_a_received_object_is_stored_only_under_its_own_digest(tmp_path):
    content = b"weights"
    digest = blake3(content).hexdigest()
    assert put_received(tmp_path, digest, content) == object_path(tmp_path, digest)
    assert put_received(tmp_path, digest, content) is None  # already here
    with pytest.raises(TrellisError, match="not the object it claims"):
        put_received(tmp_path, blake3(b"other").hexdigest(), content)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [digest]
