"""Every dashboard page in real headless Chromium, over a store filled by real runs and a real
notebook execution: the runs table, charts, a run, the notebook graph with its sliders and
panels, lineage, diff, the HTML export, and stored text that tries to run script."""

from __future__ import annotations

import platform
import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import HOSTILE, Dashboard, run_notebook, write_notebook

pytestmark = pytest.mark.browser


def open_page(watched, dashboard, path):
    page = watched.page
    page.goto(dashboard.base + path)
    page.wait_for_selector("main[data-rendered]")
    assert page.locator("main").get_attribute("data-rendered") == "true", page.locator("main").inner_text()
    return page


def run_ids(page, filename):
    rows = page.locator("table.runs tbody tr")
    return [rows.nth(i).get_attribute("data-run") for i in range(rows.count())
            if rows.nth(i).locator("td").nth(2).inner_text() == filename]


def column(page, title):
    headers = [h.strip(" ▲▼") for h in page.locator("table.runs thead th").all_inner_texts()]
    at = headers.index(title)
    return [row.locator("td").nth(at).inner_text() for row in page.locator("table.runs tbody tr").all()]


def not_pwned(watched):
    for frame in watched.page.frames:
        assert frame.evaluate("document.documentElement.dataset.pwned") is None, frame.url
    assert watched.dialogs == []


def test_runs_table_sorts_filters_selects_and_charts(watched, dashboard):
    page = open_page(watched, dashboard, "/")
    assert page.locator("table.runs tbody tr").count() == 7
    page.locator("table.runs th", has_text="lr").click()
    assert column(page, "lr")[:3] == ["0.3", "0.2", "0.1"]
    page.locator("table.runs th", has_text="lr").click()
    assert column(page, "lr")[-3:] == ["0.1", "0.2", "0.3"]
    page.locator("input.filter").fill("train.py")
    assert page.locator("table.runs tbody tr").count() == 3
    page.locator("input.filter").fill("train lr=0.2")
    assert column(page, "lr") == ["0.2"]
    page.locator("input.filter").fill("failed")
    assert column(page, "file") == ["broken.py"]
    assert column(page, "note") == [HOSTILE]
    page.locator("input.filter").fill("")

    trained = run_ids(page, "train.py")
    for run in trained:
        page.locator(f'tr[data-run="{run}"] input.select').check()
    page.locator("select.chart-name").select_option("loss")
    page.locator("button.compare").click()
    chart = page.locator("figure.chart")
    expect(chart).to_have_attribute("data-points", "36")
    assert chart.get_attribute("data-runs") == "3"
    assert page.locator("figure.chart canvas").count() == 1
    assert sorted(li.get_attribute("data-run") for li in page.locator("ul.chart-runs li").all()) == sorted(trained)
    assert {li.get_attribute("data-points") for li in page.locator("ul.chart-runs li").all()} == {"12"}
    assert "loss over position in the run (epoch › step)" in chart.inner_text()
    page.locator("select.chart-name").select_option("acc")
    expect(chart).to_have_attribute("data-points", "9")
    assert "acc over epoch" in page.locator("figure.chart").inner_text()

    page.locator(f'tr[data-run="{trained[0]}"] input.select').uncheck()
    link = page.locator("a.diff-link")
    expect(link).to_be_visible()
    link.click()
    page.wait_for_selector("main[data-rendered]")
    params = page.locator("section", has=page.locator("h2", has_text="params"))
    assert "lr" in params.inner_text()
    # the runs share their code; the model the previous run left in the snapshot is data
    code = page.locator("section", has=page.locator("h2", has_text="code")).inner_text()
    assert "same code" in code and "data files in the snapshots, changed: model.txt" in code
    not_pwned(watched)
    assert watched.errors == []


def test_run_page_shows_params_values_artifacts_code_and_streams(watched, dashboard, recorded):
    page = open_page(watched, dashboard, "/")
    page.locator("input.filter").fill("lr=0.1")
    run = page.locator("table.runs tbody tr").first.get_attribute("data-run")
    page = open_page(watched, dashboard, f"/runs/{run}")
    text = page.locator("main").inner_text()
    for expected in ("train.py", "lr\t0.1", "model.txt", "data/clean.csv", run):
        assert expected in text
    page.locator('button.chart-button[data-name="loss"]').click()
    expect(page.locator("figure.chart")).to_have_attribute("data-points", "12")
    page.locator("a.code-link").click()
    page.wait_for_selector("main[data-rendered]")
    assert page.locator("pre.source").inner_text() == (recorded.root / "train.py").read_text()

    page = open_page(watched, dashboard, "/")
    page.locator("input.filter").fill("broken")
    page.locator("table.runs tbody tr a").first.click()
    page.wait_for_selector("main[data-rendered]")
    assert "broken on purpose" in page.locator("pre.error").inner_text()
    not_pwned(watched)


