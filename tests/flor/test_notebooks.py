"""FlorDB code in a notebook, run in a real Jupyter kernel by nbclient on each side: FlorDB 4.0.1
in its own environment, and ``trellis.flor`` with only the import changed. FlorDB commits after
every cell that logged, so each such cell has a tstamp of its own."""

from __future__ import annotations

import fcntl
import json
import subprocess

import nbformat
import pytest

from tests.flor.conftest import FLOR_IMPORT, PEER_DIR, same_frames

pytestmark = [pytest.mark.kernel,
              pytest.mark.sqlite_only("compares with FlorDB 4.0.1 and does not depend on the store")]

CELLS = [
    "import flordb as flor",
    "lr = flor.arg('lr', 0.01)\nfor epoch in flor.loop('epoch', range(2)):\n"
    "    for step in flor.loop('step', range(2)):\n        flor.log('loss', 1 / (1 + epoch * 2 + step))",
    "unrelated = 1 + 1",
    "flor.log('acc', 0.5)",
    "for epoch in flor.loop('epoch', range(1)):\n    flor.log('loss', 0.125)",
]

EXECUTE = """
import sys
import nbformat
from nbclient import NotebookClient
book = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(book, kernel_name="python3", timeout=120, resources={"metadata": {"path": "."}}).execute()
nbformat.write(book, sys.argv[1])
"""

LATEST = """
import json
import flordb as flor
df = flor.utils.latest(flor.dataframe("loss"))
print("LATEST", json.dumps(sorted(str(v) for v in df["loss"])), df["tstamp"].nunique())
"""


@pytest.fixture(scope="module")
def kernels(flordb_python):
    """FlorDB's environment can run a kernel (ipykernel) and a notebook (nbclient)."""
    with open(PEER_DIR.parent / ".flordb.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = subprocess.run([str(flordb_python), "-c", "import ipykernel, nbclient, nbformat"],
                               capture_output=True)
        if found.returncode != 0:
            subprocess.run([str(flordb_python), "-m", "pip", "install", "-q", "ipykernel", "nbclient",
                            "nbformat"], check=True, timeout=900)
    return flordb_python


def _notebook(side, name: str) -> None:
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(source.replace(FLOR_IMPORT, side.import_line)) for source in CELLS]
    nbformat.write(book, side.root / name)
    side.run("-c", EXECUTE, name)
    executed = nbformat.read(side.root / name, as_version=4)
    errors = [o for cell in executed.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{side.name}: {errors}"


def test_each_cell_that_logged_has_a_tstamp_of_its_own(both, kernels):
    for side in both.sides:
        _notebook(side, "train.ipynb")
    queries = [("loss",), ("acc",), ("lr", "loss")]
    theirs, ours = both.frames(*queries)
    # FlorDB names the kernel's launcher as the file; trellis the notebook: only that differs
    for frames in (theirs, ours):
        for frame in frames:
            for row in frame["rows"]:
                row.pop("filename", None)
    assert len({row["tstamp"] for row in theirs[0]["rows"]}) == 2  # the two cells that logged loss
    same_frames(theirs, ours, queries)
    outputs = []
    for side in both.sides:
        done = side.run("-c", LATEST.replace(FLOR_IMPORT, side.import_line))
        outputs.append([line for line in done.stdout.splitlines() if line.startswith("LATEST")])
    assert outputs[0] == ['LATEST ["0.125"] 1']
    assert outputs[1] == outputs[0]
    filenames = json.loads(both.trellis.run("-c", "import json, trellis; print(json.dumps("
                                            "[r['filename'] for r in trellis.runs()]))").stdout)
    assert filenames == ["train.ipynb"]
