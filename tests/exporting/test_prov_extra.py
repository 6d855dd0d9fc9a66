"""An export format whose library is not installed names trellis's own extra, in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCKED_CLI = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # as if it were not installed: importing it raises ImportError
from trellis.cli import main
sys.argv = ["trellis", "export", "--all", "--format", {format!r}]
main()
"""


@pytest.mark.parametrize(("format", "blocked", "needed"), [
    ("prov-xml", ["lxml", "lxml.etree"], "lxml"),
    ("prov-json", ["prov", "prov.model"], "the prov package"),
])
def test_a_missing_export_library_names_the_trellis_extra(project, format, blocked, needed):
    project.write("train.py", "import trellis\ntrellis.log('x', 1)\n")
    project.run("train.py")
    done = subprocess.run([sys.executable, "-c", BLOCKED_CLI.format(blocked=blocked, format=format)],
                          cwd=project.root, env=project.env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert needed in done.stderr and "pip install 'trellis[export]'" in done.stderr
    assert "prov[" not in done.stderr