def graph_point(page, selector, element):
    """Where on the screen the graph drew ``element`` (a node's centre or an edge's middle)."""
    box = page.locator(f"{selector} .graph").bounding_box()
    place = page.evaluate(
        f"""() => {{
            const cy = document.querySelector('{selector} .graph').trellisGraph;
            const found = cy.getElementById({element!r});
            return found.isNode() ? found.renderedPosition() : found.renderedMidpoint();
        }}"""
    )
    return box["x"] + place["x"], box["y"] + place["y"]


def click_graph(page, element, selector="main"):
    page.mouse.click(*graph_point(page, selector, element))


def test_notebook_graph_sliders_panels_diff_libraries_and_environment(watched, dashboard):
    page = open_page(watched, dashboard, "/notebook?path=analysis.ipynb")
    view = page.locator(".notebook-box")
    assert view.get_attribute("data-visible-cells") == "6"
    assert view.get_attribute("data-executions-shown") == "11"
    assert page.locator(".counts").inner_text().startswith("2 sessions · 11 executions · ")

    epochs = page.locator("input.epoch-slider")
    epochs.focus()
    page.keyboard.press("ArrowRight")
    expect(view).to_have_attribute("data-visible-cells", "6")
    assert view.get_attribute("data-executions-shown") == "6"
    assert page.locator(".epoch-label").inner_text().startswith("1 of 2")
    page.keyboard.press("ArrowRight")
    expect(view).to_have_attribute("data-visible-cells", "5")
    assert page.locator(".counts").inner_text().startswith("1 session · 5 executions")

    executions = page.locator("input.execution-slider")
    executions.focus()
    page.keyboard.press("Home")
    expect(view).to_have_attribute("data-visible-cells", "0")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(view).to_have_attribute("data-visible-cells", "2")
    assert page.locator(".execution-label").inner_text() == "2 of 5: [2] load"
    assert view.get_attribute("data-visible-edges") == "1"  # data.csv -> load; np is a library
    page.keyboard.press("End")
    expect(view).to_have_attribute("data-visible-cells", "5")
    epochs.focus()
    page.keyboard.press("Home")
    expect(view).to_have_attribute("data-visible-cells", "6")

    classes = page.evaluate("""() => {
        const cy = document.querySelector('main .graph').trellisGraph;
        return Object.fromEntries(cy.nodes('.cell').map((n) => [n.data('cell'), n.classes().filter((c) => c !== 'cell')]));
    }""")
    assert sorted(classes["fail"]) == ["deleted", "failed", "stale"]  # stale: no longer in the notebook
    assert classes["load"] == ["reads"] and classes["fit"] == ["outputs"] and classes["imports"] == []
    # the file the notebook wrote and no cell read is drawn too, with an edge from its writer
    drawn = page.evaluate("""() => {
        const cy = document.querySelector('main .graph').trellisGraph;
        const shown = (items) => items.filter((item) => !item.hasClass('hidden'));
        return {files: shown(cy.nodes('.file')).map((n) => [n.data('path'), n.hasClass('output')]),
                writes: shown(cy.edges('.writes')).map((e) => [e.data('source'), e.data('target')])};
    }""")
    assert sorted(drawn["files"]) == [["coef.npy", True], ["data.csv", False]]
    assert drawn["writes"] == [["cell:save", "file:coef.npy"]]

    click_graph(page, "cell:fit")
    panel = page.locator("aside.panel")
    expect(panel).to_have_attribute("data-showing", "node")
    assert panel.locator("h3").first.inner_text() == "Cell fit"
    assert panel.locator("select.execution-picker option").count() == 2
    assert "lstsq(X * 2, y" in panel.locator("pre.source").inner_text()
    details = panel.inner_text()
    assert "coef" in details and "X" in details and "array([0.5, 1. ])" in details
    panel.locator("select.execution-picker").select_option("0")
    assert "lstsq(X, y" in panel.locator("pre.source").inner_text()

    panel.locator("button.diff-button").click()
    diff = panel.locator("pre.diff")
    assert "-coef = np.linalg.lstsq(X, y, rcond=None)[0]" in diff.inner_text()
    assert "+coef = np.linalg.lstsq(X * 2, y, rcond=None)[0]" in diff.inner_text()
    panel.locator("input.diff-a").focus()
    page.keyboard.press("End")
    assert diff.inner_text() == "same source"

    click_graph(page, "cell:load")
    assert "data.csv" in panel.inner_text() and "rows 3" not in panel.inner_text()
    click_graph(page, "dependency:load\u0000fit\u0000variable")
    expect(panel).to_have_attribute("data-showing", "edge")
    text = panel.inner_text()
    assert "variable X" in text and "variable y" in text and "numpy.ndarray" in text and "3 × 2" in text

    page.locator("button.libraries-button").click()
    assert "Imported but never used: json" in panel.inner_text()
    before = int(view.get_attribute("data-visible-nodes"))
    panel.locator("input.show-libraries").check()
    expect(view).to_have_attribute("data-visible-nodes", str(before + 5))

    page.locator("button.environment-button").click()
    environment = panel.inner_text()
    assert f"{platform.python_implementation()} {platform.python_version()}" in environment
    assert re.search(r"\n\d{2,} packages\n", environment, re.IGNORECASE)
    panel.locator("input.package-filter").fill("numpy")
    assert panel.locator("tbody tr").count() == 1

    page.locator("button.libraries-button").click()
    panel.locator("input.show-libraries").uncheck()
    expect(view).to_have_attribute("data-visible-nodes", str(before))
    page.locator("select.mode").select_option("order")
    # imports > load > fit > hostile > save > fail, then fail > imports: the second epoch's
    # order repeats pairs already drawn
    expect(view).to_have_attribute("data-visible-edges", "6")
    assert view.get_attribute("data-visible-nodes") == "6"  # no data sources in this mode
    assert watched.errors == []


