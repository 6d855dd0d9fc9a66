"""PROV-O with P-Plan and REPRODUCE-ME classes (Turtle, TriG, JSON-LD), and SPARQL over it.

Every node is an IRI under ``urn:uuid:``; only classes and properties live in the vocabulary
namespaces. In TriG each run is a named graph (a ``prov:Bundle``) holding its activities and
what they alone produced; what runs share (files, notebooks and cells, libraries, settings,
variables) is in the default graph. The mapping is described in ``docs/export.md``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import rdflib

from trellis._errors import TrellisError
from trellis.exporting.prov import (
    DCTERMS,
    NODES,
    PPLAN,
    PROV,
    REPR,
    SETTING_TYPES,
    TRELLIS,
)
from trellis.queries.provenance import iri
from trellis.store.connection import Store

FORMATS = {"turtle": "turtle", "trig": "trig", "json-ld": "json-ld"}
PREFIXES = {"prov": PROV, "p-plan": PPLAN, "repr": REPR, "dcterms": DCTERMS, "trellis": TRELLIS}
SHAPES = Path(__file__).with_name("shapes.ttl")

_HEADER = "".join(f"PREFIX {prefix}: <{uri}>\n" for prefix, uri in PREFIXES.items())

# Example queries (docs/export.md); each is tested. Their ?variables are bound by `sparql`.
DATASET_OF_MODEL = _HEADER + """
# Which data files was the model at ?model_path built from? (each recorded version of it)
SELECT DISTINCT ?model_sha256 ?path ?sha256 ?source WHERE {
  ?model a repr:File ; trellis:path ?model_path ; trellis:sha256 ?model_sha256 .
  ?model (prov:wasGeneratedBy/prov:wasInformedBy*/prov:used)+ ?data .
  ?data a repr:File ; trellis:path ?path .
  OPTIONAL { ?data trellis:sha256 ?sha256 }
  BIND (NOT EXISTS { ?data prov:wasGeneratedBy ?writer } AS ?source)
} ORDER BY ?model_sha256 ?path
"""

CELLS_OF_EPOCH = _HEADER + """
# Which cells ran in the epoch whose id starts with ?epoch_id, in which order?
SELECT ?number ?cell_id ?execution_count ?status ?started ?ended WHERE {
  ?epoch a trellis:Epoch ; trellis:runId ?run_id .
  FILTER (STRSTARTS(?run_id, ?epoch_id))
  ?execution a repr:CellExecution ; dcterms:isPartOf ?epoch ; trellis:number ?number ;
             p-plan:correspondsToStep ?cell ; trellis:status ?status ; prov:startedAtTime ?started .
  ?cell trellis:cellId ?cell_id .
  OPTIONAL { ?execution trellis:executionCount ?execution_count }
  OPTIONAL { ?execution prov:endedAtTime ?ended }
} ORDER BY ?started ?number
"""

LIBRARIES_OF_OUTPUT = _HEADER + """
# Which library versions were loaded by the execution that wrote ?output_path, or by any
# execution it depended on (for data, or for code: the cell that imported a class it used)?
SELECT DISTINCT ?output_sha256 ?library ?version WHERE {
  ?output a repr:File ; trellis:path ?output_path ; trellis:sha256 ?output_sha256 ;
          prov:wasGeneratedBy ?producer .
  ?producer (prov:wasInformedBy|prov:wasInfluencedBy)* ?execution .
  ?execution prov:used ?lib .
  ?lib a repr:Library ; repr:name ?library ; trellis:version ?version .
} ORDER BY ?output_sha256 ?library
"""

RUNS_USING_FILE = _HEADER + """
# Which runs (scripts, or epochs through one of their cells) read ?path with content ?sha256?
SELECT DISTINCT ?run_id ?program ?kind ?started WHERE {
  ?file a repr:File ; trellis:path ?path ; trellis:sha256 ?sha256 .
  ?activity prov:used ?file ; dcterms:isPartOf? ?run .
  ?run trellis:runId ?run_id ; trellis:kind ?kind ; prov:startedAtTime ?started .
  OPTIONAL { ?run trellis:program ?program }
} ORDER BY ?started
"""

EXAMPLES = {
    "dataset-of-model": DATASET_OF_MODEL,
    "cells-of-epoch": CELLS_OF_EPOCH,
    "libraries-of-output": LIBRARIES_OF_OUTPUT,
    "runs-using-file": RUNS_USING_FILE,
}


def dataset(data: dict[str, Any]) -> rdflib.Dataset:
    """The RDF of ``data`` (from ``trellis.queries.provenance.provenance``), a graph per run."""
    store = rdflib.Dataset(default_union=True)
    for prefix, uri in PREFIXES.items():
        store.bind(prefix, uri, override=True, replace=True)
    _Builder(store).build(data)
    return store


def graph(data: dict[str, Any]) -> rdflib.Graph:
    """All of ``data`` as one graph: what Turtle, JSON-LD, SHACL and SPARQL see."""
    merged = rdflib.Graph(bind_namespaces="core")
    for prefix, uri in PREFIXES.items():
        merged.bind(prefix, uri)
    for subject, predicate, value, _ in dataset(data).quads():
        merged.add((subject, predicate, value))
    return merged


def serialize(data: dict[str, Any], format: str) -> str:
    if format not in FORMATS:
        raise TrellisError(f"unknown RDF format {format!r}; use one of {', '.join(FORMATS)}")
    if format == "trig":
        return dataset(data).serialize(format="trig")
    if format == "json-ld":
        return graph(data).serialize(format="json-ld", context=PREFIXES, indent=2)
    return graph(data).serialize(format="turtle")


def validate(rdf: rdflib.Graph) -> tuple[bool, str]:
    """Check ``rdf`` against trellis's SHACL shapes: (conforms, report text)."""
    import pyshacl

    conforms, _, report = pyshacl.validate(rdf, shacl_graph=str(SHAPES), shacl_graph_format="turtle")
    return bool(conforms), report


