"""The labelling page, driven once in real headless Chromium: a person flips a page and confirms."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

import trellis
from tests.conftest import Project, git, stop

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "document_segmentation"
DOCUMENT = "doc_010"
FLIPPED = 1  # the document's second page
TIMEOUT_MS = 30_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_listening(app: subprocess.Popen, port: int, log: Path, seconds: float = 60.0) -> None:
    """The app imports its documents before it binds the port: wait for the port to accept."""
    deadline = time.monotonic() + seconds
    while True:
        if app.poll() is not None:
            raise AssertionError(f"app.py exited ({app.returncode}) before serving:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"app.py did not listen on port {port}:\n{log.read_text()}")
            time.sleep(0.1)


def page_classes(segmentation: list[bool]) -> list[str]:
    """The classes labelling.html gives each page: a new colour starts at every first page."""
    classes, segment = [], -1
    for position, first in enumerate(segmentation):
        if first or position == 0:
            segment += 1
        classes.append(f"page seg{segment % 4}" + (" first" if first else ""))
    return classes


@pytest.mark.browser
def test_a_page_flipped_and_confirmed_in_the_browser_is_logged(project: Project, browser, tmp_path, monkeypatch):
    root = project.root
    shutil.copytree(EXAMPLE, root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("raw", "features", "model", ".trellis", "predictions.json"))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "example")
    built = subprocess.run(
        ["make", "featurize", "train", "infer", f"PYTHON={sys.executable}"],
        cwd=root, env=project.env(), capture_output=True, text=True, timeout=240,
    )
    assert built.returncode == 0, built.stdout + built.stderr

    predicted = json.loads((root / "predictions.json").read_text())[DOCUMENT]
    confirmed = list(predicted)
    confirmed[FLIPPED] = not confirmed[FLIPPED]

    port = free_port()
    log = tmp_path / "app.log"
    with log.open("w") as output:
        app = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port)], cwd=root, env=project.env(),
            stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(app, port, log)
        page = browser.new_page()
        try:
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("body[data-ready=true]")
            row = page.locator(f'div.document[data-name="{DOCUMENT}"]')
            pages = row.locator("div.page")
            assert pages.count() == len(predicted)
            before = pages.nth(FLIPPED).get_attribute("class")
            pages.nth(FLIPPED).click()
            after = pages.nth(FLIPPED).get_attribute("class")
            button = row.get_by_role("button", name="Confirm")
            button.click()
            expect(button).to_have_class(re.compile(r"\bconfirmed\b"))
        finally:
            page.close()
    finally:
        stop(app)

    assert before == page_classes(predicted)[FLIPPED]
    assert after == page_classes(confirmed)[FLIPPED] != before

    monkeypatch.chdir(root)
    logged = trellis.dataframe("confirmed_first_page").sort_values("page")
    assert set(logged["document_value"]) == {DOCUMENT}
    assert logged["page"].tolist() == list(range(len(predicted)))
    assert logged["confirmed_first_page"].tolist() == confirmed