def test_stored_text_never_runs_as_script(watched, dashboard):
    page = open_page(watched, dashboard, "/notebook?path=analysis.ipynb")
    click_graph(page, "cell:hostile")
    panel = page.locator("aside.panel")
    assert f"display(HTML({HOSTILE!r}))" in panel.locator("pre.source").inner_text()
    frame_element = panel.locator("iframe.output-html").first
    expect(frame_element).to_have_attribute("sandbox", "")
    frame = frame_element.content_frame
    expect(frame.locator("img")).to_have_count(1)  # the HTML is drawn, inert
    page.wait_for_timeout(500)
    not_pwned(watched)

    page = open_page(watched, dashboard, "/")
    assert page.get_by_text(HOSTILE).count() == 1
    not_pwned(watched)


def test_lineage_page_draws_a_model_back_to_its_data(watched, dashboard):
    page = open_page(watched, dashboard, "/lineage")
    page.locator("ul.file-list a", has_text="model.txt").click()
    page.wait_for_selector("main[data-rendered]")
    box = page.locator(".lineage-box")
    expect(box).to_have_attribute("data-rendered", "true")
    labels = page.evaluate("() => document.querySelector('main .graph').trellisGraph.nodes().map((n) => n.data('label'))")
    assert "data/raw.csv" in labels and "data/clean.csv" in labels
    assert any(label.startswith("prep.py ") for label in labels)
    raw = page.evaluate("() => document.querySelector('main .graph').trellisGraph.nodes().filter((n) => n.data('label') === 'data/raw.csv').id()")
    click_graph(page, raw)
    assert "data source" not in page.locator("aside.panel h3").inner_text()
    assert "written by no run" not in page.locator("aside.panel").inner_text()
    assert "yes: no recorded run wrote it" in page.locator("aside.panel").inner_text()


def test_diff_page_of_two_executions(watched, dashboard):
    page = open_page(watched, dashboard, "/notebooks")
    page.locator("a", has_text="analysis.ipynb").click()
    page.wait_for_selector("main[data-rendered]")
    epochs = page.evaluate("() => document.querySelector('.epoch-slider').max")
    assert epochs == "2"
    page = open_page(watched, dashboard, "/")
    notebooks = run_ids(page, "analysis.ipynb")
    first, second = notebooks[1][:8], notebooks[0][:8]
    page = open_page(watched, dashboard, f"/diff?a={first}/3&b={second}/3")
    text = page.locator("pre.diff").first.inner_text()
    assert "-coef = np.linalg.lstsq(X, y, rcond=None)[0]" in text and "+coef = np.linalg.lstsq(X * 2" in text
    page = watched.page
    for query, message in ((f"a={first}/3&b=nothing", f"'{first}/3' and 'nothing' are different kinds of thing"),
                           (f"a={first}&b=0000", "no run id starts with '0000'; see `trellis runs` for the ids")):
        page.goto(dashboard.base + f"/diff?{query}")
        page.wait_for_selector("main[data-rendered=error]")
        assert page.locator(".page-error").inner_text().startswith(message)


