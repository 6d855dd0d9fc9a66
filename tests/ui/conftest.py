"""A project recorded for real, shared by the UI tests: scripts run as subprocesses (three
training runs, one failure, a data pipeline) and a notebook run twice in a real kernel, the
second time edited, with a cell deleted and an output that tries to run script."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest

from tests.conftest import new_project, GIT_IDENTITY, Project, git, stop


def _payload(template: str, name: str) -> str:
    return template.replace("RUN", f"document.documentElement.dataset.pwned='{name}';alert('{name}')")


# Text that runs script if a page ever treats stored text as markup: each payload marks the
# document and opens a dialog, both of which the tests look for. Plain tags and event handlers,
# breaking out of an attribute or a raw-text element, nested documents, mutation XSS, and
# template expressions.
XSS_PAYLOADS = [
    _payload(template, name) for name, template in (
        ("script", "<script>RUN</script>"),
        ("onerror", '<img src=x onerror="RUN">'),
        ("svg", '<svg onload="RUN"></svg>'),
        ("attribute", '"><svg/onload="RUN">'),
        ("single-quoted", "'><details open ontoggle=\"RUN\">"),
        ("raw-text", "</textarea></title></style></script><script>RUN</script>"),
        ("srcdoc", '<iframe srcdoc="<script>parent.RUN</script>"></iframe>'),
        ("mxss", '<math><mtext><table><mglyph><style><img src=x onerror="RUN">'),
        ("template", "{{constructor.constructor(\"RUN\")()}}${RUN}"),
        ("link", '<a href="javascript:RUN">link</a>'),
    )
]
HOSTILE = "".join(XSS_PAYLOADS)

NOTEBOOK = {
    "imports": "import json\nimport numpy as np\nimport trellis",
    "load": "rows = np.loadtxt('data.csv', delimiter=',')\nX, y = rows[:, :2], rows[:, 2]\nprint('rows', len(rows))",
    "fit": "coef = np.linalg.lstsq(X, y, rcond=None)[0]\ntrellis.log('coef0', float(coef[0]))\ncoef",
    "hostile": (
        "from IPython.display import HTML, display\n"
        f"display(HTML({HOSTILE!r}))\nprint({HOSTILE!r})"
    ),
    "save": "np.save('coef.npy', coef)",
    "fail": "1 / 0",
}
EDITED_FIT = "coef = np.linalg.lstsq(X * 2, y, rcond=None)[0]\ntrellis.log('coef0', float(coef[0]))\ncoef"


def write_notebook(path: Path, cells: dict[str, str]) -> None:
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(source) for source in cells.values()]
    for cell, cell_id in zip(book.cells, cells):
        cell["id"] = cell_id
    nbformat.write(book, path)


def run_notebook(project: Project, name: str) -> None:
    done = subprocess.run([sys.executable, "-m", "trellis.cli", "run", name], cwd=project.root,
                          capture_output=True, text=True, env=project.env(), timeout=300)
    assert done.returncode in (0, 1), done.stdout + done.stderr


@pytest.fixture(scope="session")
def recorded(tmp_path_factory) -> Project:
    project = new_project(tmp_path_factory.mktemp("ui") / "proj")
    root = project.root
    project.write("data/raw.csv", "a,b\n1,2\n3,4\n")
    project.write("data.csv", "1,2,5\n2,1,4\n3,3,9\n")
    project.write("prep.py", """
        import numpy as np, trellis
        scale = trellis.arg("scale", 2)
        rows = np.loadtxt("data/raw.csv", delimiter=",", skiprows=1)
        np.savetxt("data/clean.csv", rows * scale, delimiter=",")
    """)
    project.write("train.py", """
        import trellis
        lr = trellis.arg("lr", 0.1)
        with open("data/clean.csv") as handle:
            handle.read()
        loss = 1.0
        for epoch in trellis.loop("epoch", range(3)):
            for step in trellis.loop("step", range(4)):
                loss *= 1 - lr
                trellis.log("loss", loss)
            trellis.log("acc", 1 - loss / 2)
        with open("model.txt", "w") as handle:
            handle.write(str(loss))
    """)
    project.write("broken.py", f"""
        import trellis
        trellis.log("loss", 1.0)
        trellis.log("note", {HOSTILE!r})
        raise ValueError("broken on purpose")
    """)
    git(root, "add", "-A")
    subprocess.run(["git", "commit", "-qm", "scripts"], cwd=root, check=True,
                   env={**project.env(), **GIT_IDENTITY})
    project.run("prep.py")
    for lr in ("0.1", "0.2", "0.3"):
        project.run("train.py", "--lr", lr)
    project.run("broken.py", check=False)
    write_notebook(root / "analysis.ipynb", NOTEBOOK)
    run_notebook(project, "analysis.ipynb")
    edited = {name: source for name, source in NOTEBOOK.items() if name != "fail"}
    edited["fit"] = EDITED_FIT
    write_notebook(root / "analysis.ipynb", edited)
    run_notebook(project, "analysis.ipynb")
    return project


TIMEOUT_MS = 30_000


class Dashboard:
    """`trellis ui` running in a project, as a user starts it."""

    def __init__(self, project: Project, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trellis.cli", "ui", "--port", "0", "--no-browser", *args],
            cwd=project.root, env=project.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.announced = self.line(60)
        found = re.search(r"(http://\S+)", self.announced)
        if not found:
            self.stop()
            raise AssertionError(f"trellis ui did not print its URL: {self.announced!r}")
        self.url = found.group(1)
        self.base = self.url.split("?")[0].rstrip("/")

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def line(self, seconds: float) -> str:
        try:
            return self.lines.get(timeout=seconds)
        except queue.Empty:
            return "" if self.process.poll() is None else f"(exited {self.process.returncode})"

    def stop(self) -> None:
        stop(self.process)


@pytest.fixture(scope="session")
def dashboard(recorded):
    running = Dashboard(recorded)
    yield running
    running.stop()


class Watched:
    """A page, with every dialog it tried to open and every script error it raised."""

    def __init__(self, page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        # with where it was thrown, so a failure says whose script it was
        page.on("pageerror", lambda error: self.errors.append(f"{error}\n{(error.stack or '')[:1500]}"))

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def watched(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield Watched(page)
    context.close()
