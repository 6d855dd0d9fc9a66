"""The parts of the UI that need no browser: what `import trellis` loads, the bundle's embedding,
and `trellis.widget()` called outside a notebook."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import trellis
from trellis.ui import bundle


def test_import_trellis_loads_no_ui_and_no_pandas():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, trellis; print(sorted(m for m in ('starlette', 'uvicorn',"
         " 'anywidget', 'ipywidgets', 'pandas', 'trellis.ui', 'trellis.queries') if m in sys.modules))"],
        capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_a_missing_bundle_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setattr(bundle, "BUNDLE", tmp_path / "trellis.js")
    with pytest.raises(trellis.TrellisError, match=r"^the trellis UI bundle is not built: in the trellis"
                       r" source folder run `make` \(or `npm ci && npm run build`\)$"):
        bundle.bundle_text()


def test_data_and_code_cannot_close_their_script_element():
    text = bundle.json_for_script({"source": "</script><script>alert(1)</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"source": "</script><script>alert(1)</script><!-- & \u2028"}
    code = bundle.script_safe('const a = "</script>", b = /<\\/SCRIPT>/, c = "<!--";')
    assert "</script" not in code.lower() and "<!--" not in code


def test_the_widget_outside_a_notebook(recorded, monkeypatch):
    monkeypatch.chdir(recorded.root)
    with pytest.raises(trellis.TrellisError, match=r"call it in a notebook, or name one: trellis.widget\('analysis.ipynb'\)"):
        trellis.widget()
    with pytest.raises(trellis.TrellisError, match="no recorded kernel session ran missing.ipynb"):
        trellis.widget("missing.ipynb")
    shown = trellis.widget("analysis.ipynb")
    data = json.loads(shown.data)
    assert len(data["executions"]) == 11 and shown.message == ""
    hostile = next(e for e in data["executions"] if e["cell_id"] == "hostile")
    html = hostile["outputs"][0]["data"]["text/html"]
    assert html["text"].startswith("<script>")  # carried inline: the widget has no object server
    assert shown._esm == bundle.bundle_text()
