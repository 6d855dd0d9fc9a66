"""A run's lineage as OpenLineage events, sent through the OpenLineage client's own transports.

A run is one OpenLineage run (the same id): START when it has begun, then COMPLETE, FAIL or
ABORT (interrupted) when it has ended. Its job is the make target that ran it, else its script
or notebook; a run under make has the make invocation as its parent run, and a reproduction the
run it reproduces. Inputs are the files it read, outputs the files it wrote, each with its
content hash in a ``version`` facet and in trellis's ``trellis_content`` facet
(``openlineage-facets.schema.json``). Everything here is built from what the store recorded, so
a run sent live and the same run sent again later (``trellis openlineage``) give the same events.

The client is imported only when events are built: ``import trellis`` stays cheap.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from trellis import _config
from trellis._errors import TrellisError

ENDED = {"ok": "COMPLETE", "failed": "FAIL", "interrupted": "ABORT"}
# Sending must not hold a run's end for long: an endpoint that refuses or does not answer the
# connection is given up at once, a slow answer after one retry.
_TIMEOUT_SECONDS = 5.0
_RETRY = {"total": 1, "connect": 0, "read": 1, "backoff_factor": 0.2}


def events(record: dict[str, Any]) -> list[Any]:
    """START, and the end when the run has ended, of a run as ``queries.run_record`` gives it."""
    found = [start_event(record)]
    if record["status"] in ENDED:
        found.append(end_event(record))
    return found


def start_event(record: dict[str, Any]) -> Any:
    from openlineage.client.event_v2 import RunState

    # as the run was when it began, whenever it is sent
    return _event({**record, "status": "running"}, RunState.START, record["started"], with_datasets=False)


def end_event(record: dict[str, Any]) -> Any:
    from openlineage.client.event_v2 import RunState

    state = RunState(ENDED.get(record["status"], "COMPLETE"))
    return _event(record, state, record["ended"] or record["started"], with_datasets=True)


def as_dict(event: Any) -> dict[str, Any]:
    from openlineage.client.serde import Serde

    return Serde.to_dict(event)


def _event(record: dict[str, Any], state: Any, seconds: float, with_datasets: bool) -> Any:
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent
    from openlineage.client.facet_v2 import error_message_run, job_type_job, processing_engine_run

    from trellis._version import __version__
    from trellis.exporting.openlineage_facets import PRODUCER, RunRunFacet

    producer = PRODUCER
    build = record["build"] or {}
    target = record["build_target"] if build.get("kind") == "make" else None
    run_facets: dict[str, Any] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=__version__, name="trellis", openlineageAdapterVersion=_client_version(),
            producer=producer),
        "trellis_run": RunRunFacet(
            kind=record["kind"], program=record["program"], status=record["status"],
            argv=record["argv"], gitCommit=record["git_commit"], host=record["host"],
            makeTarget=target, producer=producer),
    }
    parent = _parent(record, build, producer)
    if parent is not None:
        run_facets["parent"] = parent
    if state.value in ("FAIL", "ABORT") and record["error"]:
        lines = [line for line in record["error"].strip().splitlines() if line.strip()]
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=lines[-1] if lines else record["status"], programmingLanguage="python",
            stackTrace=record["error"], producer=producer)
    job_facets = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="TRELLIS",
            jobType="MAKE_TARGET" if target else record["kind"].upper(), producer=producer),
    }
    inputs = outputs = []
    if with_datasets:
        inputs = [InputDataset(*_dataset_name(f), facets=_dataset_facets(f, producer))
                  for f in record["inputs"]]
        outputs = [OutputDataset(*_dataset_name(f), facets=_dataset_facets(f, producer))
                   for f in record["outputs"]]
    return RunEvent(
        eventType=state,
        eventTime=_instant(seconds),
        run=Run(runId=record["run_id"], facets=run_facets),
        job=Job(namespace=namespace(record["project"]), name=job_name(record), facets=job_facets),
        inputs=inputs,
        outputs=outputs,
        producer=producer,
    )


def namespace(project: str) -> str:
    return f"trellis/{project}"


def job_name(record: dict[str, Any]) -> str:
    """The make target that ran the run, else its script or notebook."""
    build = record.get("build") or {}
    if record.get("build_target") and build.get("kind", "make") == "make":
        return f"make:{record['build_target']}"
    return record["program"] or "unnamed"


def _parent(record: dict[str, Any], build: dict[str, Any], producer: str) -> Any:
    from openlineage.client.facet_v2 import parent_run

    if build.get("kind") == "make" and build.get("invocation"):
        # every run of one make invocation names the same parent run
        invocation = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:trellis:make:{build['invocation']}")
        name = " ".join(["make", *build.get("goals", [])])
        return parent_run.ParentRunFacet(
            run=parent_run.Run(runId=str(invocation)),
            job=parent_run.Job(namespace=namespace(record["project"]), name=name),
            producer=producer)
    original = record["reproduces"]
    if original is not None:
        return parent_run.ParentRunFacet(
            run=parent_run.Run(runId=original["run_id"]),
            job=parent_run.Job(namespace=namespace(original["project"]),
                               name=job_name({**original, "build": None})),
            producer=producer)
    return None


def _dataset_name(file: dict[str, Any]) -> tuple[str, str]:
    from openlineage.client.naming.dataset import LocalFileSystem

    path = file["absolute"]
    if "://" in path:
        parts = urlsplit(path)
        return f"{parts.scheme}://{parts.netloc}", parts.path or "/"
    naming = LocalFileSystem(path=path)
    return naming.get_namespace(), naming.get_name()


def _dataset_facets(file: dict[str, Any], producer: str) -> dict[str, Any]:
    from openlineage.client.facet_v2 import dataset_version_dataset

    from trellis.exporting.openlineage_facets import ContentDatasetFacet

    facets: dict[str, Any] = {
        "trellis_content": ContentDatasetFacet(sha256=file["hash"], size=file["size"], producer=producer),
    }
    if file["hash"]:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=file["hash"], producer=producer)
    return facets


def _instant(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat()


def _client_version() -> str:
    from importlib.metadata import version

    return version("openlineage-python")


# -- sending ------------------------------------------------------------------------------------


def client(url: str | None = None, file: str | Path | None = None) -> Any:
    """An OpenLineage client sending to ``file`` (JSON lines, appended), else to the HTTP
    endpoint ``url``, else ``TRELLIS_OPENLINEAGE_URL``, else wherever the client's own settings
    say (``OPENLINEAGE_URL``, ``openlineage.yml`` …)."""
    try:
        from openlineage.client import OpenLineageClient
    except ImportError:
        raise TrellisError("sending OpenLineage events needs the client: pip install 'trellis[openlineage]'"
                           ) from None
    if file is not None:
        from openlineage.client.transport.file import FileConfig, FileTransport

        return OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(file), append=True)))
    url = url or _config.openlineage_url()
    if url is not None:
        return OpenLineageClient(transport=_http(url))
    if not _config.openlineage_configured():
        raise TrellisError("say where to send the events: --url URL, --file events.jsonl, or"
                           " TRELLIS_OPENLINEAGE_URL (docs/openlineage.md)")
    return OpenLineageClient()


def _http(url: str) -> Any:
    """The server's address (the client posts to its ``/api/v1/lineage``), or a full endpoint."""
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TrellisError(f"{url!r} is not an http(s) URL of an OpenLineage endpoint")
    settings: dict[str, Any] = {"url": f"{parts.scheme}://{parts.netloc}", "timeout": _TIMEOUT_SECONDS,
                                "retry": _RETRY}
    if parts.path.strip("/"):
        settings["endpoint"] = parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
    return HttpTransport(HttpConfig.from_dict(settings))


