"""`trellis status` on real pipelines: scripts run as subprocesses in a real git project, a
Makefile run by make, notebooks run in real kernels; the files are changed the way a user
changes them and status must say which outputs are out of date, why, and what to run again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Project, git, new_project

PREP = """
    import trellis
    scale = trellis.arg("scale", 2)
    rows = open("raw.csv").read().split()[1:]
    with open("features.csv", "w") as out:
        out.write("\\n".join(",".join(str(float(x) * scale) for x in r.split(",")) for r in rows))
"""
TRAIN = """
    import trellis
    total = sum(float(x) for line in open("features.csv") for x in line.split(","))
    with open("model.txt", "w") as out:
        out.write(f"{total}\\n")
"""


def status(project: Project, *args: str) -> tuple[int, dict, str]:
    """(exit status, the --json result, the text) of `trellis status ARGS`."""
    as_json = project.cli("status", *args, "--json", check=False)
    text = project.cli("status", *args, check=False)
    assert as_json.returncode == text.returncode, as_json.stderr + text.stderr
    assert as_json.returncode in (0, 1), as_json.stderr
    return as_json.returncode, json.loads(as_json.stdout), text.stdout


def by_path(result: dict) -> dict[str, dict]:
    return {entry["path"]: entry for entry in result["outputs"]}


def kinds(entry: dict) -> set[tuple[str, str | None]]:
    return {(reason["kind"], reason.get("path") or reason.get("name")) for reason in entry["reasons"]}


@pytest.fixture
def pipeline(project: Project) -> Project:
    """prep.py reads raw.csv and writes features.csv; train.py reads it and writes model.txt."""
    project.write("raw.csv", "a,b\n1,2\n3,4\n")
    project.write("prep.py", PREP)
    project.write("train.py", TRAIN)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "pipeline")
    project.run("prep.py", "--scale", "3")
    project.run("train.py")
    return project


def test_a_fresh_pipeline_is_up_to_date(pipeline):
    code, result, text = status(pipeline)
    assert code == 0
    assert {path: entry["stale"] for path, entry in by_path(result).items()} == {
        "features.csv": False, "model.txt": False}
    assert result["stale"] == 0 and result["rerun"] == []
    assert "all 2 outputs are up to date" in text


def test_an_edited_input_makes_its_outputs_and_those_downstream_stale(pipeline):
    (pipeline.root / "raw.csv").write_text("a,b\n1,2\n3,5\n")
    code, result, text = status(pipeline)
    assert code == 1 and result["stale"] == 2
    outputs = by_path(result)
    assert kinds(outputs["features.csv"]) == {("input changed", "raw.csv")}
    # features.csv itself is as train.py read it: model.txt is stale because its source is
    assert kinds(outputs["model.txt"]) == {("upstream stale", "features.csv")}
    assert [c["text"] for c in result["rerun"]] == ["python prep.py --scale 3", "python train.py"]
    assert [c["text"] for c in outputs["model.txt"]["rerun"]] == [
        "python prep.py --scale 3", "python train.py"]
    assert [c["text"] for c in outputs["features.csv"]["rerun"]] == ["python prep.py --scale 3"]
    assert "raw.csv was changed since it was read" in text
    assert text.index("python prep.py --scale 3") < text.index("python train.py")
    # running what it says brings everything up to date
    pipeline.run("prep.py", "--scale", "3")
    pipeline.run("train.py")
    assert status(pipeline)[0] == 0


def test_an_edited_script_makes_only_its_own_outputs_stale(pipeline):
    pipeline.write("train.py", TRAIN + "    print('tuned')\n")
    code, result, _ = status(pipeline)
    assert code == 1
    outputs = by_path(result)
    assert not outputs["features.csv"]["stale"]
    assert kinds(outputs["model.txt"]) == {("code changed", "train.py")}
    assert [c["text"] for c in result["rerun"]] == ["python train.py"]


def test_a_deleted_or_hand_edited_output_is_reported(pipeline):
    (pipeline.root / "model.txt").write_text("42\n")
    result = status(pipeline)[1]
    assert kinds(by_path(result)["model.txt"]) == {("output changed", "model.txt")}
    assert not by_path(result)["features.csv"]["stale"]
    (pipeline.root / "features.csv").unlink()
    code, result, text = status(pipeline)
    assert code == 1
    outputs = by_path(result)
    assert kinds(outputs["features.csv"]) == {("output deleted", "features.csv")}
    assert ("input deleted", "features.csv") in kinds(outputs["model.txt"])
    assert "features.csv was deleted since it was written" in text
    assert [c["text"] for c in result["rerun"]] == ["python prep.py --scale 3", "python train.py"]


def test_only_the_newest_writer_of_a_path_counts(pipeline):
    pipeline.write("other.csv", "a,b\n5,6\n")
    pipeline.write("prep2.py", PREP.replace('"raw.csv"', '"other.csv"'))
    pipeline.run("prep2.py", "--scale", "4")
    pipeline.run("train.py")
    (pipeline.root / "raw.csv").write_text("a,b\n9,9\n")  # what the older writer read
    code, result, _ = status(pipeline)
    assert code == 0, result
    (pipeline.root / "other.csv").write_text("a,b\n7,7\n")
    result = status(pipeline)[1]
    assert kinds(by_path(result)["features.csv"]) == {("input changed", "other.csv")}
    assert [c["text"] for c in result["rerun"]] == ["python prep2.py --scale 4", "python train.py"]


def test_a_changed_local_module_of_the_script_makes_it_stale(pipeline):
    pipeline.write("helpers.py", "def double(x):\n    return 2 * x\n")
    pipeline.write("train.py", TRAIN.replace("{total}", "{helpers.double(total)}")
                   .replace("import trellis", "import helpers, trellis"))
    git(pipeline.root, "add", "-A")
    git(pipeline.root, "commit", "-qm", "helpers")
    pipeline.cli("run", "train.py")
    assert status(pipeline)[0] == 0
    pipeline.write("helpers.py", "def double(x):\n    return 3 * x\n")
    code, result, _ = status(pipeline)
    assert code == 1
    assert kinds(by_path(result)["model.txt"]) == {("code changed", "helpers.py")}


def test_named_paths_and_unknown_ones(pipeline):
    (pipeline.root / "raw.csv").write_text("a,b\n0,0\n")
    code, result, _ = status(pipeline, "model.txt")
    assert code == 1 and [entry["path"] for entry in result["outputs"]] == ["model.txt"]
    # the commands still include what builds its stale source first
    assert [c["text"] for c in result["rerun"]] == ["python prep.py --scale 3", "python train.py"]
    done = pipeline.cli("status", "nothing.csv", check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "no recorded run wrote 'nothing.csv'" in done.stderr


def test_a_file_changed_with_its_size_and_mtime_kept_is_still_seen(pipeline):
    """The digest cache trusts a stat only when all of size, mtime, ctime and inode are the same."""
    raw = pipeline.root / "raw.csv"
    time.sleep(2.2)  # older than the settling time: the digests are cached
    first = status(pipeline)[1]
    assert first["stale"] == 0 and first["hashed"] >= 3
    again = status(pipeline)[1]
    assert again["stale"] == 0 and again["hashed"] == 0  # nothing hashed the second time
    before = raw.stat()
    raw.write_text("a,b\n1,2\n3,5\n")  # same size
    os.utime(raw, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (raw.stat().st_size, raw.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    result = status(pipeline)[1]
    assert kinds(by_path(result)["features.csv"]) == {("input changed", "raw.csv")}


# -- make -----------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_a_makefile_pipeline_is_run_again_by_its_targets(pipeline):
    pipeline.write("Makefile", f"""
        features.csv: raw.csv prep.py
        \t{sys.executable} prep.py --scale 5
        model.txt: features.csv train.py
        \t{sys.executable} train.py
        predictions.txt: model.txt predict.py
        \t{sys.executable} predict.py
    """)
    pipeline.write("predict.py", "import trellis\nopen('predictions.txt', 'w').write(open('model.txt').read())\n")
    done = subprocess.run(["make", "-B", "predictions.txt"], cwd=pipeline.root, env=pipeline.env(),
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert status(pipeline)[0] == 0
    (pipeline.root / "raw.csv").write_text("a,b\n2,2\n")
    code, result, text = status(pipeline)
    assert code == 1 and result["stale"] == 3
    assert [c["text"] for c in result["rerun"]] == [
        "make features.csv", "make model.txt", "make predictions.txt"]
    assert all(c["kind"] == "make" for c in result["rerun"])
    assert "make features.csv" in text


# -- notebooks ------------------------------------------------------------------------------

def write_notebook(path: Path, cells: dict[str, str]) -> None:
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(source) for source in cells.values()]
    for cell, cell_id in zip(book.cells, cells):
        cell["id"] = cell_id
    nbformat.write(book, path)


ANALYSIS = {
    "load": "rows = open('data.csv').read().split()",
    "unrelated": "note = 'kept'\nopen('note.txt', 'w').write(note)",
    "count": "n = len(rows)",
    "save": "open('count.txt', 'w').write(str(n))",
    "report": "open('report.txt', 'w').write(open('count.txt').read() + ' rows')",
}


@pytest.mark.kernel
def test_a_changed_file_read_by_a_cell_makes_its_cells_stale_in_notebook_order(project):
    project.write("data.csv", "1\n2\n3\n")
    write_notebook(project.root / "analysis.ipynb", ANALYSIS)
    assert project.cli("run", "analysis.ipynb").stdout.strip() == "5 cells executed, 0 failed"
    assert status(project)[0] == 0
    (project.root / "data.csv").write_text("1\n2\n3\n4\n")
    code, result, text = status(project)
    assert code == 1
    outputs = by_path(result)
    assert not outputs["note.txt"]["stale"]
    assert ("upstream stale", "n") in kinds(outputs["count.txt"])
    assert kinds(outputs["report.txt"]) == {("upstream stale", "count.txt")}
    assert [(c["kind"], c["notebook"], c["cells"]) for c in result["rerun"]] == [
        ("cells", "analysis.ipynb", ["load", "count", "save", "report"])]
    assert "run cells load, count, save, report of analysis.ipynb, in this order" in text
    shown = project.cli("notebook", "show", "analysis.ipynb").stdout
    marked = {line.split("cell ")[1].split()[0] for line in shown.splitlines() if "STALE:" in line}
    assert marked == {"load", "count", "save", "report"}
    assert "data.csv was changed since it was read" in shown
    # the cell's source edited in the notebook: only what follows from it
    (project.root / "data.csv").write_text("1\n2\n3\n")
    book = nbformat.read(project.root / "analysis.ipynb", as_version=4)
    book.cells[2].source = "n = len(rows) * 10"
    nbformat.write(book, project.root / "analysis.ipynb")
    result = status(project)[1]
    assert kinds(by_path(result)["count.txt"]) >= {("upstream stale", "n")}
    assert [c["cells"] for c in result["rerun"]] == [["count", "save", "report"]]
    assert not by_path(result)["note.txt"]["stale"]


@pytest.mark.kernel
def test_a_cell_run_again_in_the_same_kernel_makes_what_used_its_variables_stale(project):
    from jupyter_client.manager import start_new_kernel

    notebook = project.root / "live.ipynb"
    write_notebook(notebook, {"define": "x = 1", "use": "open('out.txt', 'w').write(str(x))"})
    env = project.env(TRELLIS_NOTEBOOK=str(notebook))
    manager, client = start_new_kernel(kernel_name="python3", extra_arguments=["--ext=trellis"],
                                       cwd=str(project.root), env=env)

    def execute(cell_id: str, code: str) -> None:
        message = client.session.msg("execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True})
        message["metadata"]["cellId"] = cell_id
        client.shell_channel.send(message)
        while True:
            reply = client.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == message["header"]["msg_id"]:
                assert reply["content"]["status"] == "ok", reply["content"]
                return

    try:
        execute("define", "x = 1")
        execute("use", "open('out.txt', 'w').write(str(x))")
        execute("define", "x = 2")  # the cell edited and run again; `use` not yet
    finally:
        manager.shutdown_kernel()
        client.stop_channels()
    write_notebook(notebook, {"define": "x = 2", "use": "open('out.txt', 'w').write(str(x))"})
    code, result, _ = status(project)
    assert code == 1
    assert kinds(by_path(result)["out.txt"]) == {("variable changed", "x")}
    assert [c["cells"] for c in result["rerun"]] == [["use"]]
    shown = project.cli("notebook", "show", "live.ipynb").stdout.splitlines()
    stale = [line for line in shown if "STALE:" in line]
    assert len(stale) == 1 and "cell use" in stale[0] and "x changed since: cell 'define' ran again" in stale[0]


def test_a_closed_loop_through_logged_values_is_up_to_date_after_its_turn(project):
    """train reads the labels label.py logged, infer train's weight, label infer's predictions:
    infer running again on labels made from its own predictions is the loop's next turn."""
    read = ("def read(name):\n    try:\n        return len(trellis.dataframe(name))\n"
            "    except trellis.TrellisError:\n        return 0\n")
    project.write("train.py", "import trellis\n" + read + "trellis.log('weight', read('label'))\n")
    project.write("infer.py", "import trellis\n" + read + "trellis.log('prediction', read('weight'))\n")
    project.write("label.py", "import trellis\n" + read + "trellis.log('label', read('prediction'))\n")
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "loop")
    for script in ("train.py", "infer.py", "label.py", "train.py", "infer.py"):
        project.run(script)
    code, result, _ = status(project)
    assert code == 0, result
    project.write("train.py", "import trellis\n" + read + "trellis.log('weight', 2 * read('label'))\n")
    code, result, _ = status(project)
    assert code == 1
    assert [entry["writer"]["filename"] for entry in result["values"]] == ["train.py", "infer.py"]
    assert [c["text"] for c in result["rerun"]] == ["python train.py", "python infer.py"]


