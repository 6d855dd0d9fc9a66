"""PROV, RDF, SHACL, SPARQL and HTML exports of a real project: two scripts and a notebook run
through `trellis run` in a real kernel."""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import sys

import nbformat
import pytest
import rdflib
from prov.model import ProvActivity, ProvDocument, ProvEntity
from rdflib import RDF, RDFS, XSD, Literal, URIRef

from tests.conftest import Project, git
from trellis._errors import TrellisError, UnknownRunError
from trellis.exporting import html, prov, rdf
from trellis.queries.provenance import provenance
from trellis.queries.runs import select_runs
from trellis.store.connection import open_store

pytestmark = pytest.mark.kernel

PROV_NS = rdflib.Namespace("http://www.w3.org/ns/prov#")
PPLAN = rdflib.Namespace("http://purl.org/net/p-plan#")
REPR = rdflib.Namespace("https://w3id.org/reproduceme#")
TRELLIS = rdflib.Namespace("urn:trellis:ns#")
DCTERMS = rdflib.Namespace("http://purl.org/dc/terms/")
VOCABULARIES = (str(PROV_NS), str(PPLAN), str(REPR), str(TRELLIS), "http://purl.org/dc/terms/",
                str(RDF), str(RDFS))

NOTEBOOK = [
    "import numpy as np\nimport pickle\nimport trellis",
    "rows = np.loadtxt('data.csv', delimiter=',')\nX, y = rows[:, :2], rows[:, 2]",
    (
        "class Model:\n    def fit(self, X, y):\n        self.coef_ = np.linalg.lstsq(X, y, rcond=None)[0]\n"
        "        return self\nmodel = Model()"
    ),
    "model.fit(X, y)\ntrellis.log('coef0', float(model.coef_[0]))\nmodel.coef_",
    "with open('model.pkl', 'wb') as handle:\n    pickle.dump(model, handle)",
]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Project:
    """data/raw.csv -> prep.py -> data/clean.csv -> train.py -> model.pkl, and a notebook
    that reads data.csv, fits a model and pickles it to model.pkl."""
    root = tmp_path_factory.mktemp("export") / "proj"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    project = Project(root)
    project.write("data/raw.csv", "a,b\n1,2\n3,4\n")
    project.write("data.csv", "1,2,5\n2,1,4\n3,3,9\n")
    project.write("prep.py", """
        import numpy as np, trellis
        scale = trellis.arg("scale", 2)
        rows = np.loadtxt("data/raw.csv", delimiter=",", skiprows=1)
        np.savetxt("data/clean.csv", rows * scale, delimiter=",")
        for epoch in trellis.loop("epoch", range(3)):
            trellis.log("loss", 1.0 / (epoch + 1))
    """)
    project.write("train.py", """
        import pickle, trellis
        lr = trellis.arg("lr", 0.1)
        with open("data/clean.csv") as handle:
            data = handle.read()
        with open("model.pkl", "wb") as handle:
            pickle.dump({"lr": lr, "size": len(data)}, handle)
    """)
    project.run("prep.py")
    project.run("train.py", "--lr", "0.3")
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(source) for source in NOTEBOOK]
    for number, cell in enumerate(book.cells):
        cell["id"] = f"cell-{number}"
    nbformat.write(book, root / "train.ipynb")
    done = subprocess.run([sys.executable, "-m", "trellis.cli", "run", "train.ipynb"], cwd=root,
                          capture_output=True, text=True, env=project.env(), timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return project


@pytest.fixture
def store(recorded, monkeypatch):
    monkeypatch.chdir(recorded.root)
    opened = open_store(root=recorded.root, read_only=True)
    yield opened
    opened.close()


def collect(store, target=None):
    return provenance(store, select_runs(store, target, everything=target is None))


@pytest.fixture
def data(store):
    return collect(store)


def sha(project, name):
    return hashlib.sha256((project.root / name).read_bytes()).hexdigest()


def run_of(data, filename):
    (found,) = [run for run in data["runs"] if run["filename"] == filename]
    return found


# -- what is collected ------------------------------------------------------------------------

def test_a_run_a_notebook_or_everything_can_be_exported(store, data):
    assert [r["filename"] for r in data["runs"]] == ["prep.py", "train.py", "train.ipynb"]
    epoch = run_of(data, "train.ipynb")
    assert [r["run_id"] for r in collect(store, "train.ipynb")["runs"]] == [epoch["run_id"]]
    assert [r["filename"] for r in collect(store, epoch["run_id"][:8])["runs"]] == ["train.ipynb"]
    assert {f["path"] for f in collect(store, "train.ipynb")["files"]} == {"data.csv", "model.pkl"}
    with pytest.raises(UnknownRunError, match="no run id starts with 'abcdef'"):
        rdf.sparql(store, "cells-of-epoch", {"epoch_id": "abcdef"}, target="abcdef")
    with pytest.raises(TrellisError, match="no recorded session ran other.ipynb"):
        rdf.sparql(store, "cells-of-epoch", {"epoch_id": "abcdef"}, target="other.ipynb")


# -- PROV ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("format", ["prov-json", "prov-n", "prov-xml"])
def test_prov_round_trips_through_the_prov_readers(data, format):
    document = prov.document(data)
    text = prov.serialize(data, format)
    read = ProvDocument.deserialize(content=text, format=prov.FORMATS[format])
    assert read == document
    assert len(read.get_records()) == len(document.get_records()) > 100


def test_prov_document_holds_runs_executions_files_values_and_agents(recorded, data):
    document = prov.document(data)
    assert {ns.prefix: ns.uri for ns in document.namespaces} == {
        "uuid": "urn:uuid:", "trellis": "urn:trellis:ns#", "repr": "https://w3id.org/reproduceme#",
        "p-plan": "http://purl.org/net/p-plan#", "dcterms": "http://purl.org/dc/terms/",
    }
    assert all(record.identifier is None or record.identifier.uri.startswith("urn:uuid:")
               for record in document.get_records())
    assert 'xmlns:prov="http://www.w3.org/ns/prov#"' in prov.serialize(data, "prov-xml")
    provn = document.get_provn()
    executions = [a for a in document.get_records(ProvActivity)
                  if "repr:CellExecution" in str(a.get_attribute("prov:type"))]
    assert len(executions) == 5
    assert all(a.get_startTime() <= a.get_endTime() for a in executions)
    files = {(path, digest) for e in document.get_records(ProvEntity)
             for path in e.get_attribute("trellis:path") for digest in e.get_attribute("trellis:sha256")}
    assert ("model.pkl", sha(recorded, "model.pkl")) in files
    assert ("data/raw.csv", sha(recorded, "data/raw.csv")) in files
    for relation in ("used(", "wasGeneratedBy(", "wasInformedBy(", "specializationOf(",
                     "wasAssociatedWith(", "wasDerivedFrom("):
        assert relation in provn
    assert 'trellis:name="lr", prov:value="0.3" %% xsd:double' in provn
    assert "trellis:count=3" in provn and 'prov:label="loss"' in provn
    assert "prov:type='prov:SoftwareAgent', prov:type='repr:Kernel'" in provn


# -- RDF ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("format", ["turtle", "trig", "json-ld"])
def test_rdf_serializations_parse_back_to_the_same_graph(data, format):
    from rdflib.compare import isomorphic

    text = rdf.serialize(data, format)
    read = rdflib.Dataset()
    read.parse(data=text, format=format)
    triples = rdflib.Graph()
    for s, p, o, _ in read.quads():
        triples.add((s, p, o))
    assert isomorphic(triples, rdf.graph(data))
    if format == "trig":  # a named graph (a prov:Bundle) per run
        named = {c.identifier for c in read.graphs() if c.identifier != rdflib.graph.DATASET_DEFAULT_GRAPH_ID}
        assert len(named) == 3
        assert all((name, RDF.type, PROV_NS.Bundle) in triples for name in named)


def test_rdf_namespaces_are_exact_and_every_node_is_a_urn_uuid(data):
    g = rdflib.Graph().parse(data=rdf.serialize(data, "turtle"), format="turtle")
    bound = dict(g.namespaces())
    assert str(bound["prov"]) == "http://www.w3.org/ns/prov#"
    assert str(bound["p-plan"]) == "http://purl.org/net/p-plan#"
    assert str(bound["repr"]) == "https://w3id.org/reproduceme#"
    classes = set(g.objects(None, RDF.type))
    assert all(str(c).startswith(VOCABULARIES) for c in classes)
    assert all(str(p).startswith(VOCABULARIES) for p in g.predicates())
    nodes = {s for s in g.subjects()} | {o for o in g.objects() if isinstance(o, URIRef)} - classes
    assert nodes and all(str(n).startswith("urn:uuid:") for n in nodes)
    assert not any(str(n).startswith(VOCABULARIES) for n in nodes)
    assert not any(isinstance(n, rdflib.BNode) for n in nodes)


def test_rdf_uses_p_plan_and_reproduce_me_classes(recorded, data):
    g = rdf.graph(data)
    (notebook,) = g.subjects(RDF.type, REPR.Notebook)
    assert (notebook, RDF.type, PPLAN.Plan) in g
    cells = set(g.subjects(RDF.type, REPR.Cell))
    assert len(cells) == 5 and all((c, PPLAN.isStepOfPlan, notebook) in g for c in cells)
    assert all((c, RDF.type, PPLAN.Step) in g for c in cells)
    executions = set(g.subjects(RDF.type, REPR.CellExecution))
    assert len(executions) == 5
    (kernel,) = g.subjects(RDF.type, REPR.Kernel)
    for execution in executions:
        assert (execution, RDF.type, PROV_NS.Activity) in g
        assert g.value(execution, PPLAN.correspondsToStep) in cells
        assert g.value(execution, PROV_NS.startedAtTime).datatype == XSD.dateTime
        assert {o.datatype for o in g.objects(execution, PROV_NS.endedAtTime)} <= {XSD.dateTime}
        assert (execution, PROV_NS.wasAssociatedWith, kernel) in g
    libraries = {str(g.value(lib, REPR.name)): str(g.value(lib, TRELLIS.version))
                 for lib in g.subjects(RDF.type, REPR.Library)}
    assert libraries["numpy"] == __import__("numpy").__version__
    for kind in (REPR.ProgrammingLanguage, REPR.OperatingSystem, REPR.Source, REPR.Output):
        assert set(g.subjects(RDF.type, kind)), kind
    (output,) = g.subjects(RDF.type, REPR.Output)
    assert g.value(output, PROV_NS.wasDerivedFrom) in set(g.subjects(RDF.type, REPR.Source))
    versions = set(g.subjects(PROV_NS.specializationOf, None))
    assert {str(g.value(v, TRELLIS.name)) for v in versions} >= {"model", "X", "y", "rows"}
    (lr,) = g.subjects(TRELLIS.name, Literal("lr"))
    assert (lr, RDF.type, REPR.Parameter) in g and g.value(lr, PROV_NS.value).toPython() == 0.3
    (loss,) = g.subjects(TRELLIS.name, Literal("loss"))
    assert g.value(loss, PROV_NS.value).toPython() == pytest.approx(1 / 3)
    assert g.value(loss, TRELLIS["count"]).toPython() == 3


# -- SHACL --------------------------------------------------------------------------------------

def test_the_export_conforms_to_the_shapes(data):
    conforms, report = rdf.validate(rdf.graph(data))
    assert conforms, report


def _breaks(g, change):
    execution = next(iter(g.subjects(RDF.type, REPR.CellExecution)))
    if change == "ends before it starts":
        start = g.value(execution, PROV_NS.startedAtTime).toPython()
        g.set((execution, PROV_NS.endedAtTime,
               Literal(start.replace(year=start.year - 1).isoformat(), datatype=XSD.dateTime)))
        return "no later than its end"
    if change == "uses a non-entity":
        g.add((execution, PROV_NS.used, URIRef("urn:uuid:00000000-0000-0000-0000-000000000000")))
        return "every prov:used target must be a prov:Entity"
    if change == "cell of no notebook":
        cell = g.value(execution, PPLAN.correspondsToStep)
        g.remove((cell, PPLAN.isStepOfPlan, None))
        return "one Cell that is a step of a Notebook"
    if change == "node in the ontology namespace":
        g.add((REPR.Cell0, RDF.type, PROV_NS.Entity))
        return "urn:uuid:"
    if change == "execution of no epoch":
        g.remove((execution, DCTERMS.isPartOf, None))
        return "belongs to exactly one epoch"
    if change == "depends on a later execution":
        by_start = sorted(g.subjects(RDF.type, REPR.CellExecution),
                          key=lambda e: g.value(e, PROV_NS.startedAtTime).toPython())
        g.add((by_start[0], PROV_NS.wasInformedBy, by_start[-1]))
        return "depends on one that started after it"
    if change == "run without a start":
        run = next(iter(g.subjects(RDF.type, TRELLIS.Run)))
        g.remove((run, PROV_NS.startedAtTime, None))
        return "a run or epoch needs one start time"
    if change == "epoch ends before it starts":
        epoch = next(iter(g.subjects(RDF.type, TRELLIS.Epoch)))
        start = g.value(epoch, PROV_NS.startedAtTime).toPython()
        g.set((epoch, PROV_NS.endedAtTime,
               Literal(start.replace(year=start.year - 1).isoformat(), datatype=XSD.dateTime)))
        return "a run or epoch needs one start time, no later than its end"
    if change == "file without a path":
        g.remove((next(iter(g.subjects(RDF.type, REPR.File))), TRELLIS.path, None))
        return "a file needs one path"
    if change == "file with a bad hash":
        hashed = next(f for f in g.subjects(RDF.type, REPR.File) if g.value(f, TRELLIS.sha256))
        g.set((hashed, TRELLIS.sha256, Literal("not-a-digest")))
        return "one sha256 in hex"
    if change == "generated by an entity":
        written = next(iter(g.subjects(PROV_NS.wasGeneratedBy, None)))
        g.add((written, PROV_NS.wasGeneratedBy, next(iter(g.subjects(RDF.type, REPR.File)))))
        return "target must be a prov:Activity"
    if change == "library without a version":
        g.remove((next(iter(g.subjects(RDF.type, REPR.Library))), TRELLIS.version, None))
        return "a library needs one version"
    if change == "empty":
        g.remove((None, None, None))
        return "the graph holds no run and no epoch"


@pytest.mark.parametrize("change", [
    "ends before it starts", "uses a non-entity", "cell of no notebook", "node in the ontology namespace",
    "execution of no epoch", "depends on a later execution", "run without a start",
    "epoch ends before it starts", "file without a path", "file with a bad hash", "generated by an entity",
    "library without a version", "empty"])
def test_a_broken_graph_does_not_conform(data, change):
    g = rdf.graph(data)
    expected = _breaks(g, change)
    conforms, report = rdf.validate(g)
    assert not conforms
    assert expected in report


# -- SPARQL examples (docs/export.md) ------------------------------------------------------------

def test_which_dataset_was_used_to_build_the_model(recorded, store):
    rows = rdf.sparql(store, rdf.DATASET_OF_MODEL, {"model_path": "model.pkl"})
    notebook_model = sha(recorded, "model.pkl")
    found = {(r["model_sha256"] == notebook_model, r["path"], r["source"]) for r in rows}
    assert found == {
        (True, "data.csv", True),  # the notebook's model: fitted on X, y read from data.csv
        (False, "data/clean.csv", False),  # the script's model, from prep.py's output ...
        (False, "data/raw.csv", True),  # ... made from the raw data
    }
    assert rdf.sparql(store, "dataset-of-model", {"model_path": "model.pkl"}) == rows


def test_which_cells_ran_in_an_epoch_in_which_order(store, data):
    epoch = run_of(data, "train.ipynb")["run_id"]
    rows = rdf.sparql(store, rdf.CELLS_OF_EPOCH, {"epoch_id": epoch[:8]})
    assert [(r["number"], r["cell_id"]) for r in rows] == [(n + 1, f"cell-{n}") for n in range(5)]
    assert all(r["execution_count"] == r["number"] and r["status"] == "ok" for r in rows)
    assert all(a["started"] <= b["started"] for a, b in itertools.pairwise(rows))


def test_which_library_versions_the_cell_that_wrote_an_output_used(recorded, store):
    rows = rdf.sparql(store, rdf.LIBRARIES_OF_OUTPUT, {"output_path": "model.pkl"})
    assert {r["output_sha256"] for r in rows} == {sha(recorded, "model.pkl")}
    versions = {r["library"]: r["version"] for r in rows}
    assert versions["numpy"] == __import__("numpy").__version__
    assert versions["trellis"] == __import__("trellis").__version__


def test_which_runs_used_a_data_file_with_a_hash(recorded, store, data):
    rows = rdf.sparql(store, rdf.RUNS_USING_FILE,
                      {"path": "data/clean.csv", "sha256": sha(recorded, "data/clean.csv")})
    assert [(r["run_id"], r["program"], r["kind"]) for r in rows] == [
        (run_of(data, "train.py")["run_id"], "train.py", "script")]
    rows = rdf.sparql(store, "runs-using-file", {"path": "data.csv", "sha256": sha(recorded, "data.csv")})
    assert [r["program"] for r in rows] == ["train.ipynb"]  # through the cell that read it
    assert rdf.sparql(store, "runs-using-file", {"path": "data.csv", "sha256": "0" * 64}) == []


def test_sparql_mistakes_are_one_line_errors(store):
    with pytest.raises(TrellisError, match="does not parse"):
        rdf.sparql(store, "SELEKT nothing")
    with pytest.raises(TrellisError, match="only SELECT"):
        rdf.sparql(store, "ASK { ?s ?p ?o }")


# -- HTML ---------------------------------------------------------------------------------------

def scripts_of(page):
    """(attributes, text) of each <script> element of an HTML page."""
    from html.parser import HTMLParser

    found = []
    inside = []

    class Scripts(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "script":
                found.append([dict(attrs), ""])
                inside.append(tag)

        def handle_endtag(self, tag):
            if tag == "script":
                inside.pop()

        def handle_data(self, text):
            if inside:
                found[-1][1] += text

    Scripts().feed(page)
    return found


def test_html_is_one_self_contained_page_with_every_text_escaped(data):
    import base64
    import json

    from trellis.ui.bundle import bundle_text

    page = html.serialize(data)
    assert page.startswith("<!DOCTYPE html>") and "<link" not in page
    (data_attrs, data_text), (code_attrs, code_text) = scripts_of(page)
    assert data_attrs == {"type": "application/json", "id": "trellis-data"}
    assert code_attrs == {"type": "module"} and code_text == bundle_text()
    digest = base64.b64encode(hashlib.sha256(code_text.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page  # the policy lets only the bundle run
    graph = json.loads(data_text)["graph"]
    labels = {node["label"] for node in graph["nodes"]}
    for text in ("data/raw.csv", "model.pkl", "[4] cell-3", "lr=0.3"):
        assert text in labels
    assert any(label.startswith("prep.py ") for label in labels)
    assert {edge["label"] for edge in graph["edges"]} == {"used", "wasGeneratedBy", "contains", "wasInformedBy"}
    hostile_name = '</script><img src=x onerror="alert(1)">'
    hostile = dict(data, runs=[dict(data["runs"][0], filename=hostile_name)])
    page = html.serialize(hostile)
    assert "<img" not in page and "</script><img" not in page
    (_, data_text), _ = scripts_of(page)
    assert any(node["label"].startswith(hostile_name) for node in json.loads(data_text)["graph"]["nodes"])