def send(sender: Any, event: Any) -> None:
    """Emit one event; a failure is one line naming where it was sent."""
    try:
        sender.emit(event)
    except Exception as error:
        reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        raise TrellisError(f"sending to {_destination(sender)} failed: {reason}") from None


def _destination(sender: Any) -> str:
    transport = getattr(sender, "transport", None)
    if transport is None:
        return "the OpenLineage transport"
    if getattr(transport, "kind", None) == "http":
        return f"{transport.url.rstrip('/')}/{transport.endpoint.lstrip('/')}"
    if getattr(transport, "kind", None) == "file":
        return transport.config.log_file_path
    return f"the OpenLineage {transport.kind} transport"


def send_run(store: Any, run_id: int, url: str | None = None, file: str | Path | None = None) -> list[dict]:
    """Send the START and (when it has ended) the end of a recorded run; returns the events sent."""
    from trellis.queries.run_record import run_record

    sender = client(url, file)
    sent = []
    try:
        for event in events(run_record(store, run_id)):
            send(sender, event)
            sent.append(as_dict(event))
    finally:
        _close(sender)
    return sent


def _close(sender: Any) -> None:
    # An HTTP session left open is closed by its finaliser at interpreter exit, when the modules
    # it needs may be gone: a traceback after the program ended. Closed while they are alive.
    try:
        sender.close(0)
    except Exception:
        pass


class LiveSender:
    """Sends the events of the run this process records, as it begins and ends.

    The run (``capture.run.observers``) has it import the client beside the run's context, off
    the program's thread, then send START once the context is written and the end once the
    run's last flush wrote it. A failure is raised to the run, which warns once and carries on;
    nothing more is sent for the run then.
    """

    what = "the run's OpenLineage events"

    def __init__(self) -> None:
        self.sender: Any = None
        self.failed = False
        # A module that registers a clean-up with threading (the client's file transport imports
        # fsspec, which imports this) cannot be imported once the main thread has finished, which
        # a short script does before the client is imported beside it: imported now (15 ms).
        import concurrent.futures.thread  # noqa: F401

    def prepare(self) -> None:
        self._send(lambda: None)

    def started(self, run: Any) -> None:
        self._send(lambda: start_event(self._record(run)))

    def ended(self, run: Any) -> None:
        try:
            self._send(lambda: end_event(self._record(run)))
        finally:
            if self.sender is not None:
                _close(self.sender)

    @staticmethod
    def _record(run: Any) -> dict[str, Any]:
        from trellis.queries.run_record import run_record

        with run.flush_lock:  # the run's store connection is shared with its flushes
            return run_record(run.store, run.run_id, filename=run.filename)

    def _send(self, build: Any) -> None:
        if self.failed:
            return
        try:
            if self.sender is None:
                self.sender = client()
            event = build()
            if event is not None:
                send(self.sender, event)
        except Exception:
            self.failed = True
            raise