@pytest.mark.kernel
def test_cells_without_ids_are_known_by_their_source(project):
    book = nbformat.v4.new_notebook()
    book.nbformat_minor = 4  # before cell ids
    book.cells = [nbformat.v4.new_code_cell("rows = open('data.csv').read().split()"),
                  nbformat.v4.new_code_cell("open('count.txt', 'w').write(str(len(rows)))")]
    for cell in book.cells:
        cell.pop("id", None)
    nbformat.write(book, project.root / "old.ipynb")
    project.write("data.csv", "1\n2\n")
    project.cli("run", "old.ipynb")
    assert status(project)[0] == 0
    book.cells[1].source = "open('count.txt', 'w').write(str(len(rows) + 1))"
    nbformat.write(book, project.root / "old.ipynb")
    result = status(project)[1]
    assert [r["kind"] for r in by_path(result)["count.txt"]["reasons"]] == ["cell changed"]


# -- property: a random pipeline, random edits ----------------------------------------------

STEP = """
    import sys, trellis
    output, *inputs = sys.argv[1:]
    text = "".join(open(name).read() for name in inputs)
    with open(output, "w") as out:
        out.write(f"{__file__}: {len(text)} characters, {sum(map(ord, text))}\\n")
"""


@st.composite
def pipelines(draw):
    """A DAG of up to 5 scripts, each reading its own raw file and some earlier outputs, and a
    set of raw files and scripts to edit."""
    size = draw(st.integers(2, 5))
    parents = [sorted(draw(st.sets(st.integers(0, node - 1), max_size=node))) if node else []
               for node in range(size)]
    edited_raw = draw(st.sets(st.integers(0, size - 1), max_size=2))
    edited_code = draw(st.sets(st.integers(0, size - 1), max_size=1))
    return parents, edited_raw, edited_code


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(pipelines())
def test_what_is_stale_is_exactly_what_descends_from_an_edit(case):
    parents, edited_raw, edited_code = case
    root = Path(tempfile.mkdtemp(prefix="status-")) / "proj"
    try:
        project = new_project(root)
        for node, ups in enumerate(parents):
            project.write(f"raw{node}.txt", f"raw {node}\n")
            project.write(f"step{node}.py", STEP)
        git(root, "add", "-A")
        git(root, "commit", "-qm", "pipeline")
        for node, ups in enumerate(parents):
            project.run(f"step{node}.py", f"out{node}.txt", f"raw{node}.txt", *(f"out{p}.txt" for p in ups))
        for node in edited_raw:
            (root / f"raw{node}.txt").write_text(f"raw {node} edited\n")
        for node in edited_code:
            project.write(f"step{node}.py", STEP + "# edited\n")
        # the truth: everything reachable from an edited node along the generated edges
        children = {node: [c for c, ups in enumerate(parents) if node in ups] for node in range(len(parents))}
        reached, queue = set(), deque(edited_raw | edited_code)
        while queue:
            node = queue.popleft()
            if node not in reached:
                reached.add(node)
                queue.extend(children[node])
        code, result, _ = status(project)
        stale = {int(e["path"][3:-4]) for e in result["outputs"] if e["stale"]}
        assert stale == reached
        assert code == (1 if reached else 0)
        order = [int(c["script"][4:-3]) for c in result["rerun"]]
        assert sorted(order) == sorted(reached)
        assert all(order.index(p) < order.index(n) for n in order for p in parents[n] if p in reached)
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


