"""The README's pictures of the dashboard, taken from a project recorded here and now: a data
preparation script, three training runs of examples/train.py and a notebook run twice (the
second time edited), shown by `trellis ui` in headless Chromium.

    python scripts/screenshots.py docs     # writes docs/ui-*.png
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from tests.conftest import GIT_IDENTITY, Project  # noqa: E402
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, Dashboard  # noqa: E402

NOTEBOOK = {
    "imports": "import json\nimport numpy as np\nimport pandas as pd",
    "load": "frame = pd.read_csv('data/clean.csv')\nframe.describe()",
    "features": "X = frame[['a', 'b']].to_numpy()\ny = frame['c'].to_numpy()",
    "fit": "coef, *_ = np.linalg.lstsq(X, y, rcond=None)\ncoef",
    "residuals": "residuals = y - X @ coef\nprint('mean squared error', float((residuals ** 2).mean()))",
    "save": "np.save('model/coef.npy', coef)",
}
EDITS = {"fit": "coef, *_ = np.linalg.lstsq(X / X.std(0), y, rcond=None)\ncoef",
         "residuals": "residuals = y - (X / X.std(0)) @ coef\nprint('mean squared error', float((residuals ** 2).mean()))"}


def record(root: Path) -> Project:
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    project = Project(root)
    rows = "\n".join(f"{i},{(i * 7) % 11},{2 * i + (i * 7) % 11 + (i % 3)}" for i in range(60))
    project.write("data/raw.csv", "a,b,c\n" + rows + "\n")
    project.write("prep.py", """
        import pandas as pd, trellis
        clip = trellis.arg("clip", 100)
        frame = pd.read_csv("data/raw.csv")
        frame.clip(upper=clip).to_csv("data/clean.csv", index=False)
    """)
    (root / "model").mkdir()
    shutil.copy(REPOSITORY / "examples" / "train.py", root / "train.py")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "example"], cwd=root, check=True, env={**project.env(), **GIT_IDENTITY})
    project.run("prep.py")
    for lr in ("0.05", "0.2", "0.8"):
        project.run("train.py", "--lr", lr, "--epochs", "4")
    for cells in (NOTEBOOK, {**NOTEBOOK, **EDITS}):
        book = nbformat.v4.new_notebook()
        book.cells = [nbformat.v4.new_code_cell(source) for source in cells.values()]
        for cell, cell_id in zip(book.cells, cells):
            cell["id"] = cell_id
        nbformat.write(book, root / "analysis.ipynb")
        project.cli("run", "analysis.ipynb")
    return project


def click_node(page, node_id: str) -> None:
    box = page.locator("main .graph").bounding_box()
    place = page.evaluate(f"() => document.querySelector('main .graph').trellisGraph.getElementById({node_id!r}).renderedPosition()")
    page.mouse.click(box["x"] + place["x"], box["y"] + place["y"])


def shoot(project: Project, folder: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    folder.mkdir(parents=True, exist_ok=True)
    taken = []
    dashboard = Dashboard(project)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 860})
            page.set_default_timeout(60_000)

            def show(path: str) -> None:
                page.goto(dashboard.base + path)
                page.wait_for_selector("main[data-rendered=true]")

            def save(name: str) -> None:
                page.wait_for_timeout(300)
                page.screenshot(path=str(folder / name))
                taken.append(folder / name)

            show("/")
            for row in page.locator("table.runs tbody tr").all():
                if row.locator("td").nth(2).inner_text() == "train.py":
                    row.locator("input.select").check()
            page.locator("select.chart-name").select_option("loss")
            page.locator("button.compare").click()
            page.wait_for_selector("figure.chart canvas")
            save("ui-runs.png")

            show("/notebook?path=analysis.ipynb")
            click_node(page, "cell:fit")
            save("ui-notebook.png")
            page.locator("button.diff-button").click()
            save("ui-notebook-diff.png")

            show("/lineage?target=model%2Fcoef.npy")
            save("ui-lineage.png")
            browser.close()
    finally:
        dashboard.stop()
    return taken


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs").resolve()
    with tempfile.TemporaryDirectory(prefix="trellis-screenshots-") as scratch:
        print("recording the example project", file=sys.stderr)
        project = record(Path(scratch) / "example")
        for path in shoot(project, folder):
            print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
