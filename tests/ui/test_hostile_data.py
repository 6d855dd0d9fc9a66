"""No dashboard route answers 5xx to what a user can record: names and values that are awkward
in URLs, JSON, HTML, pandas or JavaScript, logged by real scripts and a real notebook, then sent
back as every parameter of every route of the running server (taken from the app's own routing
table, so a new route is covered without editing this file)."""

from __future__ import annotations

import http.client
import inspect
import json
import re
import subprocess
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import new_project, GIT_IDENTITY, Project, git
from tests.ui.conftest import Dashboard, run_notebook, write_notebook

# Names that break a naive route: URL syntax, JSON/JS object keys, pandas column rules, markup,
# empty or whitespace-only, digits-only, very long. (A lone surrogate cannot be stored: see the report.)
NAMES = [
    "", "train-epoch", "with space", "quote'\"`", "ünïcødé ✓ 日本", "<script>alert(1)</script>",
    "L" * 3000, "__proto__", "constructor", "toString", "123", "0", "-1", "1e5", " ", "\u200b",
    "\t", "a.b", "a/b", "a?b&c=d#e", "%41%", "..", "null", "NaN", "x\ny", "run_id", "tstamp",
    "filename", "projid",
]
VALUES = """[float("nan"), float("inf"), float("-inf"), 2 ** 70, -(2 ** 63), 10 ** 30, -0.0,
    1e308, 5e-324, "\\x00\\xff nul", b"\\x00\\xff", bytearray(b"ab"), {"a": [1, {"b": None}]},
    [float("nan"), {"__proto__": 1}], "<img src=x onerror=alert(1)>", True, None, "", 7]"""

SCRIPT = f"""
import json, os, sys, trellis
names = json.loads(open("names.json").read())
values = {VALUES}
for name in names:
    trellis.arg("p_" + name, 1)
for position, name in enumerate(names):
    for index in trellis.loop(name, range(2)):
        for value in values:
            trellis.log(name, value)
    os.makedirs("out", exist_ok=True)
    safe = name.replace("/", "_")[:200]
    with open(os.path.join("out", safe + ".txt"), "w") as handle:
        handle.write(name)
    with open(os.path.join("out", safe + ".txt")) as handle:
        handle.read()
for outer in trellis.loop("train-epoch", range(2)):
    for inner in trellis.loop("step ü", range(3)):
        trellis.log("loss-value", outer + inner / 10)
print("<script>alert(1)</script>", names[:5])
if len(sys.argv) > 1:
    raise ValueError(sys.argv[1])
"""

NOTEBOOK_NAME = "nb ü '<b>&#.ipynb"
NOTEBOOK = {
    "setup": "import trellis\nimport json\nnames = json.loads(open('names.json').read())",
    "log": "for name in names:\n    for i in trellis.loop(name, range(2)):\n        trellis.log(name, float('nan'))",
    "show": "from IPython.display import HTML, display\ndisplay(HTML('<script>alert(1)</script>'))\nnames[:3]",
    "fail": "raise KeyError('__proto__')",
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Project:
    project = new_project(tmp_path_factory.mktemp("hostile") / "proj ü'&")
    root = project.root
    project.write("names.json", json.dumps(NAMES))
    project.write("hostile run.py", SCRIPT)
    write_notebook(root / NOTEBOOK_NAME, NOTEBOOK)
    git(root, "add", "-A")
    subprocess.run(["git", "commit", "-qm", "hostile"], cwd=root, check=True,
                   env={**project.env(), **GIT_IDENTITY})
    project.run("hostile run.py")
    project.run("hostile run.py", "<b>failed</b>", check=False)
    run_notebook(project, NOTEBOOK_NAME)
    return project


@pytest.fixture(scope="module")
def hostile_dashboard(hostile):
    running = Dashboard(hostile)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def routes(hostile) -> list[tuple[str, set[str]]]:
    return routes_of_the_app(hostile.root)


@pytest.fixture(scope="module")
def values(hostile) -> dict[str, list[str]]:
    return recorded_values(hostile)


def routes_of_the_app(root: Path) -> list[tuple[str, set[str]]]:
    """Each route of the dashboard app with the parameters it reads: its path's, and the query
    parameters its code asks for (read from the endpoint's source)."""
    from trellis.ui.server import create_app

    app = create_app(root).app
    found = []
    for route in app.routes:
        source = "".join(inspect.getsource(code) for code in _functions_behind(route.endpoint))
        asked = set(re.findall(r'query_params\.(?:get|getlist)\("(\w+)"', source))
        asked |= set(re.findall(r'required\(request, "(\w+)"', source))
        found.append((route.path, set(route.param_convertors) | asked))
    return found


def _functions_behind(endpoint) -> list:
    """The endpoint and the functions its closures hold (the work a wrapper runs), of trellis."""
    seen, waiting = [], [endpoint]
    while waiting:
        function = waiting.pop()
        if not inspect.isfunction(function) or function in seen:
            continue
        if not function.__module__.startswith("trellis"):
            continue
        seen.append(function)
        waiting += [cell.cell_contents for cell in function.__closure__ or ()
                    if inspect.isfunction(cell.cell_contents)]
    return seen


def recorded_values(project: Project) -> dict[str, list[str]]:
    """What a user clicks through: run ids and prefixes, logged names, files, notebooks, cells,
    object hashes."""
    store = project.store()
    try:
        runs = [uuid for (uuid,) in store.execute("SELECT uuid FROM runs")]
        names = [name for (name,) in store.execute("SELECT DISTINCT name FROM logs")]
        files = [path for (path,) in store.execute("SELECT DISTINCT path FROM files")]
        cells = [f"{notebook}:{cell}" for notebook, cell in store.execute(
            "SELECT DISTINCT notebook, cell_id FROM steps WHERE notebook IS NOT NULL")]
        folder = store.objects
    finally:
        store.close()
    digests = [p.parent.name + p.name for p in Path(folder).glob("*/*") if p.is_file()]
    return {
        "ids": [*runs, *(r[:8] for r in runs), *(f"run:{r[:8]}" for r in runs)],
        "names": names,
        # the files are named after the names: a few of them say what the rest would
        "paths": [NOTEBOOK_NAME, "hostile run.py", *cells[:3], *files[:6]],
        "digests": [d for d in digests if re.fullmatch(r"[0-9a-f]{64}", d)][:3],
    }


ODD = ["", "latest", "1", "../../../../etc/passwd", "/etc/passwd", "%00", "\x00", "a" * 5000,
       "run:", ":", ".ipynb:", "0" * 64, "?", "#", "&", "=", "\\", "\ud800"]


def quoted(text: str) -> str:
    return urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe="")