def test_values_read_from_another_run_link_it_upstream(pipeline):
    pipeline.write("train.py", TRAIN + "    trellis.log('total', total)\n")
    pipeline.write("pick.py", """
        import trellis
        best = trellis.dataframe("total")["total"].max()
        open("best.txt", "w").write(f"{best}\\n")
    """)
    pipeline.write("score.py", """
        import trellis
        trellis.log("best", float(trellis.dataframe("total")["total"].max()))
    """)
    pipeline.run("train.py")
    pipeline.run("pick.py")
    pipeline.run("score.py")  # writes no file: what it logged is its output
    code, result, _ = status(pipeline)
    assert code == 0 and result["values"] == []
    (pipeline.root / "raw.csv").write_text("a,b\n7,7\n")
    code, result, text = status(pipeline)
    assert code == 1
    assert [r["kind"] for r in by_path(result)["best.txt"]["reasons"]] == ["upstream stale"]
    assert "the dataframe it read from train.py" in by_path(result)["best.txt"]["reasons"][0]["text"]
    assert [entry["writer"]["filename"] for entry in result["values"]] == ["score.py"]
    assert "the values score.py logged" in text
    assert [c["text"] for c in result["rerun"]] == [
        "python prep.py --scale 3", "python train.py", "python pick.py", "python score.py"]
    pipeline.run("prep.py", "--scale", "3")
    pipeline.run("train.py")
    result = status(pipeline)[1]
    assert [r["kind"] for r in by_path(result)["best.txt"]["reasons"]] == ["run again"]
    pipeline.run("pick.py")  # reads both runs of train.py; the older one only as history
    pipeline.run("score.py")
    assert status(pipeline)[0] == 0


