"""Time to first render of the dashboard in headless Chromium.

- the notebook provenance graph of a 100-cell notebook run 2 times (200 executions) and 20
  times (2,000 executions), each run a real kernel session under `trellis run`;
- the runs table of 1,000 runs: 20 real runs of examples/train.py, exported and imported again
  49 more times under new run ids (the import path a collaborator's store takes);
- how long moving the execution slider takes on the 2,000-execution graph.

"First render" is from the start of navigation (a fresh browser context each time, so nothing is
cached) until the page marks its view drawn; the API's share is given beside it. Medians of
--repeat loads. Targets: 200 executions ≤ 1 s, 2,000 executions ≤ 3 s, 1,000 runs ≤ 3 s.

    python benchmarks/ui_render.py [--repeat 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import nbformat

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, Dashboard  # noqa: E402
from tests.conftest import GIT_IDENTITY, Project  # noqa: E402

TARGETS = {"graph of 200 executions": 1.0, "graph of 2,000 executions": 3.0, "runs table of 1,000 runs": 3.0}
CELLS = 100

# Marks when the view is on the screen, on the page's own clock (0 = navigation start): the page
# says when its view is built, and the frame after next has painted it (the graph draws itself
# in the next animation frame).
RENDER_CLOCK = """
new MutationObserver((changes, observer) => {
  for (const change of changes) {
    if (change.target.dataset && change.target.dataset.rendered === "true") {
      observer.disconnect();
      requestAnimationFrame(() => requestAnimationFrame(() => { window.trellisRenderedAt = performance.now(); }));
      return;
    }
  }
}).observe(document, { attributes: true, attributeFilter: ["data-rendered"], subtree: true });
"""


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def new_project(folder: Path) -> Project:
    folder.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=folder, check=True)
    project = Project(folder)
    project.write("README", "benchmark\n")
    subprocess.run(["git", "add", "-A"], cwd=folder, check=True)
    subprocess.run(["git", "commit", "-qm", "start"], cwd=folder, check=True, env={**os.environ, **GIT_IDENTITY})
    return project


def notebook_cells() -> list[str]:
    """A notebook that loads data, transforms it step by step, prints and shows results."""
    cells = ["import numpy as np\nimport json\nimport math",
             "data = np.arange(300, dtype=float).reshape(100, 3)\nnp.savetxt('data.csv', data, delimiter=',')"]
    for i in range(CELLS - 2):
        before = f"v{i - 1}" if i else "data"
        if i % 10 == 3:
            cells.append(f"v{i} = np.loadtxt('data.csv', delimiter=',') + {before}[:, :1]")
        elif i % 10 == 7:
            cells.append(f"v{i} = {before} * 2\nprint('step {i}', float(v{i}.mean()))")
        elif i % 10 == 9:
            cells.append(f"v{i} = {before} - 1\nv{i}.shape")
        else:
            cells.append(f"v{i} = {before} + math.sqrt({i})")
    return cells


def record_notebooks(project: Project) -> None:
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(source) for source in notebook_cells()]
    for number, cell in enumerate(book.cells):
        cell["id"] = f"cell-{number:03d}"
    for name, sessions in (("small.ipynb", 2), ("large.ipynb", 20)):
        nbformat.write(book, project.root / name)
        for session in range(sessions):
            progress(f"  {name}: kernel session {session + 1} of {sessions}")
            project.cli("run", name)


def record_runs(project: Project, real: int = 20, copies: int = 49) -> int:
    shutil.copy(REPOSITORY / "examples" / "train.py", project.root / "train.py")
    for number in range(real):
        progress(f"  train.py: run {number + 1} of {real}")
        project.run("train.py", "--lr", str(0.05 * (number + 1)), "--epochs", str(2 + number % 3))
    exported = project.cli("export", "--all", "--no-objects").stdout
    originals = [run["uuid"] for run in _rows(json.loads(exported), "runs")]
    for copy in range(copies):
        text = exported
        for original in originals:
            text = text.replace(original, str(uuid.uuid4()))
        (project.root / "copy.json").write_text(text)
        project.cli("import", "copy.json")
    return real * (copies + 1)


def _rows(exported: dict, table: str) -> list[dict]:
    found = exported["tables"][table]
    return [dict(zip(found["columns"], row)) for row in found["rows"]]


def first_render(browser, url: str, api: str) -> tuple[float, float]:
    """Seconds from navigation start to the drawn view, and the API response's share of it."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.add_init_script(RENDER_CLOCK)
        page.goto(url)
        page.wait_for_function("() => window.trellisRenderedAt !== undefined")
        rendered = page.evaluate("() => window.trellisRenderedAt")
        fetched = page.evaluate(
            "(api) => performance.getEntriesByType('resource').filter((e) => e.name.includes(api))"
            ".map((e) => e.responseEnd - e.startTime)[0] || 0", api)
        return rendered / 1000, fetched / 1000
    finally:
        context.close()


