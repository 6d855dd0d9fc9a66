"""`trellis.widget()` in a real JupyterLab 4 and a real Jupyter Notebook 7: a notebook page in
Chromium, cells run by keyboard in the trellis kernel, the widget drawing the graph and redrawing
it after the next cell."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import time

import nbformat
import pytest
from playwright.sync_api import expect

from tests.conftest import Project, git, stop
from tests.ui.test_server import request as http_get

pytestmark = [pytest.mark.browser, pytest.mark.jupyter, pytest.mark.kernel]

CELLS = [
    "import numpy as np\nrows = np.loadtxt('data.csv', delimiter=',')",
    "total = rows.sum()",
    "import trellis\ntrellis.widget()",
    "doubled = total * 2",
]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# how each front end is started, where it opens a notebook, and how it shows the kernel is ready
APPS = {
    "lab": (["lab", "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"], "/lab/tree/"),
    "notebook": (["notebook"], "/notebooks/"),
}


@pytest.fixture(params=sorted(APPS))
def jupyter(request, project: Project, tmp_path):
    """JupyterLab or Notebook 7 on loopback with a token, in a project whose notebook uses the
    trellis kernel."""
    state = tmp_path / "jupyter"
    env = project.env(
        JUPYTER_DATA_DIR=str(state / "data"), JUPYTER_CONFIG_DIR=str(state / "config"),
        JUPYTER_RUNTIME_DIR=str(state / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(state / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(state / "workspaces"),
    )
    installed = subprocess.run([sys.executable, "-m", "trellis.cli", "kernel", "install"], env=env,
                               capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr
    project.write("data.csv", "1,2\n3,4\n")
    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "trellis", "display_name": "Python 3 (trellis)", "language": "python"}
    book.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nbformat.write(book, project.root / "widget.ipynb")
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "notebook")

    port, token = free_port(), secrets.token_hex(16)
    log = (tmp_path / "jupyter.log").open("w")
    command, _ = APPS[request.param]
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", command[0], "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={project.root}",
         "--allow-root", *command[1:]],
        cwd=project.root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if server.poll() is not None:
            raise AssertionError(f"jupyter {command[0]} exited:\n{(tmp_path / 'jupyter.log').read_text()}")
        try:
            if http_get(base, f"/api/status?token={token}")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"jupyter {command[0]} did not answer:\n{(tmp_path / 'jupyter.log').read_text()}")
        time.sleep(0.5)
    yield base, token, request.param
    stop(server, 60)
    log.close()


def run_cell(page, index: int) -> None:
    """Select the cell and press Shift+Enter, as a person does; wait for its result."""
    cell = page.locator(".jp-Notebook .jp-CodeCell").nth(index)
    cell.locator(".jp-InputArea-prompt").click()
    expect(cell).to_have_class(re.compile(r"\bjp-mod-active\b"))
    page.keyboard.press("Shift+Enter")
    expect(cell.locator(".jp-InputArea-prompt")).to_have_text("[%d]:" % (index + 1), timeout=120_000)


def test_the_widget_draws_the_notebook_graph_and_follows_new_executions(jupyter, watched, project):
    base, token, app = jupyter
    page = watched.page
    page.goto(f"{base}{APPS[app][1]}widget.ipynb?token={token}")
    # the kernel is connected once the page names it and shows it idle; keys pressed before are lost
    if app == "lab":
        expect(page.locator(".jp-StatusBar-Widget", has_text="Python 3 (trellis) | Idle")).to_be_visible(timeout=120_000)
    else:  # Notebook 7 has no status bar: the kernel's name and state are in the toolbar
        expect(page.locator(".jp-KernelName", has_text="Python 3 (trellis)")).to_be_visible(timeout=120_000)
        expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status=idle]")).to_have_count(1, timeout=120_000)
    for index in range(3):
        run_cell(page, index)
    widget = page.locator(".trellis-widget")
    expect(widget).to_be_visible(timeout=60_000)
    view = widget.locator("[data-rendered=true]")
    expect(view).to_have_attribute("data-visible-cells", "3", timeout=60_000)
    assert view.get_attribute("data-executions-shown") == "3"
    assert widget.locator(".graph canvas").count() > 0
    assert widget.locator(".graph").bounding_box()["height"] > 200
    labels = page.evaluate(
        "() => document.querySelector('.trellis-widget .graph').trellisGraph"
        ".nodes().filter((node) => !node.hasClass('hidden')).map((node) => node.data('label'))")
    assert sorted(label.split(" ")[0] for label in labels) == ["[1]", "[2]", "[3]", "data.csv"]

    run_cell(page, 3)
    expect(view).to_have_attribute("data-visible-cells", "4", timeout=60_000)
    assert view.get_attribute("data-executions-shown") == "4"
    edges = page.evaluate(
        "() => document.querySelector('.trellis-widget .graph').trellisGraph"
        ".edges().filter((edge) => !edge.hasClass('hidden')).map((edge) => edge.data('label'))")
    assert "total" in edges and "rows" in edges
    reads = page.evaluate(
        "() => document.querySelector('.trellis-widget .graph').trellisGraph"
        ".nodes('.file').filter((node) => !node.hasClass('hidden')).map((node) => node.data('path'))")
    assert reads == ["data.csv"]  # what the widget itself read is not the cell's data
    assert [error for error in watched.errors if not (app == "notebook" and thrown_by_notebook_itself(error))] == []


def thrown_by_notebook_itself(error: str) -> bool:
    """Notebook 7.6's settings loader throws on this page as its cells run ("reading 'schema'"),
    wholly inside Notebook's own bundle; an error with any frame elsewhere is not its own."""
    frames = [line.strip() for line in error.splitlines()[1:] if line.strip().startswith("at ")]
    return bool(frames) and all("/static/notebook/" in frame or frame.startswith("at async Promise")
                                for frame in frames)
