"""The document segmentation loop on real PDFs, run through make as a user runs it: two rounds
(hand labels, then the labelling app's confirmations), each exporting a model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest

import trellis
from tests.conftest import Project, git, stop

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "document_segmentation"
GENERATED = ("raw", "pages", "model", ".trellis", "demux", "featurize", "hand_label", "labels",
             "train", "infer")
HAND_LABELLED = 4  # hand_label.py's PDFs


def copy_example(root: Path) -> None:
    shutil.copytree(EXAMPLE, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*GENERATED))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "example")


def make(project: Project, *goals: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["make", *goals, f"PYTHON={sys.executable}"], cwd=project.root,
                          env=project.env(), capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_app(project: Project, port: int, log: Path) -> subprocess.Popen:
    """The app reads the store before it binds the port: wait until the port accepts."""
    with log.open("a") as output:
        app = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=project.root,
                               env=project.env(), stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        if app.poll() is not None:
            raise AssertionError(f"app.py exited ({app.returncode}) before serving:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return app
        except OSError:
            if time.monotonic() > deadline:
                stop(app)
                raise AssertionError(f"app.py did not listen on port {port}:\n{log.read_text()}")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("segmentation") / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    copy_example(root)
    project = Project(root)
    return project, make(project, "demo").stdout


@pytest.fixture
def loop(demo, monkeypatch):
    project, output = demo
    monkeypatch.chdir(project.root)
    return project, output


def runs() -> list[dict]:
    table = trellis.query("SELECT uuid, filename, build_target, build, status FROM runs ORDER BY started, id")
    return [dict(row) for _, row in table.iterrows()]


def answers() -> dict[str, list[bool]]:
    return json.loads(Path("raw/answers.json").read_text())


def test_every_stage_of_both_rounds_records_its_make_target_and_ends_ok(loop):
    recorded = runs()
    assert [(r["filename"], r["build_target"]) for r in recorded] == [
        ("demux.py", "demux"), ("featurize.py", "featurize"), ("hand_label.py", "hand_label"),
        ("train.py", "train"), ("export_model.py", "model/model.npz"), ("infer.py", "infer"),
        ("app.py", "feedback"),
        ("train.py", "train"), ("export_model.py", "model/model.npz"), ("infer.py", "infer"),
    ]
    builds = {r["filename"]: json.loads(r["build"]) for r in recorded}
    assert builds["train.py"]["prerequisites"] == ["train.py", "segmentation.py", "featurize", "labels"]
    assert builds["export_model.py"]["prerequisites"] == ["export_model.py", "train"]
    assert builds["infer.py"]["prerequisites"] == ["infer.py", "segmentation.py", "model/model.npz"]
    assert [r["status"] for r in recorded] == ["ok"] * len(recorded)  # the app's run included


def test_the_pdfs_are_real_and_their_pages_features_are_in_the_store(loop):
    from pypdf import PdfReader

    truth = answers()
    assert len(truth) == 120 and all(Path(f"raw/{name}.pdf").read_bytes()[:5] == b"%PDF-" for name in truth)
    pages = trellis.dataframe("heading", "page_number", "words", latest=True)
    assert len(pages) == sum(map(len, truth.values()))
    # every page the store holds is a page of its PDF, and its text is the PDF's text
    for name in ("doc_000", "doc_057", "doc_119"):
        reader = PdfReader(f"raw/{name}.pdf")
        mine = pages[pages["document_value"] == name].sort_values("page")
        assert len(mine) == len(reader.pages) == len(truth[name])
        for page, heading in zip(reader.pages, mine["heading"]):
            assert heading in page.extract_text()


def test_labels_flow_through_the_store_and_round_two_trains_on_the_apps(loop):
    truth = answers()
    human = trellis.dataframe("first_page", "labelled_at")
    by_script = human.groupby("filename")
    assert set(by_script.groups) == {"hand_label.py", "app.py"}
    hand = by_script.get_group("hand_label.py")
    assert sorted(set(hand["document_value"])) == sorted(truth)[:HAND_LABELLED]
    app = by_script.get_group("app.py")
    assert len(app) > 0 and not set(app["document_value"]) & set(hand["document_value"])
    # what people said is the truth (the simulated person knows it)
    assert all(row.first_page == truth[row.document_value][row.page] for row in human.itertuples())
    # each confirmation has its own time: one per confirmed PDF, in the order they were made
    assert app.groupby("document_value")["labelled_at"].nunique().eq(1).all()
    assert app["labelled_at"].nunique() == app["document_value"].nunique()
    assert app["labelled_at"].is_monotonic_increasing

    rounds = trellis.dataframe("human_labels").sort_values("tstamp")
    assert rounds["human_labels"].tolist() == [len(hand), len(hand) + len(app)]
    inputs = trellis.query(
        "SELECT r.uuid AS reader, s.filename AS source, i.detail FROM run_inputs i"
        " JOIN runs r ON r.id = i.run JOIN runs s ON s.uuid = i.source"
    )
    second = rounds["run_id"].iloc[1]
    used = inputs[inputs["reader"] == second]
    assert {("app.py", "first_page,labelled_at"), ("hand_label.py", "first_page,labelled_at")} <= set(zip(used["source"], used["detail"]))


def test_each_round_exports_its_own_training_runs_best_validation_checkpoint(loop):
    trains = [r["uuid"] for r in runs() if r["filename"] == "train.py"]
    exported = trellis.dataframe("exported_run", "exported_epoch").sort_values("tstamp")
    assert exported["exported_run"].tolist() == trains  # round 2's model is round 2's run
    for run, epoch in zip(exported["exported_run"], exported["exported_epoch"]):
        scores = trellis.dataframe("val_recall", "val_precision", runs=run)
        saved = trellis.query("SELECT c.idx FROM checkpoints c JOIN runs r ON r.id = c.run WHERE r.uuid = ?", (run,))
        scores = scores[scores["epoch"].isin(saved["idx"])]
        r, p = scores["val_recall"], scores["val_precision"]
        f1 = (2 * r * p / (r + p)).fillna(0.0)
        # the rule the printout states: best validation F1, the later epoch on a tie
        assert epoch == scores["epoch"][f1 == f1.max()].max()
    newest = trellis.load_checkpoint(trains[-1], int(exported["exported_epoch"].iloc[-1]))["model"]
    on_disk = np.load("model/model.npz")
    assert all(np.array_equal(on_disk[name], newest[name]) for name in newest)


def test_the_report_prints_each_rounds_labels_model_and_held_out_recall(loop):
    _, output = loop
    lines = output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:2] == ["round", "pages_labelled_by_people"])
    rows = [line.split() for line in lines[at + 1:at + 3]]
    exported = trellis.dataframe("exported_run", "exported_epoch", "exported_human_labels",
                                 "exported_test_recall").sort_values("tstamp")
    assert [row[0] for row in rows] == ["1", "2"]
    assert [int(row[1]) for row in rows] == exported["exported_human_labels"].tolist()
    assert [row[2] for row in rows] == exported["exported_run"].str[:8].tolist()
    assert [int(row[3]) for row in rows] == exported["exported_epoch"].tolist()
    assert [float(row[4]) for row in rows] == pytest.approx(exported["exported_test_recall"].tolist(), abs=1e-6)


def test_lineage_of_the_model_runs_through_round_two_to_the_human_labels_and_the_pdfs(loop):
    recorded = runs()
    export, train, app = (
        [r["uuid"] for r in recorded if r["filename"] == name][-1]
        for name in ("export_model.py", "train.py", "app.py")
    )
    first_train = next(r["uuid"] for r in recorded if r["filename"] == "train.py")
    graph = trellis.lineage("model/model.npz")
    edges = {(e["from"], e["to"], e["relation"]) for e in graph["edges"]}
    model = next(n["id"] for n in graph["nodes"] if n.get("path") == "model/model.npz")
    assert (model, f"run:{export}", "wasGeneratedBy") in edges
    assert (f"run:{export}", f"run:{train}", "used checkpoint (model)") in edges
    assert (f"run:{train}", f"run:{app}", "used dataframe (first_page,labelled_at)") in edges
    # the export read round two's run alone; round one's is upstream only as the model whose
    # predictions the app showed the person
    assert {to for start, to, _ in edges if start == f"run:{export}"} == {f"run:{train}"}
    assert f"run:{first_train}" in {to for _, to, _ in edges}
    pdfs = {n["path"] for n in graph["nodes"] if n["kind"] == "file" and n["path"].endswith(".pdf")}
    assert pdfs == {f"raw/{name}.pdf" for name in answers()}


def test_make_rebuilds_only_what_new_labels_invalidate(loop):
    project, _ = loop
    assert make(project, "-q", check=False).returncode == 0  # everything is up to date
    Path("labels").touch()  # what the app does on every confirmation
    planned = make(project, "-n").stdout
    assert [stage for stage in ("demux.py", "featurize.py", "hand_label.py", "train.py",
                                "export_model.py", "infer.py") if stage in planned] == \
        ["train.py", "export_model.py", "infer.py"]


class Impostor(BaseHTTPRequestHandler):
    """A server that answers every request with success and records nothing."""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"[]")

    do_POST = do_GET

    def log_message(self, *args):
        pass


def test_feedback_talks_only_to_the_app_it_started(loop):
    project, _ = loop
    impostor = HTTPServer(("127.0.0.1", 0), Impostor)
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    before = len(trellis.dataframe("first_page"))
    try:
        # the labelling app's usual port is taken by something else: feedback must not mind it
        done = subprocess.run(
            ["make", "feedback", f"PYTHON={sys.executable}", f"PORT={impostor.server_port}"],
            cwd=project.root, env=project.env(), capture_output=True, text=True, timeout=300,
        )
    finally:
        impostor.shutdown()
    assert done.returncode == 0, done.stdout + done.stderr
    confirmed = int(done.stdout.split("confirmed ")[1].split(" PDFs (")[1].split(" pages")[0])
    assert confirmed > 0
    assert len(trellis.dataframe("first_page")) == before + confirmed
    assert runs()[-1]["filename"] == "app.py" and runs()[-1]["status"] == "ok"


IMPOSTOR = """
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