def slider_moves(browser, url: str, moves: int = 20) -> list[float]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(url)
        page.wait_for_selector("main[data-rendered=true]")
        return page.evaluate("""(moves) => {
            const slider = document.querySelector('input.execution-slider');
            const times = [];
            for (let i = 0; i < moves; i++) {
                slider.value = String(Math.round((i + 1) * Number(slider.max) / (moves + 1)));
                const start = performance.now();
                slider.dispatchEvent(new Event('input'));
                times.push((performance.now() - start) / 1000);
            }
            return times;
        }""", moves)
    finally:
        context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="Record into this folder (reused if it exists).")
    arguments = parser.parse_args()
    from playwright.sync_api import sync_playwright

    folder = arguments.keep or Path(tempfile.mkdtemp(prefix="trellis-ui-bench-"))
    notebooks, runs = folder / "notebooks", folder / "runs"
    try:
        if not notebooks.exists():
            progress("recording the notebooks (22 kernel sessions)")
            record_notebooks(new_project(notebooks))
        if not runs.exists():
            progress("recording 1,000 runs")
            record_runs(new_project(runs))
        cases = [
            ("graph of 200 executions", Project(notebooks), "/notebook?path=small.ipynb", "/api/notebook"),
            ("graph of 2,000 executions", Project(notebooks), "/notebook?path=large.ipynb", "/api/notebook"),
            ("runs table of 1,000 runs", Project(runs), "/", "/api/runs"),
        ]
        results = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for name, project, path, api in cases:
                    dashboard = Dashboard(project)
                    try:
                        first_render(browser, dashboard.base + path, api)  # untimed: server warm-up
                        timings = [first_render(browser, dashboard.base + path, api) for _ in range(arguments.repeat)]
                        results.append((name, timings))
                        if name.startswith("graph of 2,000"):
                            moves = slider_moves(browser, dashboard.base + path)
                    finally:
                        dashboard.stop()
            finally:
                browser.close()
    finally:
        if arguments.keep is None:
            shutil.rmtree(folder, ignore_errors=True)

    print("| view | first render (median) | slowest | of which the API | target | |")
    print("|---|---|---|---|---|---|")
    failed = False
    for name, timings in results:
        median = statistics.median(t for t, _ in timings)
        slowest = max(t for t, _ in timings)
        api = statistics.median(a for _, a in timings)
        met = median <= TARGETS[name]
        failed |= not met
        print(f"| {name} | {median:.2f} s | {slowest:.2f} s | {api:.2f} s | ≤ {TARGETS[name]:g} s | {'✓' if met else '✗'} |")
    print(f"\nexecution slider on the 2,000-execution graph: median {statistics.median(moves) * 1000:.0f} ms,"
          f" slowest {max(moves) * 1000:.0f} ms per move ({len(moves)} moves)")
    return 1 if failed else 0


if __name__ == "__main__":
    start = time.monotonic()
    status = main()
    progress(f"done in {time.monotonic() - start:.0f} s")
    sys.exit(status)