def test_html_export_draws_the_graph_with_the_bundle_and_runs_no_stored_text(watched, recorded, tmp_path):
    out = tmp_path / "provenance.html"
    done = subprocess.run([sys.executable, "-m", "trellis.cli", "export", "--all", "--format", "html", "-o", str(out)],
                          cwd=recorded.root, env=recorded.env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    page = watched.page
    page.goto(out.as_uri())
    page.wait_for_selector("[data-rendered=true]")
    data = page.evaluate("() => JSON.parse(document.getElementById('trellis-data').textContent)")
    drawn = page.evaluate("() => document.querySelector('.graph').trellisGraph.nodes().length")
    assert drawn == len(data["graph"]["nodes"]) > 30
    note = next(n for n in data["graph"]["nodes"] if n["label"] == f"note={HOSTILE}")
    click_graph(page, note["id"], selector="#trellis-app")
    assert HOSTILE in page.locator("aside.panel").inner_text()
    not_pwned(watched)
    assert watched.errors == []


def test_html_export_of_a_notebook_is_its_view_with_sliders_offline(watched, recorded, tmp_path):
    out = tmp_path / "analysis.html"
    done = subprocess.run([sys.executable, "-m", "trellis.cli", "export", "analysis.ipynb", "--format", "html",
                           "-o", str(out)], cwd=recorded.root, env=recorded.env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    page = watched.page
    page.goto(out.as_uri())
    view = page.locator(".notebook-box")
    expect(view).to_have_attribute("data-visible-cells", "6")
    assert view.get_attribute("data-executions-shown") == "11"
    epochs = page.locator("input.epoch-slider")
    epochs.focus()
    page.keyboard.press("End")
    expect(view).to_have_attribute("data-visible-cells", "5")  # the second session, a cell deleted
    page.locator("input.execution-slider").focus()
    page.keyboard.press("Home")
    expect(view).to_have_attribute("data-visible-cells", "0")
    not_pwned(watched)
    assert watched.errors == []


def test_stale_cells_are_marked_in_the_notebook_graph_with_why(watched, project):
    project.write("data.csv", "1,2,5\n2,1,4\n")
    write_notebook(project.root / "fresh.ipynb", {
        "imports": "import numpy as np",
        "load": "rows = np.loadtxt('data.csv', delimiter=',')",
        "total": "total = rows.sum()",
        "other": "unrelated = 3",
    })
    run_notebook(project, "fresh.ipynb")
    project.write("data.csv", "1,2,5\n2,1,4\n9,9,9\n")  # changed after the run read it
    running = Dashboard(project)
    try:
        page = open_page(watched, running, "/notebook?path=fresh.ipynb")
        stale = page.evaluate("""() => document.querySelector('main .graph').trellisGraph
            .nodes('.cell.stale').map((n) => n.data('cell')).sort()""")
        assert stale == ["load", "total"]  # the read, and what was computed from it
        click_graph(page, "cell:load")
        panel = page.locator("aside.panel")
        expect(panel).to_have_attribute("data-showing", "node")
        assert "data.csv was changed since it was read" in panel.locator("ul.stale").inner_text()
        assert watched.errors == []
    finally:
        running.stop()


def test_lineage_groups_a_data_set_and_opens_readable_on_the_target(watched, tmp_path):
    from tests.conftest import new_project

    project = new_project(tmp_path / "many")
    reader = ("import sys, trellis\nfor path in sys.argv[2:]:\n    open(path).read()\n"
              "open(sys.argv[1], 'w').write('made')\n")
    project.write("read.py", reader)
    documents = [f"docs/doc_{i:02}.txt" for i in range(60)]
    scattered = [f"folder_{i:02}/notes.txt" for i in range(55)]  # a folder each: nothing to group
    for path in documents + scattered:
        project.write(path, path)
    project.run("read.py", "features.txt", *documents)
    project.run("read.py", "big.txt", *scattered)
    running = Dashboard(project)
    try:
        page = open_page(watched, running, "/lineage?target=features.txt")
        labels = page.evaluate("() => document.querySelector('main .graph').trellisGraph.nodes().map((n) => n.data('label'))")
        assert "60 source files in docs/" in labels and len(labels) == 3  # the output, its run, the data set
        group = page.evaluate("() => document.querySelector('main .graph').trellisGraph.nodes()"
                              ".filter((n) => n.data('label').startsWith('60 source')).id()")
        click_graph(page, group)
        assert "docs/doc_00.txt" in page.locator("aside.panel pre.source").inner_text()

        page = open_page(watched, running, "/lineage?target=big.txt")
        shown = page.evaluate("""() => {
            const cy = document.querySelector('main .graph').trellisGraph;
            const target = cy.nodes('.target');
            return { nodes: cy.nodes().length, zoom: cy.zoom(), at: target.renderedPosition(),
                     width: cy.width(), height: cy.height() };
        }""")
        assert shown["nodes"] == 57
        assert shown["zoom"] >= 0.8  # labels of 11 px drawn at 8.8 px or more
        assert 0 <= shown["at"]["x"] <= shown["width"] and 0 <= shown["at"]["y"] <= shown["height"]
        page.locator("button.fit").click()
        assert page.evaluate("() => document.querySelector('main .graph').trellisGraph.zoom()") < shown["zoom"]
    finally:
        running.stop()
    assert watched.errors == []