def sparql(store: Store, query: str, bindings: dict[str, str] | None = None,
           target: str | None = None) -> list[dict[str, Any]]:
    """Rows of a SPARQL SELECT over the provenance of ``target`` (a run id prefix or a
    notebook; default: every run).

    ``query`` is SPARQL text or the name of an example (``EXAMPLES``); ``bindings`` give
    values (as strings) to its variables.
    """
    from pyparsing import ParseException

    from trellis.queries.provenance import provenance
    from trellis.queries.runs import select_runs

    text = EXAMPLES.get(query, query)
    rdf = graph(provenance(store, select_runs(store, target, everything=target is None)))
    try:
        result = rdf.query(text, initBindings={k: rdflib.Literal(v) for k, v in (bindings or {}).items()})
    except ParseException as error:
        raise TrellisError(f"the SPARQL query does not parse: {error}; see docs/export.md") from None
    if result.type != "SELECT":
        raise TrellisError("only SELECT queries are supported; see docs/export.md for examples")
    names = [str(name) for name in result.vars]
    return [
        {name: _python(row[name]) for name in names if row[name] is not None}
        for row in result
    ]


def _python(term: Any) -> Any:
    return term.toPython() if isinstance(term, rdflib.Literal) else str(term)


class _Double(rdflib.Literal):
    """An xsd:double that Turtle and TriG write in full (rdflib's short form keeps 7 digits)."""

    def _literal_n3(self, use_plain: bool = False, qname_callback: Any = None) -> str:
        return super()._literal_n3(False, qname_callback)


