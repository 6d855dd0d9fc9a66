"""The baseline: execute a notebook with nbclient in a fresh python3 kernel, without trellis.

    python plain.py NOTEBOOK.ipynb OUTPUT.ipynb

Same client settings as ``trellis run`` (per-cell timeout, errors allowed, the notebook's
folder as working directory); the executed notebook, with nbclient's per-cell timing, goes to
OUTPUT.
"""

import sys
from pathlib import Path

import nbclient
import nbformat

CELL_TIMEOUT = 120

source, output = (Path(a) for a in sys.argv[1:3])
notebook = nbformat.read(source, as_version=4)
client = nbclient.NotebookClient(
    notebook, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=True,
    resources={"metadata": {"path": str(source.resolve().parent)}},
)
client.execute()
nbformat.write(notebook, output)