def test_a_closed_loop_is_up_to_date_after_its_turn_and_stale_after_an_edit(project):
    """prep reads the labels that label.py makes from the model, which train makes from prep's
    features: the next turn rewrites what the first turn's labelling read, and that is no change."""
    project.write("raw.csv", "a,b\n1,2\n3,4\n")
    project.write("prep.py", """
        import os, trellis
        extra = open("labels.csv").read() if os.path.exists("labels.csv") else ""
        open("features.csv", "w").write(open("raw.csv").read() + extra)
    """)
    project.write("train.py", "import trellis\nopen('model.txt', 'w').write(str(len(open('features.csv').read())))\n")
    project.write("label.py", "import trellis\nopen('labels.csv', 'w').write('9,' + open('model.txt').read() + '\\n')\n")
    git(project.root, "add", "-A")
    git(project.root, "commit", "-qm", "loop")
    for script in ("prep.py", "train.py", "label.py", "prep.py", "train.py"):
        project.run(script)
    code, result, _ = status(project)
    assert code == 0, result
    (project.root / "raw.csv").write_text("a,b\n1,2\n")
    code, result, _ = status(project)
    assert code == 1
    assert {e["path"] for e in result["outputs"] if e["stale"]} == {"features.csv", "model.txt"}
    assert [c["text"] for c in result["rerun"]] == ["python prep.py", "python train.py"]
