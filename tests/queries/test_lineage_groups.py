"""Many source files of one folder, read alike, are one node of the lineage graph the CLI prints
and the dashboard draws; files read differently stay apart (real scripts, real store)."""

from __future__ import annotations

import json

from tests.conftest import git

READER = """
import sys
import trellis
for path in sys.argv[2:]:
    open(path).read()
with open(sys.argv[1], "w") as out:
    out.write("made")
"""


def record(project) -> None:
    for i in range(8):
        project.write(f"raw/doc_{i}.txt", f"document {i}\n")
    project.write("meta/notes.txt", "notes\n")
    project.write("read.py", READER)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "data")
    # doc_0 is also read by the run that made sample.txt: it is read differently from the rest
    project.run("read.py", "sample.txt", "raw/doc_0.txt")
    project.run("read.py", "model.txt", "sample.txt", "meta/notes.txt", *[f"raw/doc_{i}.txt" for i in range(8)])


def test_a_data_set_is_one_line_and_one_node(project):
    from trellis.queries.lineage import grouped

    record(project)
    printed = project.cli("lineage", "model.txt").stdout
    assert "used: 7 source files in raw/ (doc_1.txt ... doc_7.txt)" in printed
    assert printed.count("raw/doc_0.txt") == 2  # by both runs, each on a line of its own
    assert "meta/notes.txt" in printed
    graph = json.loads(project.cli("lineage", "model.txt", "--json").stdout)
    files = [n for n in graph["nodes"] if n["kind"] == "file"]
    assert len(files) == 1 + 1 + 8 + 1  # the model, the sample, every document, the notes
    shown = grouped(graph)
    (group,) = [n for n in shown["nodes"] if n["kind"] == "files"]
    assert group["paths"] == [f"raw/doc_{i}.txt" for i in range(1, 8)] and group["folder"] == "raw"
    assert len(shown["nodes"]) == len(graph["nodes"]) - 7 + 1
    readers = [e["from"] for e in shown["edges"] if e["to"] == group["id"]]
    assert len(readers) == 1 and readers[0].startswith("run:")
    assert grouped(graph, at_least=9) == graph  # fewer alike than asked: nothing changes
