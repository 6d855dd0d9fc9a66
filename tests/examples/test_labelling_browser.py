"""The labelling page, driven in real headless Chromium: a person flips a page and confirms; the
app is killed and restarted, and the page shows the confirmed labels, read back from the store."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

import trellis
from tests.conftest import Project, stop
from tests.examples.test_document_segmentation import copy_example, free_port, make, start_app

DOCUMENT = "doc_010"  # a PDF nobody labelled by hand
FLIPPED = 0  # its first page: the model predicts it a first page, the person says otherwise
TIMEOUT_MS = 30_000


def page_classes(segmentation: list[bool]) -> list[str]:
    """The classes labelling.html gives each page: a new colour starts at every first page."""
    classes, segment = [], -1
    for position, first in enumerate(segmentation):
        if first or position == 0:
            segment += 1
        classes.append(f"page seg{segment % 4}" + (" first" if first else ""))
    return classes


def shown(browser, port: int) -> tuple[list[str], bool]:
    """The classes of DOCUMENT's pages as the page shows them, and whether it shows it confirmed."""
    page = browser.new_page()
    try:
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("body[data-ready=true]")
        row = page.locator(f'div.document[data-name="{DOCUMENT}"]')
        pages = row.locator("div.page")
        classes = [pages.nth(i).get_attribute("class") for i in range(pages.count())]
        button_class = row.get_by_role("button", name="Confirm").get_attribute("class") or ""
        return classes, "confirmed" in button_class.split()
    finally:
        page.close()


def app_labels():
    try:
        logged = trellis.dataframe("first_page")
    except trellis.UnknownNameError:
        return None
    return logged[logged["filename"] == "app.py"].sort_values("page")


@pytest.mark.browser
def test_a_confirmation_in_the_browser_is_logged_and_shown_after_a_restart(
        project: Project, browser, tmp_path, monkeypatch):
    copy_example(project.root)
    make(project, "infer")
    monkeypatch.chdir(project.root)
    predictions = trellis.dataframe("predicted_first_page", latest=True)
    predicted = predictions[predictions["document_value"] == DOCUMENT].sort_values("page")
    predicted = predicted["predicted_first_page"].astype(bool).tolist()
    confirmed = list(predicted)
    confirmed[FLIPPED] = not confirmed[FLIPPED]
    log = tmp_path / "app.log"

    port = free_port()
    app = start_app(project, port, log)
    try:
        before, confirmed_before = shown(browser, port)
        page = browser.new_page()
        try:
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("body[data-ready=true]")
            row = page.locator(f'div.document[data-name="{DOCUMENT}"]')
            pages = row.locator("div.page")
            pages.nth(FLIPPED).click()
            after_click = pages.nth(FLIPPED).get_attribute("class")
            button = row.get_by_role("button", name="Confirm")
            button.click()
            expect(button).to_have_class(re.compile(r"\bconfirmed\b"))
        finally:
            page.close()
        # committed as it was confirmed: in the store while the app runs, and kept by a kill -9
        logged = app_labels()
    finally:
        app.kill()
        app.wait()
    # the colours shown were the model's, then the person's
    assert (before, confirmed_before) == (page_classes(predicted), False)
    assert after_click == page_classes(confirmed)[FLIPPED] != before[FLIPPED]

    assert logged is not None, "no confirmation was in the store while the app ran"
    assert set(logged["document_value"]) == {DOCUMENT}
    assert logged["page"].tolist() == list(range(len(predicted)))
    assert logged["first_page"].tolist() == confirmed

    restarted_port = free_port()
    app = start_app(project, restarted_port, log)
    try:
        after_restart = shown(browser, restarted_port)
    finally:
        stop(app)
    assert after_restart == (page_classes(confirmed), True)
