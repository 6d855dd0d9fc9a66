"""One spelling of a path for every writer and reader of the store: a file written under one
spelling is found under any other that names it, also through a symbolic link into the project."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import trellis
from trellis.store.paths import recorded_path

ROOT = Path("/project/root")


@given(parts=st.lists(st.sampled_from(["a", "b", ".", "..", "", "data"]), min_size=1, max_size=6))
def test_every_spelling_of_a_path_folds_to_what_the_folder_tree_says(parts):
    spelled = "/".join(parts)
    expected = Path(os.path.normpath(ROOT / "sub" / spelled))
    inside = expected == ROOT or ROOT in expected.parents
    found = recorded_path(spelled, ROOT, cwd=ROOT / "sub")
    assert found == (str(expected.relative_to(ROOT)) if inside else str(expected))
    assert recorded_path(str(ROOT / "sub" / spelled), ROOT) == found  # absolute or not, the same


def test_a_file_written_under_one_spelling_is_found_under_others(project, monkeypatch):
    monkeypatch.chdir(project.root)
    (project.root / "data").mkdir()
    os.symlink(project.root / "data", project.root / "linked")
    project.write("make.py", """
        import os, trellis
        os.makedirs("out", exist_ok=True)
        with open("./out/../out//model.txt", "w") as handle:
            handle.write("m")
        with open("linked/raw.csv", "w") as handle:
            handle.write("1")
    """)
    project.run("make.py")
    for spelling in ("out/model.txt", "./out/model.txt", "out/./x/../model.txt",
                     str(project.root / "out" / "model.txt")):
        graph = trellis.lineage(spelling)
        assert any(node.get("kind") == "run" for node in graph["nodes"]), spelling
    assert recorded_path("linked/raw.csv", project.root) == "linked/raw.csv"
    assert recorded_path(project.root / "data" / ".." / "linked" / "raw.csv", project.root) == "linked/raw.csv"



def test_every_spelling_of_the_projects_own_store_is_its_own(tmp_path, monkeypatch):
    from trellis.store.connection import is_own_store, sqlite_file

    monkeypatch.chdir(tmp_path)
    for own in (None, "", ".trellis", ".trellis/trellis.db", f"sqlite:///{tmp_path}/.trellis",
                f"sqlite:///{tmp_path}/.trellis/trellis.db", "./.trellis/../.trellis"):
        assert is_own_store(own, tmp_path), own
    for shared in ("postgresql://host/db", "postgres://h/d", "postgresql+psycopg://h/d", "team.db",
                   "/elsewhere/.trellis", "sqlite:///elsewhere.sqlite"):
        assert not is_own_store(shared, tmp_path), shared
    assert sqlite_file("team.sqlite3") == Path("team.sqlite3")
    assert sqlite_file("sqlite:///~/stores") == Path("~/stores").expanduser() / "trellis.db"