Path("impostor.pid").write_text(str(os.getpid()))
documents = json.loads(Path("raw/answers.json").read_text())


class Answer(BaseHTTPRequestHandler):
    # claims the pid of the process feedback started, and takes every label it is sent
    def do_GET(self):
        with open("requests.log", "a") as log:
            log.write(f"{self.command} {self.path}\\n")
        if self.path == "/api/identity":
            body = {"pid": os.getppid(), "token_sha256": "0" * 64}
        elif self.path == "/api/documents":
            body = [{"name": name, "first_pages": [False] * len(pages), "labelled_by_people": False}
                    for name, pages in documents.items()]
        else:
            body = {"confirmed": 1}
        self.send_response(200)
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    do_POST = do_GET

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Answer).serve_forever()
"""

# Started by feedback.py in place of the app: it serves nothing itself, but something else
# answers on the port it was given (and says it is this process).
NOT_THE_APP = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "impostor.py", sys.argv[sys.argv.index("--port") + 1]],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(300)
"""


def test_feedback_sends_nothing_to_a_process_that_cannot_prove_it_is_its_app(loop, tmp_path):
    for name in ("feedback.py", "segmentation.py"):
        shutil.copy(name, tmp_path)
    (tmp_path / "raw").mkdir()
    shutil.copy("raw/answers.json", tmp_path / "raw")
    (tmp_path / "app.py").write_text(NOT_THE_APP)
    (tmp_path / "impostor.py").write_text(IMPOSTOR)
    try:
        done = subprocess.run([sys.executable, "feedback.py"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
    finally:
        if (tmp_path / "impostor.pid").exists():
            os.kill(int((tmp_path / "impostor.pid").read_text()), signal.SIGKILL)
    assert done.returncode != 0
    assert "another process answers" in done.stderr
    # it asked who answers, and sent nothing else
    assert (tmp_path / "requests.log").read_text().splitlines() == ["GET /api/identity"]


def test_feedback_fails_when_its_app_cannot_start(loop, tmp_path):
    for name in ("feedback.py", "segmentation.py"):
        shutil.copy(name, tmp_path)
    (tmp_path / "app.py").write_text('raise RuntimeError("the labelling app cannot listen")\n')
    done = subprocess.run([sys.executable, "feedback.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert "the labelling app exited (1) before it served" in done.stderr
    assert "confirmed" not in done.stdout


def test_an_app_that_cannot_listen_fails_and_its_run_is_failed(loop):
    project, _ = loop
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = subprocess.run([sys.executable, "app.py", "--port", str(taken.getsockname()[1])],
                              cwd=project.root, env=project.env(), capture_output=True, text=True,
                              timeout=240)
    assert done.returncode != 0
    assert "cannot listen on 127.0.0.1" in done.stderr
    last = runs()[-1]
    assert (last["filename"], last["status"]) == ("app.py", "failed")


def test_the_app_shows_a_pages_newest_label_after_a_restart(loop, tmp_path):
    project, _ = loop
    truth = answers()
    document = sorted(trellis.dataframe("first_page").query("filename == 'app.py'")["document_value"])[0]
    changed = [not first for first in truth[document]]  # the person changes their mind

    def listed(port: int) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/documents", timeout=30) as answer:
            return next(d for d in json.load(answer) if d["name"] == document)

    port = free_port()
    app = start_app(project, port, tmp_path / "app.log")
    try:
        assert listed(port)["first_pages"] == truth[document]  # as confirmed in round two
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/confirm", headers={"Content-Type": "application/json"},
            data=json.dumps({"document": document, "first_pages": changed}).encode())
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.load(answer)["confirmed"] == len(changed)
    finally:
        stop(app)
    port = free_port()
    app = start_app(project, port, tmp_path / "app.log")
    try:
        assert listed(port)["first_pages"] == changed
    finally:
        stop(app)


def test_make_demo_sets_up_only_the_core_and_the_demo_extra():
    repository = EXAMPLE.parents[1]
    # -n -B: every command of the demo's set-up as on a fresh clone, none run (the recursive
    # make of the loop is, and fails for want of the project it would have copied: ignored)
    planned = subprocess.run(["make", "-n", "-B", "demo"], cwd=repository, capture_output=True,
                             text=True, timeout=60, env={**os.environ, "MAKEFLAGS": ""}).stdout
    set_up = planned.split("rm -rf build/document_segmentation")[0]
    assert "-e '.[demo]'" in set_up
    assert "[dev]" not in set_up and "npm" not in set_up
