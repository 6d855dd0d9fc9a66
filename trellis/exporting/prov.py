"""W3C PROV documents (PROV-JSON, PROV-N, PROV-XML) of what the store recorded, via ``prov``.

Runs, notebook epochs and cell executions are activities; files, params, logged values,
variable versions, cell sources and outputs, libraries and settings are entities; the kernel or
interpreter of each run is a software agent. Every identifier is under ``urn:uuid:``; the
mapping is described in ``docs/export.md``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from trellis._errors import TrellisError

if TYPE_CHECKING:
    from prov.model import ProvDocument

PROV = "http://www.w3.org/ns/prov#"
PPLAN = "http://purl.org/net/p-plan#"
REPR = "https://w3id.org/reproduceme#"
DCTERMS = "http://purl.org/dc/terms/"
TRELLIS = "urn:trellis:ns#"
NODES = "urn:uuid:"

FORMATS = {"prov-json": "json", "prov-n": "provn", "prov-xml": "xml"}
SETTING_TYPES = {"language": "ProgrammingLanguage", "os": "OperatingSystem"}


def document(data: dict[str, Any]) -> ProvDocument:
    """The PROV document of ``data`` (from ``trellis.queries.provenance.provenance``)."""
    try:
        from prov.model import ProvDocument
    except ImportError:
        raise TrellisError("PROV export needs the prov package: pip install 'trellis[export]'") from None

    doc = ProvDocument()
    return _Builder(doc).build(data)


def serialize(data: dict[str, Any], format: str) -> str:
    if format not in FORMATS:
        raise TrellisError(f"unknown PROV format {format!r}; use one of {', '.join(FORMATS)}")
    if format == "prov-xml":
        try:
            import lxml.etree  # noqa: F401  (prov writes XML with it, and names only its own extra)
        except ImportError:
            raise TrellisError("PROV-XML export needs lxml: pip install 'trellis[export]'") from None
    doc = document(data)
    if format == "prov-n":
        return doc.get_provn() + "\n"
    return doc.serialize(format=FORMATS[format], **({"indent": 2} if format == "prov-json" else {}))


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _attributes(pairs: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Attributes without the empty ones (prov keeps a list, so a name may repeat)."""
    return [(name, value) for name, value in pairs if value is not None]