class _Builder:
    def __init__(self, store: rdflib.Dataset) -> None:
        self.store = store
        self.shared = store.default_graph
        ns = rdflib.Namespace
        self.prov, self.pplan, self.repr = ns(PROV), ns(PPLAN), ns(REPR)
        self.dc, self.t = ns(DCTERMS), ns(TRELLIS)
        self.rdf, self.rdfs, self.xsd = rdflib.RDF, rdflib.RDFS, rdflib.XSD

    def node(self, value: str) -> Any:
        if not value.startswith(NODES):
            raise ValueError(f"{value} is not a trellis node")
        return rdflib.URIRef(value)

    def literal(self, value: Any, datatype: Any = None) -> Any:
        if isinstance(value, float):
            return _Double(value)
        return rdflib.Literal(value, datatype=datatype)

    def add(self, graph: Any, subject: str, pairs: list[tuple[Any, Any]]) -> None:
        """Statements about ``subject``; a pair whose value is None is left out."""
        me = self.node(subject)
        for predicate, value in pairs:
            if value is not None:
                graph.add((me, predicate, value))

    def build(self, data: dict[str, Any]) -> None:
        p, r, t, RDF, RDFS = self.prov, self.repr, self.t, self.rdf, self.rdfs
        text = self.literal
        for entry in data["files"]:
            self.add(self.shared, entry["iri"], [
                (RDF.type, p.Entity), (RDF.type, r.File), (RDFS.label, text(entry["path"])),
                (t.path, text(entry["path"])),
                (t.sha256, text(entry["sha256"]) if entry["sha256"] else None),
                (t.size, text(entry["size"]) if entry["size"] is not None else None),
            ])
        for entry in data["libraries"]:
            self.add(self.shared, entry["iri"], [
                (RDF.type, p.Entity), (RDF.type, r.Library),
                (RDFS.label, text(f"{entry['name']} {entry['version']}")),
                (r.name, text(entry["name"])),
                (t.version, text(entry["version"]) if entry["version"] else None),
                *[(t.module, text(module)) for module in entry["modules"]],
            ])
        for entry in data["settings"]:
            self.add(self.shared, entry["iri"], [
                (RDF.type, p.Entity), (RDF.type, r[SETTING_TYPES[entry["kind"]]]),
                (RDFS.label, text(" ".join(filter(None, (entry["name"], entry["version"]))))),
                (r.name, text(entry["name"])),
                (t.version, text(entry["version"]) if entry["version"] else None),
            ])
        for book in data["notebooks"]:
            self.add(self.shared, book["iri"], [
                (RDF.type, p.Entity), (RDF.type, p.Plan), (RDF.type, self.pplan.Plan),
                (RDF.type, r.Notebook), (RDFS.label, text(book["path"])), (t.path, text(book["path"])),
                *[(r.hasSetting, self.node(node)) for node in book["settings"]],
            ])
            for cell in book["cells"]:
                self.add(self.shared, cell["iri"], [
                    (RDF.type, self.pplan.Step), (RDF.type, r.Cell),
                    (RDFS.label, text(f"{book['path']} cell {cell['cell_id']}")),
                    (t.cellId, text(cell["cell_id"])), (self.pplan.isStepOfPlan, self.node(book["iri"])),
                ])
        for entry in data["variables"]:
            self.add(self.shared, entry["iri"], [
                (RDF.type, p.Entity), (RDF.type, t.Variable), (RDFS.label, text(entry["name"])),
                (t.name, text(entry["name"])), (t.plan, text(entry["plan"])),
            ])
        for run in data["runs"]:
            bundle = iri(uuid.UUID(run["run_id"]), "bundle")
            self.add(self.shared, bundle, [
                (RDF.type, p.Bundle), (RDF.type, p.Entity),
                (RDFS.label, text(f"provenance of run {run['run_id']}")),
            ])
            self.run(self.store.graph(self.node(bundle)), run)

    def time(self, value: str | None) -> Any:
        return self.literal(value, self.xsd.dateTime) if value else None

    def run(self, g: Any, run: dict[str, Any]) -> None:
        p, r, t, RDF, RDFS = self.prov, self.repr, self.t, self.rdf, self.rdfs
        text = self.literal
        agent = run["agent"]
        self.add(g, run["iri"], [
            (RDF.type, p.Activity), (RDF.type, t.Epoch if run["kind"] == "notebook" else t.Run),
            (RDFS.label, text(run["filename"] or run["kind"])),
            (t.runId, text(run["run_id"])), (t.kind, text(run["kind"])), (t.status, text(run["status"])),
            (t.program, text(run["filename"]) if run["filename"] else None),
            (t.error, text(run["error"]) if run["error"] else None),
            (t.gitCommit, text(run["git_commit"]) if run["git_commit"] else None),
            (t.buildTarget, text(run["build_target"]) if run["build_target"] else None),
            (t.argv, text(json.dumps(run["argv"])) if run["argv"] else None),
            (p.startedAtTime, self.time(run["started"])), (p.endedAtTime, self.time(run["ended"])),
            (p.wasAssociatedWith, self.node(agent["iri"])),
            *[(r.hasSetting, self.node(node)) for node in run["settings"]],
            *[(p.wasInformedBy, self.node(node)) for node in run["informed_by"]],
        ])
        self.add(g, agent["iri"], [
            (RDF.type, p.Agent), (RDF.type, p.SoftwareAgent),
            (RDF.type, r.Kernel if agent["kind"] == "kernel" else None), (RDFS.label, text(agent["name"])),
            *[(r.hasSetting, self.node(node)) for node in run["settings"]],
        ])
        if run["notebook"]:
            association = iri(uuid.UUID(run["run_id"]), "association")
            self.add(g, run["iri"], [(p.qualifiedAssociation, self.node(association))])
            self.add(g, association, [
                (RDF.type, p.Association), (p.agent, self.node(agent["iri"])),
                (p.hadPlan, self.node(run["notebook"])),
            ])
        self.io(g, run)
        for param in run["params"]:
            self.add(g, param["iri"], [
                (RDF.type, p.Entity), (RDF.type, r.Parameter), (RDFS.label, text(param["name"])),
                (t.name, text(param["name"])),
                (p.value, text(param["value"]) if param["value"] is not None else None),
            ])
            self.add(g, run["iri"], [(p.used, self.node(param["iri"]))])
        for execution in run["executions"]:
            self.execution(g, execution, run)
        for value in run["logged"]:
            self.add(g, value["iri"], [
                (RDF.type, p.Entity), (RDF.type, t.LoggedValue), (RDFS.label, text(value["name"])),
                (t.name, text(value["name"])), (t["count"], text(value["count"])),
                (p.value, text(value["last"]) if value["last"] is not None else None),
                (p.wasGeneratedBy, self.node(value["execution"] or run["iri"])),
            ])

    def io(self, g: Any, activity: dict[str, Any]) -> None:
        me = activity["iri"]
        self.add(g, me, [(self.prov.used, self.node(n)) for n in activity["used"] + activity["libraries"]])
        for node in activity["generated"]:
            self.add(g, node, [(self.prov.wasGeneratedBy, self.node(me))])

    def execution(self, g: Any, execution: dict[str, Any], run: dict[str, Any]) -> None:
        p, r, t, RDF, RDFS = self.prov, self.repr, self.t, self.rdf, self.rdfs
        text = self.literal
        source = execution["source"]
        cell = execution["cell"]
        self.add(g, execution["iri"], [
            (RDF.type, p.Activity), (RDF.type, self.pplan.Activity),
            (RDF.type, r.CellExecution if cell else t.StepExecution),
            (RDFS.label, text(f"{execution['cell_id']} [{execution['execution_count']}]")),
            (self.pplan.correspondsToStep, self.node(cell) if cell else None),
            (self.dc.isPartOf, self.node(run["iri"])),
            (t.number, text(execution["number"])), (t.status, text(execution["status"])),
            (t.executionCount, text(execution["execution_count"])
             if execution["execution_count"] is not None else None),
            (t.error, text(execution["error"]) if execution["error"] else None),
            (p.startedAtTime, self.time(execution["started"])), (p.endedAtTime, self.time(execution["ended"])),
            (p.wasAssociatedWith, self.node(run["agent"]["iri"])),
            (p.used, self.node(source["iri"])),
            *[(p.used, self.node(link["version"])) for link in execution["depends_on"]
              if link["version"] and link["data"]],
            *[(p.wasInformedBy if link["data"] else p.wasInfluencedBy, self.node(link["execution"]))
              for link in execution["depends_on"]],
        ])
        self.add(g, source["iri"], [
            (RDF.type, p.Entity), (RDF.type, r.Source),
            (t.sha256, text(source["sha256"]) if source["sha256"] else None),
            (p.value, text(source["text"]) if source["text"] is not None else None),
        ])
        self.io(g, execution)
        for version in execution["variables"]:
            self.add(g, version["iri"], [
                (RDF.type, p.Entity), (RDF.type, t.VariableVersion), (RDFS.label, text(version["name"])),
                (t.name, text(version["name"])), (t.type, text(version["type"])),
                (t.fingerprint, text(version["fingerprint"]) if version["fingerprint"] else None),
                (p.wasGeneratedBy, self.node(execution["iri"])),
                (p.specializationOf, self.node(version["variable"])),
            ])
        for output in execution["outputs"]:
            self.add(g, output["iri"], [
                (RDF.type, p.Entity), (RDF.type, r.Output),
                (t.outputType, text(output["output_type"]) if output["output_type"] else None),
                *[(t.mimeType, text(mime)) for mime in output["mime_types"]],
                *[(t.object, text(digest)) for digest in output["objects"]],
                (p.value, text(output["preview"]) if output["preview"] is not None else None),
                (p.wasGeneratedBy, self.node(execution["iri"])),
                (p.wasDerivedFrom, self.node(source["iri"])),
            ])
