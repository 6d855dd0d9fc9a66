"""`trellis status` on the demo's closed loop, built by `make demo` as a user builds it: up to
date after both rounds, and a changed raw PDF names every stage to run again, in order."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tests.conftest import Project, git
from tests.examples.test_document_segmentation import copy_example, make

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def status(project: Project) -> tuple[int, dict]:
    done = project.cli("status", "--json", check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_the_demo_is_up_to_date_after_its_loop_and_a_changed_pdf_names_each_stage(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    copy_example(root)
    project = Project(root)
    make(project, "demo")
    code, result = status(project)
    assert code == 0, [e for e in result["outputs"] + result["values"] if e["stale"]]
    assert status(project)[1]["hashed"] == 0  # the second time, nothing is hashed again
    pdf = root / "raw" / "doc_000.pdf"
    original = pdf.read_bytes()
    pdf.write_bytes(original + b"\n% edited\n")
    code, result = status(project)
    assert code == 1
    outputs = {entry["path"]: entry for entry in result["outputs"]}
    assert outputs["model/model.npz"]["stale"]
    assert all(entry["stale"] for path, entry in outputs.items() if path.startswith("pages/"))
    assert [c["text"] for c in result["rerun"]] == [
        "make demux", "make featurize", "make feedback", "make train", "make model/model.npz",
        "make infer"]
    assert {entry["writer"]["filename"] for entry in result["values"]} >= {"infer.py", "train.py"}
    text = project.cli("status", check=False).stdout
    # the page images, all stale for the same reason, are one line
    assert re.search(r"^stale {7}\d+ files in pages/ \(", text, re.MULTILINE), text
    assert "raw/doc_000.pdf was changed since it was read" in text
    pdf.write_bytes(original)
    assert status(project)[0] == 0
