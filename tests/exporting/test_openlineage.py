"""OpenLineage events of real runs, received by a real HTTP server started here: scripts run as
subprocesses, a notebook in a real kernel, a pipeline under real make. Every event is parsed
back into the OpenLineage client's own models (each facet into the class of the facet it claims
to be), and trellis's own facets are validated against the schema trellis ships.

The OpenLineage client package ships no JSON schema of the spec (it has only the generated
models), and tests do not download one: the spec schema is not checked here, the models are."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource

from tests.conftest import Project
from tests.ui.conftest import write_notebook

openlineage = pytest.importorskip("openlineage.client")

FACETS_SCHEMA = Path(__file__).resolve().parents[2] / "trellis" / "exporting" / "openlineage-facets.schema.json"


class Receiver:
    """An OpenLineage endpoint: keeps what is POSTed to /api/v1/lineage, in order; answers 201,
    or once it has taken ``accept`` events, 500."""

    def __init__(self, accept: int | None = None) -> None:
        self.events: list[dict] = []
        self.paths: list[str] = []
        self.refused = 0
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if accept is not None and len(received.events) >= accept:
                    received.refused += 1
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                received.paths.append(self.path)
                received.events.append(json.loads(body))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    found = Receiver()
    yield found
    found.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- parsing back into the client's models -------------------------------------------------------


def _facets(facets: dict, classes: dict) -> dict:
    from openlineage.client.facet_v2 import parent_run, tags_run

    parsed = {}
    for key, value in facets.items():
        fields = {k: v for k, v in value.items() if not k.startswith("_")}
        kind = classes[key]  # a facet nobody expects fails here
        if kind is parent_run.ParentRunFacet:
            fields = {"run": parent_run.Run(**fields["run"]), "job": parent_run.Job(**fields["job"])}
        elif kind is tags_run.TagsRunFacet:
            fields = {"tags": [tags_run.TagsRunFacetFields(**tag) for tag in fields["tags"]]}
        facet = kind(**fields, producer=value["_producer"])
        assert facet._schemaURL == value["_schemaURL"], key  # it is the facet it says it is
        parsed[key] = facet
    return parsed


def parse(event: dict):
    """The event as the client's models; their validators check ids and times, and the models
    must give back exactly the event."""
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import (
        dataset_version_dataset, error_message_run, job_type_job, parent_run, processing_engine_run,
        tags_run,
    )
    from openlineage.client.serde import Serde

    from trellis.exporting.openlineage_facets import ContentDatasetFacet, RunRunFacet

    run_facets = {"parent": parent_run.ParentRunFacet, "errorMessage": error_message_run.ErrorMessageRunFacet,
                  "processing_engine": processing_engine_run.ProcessingEngineRunFacet,
                  "tags": tags_run.TagsRunFacet, "trellis_run": RunRunFacet}
    dataset_facets = {"version": dataset_version_dataset.DatasetVersionDatasetFacet,
                      "trellis_content": ContentDatasetFacet}
    model = RunEvent(
        eventType=RunState(event["eventType"]),
        eventTime=event["eventTime"],
        producer=event["producer"],
        run=Run(runId=event["run"]["runId"], facets=_facets(event["run"]["facets"], run_facets)),
        job=Job(namespace=event["job"]["namespace"], name=event["job"]["name"],
                facets=_facets(event["job"]["facets"], {"jobType": job_type_job.JobTypeJobFacet})),
        inputs=[InputDataset(d["namespace"], d["name"], facets=_facets(d["facets"], dataset_facets))
                for d in event["inputs"]],
        outputs=[OutputDataset(d["namespace"], d["name"], facets=_facets(d["facets"], dataset_facets))
                 for d in event["outputs"]],
    )
    assert model.schemaURL == event["schemaURL"]
    assert Serde.to_dict(model) == event
    _check_own_facets(event)
    return model


def _check_own_facets(event: dict) -> None:
    schema = json.loads(FACETS_SCHEMA.read_text())
    registry = Registry().with_resource(schema["$id"], Resource.from_contents(schema))
    owned = [event["run"]["facets"]["trellis_run"]]
    owned += [d["facets"]["trellis_content"] for d in event["inputs"] + event["outputs"]]
    for facet in owned:
        assert facet["_producer"].startswith("urn:trellis:")
        jsonschema.validate(facet, {"$ref": facet["_schemaURL"]}, registry=registry,
                            format_checker=jsonschema.FormatChecker())


# -- what the store says ------------------------------------------------------------------------


def recorded(project: Project, run_id: str) -> tuple[dict, dict, dict]:
    """The run's status, and {path: hash} of the files it read (first read) and wrote (last
    write), from the store."""
    store = project.store()
    try:
        ((number, status),) = store.execute("SELECT id, status FROM runs WHERE uuid = ?", (run_id,))
        reads, writes = {}, {}
        for path, mode, digest in store.execute(
                "SELECT path, mode, hash FROM files WHERE run = ? ORDER BY at", (number,)):
            if mode == "read":
                reads.setdefault(path, digest)
            else:
                writes[path] = digest
    finally:
        store.close()
    return {"status": status}, reads, writes


def datasets(event: dict, side: str, root: Path) -> dict[str, str | None]:
    found = {}
    for dataset in event[side]:
        assert dataset["namespace"] == "file"
        path = str(Path(dataset["name"]).relative_to(root))
        facets = dataset["facets"]
        # the client leaves out what is None: an unhashed file has no sha256, and no version
        assert facets.get("version", {}).get("datasetVersion") == facets["trellis_content"].get("sha256")
        found[path] = facets["trellis_content"].get("sha256")
    return found


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


PIPELINE = """
    import sys, trellis
    source, target = sys.argv[1], sys.argv[2]
    rows = open(source).read().split()
    with open(target, "w") as out:
        out.write("\\n".join(str(int(r) * 2) for r in rows))
    trellis.log("rows", len(rows))
    if len(sys.argv) > 3:
        raise RuntimeError("the model did not converge")
