"""Files read and written by a run, and the lineage they give."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest

import trellis


@pytest.fixture
def pipeline(project, monkeypatch):
    """raw.csv -> prep.py -> clean.csv -> train.py (+ prep's logged values) -> model.pkl"""
    monkeypatch.chdir(project.root)
    project.write("data/raw.csv", "a,b\n1,2\n3,4\n")
    project.write("prep.py", """
        import numpy as np, trellis
        rows = np.loadtxt("data/raw.csv", delimiter=",", skiprows=1)
        np.savetxt("data/clean.csv", rows * 2, delimiter=",")
        trellis.log("rows", len(rows))
    """)
    project.write("train.py", """
        import pickle, trellis
        lr = trellis.arg("lr", 0.1)
        with open("data/clean.csv") as handle:
            data = handle.read()
        seen = trellis.dataframe("rows")
        with open("model.pkl", "wb") as handle:
            pickle.dump({"lr": lr, "size": len(data)}, handle)
    """)
    project.run("prep.py")
    project.run("train.py", "--lr", "0.3")
    return project


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reads_and_writes_are_recorded_with_hashes(pipeline):
    events = trellis.query("SELECT run, path, mode, hash, size FROM files ORDER BY run, at")
    rows = [tuple(r) for r in events[["path", "mode"]].values]
    assert rows == [
        ("data/raw.csv", "read"), ("data/clean.csv", "write"),
        ("data/clean.csv", "read"), ("model.pkl", "write"),
    ]
    hashes = dict(zip(events["path"] + events["mode"], events["hash"]))
    assert hashes["data/raw.csvread"] == sha(pipeline.root / "data/raw.csv")
    assert hashes["model.pklwrite"] == sha(pipeline.root / "model.pkl")
    assert hashes["data/clean.csvwrite"] == hashes["data/clean.csvread"]
    # code, the store itself and the standard library are not data
    assert not events["path"].str.contains(r"\.py$|\.trellis|site-packages/numpy").any()


def test_lineage_of_the_model_reaches_the_raw_data_and_the_values_read(pipeline):
    graph = trellis.lineage("model.pkl")
    nodes = {n["id"]: n for n in graph["nodes"]}
    files = {n["path"]: n for n in graph["nodes"] if n["kind"] == "file"}
    runs = {n["filename"]: n for n in graph["nodes"] if n["kind"] == "run"}
    assert set(files) == {"model.pkl", "data/clean.csv", "data/raw.csv"}
    assert files["data/raw.csv"]["source"] and not files["model.pkl"]["source"]
    assert set(runs) == {"prep.py", "train.py"} and runs["train.py"]["params"] == {"lr": 0.3}
    relations = {(nodes[e["from"]].get("path") or nodes[e["from"]]["filename"], e["relation"],
                  nodes[e["to"]].get("path") or nodes[e["to"]]["filename"]) for e in graph["edges"]}
    assert ("model.pkl", "wasGeneratedBy", "train.py") in relations
    assert ("train.py", "used", "data/clean.csv") in relations
    assert ("data/clean.csv", "wasGeneratedBy", "prep.py") in relations
    assert ("prep.py", "used", "data/raw.csv") in relations
    assert ("train.py", "used dataframe (rows)", "prep.py") in relations


def test_downstream_of_the_raw_data_reaches_the_model(pipeline):
    graph = trellis.lineage("data/raw.csv", downstream=True)
    paths = {n["path"] for n in graph["nodes"] if n["kind"] == "file"}
    assert paths == {"data/raw.csv", "data/clean.csv", "model.pkl"}


def test_lineage_cli_text_and_json(pipeline):
    text = pipeline.cli("lineage", "model.pkl").stdout
    assert text.splitlines()[0].startswith("model.pkl (sha256 ")
    assert "data/raw.csv" in text and "source" in text and "lr=0.3" in text
    graph = json.loads(pipeline.cli("lineage", "run:latest", "--json").stdout)
    assert graph["target"].startswith("run:")
    unknown = pipeline.cli("lineage", "nowhere.csv", check=False)
    assert unknown.returncode == 1 and "no run read or wrote 'nowhere.csv'" in unknown.stderr


def test_a_file_changed_after_it_was_read_is_not_given_a_wrong_hash(project, monkeypatch):
    monkeypatch.chdir(project.root)
    project.write("input.txt", "first\n")
    project.write("mutate.py", """
        import trellis
        open("input.txt").read()
        with open("input.txt", "a") as handle:
            handle.write("second\\n")
    """)
    project.run("mutate.py")
    events = trellis.query("SELECT mode, hash FROM files WHERE path = 'input.txt' ORDER BY at")
    assert events["mode"].tolist() == ["read", "write"]
    assert pd.isna(events["hash"][0])
    assert events["hash"][1] == sha(project.root / "input.txt")


def test_readers_that_bypass_open_and_urls_are_seen(project, monkeypatch):
    """pandas' parquet I/O runs in pyarrow's C++; urllib fetches through sockets."""
    import http.server
    import threading

    monkeypatch.chdir(project.root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/README"
        project.write("parquet.py", f"""
            import urllib.request
            import pandas as pd
            import trellis
            pd.DataFrame({{"a": [1, 2]}}).to_parquet("table.parquet")
            assert pd.read_parquet("table.parquet")["a"].tolist() == [1, 2]
            urllib.request.urlopen("{url}").read()
        """)
        project.run("parquet.py")
    finally:
        server.shutdown()
    events = trellis.query("SELECT path, mode, hash FROM files ORDER BY at")
    assert events[["path", "mode"]].values.tolist() == [
        ["table.parquet", "write"], ["table.parquet", "read"], [url, "read"]]
    hashes = dict(zip(events["mode"] + events["path"], events["hash"]))
    assert hashes["writetable.parquet"] == hashes["readtable.parquet"] == sha(project.root / "table.parquet")


def test_a_failed_fetch_or_write_is_neither_a_read_nor_a_write(project, monkeypatch):
    """Data that never arrived, or a write that raised, must not feed lineage: a URL answered
    404 (urllib raises, requests does not), a port nobody listens on, ``open(..., "x")`` of a
    file that exists, a folder that does not."""
    import http.server
    import socket
    import threading

    monkeypatch.chdir(project.root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        project.write("fetch.py", f"""
            import urllib.error, urllib.request
            import requests
            import trellis
            for url in ("{base}/missing.csv", "http://127.0.0.1:{closed_port}/data.csv"):
                try:
                    urllib.request.urlopen(url).read()
                except (urllib.error.URLError, OSError):
                    pass
            assert not requests.get("{base}/also-missing.csv").ok
            urllib.request.urlopen(urllib.request.Request("{base}/README")).read()
            assert requests.get("{base}/fetch.py").ok
            with open("out.txt", "w") as handle:
                handle.write("kept")
            for path, mode in (("out.txt", "x"), ("no/such/folder.txt", "w")):
                try:
                    open(path, mode)
                except OSError:
                    pass
        """)
        project.run("fetch.py")
    finally:
        server.shutdown()
    events = trellis.query("SELECT path, mode FROM files ORDER BY at")
    assert events.values.tolist() == [
        [f"{base}/README", "read"], [f"{base}/fetch.py", "read"], ["out.txt", "write"]]


def test_files_another_program_wrote_are_found_after_the_run(project, monkeypatch):
    """A child process writes behind the audit hook's back: a scan at the end of the run finds
    what changed in the project, marked as seen after the fact. What the script wrote itself,
    hidden folders and files already there are not added."""
    monkeypatch.chdir(project.root)
    project.write("data/before.txt", "there before\n")
    project.write("draw.py", """
        import subprocess, sys
        import trellis
        with open("data/own.txt", "w") as handle:
            handle.write("written by the script")
        subprocess.run([sys.executable, "-c",
                        "import os; os.makedirs('figures', exist_ok=True);"
                        "open('figures/plot.png', 'wb').write(b'png');"
                        "os.makedirs('.hidden', exist_ok=True); open('.hidden/x', 'w').write('x')"],
                       check=True)
    """)
    project.run("draw.py")
    events = trellis.query("SELECT path, mode, hash, seen_after FROM files ORDER BY path")
    assert events[["path", "mode"]].values.tolist() == [["data/own.txt", "write"], ["figures/plot.png", "write"]]
    seen = dict(zip(events["path"], events["seen_after"]))
    assert pd.isna(seen["data/own.txt"]) and seen["figures/plot.png"] == 1
    assert events["hash"][1] == sha(project.root / "figures/plot.png")
    text = project.cli("lineage", "figures/plot.png").stdout
    assert "draw.py" in text and "seen after" in text


def test_what_others_write_while_a_script_runs_is_not_its_write(project, monkeypatch):
    """The scan after the fact runs only for a script that started a program itself: trellis's
    own git processes (the snapshot) do not count, and another process writing into the project
    meanwhile (make -j's other job, an editor) is not the script's."""
    import subprocess
    import sys

    monkeypatch.chdir(project.root)
    project.write("wait.py", """
        import os, time
        import trellis
        trellis.log("x", 1)
        print("recording", flush=True)
        for _ in range(600):
            if os.path.exists("other.txt"):
                break
            time.sleep(0.05)
    """)
    script = subprocess.Popen([sys.executable, "wait.py"], cwd=project.root, env=project.env(),
                              stdout=subprocess.PIPE, text=True)
    assert script.stdout.readline() == "recording\n"  # written while the run records
    (project.root / "other.txt").write_text("written by someone else")
    assert script.wait(60) == 0
    assert trellis.query("SELECT path FROM files").empty


def test_folders_opened_are_neither_read_nor_written(project, monkeypatch):
    """``shutil.rmtree`` and ``os.open`` of a folder raise the same audit event as a file."""
    monkeypatch.chdir(project.root)
    project.write("scratch/first/log.txt", "one\n")
    project.write("tidy.py", """
        import os, shutil
        import trellis
        open("scratch/first/log.txt").read()
        os.close(os.open("scratch", os.O_RDONLY))
        shutil.rmtree("scratch")
    """)
    project.run("tidy.py")
    assert not (project.root / "scratch").exists()
    events = trellis.query("SELECT path, mode FROM files")
    assert events.values.tolist() == [["scratch/first/log.txt", "read"]]


def test_inside_installed_packages_only_their_data_is_data(project, monkeypatch):
    """scikit-learn reads its iris data and, to draw an estimator as HTML, a script of its own."""
    import sklearn

    monkeypatch.chdir(project.root)
    project.write("iris.py", """
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        import trellis
        X, y = load_iris(return_X_y=True)
        assert "<script>" in LogisticRegression(max_iter=500).fit(X, y)._repr_html_()
    """)
    project.run("iris.py")
    datasets = Path(sklearn.__file__).parent / "datasets"
    events = trellis.query("SELECT path, mode FROM files ORDER BY path")
    assert events.values.tolist() == [
        [str(datasets / "data" / "iris.csv"), "read"], [str(datasets / "descr" / "iris.rst"), "read"]]


def test_code_in_a_package_data_folder_is_not_data(project, monkeypatch):
    """scikit-image's lazy loader reads the type stub that sits next to its bundled images."""
    monkeypatch.chdir(project.root)
    data = "env/lib/python3.11/site-packages/toolkit/data"
    project.write(f"{data}/__init__.pyi", "def coins() -> object: ...\n")
    project.write(f"{data}/coins.csv", "1,2\n")
    project.write("load.py", f"""
        import trellis
        for name in ("__init__.pyi", "coins.csv"):
            open("{data}/" + name).read()
    """)
    project.run("load.py")
    assert trellis.query("SELECT path, mode FROM files").values.tolist() == [[f"{data}/coins.csv", "read"]]


def test_scratch_files_in_the_temporary_folder_are_not_data(project, monkeypatch):
    """joblib's memoized results and tempfile's folders are scratch; the project is watched even
    when it lives in the temporary folder itself, as it does here."""
    assert str(project.root).startswith(tempfile.gettempdir() + "/")
    monkeypatch.chdir(project.root)
    project.write("data.csv", "1\n2\n")
    project.write("cached.py", """
        import os, tempfile
        from joblib import Memory
        import trellis

        def total(path):
            return sum(int(line) for line in open(path))

        scratch = tempfile.mkdtemp()
        with open(os.path.join(scratch, "notes.txt"), "w") as handle:
            handle.write("scratch")
        open(os.path.join(scratch, "notes.txt")).read()
        cached = Memory(scratch, verbose=0).cache(total)
        assert cached("data.csv") == cached("data.csv") == 3  # the second comes from the cache
        assert any(files for _, _, files in os.walk(os.path.join(scratch, "joblib")))
    """)
    project.run("cached.py")
    assert trellis.query("SELECT path, mode FROM files").values.tolist() == [["data.csv", "read"]]


def test_a_dataset_cached_in_the_temporary_folder_before_the_run_is_an_input(project, tmp_path, monkeypatch):
    """seaborn reads a dataset from its cache when it is there; a cache in the temporary folder
    made before the run is where the data came from, not scratch."""
    cache = tmp_path / "seaborn-data"
    cache.mkdir()
    (cache / "iris.csv").write_text("sepal_length,species\n5.1,setosa\n6.2,virginica\n")
    monkeypatch.chdir(project.root)
    project.write("plot.py", f"""
        import seaborn as sns
        import trellis
        iris = sns.load_dataset("iris", data_home={str(cache)!r})
        assert len(iris) == 2
    """)
    project.run("plot.py")
    events = trellis.query("SELECT path, mode, hash FROM files")
    assert events[["path", "mode"]].values.tolist() == [[str(cache / "iris.csv"), "read"]]
    assert events["hash"][0] == sha(cache / "iris.csv")


def test_a_file_saved_under_a_temporary_name_is_written_under_its_final_name(project, monkeypatch):
    """An atomic save writes a temporary file and renames it; a moved file is new where it goes,
    and so are the files written in a folder that is renamed."""
    monkeypatch.chdir(project.root)
    project.write("old.csv", "a\n")
    project.write("save.py", """
        import os, pickle, shutil
        import trellis
        with open("model.pkl.partial", "wb") as handle:
            pickle.dump({"weights": [1, 2]}, handle)
        os.replace("model.pkl.partial", "model.pkl")
        os.mkdir("archive")
        shutil.move("old.csv", "archive/old.csv")
        os.rename("archive", "kept")
    """)
    project.run("save.py")
    events = trellis.query("SELECT path, mode, hash FROM files ORDER BY at")
    assert events[["path", "mode"]].values.tolist() == [
        ["model.pkl", "write"], ["kept/old.csv", "write"]]
    assert events["hash"][0] == sha(project.root / "model.pkl")


def test_each_kept_output_line_knows_the_iteration_it_was_written_in(project):
    """flor.io's loop columns come from when each line began; once the middle of a long output
    is dropped, only the lines of its head keep a time, so none is put in the wrong iteration."""
    project.write("talk.py", """
        import sys, time, trellis
        print("start")
        for epoch in trellis.loop("epoch", range(3)):
            for step in trellis.loop("step", range(2)):
                time.sleep(0.002)
                print(f"e{epoch} s{step}", end="")
                print(" done")
            print(f"epoch {epoch}", file=sys.stderr)
        print("x" * 50)
        print("end")
    """)
    project.run("talk.py")
    frame = project.python("""
        import json
        import pandas as pd
        from trellis import flor
        frame = flor.io()
        index = lambda i: None if pd.isna(i) else int(i)
        print(json.dumps([[c, l, index(e), index(s)]
                          for c, l, e, s in frame[["channel", "line", "epoch", "step"]].astype(object).values.tolist()]))
    """).stdout
    expected = [["io::stdout", "start", None, None]]
    for e in range(3):  # stdout and stderr in the order they were written
        expected += [["io::stdout", f"e{e} s{s} done", e, s] for s in range(2)] + [["io::stderr", f"epoch {e}", e, None]]
    expected += [["io::stdout", "x" * 50, None, None], ["io::stdout", "end", None, None]]
    assert json.loads(frame) == expected

    project.run("talk.py", TRELLIS_STREAM_LIMIT="60")  # keeps 30 characters at each end
    (times, stdout), = [row for row in project.store().execute(
        "SELECT output_times, stdout FROM runs ORDER BY id DESC LIMIT 1")]
    kept = json.loads(times)["stdout"]
    assert len(kept) == len(stdout.splitlines()) and "characters not kept" in stdout
    assert kept[:4] == sorted(kept[:4]) and None not in kept[:4]  # start, e0 s0, e0 s1, e1 s0
    assert stdout.splitlines()[-1] == "end" and kept[-1] is not None  # the end is kept with its time