class _Builder:
    def __init__(self, doc: ProvDocument) -> None:
        from prov.constants import PROV as prov_namespace

        self.doc = doc
        self.node = doc.add_namespace("uuid", NODES)
        self.trellis = doc.add_namespace("trellis", TRELLIS)
        self.repr = doc.add_namespace("repr", REPR)
        self.pplan = doc.add_namespace("p-plan", PPLAN)
        self.dcterms = doc.add_namespace("dcterms", DCTERMS)
        self.prov = prov_namespace
        self.informed: set[tuple[str, str]] = set()

    def id(self, iri: str) -> Any:
        return self.node[iri.removeprefix(NODES)]

    def build(self, data: dict[str, Any]) -> ProvDocument:
        t, r, p = self.trellis, self.repr, self.pplan
        for entry in data["files"]:
            self.doc.entity(self.id(entry["iri"]), _attributes([
                ("prov:type", r["File"]), ("prov:label", entry["path"]), (t["path"], entry["path"]),
                (t["sha256"], entry["sha256"]), (t["size"], entry["size"]),
            ]))
        for entry in data["libraries"]:
            self.doc.entity(self.id(entry["iri"]), _attributes([
                ("prov:type", r["Library"]), ("prov:label", f"{entry['name']} {entry['version']}"),
                (r["name"], entry["name"]), (t["version"], entry["version"]),
                *[(t["module"], module) for module in entry["modules"]],
            ]))
        for entry in data["settings"]:
            self.doc.entity(self.id(entry["iri"]), _attributes([
                ("prov:type", r[SETTING_TYPES[entry["kind"]]]),
                ("prov:label", " ".join(filter(None, (entry["name"], entry["version"])))),
                (r["name"], entry["name"]), (t["version"], entry["version"]),
            ]))
        for book in data["notebooks"]:
            self.doc.entity(self.id(book["iri"]), [
                ("prov:type", self.prov["Plan"]), ("prov:type", p["Plan"]), ("prov:type", r["Notebook"]),
                ("prov:label", book["path"]), (t["path"], book["path"]),
                *[(r["hasSetting"], self.id(node)) for node in book["settings"]],
            ])
            for cell in book["cells"]:
                self.doc.entity(self.id(cell["iri"]), [
                    ("prov:type", p["Step"]), ("prov:type", r["Cell"]),
                    ("prov:label", f"{book['path']} cell {cell['cell_id']}"),
                    (t["cellId"], cell["cell_id"]), (p["isStepOfPlan"], self.id(book["iri"])),
                ])
        for entry in data["variables"]:
            self.doc.entity(self.id(entry["iri"]), [
                ("prov:type", t["Variable"]), ("prov:label", entry["name"]),
                (t["name"], entry["name"]), (t["plan"], entry["plan"]),
            ])
        for run in data["runs"]:
            self.run(run)
        return self.doc

    def run(self, run: dict[str, Any]) -> None:
        t, r = self.trellis, self.repr
        me = self.id(run["iri"])
        kind = t["Epoch"] if run["kind"] == "notebook" else t["Run"]
        self.doc.activity(me, _time(run["started"]), _time(run["ended"]), _attributes([
            ("prov:type", kind), ("prov:label", run["filename"] or run["kind"]),
            (t["runId"], run["run_id"]), (t["kind"], run["kind"]), (t["status"], run["status"]),
            (t["error"], run["error"]), (t["gitCommit"], run["git_commit"]),
            (t["buildTarget"], run["build_target"]),
            *[(r["hasSetting"], self.id(node)) for node in run["settings"]],
        ]))
        agent = run["agent"]
        self.doc.agent(self.id(agent["iri"]), [
            ("prov:type", self.prov["SoftwareAgent"]),
            *([("prov:type", r["Kernel"])] if agent["kind"] == "kernel" else []),
            ("prov:label", agent["name"]),
            *[(r["hasSetting"], self.id(node)) for node in run["settings"]],
        ])
        plan = self.id(run["notebook"]) if run["notebook"] else None
        self.doc.wasAssociatedWith(me, self.id(agent["iri"]), plan)
        self.io(me, run)
        for param in run["params"]:
            self.doc.entity(self.id(param["iri"]), _attributes([
                ("prov:type", r["Parameter"]), ("prov:label", param["name"]),
                (t["name"], param["name"]), ("prov:value", param["value"]),
            ]))
            self.doc.used(me, self.id(param["iri"]))
        for source in run["informed_by"]:
            self.doc.wasInformedBy(me, self.id(source))
        for execution in run["executions"]:
            self.execution(execution, run)
        for value in run["logged"]:
            self.doc.entity(self.id(value["iri"]), _attributes([
                ("prov:type", t["LoggedValue"]), ("prov:label", value["name"]),
                (t["name"], value["name"]), ("prov:value", value["last"]), (t["count"], value["count"]),
            ]))
            self.doc.wasGeneratedBy(self.id(value["iri"]), self.id(value["execution"] or run["iri"]))

    def io(self, me: Any, activity: dict[str, Any]) -> None:
        for node in activity["used"] + activity["libraries"]:
            self.doc.used(me, self.id(node))
        for node in activity["generated"]:
            self.doc.wasGeneratedBy(self.id(node), me)

    def execution(self, execution: dict[str, Any], run: dict[str, Any]) -> None:
        t, r, p = self.trellis, self.repr, self.pplan
        me = self.id(execution["iri"])
        self.doc.activity(me, _time(execution["started"]), _time(execution["ended"]), _attributes([
            ("prov:type", r["CellExecution"] if execution["cell"] else t["StepExecution"]),
            ("prov:label", f"{execution['cell_id']} [{execution['execution_count']}]"),
            (t["executionCount"], execution["execution_count"]), (t["number"], execution["number"]),
            (t["status"], execution["status"]), (t["error"], execution["error"]),
            (self.dcterms["isPartOf"], self.id(run["iri"])),
            (p["correspondsToStep"], self.id(execution["cell"]) if execution["cell"] else None),
        ]))
        self.doc.wasAssociatedWith(me, self.id(run["agent"]["iri"]))
        source = execution["source"]
        self.doc.entity(self.id(source["iri"]), _attributes([
            ("prov:type", r["Source"]), (t["sha256"], source["sha256"]), ("prov:value", source["text"]),
        ]))
        self.doc.used(me, self.id(source["iri"]))
        self.io(me, execution)
        for version in execution["variables"]:
            self.doc.entity(self.id(version["iri"]), _attributes([
                ("prov:type", t["VariableVersion"]), ("prov:label", version["name"]),
                (t["name"], version["name"]), (t["type"], version["type"]),
                (t["fingerprint"], version["fingerprint"]),
            ]))
            self.doc.wasGeneratedBy(self.id(version["iri"]), me)
            self.doc.specializationOf(self.id(version["iri"]), self.id(version["variable"]))
        for link in execution["depends_on"]:
            if not link["data"]:
                # code (an import, a def) from an earlier cell: an influence, no data flowed
                self.doc.wasInfluencedBy(me, self.id(link["execution"]))
                continue
            if link["version"]:
                self.doc.used(me, self.id(link["version"]))
            if (execution["iri"], link["execution"]) not in self.informed:
                self.informed.add((execution["iri"], link["execution"]))
                self.doc.wasInformedBy(me, self.id(link["execution"]))
        for output in execution["outputs"]:
            self.doc.entity(self.id(output["iri"]), _attributes([
                ("prov:type", r["Output"]), (t["outputType"], output["output_type"]),
                *[(t["mimeType"], mime) for mime in output["mime_types"]],
                *[(t["object"], digest) for digest in output["objects"]],
                ("prov:value", output["preview"]),
            ]))
            self.doc.wasGeneratedBy(self.id(output["iri"]), me)
            self.doc.wasDerivedFrom(self.id(output["iri"]), self.id(source["iri"]))