"""


def test_a_script_run_sends_start_then_complete_with_the_files_it_read_and_wrote(project, receiver):
    project.write("data/raw.txt", "1\n2\n3\n")
    project.write("double.py", PIPELINE)
    project.run("double.py", "data/raw.txt", "data/doubled.txt", TRELLIS_OPENLINEAGE_URL=receiver.url)

    start, end = receiver.events
    assert receiver.paths == ["/api/v1/lineage"] * 2
    assert (start["eventType"], end["eventType"]) == ("START", "COMPLETE")
    run_id = start["run"]["runId"]
    assert end["run"]["runId"] == run_id
    assert start["job"] == end["job"] and start["job"]["name"] == "double.py"
    assert start["eventTime"] < end["eventTime"]
    status, reads, writes = recorded(project, run_id)
    assert status == {"status": "ok"}
    root = project.root.resolve()
    # what the store recorded, and the files' bytes themselves
    assert datasets(end, "inputs", root) == reads == {"data/raw.txt": sha256(project.root / "data/raw.txt")}
    assert datasets(end, "outputs", root) == writes == {
        "data/doubled.txt": sha256(project.root / "data/doubled.txt")}
    # and what `trellis lineage` says the run read, and the version of its output it made
    upstream = json.loads(project.cli("lineage", f"run:{run_id}", "--json").stdout)
    assert {node["path"]: node["hash"] for node in upstream["nodes"] if node["kind"] == "file"} == reads
    made = json.loads(project.cli("lineage", "data/doubled.txt", "--json").stdout)
    target = next(node for node in made["nodes"] if node["id"] == made["target"])
    assert {target["path"]: target["hash"]} == writes
    assert end["run"]["facets"]["trellis_run"]["status"] == "ok"
    assert "parent" not in end["run"]["facets"]
    for event in receiver.events:
        parse(event)


def test_sending_a_recorded_run_again_gives_the_same_events(project, receiver, tmp_path):
    project.write("data/raw.txt", "4\n5\n")
    project.write("double.py", PIPELINE)
    project.run("double.py", "data/raw.txt", "data/doubled.txt", TRELLIS_OPENLINEAGE_URL=receiver.url)
    live = list(receiver.events)
    run_id = live[0]["run"]["runId"]

    events = tmp_path / "events.jsonl"
    shown = project.cli("openlineage", run_id[:8], "--file", str(events)).stdout
    assert shown.splitlines() == [f"START {run_id} double.py (0 inputs, 0 outputs)",
                                  f"COMPLETE {run_id} double.py (1 inputs, 1 outputs)"]
    assert [json.loads(line) for line in events.read_text().splitlines()] == live
    project.cli("openlineage", run_id, "--url", f"{receiver.url}/api/v1/lineage")
    assert receiver.events[2:] == live
    assert receiver.paths[2:] == ["/api/v1/lineage"] * 2


def test_a_failing_script_sends_fail_with_its_error(project, receiver):
    project.write("data/raw.txt", "1\n")
    project.write("double.py", PIPELINE)
    done = project.run("double.py", "data/raw.txt", "data/doubled.txt", "fail", check=False,
                       TRELLIS_OPENLINEAGE_URL=receiver.url)
    assert done.returncode == 1

    start, end = receiver.events
    assert (start["eventType"], end["eventType"]) == ("START", "FAIL")
    assert start["run"]["runId"] == end["run"]["runId"]
    error = end["run"]["facets"]["errorMessage"]
    assert error["message"] == "RuntimeError: the model did not converge"
    assert error["programmingLanguage"] == "python" and "Traceback" in error["stackTrace"]
    status, reads, writes = recorded(project, start["run"]["runId"])
    assert status == {"status": "failed"}
    assert datasets(end, "outputs", project.root.resolve()) == writes
    for event in receiver.events:
        parse(event)


@pytest.mark.kernel
def test_a_notebook_run_in_a_real_kernel_sends_its_epoch(project, receiver):
    project.write("data.csv", "1,2\n3,4\n")
    write_notebook(project.root / "analysis.ipynb", {
        "load": "import trellis\nrows = open('data.csv').read().split()",
        "save": "open('summary.txt', 'w').write(str(len(rows)))",
    })
    done = subprocess.run([sys.executable, "-m", "trellis.cli", "run", "analysis.ipynb"], cwd=project.root,
                          capture_output=True, text=True, env=project.env(TRELLIS_OPENLINEAGE_URL=receiver.url),
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    start, end = receiver.events
    assert (start["eventType"], end["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == end["run"]["runId"]
    assert start["job"]["name"] == end["job"]["name"] == "analysis.ipynb"
    assert end["job"]["facets"]["jobType"]["jobType"] == "NOTEBOOK"
    status, reads, writes = recorded(project, start["run"]["runId"])
    assert status == {"status": "ok"}
    root = project.root.resolve()
    assert datasets(end, "inputs", root) == reads and reads["data.csv"] == sha256(project.root / "data.csv")
    assert datasets(end, "outputs", root) == writes == {"summary.txt": sha256(project.root / "summary.txt")}
    for event in receiver.events:
        parse(event)


@pytest.mark.kernel
def test_a_kernel_that_learns_its_notebook_at_the_first_cell_starts_under_its_name(project, receiver):
    # a plain kernel loading the extension, as nbclient runs it: nothing names the notebook
    # until trellis finds the file that holds the cell being run
    project.write("data.csv", "5\n")
    write_notebook(project.root / "found.ipynb", {
        # the run's context is written while this cell sleeps, still without a notebook
        "load": "%load_ext trellis\nimport time\ntime.sleep(4)",
        "read": "rows = open('data.csv').read().split()",
    })
    done = project.python("""
        import nbformat
        from nbclient import NotebookClient
        book = nbformat.read("found.ipynb", as_version=4)
        NotebookClient(book, kernel_name="python3", timeout=120).execute()
    """, TRELLIS_OPENLINEAGE_URL=receiver.url)
    assert done.returncode == 0

    start, end = receiver.events
    assert (start["eventType"], end["eventType"]) == ("START", "COMPLETE")
    assert start["job"]["name"] == end["job"]["name"] == "found.ipynb"
    _, reads, _ = recorded(project, start["run"]["runId"])
    assert datasets(end, "inputs", project.root.resolve()) == reads
    assert reads["data.csv"] == sha256(project.root / "data.csv")
    for event in receiver.events:
        parse(event)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_runs_under_make_are_their_targets_with_the_make_invocation_as_parent(project, receiver):
    project.write("raw.txt", "1\n2\n")
    project.write("double.py", PIPELINE)
    (project.root / "Makefile").write_text(
        f"all: quadrupled.txt\n\n"
        f"doubled.txt: raw.txt double.py\n\t{sys.executable} double.py $< $@\n\n"
        f"quadrupled.txt: doubled.txt double.py\n\t{sys.executable} double.py $< $@\n"
    )
    env = project.env(TRELLIS_OPENLINEAGE_URL=receiver.url)
    for _ in range(2):  # two invocations of make
        subprocess.run(["make", "--no-print-directory", "-B", "all"], cwd=project.root, env=env,
                       check=True, capture_output=True, timeout=240)

    events = receiver.events
    assert [(e["eventType"], e["job"]["name"]) for e in events] == [
        ("START", "make:doubled.txt"), ("COMPLETE", "make:doubled.txt"),
        ("START", "make:quadrupled.txt"), ("COMPLETE", "make:quadrupled.txt")] * 2
    parents = [e["run"]["facets"]["parent"] for e in events]
    assert {p["job"]["name"] for p in parents} == {"make all"}
    invocations = [p["run"]["runId"] for p in parents]
    # one parent run per make invocation, shared by its targets' runs, never a run's own id
    assert len(set(invocations[:4])) == len(set(invocations[4:])) == 1
    assert invocations[0] != invocations[4]
    assert not set(invocations) & {e["run"]["runId"] for e in events}
    # the second target read what the first wrote: the same dataset and version
    first, second = events[1], events[3]
    assert first["outputs"][0]["name"] == second["inputs"][0]["name"]
    assert first["outputs"][0]["facets"]["version"] == second["inputs"][0]["facets"]["version"]
    for event in events:
        parse(event)


def test_an_unreachable_endpoint_warns_once_and_the_run_is_still_recorded(project):
    project.write("data/raw.txt", "1\n")
    project.write("double.py", PIPELINE)
    done = project.run("double.py", "data/raw.txt", "data/doubled.txt",
                       TRELLIS_OPENLINEAGE_URL=f"http://127.0.0.1:{closed_port()}")
    warnings = [line for line in done.stderr.splitlines() if "Warning" in line]
    assert len(warnings) == 1, done.stderr
    assert "could not record the run's OpenLineage events" in warnings[0]
    assert "Traceback" not in done.stderr
    shown = json.loads(project.cli("show", "latest", "--json").stdout)
    assert shown["status"] == "ok" and len(shown["problems"]) == 1
    status, reads, writes = recorded(project, shown["run_id"])
    assert status == {"status": "ok"}
    assert set(writes) == {"data/doubled.txt"}


def test_an_endpoint_failing_at_the_end_is_warned_once_and_recorded_as_a_problem(project):
    failing = Receiver(accept=1)
    try:
        project.write("data/raw.txt", "1\n")
        project.write("double.py", PIPELINE)
        done = project.run("double.py", "data/raw.txt", "data/doubled.txt",
                           TRELLIS_OPENLINEAGE_URL=failing.url)
    finally:
        failing.close()
    assert [e["eventType"] for e in failing.events] == ["START"]
    assert failing.refused == 2  # the end, and its one retry
    warnings = [line for line in done.stderr.splitlines() if "Warning" in line]
    assert len(warnings) == 1 and "OpenLineage" in warnings[0], done.stderr
    shown = json.loads(project.cli("show", "latest", "--json").stdout)
    assert shown["status"] == "ok"
    assert len(shown["problems"]) == 1
    assert shown["problems"][0].startswith("the run's OpenLineage events: TrellisError: sending to")


def test_the_clients_own_settings_are_used(project, receiver, tmp_path):
    project.write("data/raw.txt", "1\n")
    project.write("double.py", PIPELINE)
    project.run("double.py", "data/raw.txt", "data/doubled.txt", OPENLINEAGE_URL=receiver.url)
    assert [e["eventType"] for e in receiver.events] == ["START", "COMPLETE"]

    events = tmp_path / "events.jsonl"
    project.write("openlineage.yml", f"transport:\n  type: file\n  log_file_path: {events}\n  append: true\n")
    project.run("double.py", "data/raw.txt", "data/doubled.txt")
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["eventType"] for e in lines] == ["START", "COMPLETE"]
    assert lines[0]["run"]["runId"] != receiver.events[0]["run"]["runId"]
    for event in lines:
        parse(event)


def test_import_trellis_loads_no_client_and_a_run_sends_nothing_unless_configured(project, receiver):
    probe = "import sys, trellis; print(sorted(m for m in sys.modules if 'openlineage' in m))"
    assert project.python(probe).stdout.strip() == "[]"
    # configured, the sender is ready, and the client is still only imported to build an event
    configured = project.python(probe, TRELLIS_OPENLINEAGE_URL=receiver.url).stdout.strip()
    assert configured == "['trellis.exporting.openlineage']"
    project.write("data/raw.txt", "1\n")
    project.write("double.py", PIPELINE)
    project.run("double.py", "data/raw.txt", "data/doubled.txt")
    assert receiver.events == []


def test_the_command_says_in_one_line_when_there_is_nowhere_to_send(project):
    project.write("data/raw.txt", "1\n")
    project.write("double.py", PIPELINE)
    project.run("double.py", "data/raw.txt", "data/doubled.txt")
    done = project.cli("openlineage", "latest", check=False)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "Error: say where to send the events: --url URL, --file events.jsonl, or"
        " TRELLIS_OPENLINEAGE_URL (docs/openlineage.md)"]
    unreachable = project.cli("openlineage", "latest", "--url", f"http://127.0.0.1:{closed_port()}", check=False)
    assert unreachable.returncode != 0 and len(unreachable.stderr.strip().splitlines()) == 1
    assert unreachable.stderr.startswith("Error: sending to http://127.0.0.1:")


def test_a_terminated_script_sends_abort(project, receiver):
    project.write("stop.py", """
        import os, signal, trellis
        open("partial.txt", "w").write("half")
        os.kill(os.getpid(), signal.SIGTERM)
    """)
    done = project.run("stop.py", check=False, TRELLIS_OPENLINEAGE_URL=receiver.url)
    assert done.returncode == -signal.SIGTERM

    start, end = receiver.events
    assert (start["eventType"], end["eventType"]) == ("START", "ABORT")
    assert end["run"]["facets"]["errorMessage"]["message"] == "terminated by SIGTERM"
    status, _, writes = recorded(project, start["run"]["runId"])
    assert status == {"status": "interrupted"}
    assert datasets(end, "outputs", project.root.resolve()) == writes == {
        "partial.txt": sha256(project.root / "partial.txt")}
    for event in receiver.events:
        parse(event)


def test_a_reproduction_has_the_run_it_reproduces_as_parent(project, receiver):
    from tests.conftest import git

    project.write("data/raw.txt", "7\n")
    project.write("double.py", PIPELINE)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", "-m", "pipeline")
    project.run("double.py", "data/raw.txt", "data/doubled.txt")
    original = json.loads(project.cli("runs", "--json").stdout)[0]["run_id"]
    project.cli("reproduce", original, env={"TRELLIS_OPENLINEAGE_URL": receiver.url})

    start, end = receiver.events
    assert (start["eventType"], end["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] != original
    for event in receiver.events:
        parent = event["run"]["facets"]["parent"]
        assert parent["run"]["runId"] == original
        assert parent["job"] == {"namespace": event["job"]["namespace"], "name": "double.py", "facets": {}}
        parse(event)


# A script's reads and writes, drawn: (file, content written, or None to read it). The truth is
# kept here, independently of trellis: a file's input version is its content when first read,
# its output version its content when last written. A read file that the script then changes
# may be unknown (a read is hashed at a flush, only if the file is still as it was read).
operations = st.lists(
    st.tuples(st.sampled_from(["a.txt", "b.txt", "sub/c.txt"]), st.none() | st.text(max_size=20)),
    min_size=1, max_size=6)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations)
@example(steps=[("a.txt", None), ("a.txt", "")])  # read, then emptied: the read may be unhashed
def test_the_datasets_are_the_versions_the_script_read_and_left(tmp_path_factory, receiver, steps):
    root = tmp_path_factory.mktemp("drawn")
    project = Project(root)
    contents = {name: f"first {name}\n" for name in ("a.txt", "b.txt", "sub/c.txt")}
    for name, text in contents.items():
        project.write(name, text)
    first_read: dict[str, str] = {}
    last_written: dict[str, str] = {}
    lines = ["import trellis"]
    changed_after_read: set[str] = set()
    for name, written in steps:
        if written is None:
            lines.append(f"open({name!r}, encoding='utf-8').read()")
            first_read.setdefault(name, contents[name])
        else:
            lines.append(f"open({name!r}, 'w', encoding='utf-8').write({written!r})")
            contents[name] = last_written[name] = written
            if name in first_read:
                changed_after_read.add(name)
    project.write("drawn.py", "\n".join(lines) + "\n")
    receiver.events.clear()
    project.run("drawn.py", TRELLIS_OPENLINEAGE_URL=receiver.url)

    start, end = receiver.events
    digest = lambda text: hashlib.sha256(text.encode("utf-8")).hexdigest()  # noqa: E731
    inputs = datasets(end, "inputs", root.resolve())
    assert set(inputs) == set(first_read)
    for name, text in first_read.items():
        assert inputs[name] in ({digest(text), None} if name in changed_after_read else {digest(text)}), name
    assert datasets(end, "outputs", root.resolve()) == {n: digest(t) for n, t in last_written.items()}
    _, reads, writes = recorded(project, start["run"]["runId"])
    assert (reads, writes) == (datasets(end, "inputs", root.resolve()), datasets(end, "outputs", root.resolve()))
