"""A FlorDB user's migration: ``trellis import .flor`` of the history real FlorDB 4.0.1 runs
made, read back through ``trellis.flor`` as FlorDB reads it itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import GIT_IDENTITY, Project
from tests.flor.conftest import REPO, TRELLIS_IMPORT, Side, same_frames
from tests.flor.test_behaviours import TRAIN

LABELS = """
import flordb as flor
for round in range(2):
    for index, page in enumerate(["p1", "p2"]):
        with flor.iteration("page", index, page):
            flor.log("first_page", index == round)
    flor.commit()
for document in flor.loop("document", ["a.pdf", "b.pdf"]):
    flor.log("words", {"a.pdf": 10, "b.pdf": 20}[document])
    print("read", document)
flor.log("note", [1, 2])
"""


def _trellis_in(root) -> Side:
    env = Project(root).env(**GIT_IDENTITY)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return Side("trellis", root, sys.executable, env, TRELLIS_IMPORT)


def _flordb_history(both) -> tuple[Side, Side]:
    flordb = both.flordb
    flordb.write("train.py", TRAIN)
    flordb.write("labels.py", LABELS)
    flordb.run("train.py", "--kwargs", "lr=5e-4", "batch_size=64")
    flordb.run("train.py", "--kwargs", "epochs=1")
    flordb.run("labels.py")
    return flordb, _trellis_in(flordb.root)


def test_imported_history_reads_back_as_flordb_reads_it(both):
    flordb, trellis = _flordb_history(both)
    done = trellis.run("-m", "trellis.cli", "import", ".flor")
    assert "imported 5 runs" in done.stdout  # two trainings; labels.py: two commits and its end
    queries = [
        ("lr", "batch_size", "loss"), ("loss", "val_acc"), ("hidden", "epochs"), ("first_page",),
        ("words",), ("note",), ("never_logged",),
    ]
    same_frames(flordb.frames(*queries), trellis.frames(*queries), queries)
    again = trellis.run("-m", "trellis.cli", "import", ".flor")
    assert "imported 0 runs (5 already here" in again.stdout


def test_imported_runs_keep_args_code_versions_and_output(both):
    flordb, trellis = _flordb_history(both)
    trellis.run("-m", "trellis.cli", "import", str(flordb.root / ".flor"))
    runs = json.loads(trellis.run("-c", (
        "import trellis; print(trellis.query('SELECT git_commit, git_ref, status FROM runs')"
        ".to_json(orient='records'))"
    )).stdout.splitlines()[-1])
    assert len(runs) == 5 and {run["status"] for run in runs} == {"ok"}
    log = subprocess.run(["git", "log", "--all", "--format=%H %s"], cwd=flordb.root, capture_output=True, text=True)
    commits = {line.split()[0] for line in log.stdout.splitlines() if "FLOR::Auto-commit::" in line}
    assert {run["git_commit"] for run in runs} == commits
    assert {run["git_ref"] for run in runs} <= {"flor.branch"}
    typed = json.loads(trellis.run("-c", """
import json, trellis
params = trellis.dataframe()
frame = trellis.dataframe("loss", "lr", broadcast=True)
outputs = trellis.query("SELECT stdout FROM runs WHERE stdout IS NOT NULL")["stdout"].tolist()
print(json.dumps([sorted(str(v) for v in params["lr"].dropna()), str(frame["loss"].dtype),
                  str(frame["epoch"].dtype), outputs]))
""").stdout.splitlines()[-1])
    assert typed[0] == ["0.0005", "0.001"] and typed[1] == "float64" and typed[2] == "Int64"
    assert typed[3] == ["read a.pdf\nread b.pdf\n"]


def test_a_damaged_run_file_imports_nothing(both):
    flordb, trellis = _flordb_history(both)
    runs = sorted((flordb.root / ".flor" / "runs").glob("*.jsonl"))
    runs[-1].write_text(runs[-1].read_text() + "{not json\n")
    done = trellis.run("-m", "trellis.cli", "import", ".flor", check=False)
    assert done.returncode != 0 and "line" in done.stderr and "nothing was imported" in done.stderr
    assert "Traceback" not in done.stderr
    count = trellis.run("-c", "import trellis; print(len(trellis.runs()))").stdout.split()[-1]
    assert count == "0"


def test_imported_runs_make_up_no_timings(both):
    flordb, trellis = _flordb_history(both)
    trellis.run("-m", "trellis.cli", "import", ".flor")
    done = trellis.run("-c", (
        "import json\nfrom trellis import flor\n"
        "times = flor.query('SELECT value_name FROM logs WHERE value_type = 3')\n"
        "print('T' + json.dumps(sorted(set(times['value_name']))))"
    ))
    names = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("T"))[1:])
    # how long each run took is in FlorDB's files; when its loops began and ended is not kept
    assert names == ["time::script"]


def test_imported_output_keeps_its_loop_coordinates(both):
    flordb, trellis = _flordb_history(both)
    trellis.run("-m", "trellis.cli", "import", ".flor")
    reader = (
        "import json\nimport pandas as pd\nimport flordb as flor\n"
        "df = flor.io().drop(columns=['tstamp'])\n"
        "print('IO' + json.dumps([list(df.columns), [[None if pd.isna(v) else str(v) for v in row]"
        " for row in df.astype(object).values.tolist()]]))"
    )
    results = []
    for side in (flordb, trellis):
        done = side.run("-c", reader.replace("import flordb as flor", side.import_line))
        results.append(json.loads(next(line for line in done.stdout.splitlines() if line.startswith("IO"))[2:]))
    theirs, ours = results
    assert "document" in theirs[0] and ["read a.pdf", "read b.pdf"] == [row[-1] for row in theirs[1]]
    assert ours == theirs