def url_of(path: str, params: dict[str, list[str]], path_params: set[str]) -> str:
    for name in path_params:
        path = path.replace("{" + name + "}", quoted(params[name][0]) or "x")
    query = "&".join(f"{quoted(name)}={quoted(value)}" for name, values in params.items()
                     if name not in path_params for value in values)
    return path + ("?" + query if query else "")


class Client:
    """Requests to the running dashboard, a connection each (on a kept-alive one, each response
    waits out a delayed acknowledgement: three times slower)."""

    def __init__(self, base: str) -> None:
        address = urllib.parse.urlsplit(base)
        self.host, self.port = address.hostname, address.port

    def get(self, url: str) -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            connection.request("GET", url)
            response = connection.getresponse()
            return response.status, response.getheader("content-type", ""), response.read()
        finally:
            connection.close()

    def check(self, url: str) -> int:
        status, kind, body = self.get(url)
        assert status < 500, f"{status} for {url[:300]}: {body[:500]!r}"
        if url.startswith("/api/") and not 300 <= status < 400:  # answers and errors are JSON
            assert kind.startswith("application/json"), f"{kind} for {url[:300]}"
        if kind.startswith("application/json"):
            json.loads(body, parse_constant=_strict)  # strict JSON: what a browser can parse
        return status


def _strict(constant: str) -> None:
    raise AssertionError(f"not strict JSON: {constant}")


def test_every_route_answers_every_recorded_name_without_a_server_error(routes, values, hostile_dashboard):
    read = dict(routes)
    assert read["/api/series"] == {"name", "run"} and read["/api/runs/{ref}/code"] == {"ref", "path"}
    assert {"train-epoch", "__proto__", "L" * 3000, "x\ny"} <= set(values["names"])
    pool = list(dict.fromkeys([*values["ids"], *values["names"], *values["paths"],
                               *values["digests"], *ODD]))
    # recorded values for the other parameters of a route while one varies: a run, a name
    anchors = [values["ids"][0], "train-epoch"]
    client = Client(hostile_dashboard.base)
    answered: dict[int, int] = {}
    urls: dict[str, None] = {}
    for path, params in routes:
        path_params = {name for name in params if "{" + name + "}" in path}
        urls[url_of(path, {}, set()) if not params else path] = None
        for value in pool if params else ():
            # every parameter at once, then each one with the others at a recorded value
            trials = [{name: [value] for name in params}]
            trials += [{**{other: [anchor] for other in params}, name: [value]}
                       for name in sorted(params) for anchor in anchors if len(params) > 1]
            urls.update(dict.fromkeys(url_of(path, trial, path_params) for trial in trials))
    for url in urls:
        if "{" not in url:
            status = client.check(url)
            answered[status] = answered.get(status, 0) + 1
    assert answered.get(200, 0) > 100, answered  # the sweep reached real data, not only errors


def test_the_series_of_a_name_in_any_loop_is_answered(hostile, hostile_dashboard):
    """The reported case: a loop named `train-epoch` (not a Python identifier)."""
    (run,) = [r for r in json.loads(hostile.cli("runs", "--json").stdout)
              if r["status"] == "ok" and r["filename"] == "hostile run.py"]
    client = Client(hostile_dashboard.base)
    status, _, body = client.get(f"/api/series?name=loss-value&run={run['run_id']}")
    assert status == 200, body
    (line,) = json.loads(body)["runs"]
    assert line["loops"] == ["train-epoch", "step ü"]
    assert [p["at"] for p in line["points"][:4]] == [
        {"train-epoch": 0, "step ü": 0}, {"train-epoch": 0, "step ü": 1},
        {"train-epoch": 0, "step ü": 2}, {"train-epoch": 1, "step ü": 0}]
    assert [p["y"] for p in line["points"]] == pytest.approx([0, 0.1, 0.2, 1, 1.1, 1.2])
    status, _, body = client.get(f"/api/series?name=train-epoch&run={run['run_id']}")
    (line,) = json.loads(body)["runs"]  # the name of its own loop: the loop's column gets a suffix
    assert status == 200 and line["loops"] == ["train-epoch (loop)"]
    assert [p["y"] for p in line["points"][:3]] == ["inf", "-inf", 2 ** 70]  # NaN is no point


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_text_in_any_parameter_is_answered(routes, values, hostile_dashboard, data):
    path, params = data.draw(st.sampled_from(routes))
    path_params = {name for name in params if "{" + name + "}" in path}
    recorded = st.sampled_from([*values["ids"], *values["names"][:20], *values["paths"]])
    trial = {name: data.draw(st.lists(st.text(max_size=40) | recorded, min_size=1, max_size=3))
             for name in sorted(params)}
    Client(hostile_dashboard.base).check(url_of(path, trial, path_params))
