"""`trellis ui` over HTTP: what it binds to, the token, read-only, object hashes, and its API."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from tests.ui.conftest import HOSTILE, Dashboard


def request(base: str, path: str, method: str = "GET", headers: dict[str, str] | None = None):
    address = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def get_json(dashboard: Dashboard, path: str):
    status, _, body = request(dashboard.base, path)
    return status, json.loads(body)


def store_files(root: Path) -> dict[str, str]:
    folder = root / ".trellis"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def listening_addresses(port: int) -> list[str]:
    """The addresses a local TCP port listens on, from the kernel's own table."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.append(address)
    return found


def test_it_listens_on_loopback_only_by_default(dashboard):
    assert dashboard.url.startswith("http://127.0.0.1:")
    port = urllib.parse.urlsplit(dashboard.base).port
    assert listening_addresses(port) == ["0100007F"]  # 127.0.0.1, little-endian hex
    status, _, body = request(dashboard.base, "/api/runs", headers={"Host": "attacker.example"})
    assert status == 403 and b"loopback" in body


def test_the_api_serves_the_recorded_runs(dashboard, recorded):
    status, table = get_json(dashboard, "/api/runs")
    assert status == 200
    files = sorted(run["filename"] for run in table["runs"])
    assert files == ["analysis.ipynb", "analysis.ipynb", "broken.py", "prep.py", "train.py", "train.py", "train.py"]
    assert {"loss", "acc", "coef0", "note"} <= set(table["names"]) and table["params"] == ["lr", "scale"]
    trained = [run for run in table["runs"] if run["filename"] == "train.py"]
    assert sorted(run["params"]["lr"] for run in trained) == [0.1, 0.2, 0.3]
    slowest = next(run for run in trained if run["params"]["lr"] == 0.1)
    assert slowest["last"]["loss"] == pytest.approx(0.9 ** 12)
    broken = next(run for run in table["runs"] if run["filename"] == "broken.py")
    assert broken["status"] == "failed" and broken["last"]["note"] == HOSTILE

    status, series = get_json(dashboard, f"/api/series?name=loss&run={slowest['run_id']}")
    assert status == 200
    (line,) = series["runs"]
    assert line["loops"] == ["epoch", "step"] and len(line["points"]) == 12
    assert line["points"][5] == {"x": 5, "y": pytest.approx(0.9 ** 6), "at": {"epoch": 1, "step": 1}}
    status, series = get_json(dashboard, f"/api/series?name=acc&run={slowest['run_id'][:8]}")
    assert [p["x"] for p in series["runs"][0]["points"]] == [0, 1, 2]

    status, run = get_json(dashboard, f"/api/runs/{slowest['run_id']}")
    assert run["params"] == {"lr": 0.1} and run["logged"] == {"acc": {"forward": 3}, "loss": {"forward": 12}}
    written = [f for f in run["files"] if f["mode"] == "write"]
    assert [f["path"] for f in written] == ["model.txt"]
    loss = 1.0
    for _ in range(12):
        loss *= 1 - 0.1
    assert written[0]["hash"] == hashlib.sha256(str(loss).encode()).hexdigest()
    assert "train.py" in run["snapshot"]["files"]
    status, code = get_json(dashboard, f"/api/runs/{slowest['run_id']}/code")
    assert code["path"] == "train.py" and code["text"] == (recorded.root / "train.py").read_text()


def test_notebook_lineage_and_diff_endpoints(dashboard):
    status, notebooks = get_json(dashboard, "/api/notebooks")
    assert notebooks == [{"notebook": "analysis.ipynb", "epochs": 2, "executions": 11, "last": notebooks[0]["last"]}]
    status, graph = get_json(dashboard, "/api/notebook?path=analysis.ipynb")
    assert [len([e for e in graph["executions"] if e["epoch"] == n]) for n in (0, 1)] == [6, 5]
    assert {c["cell_id"]: c["deleted"] for c in graph["cells"]} == {
        "imports": False, "load": False, "fit": False, "hostile": False, "save": False, "fail": True}
    unused = [library["name"] for library in graph["libraries"] if library["unused"]]
    assert unused == ["json"]
    status, lineage = get_json(dashboard, "/api/lineage?target=model.txt")
    sources = {n["path"] for n in lineage["nodes"] if n["kind"] == "file" and n["source"]}
    assert sources == {"data/raw.csv"}
    status, files = get_json(dashboard, "/api/files")
    assert {"model.txt", "data/clean.csv", "coef.npy"} <= set(files)
    status, runs = get_json(dashboard, "/api/runs")
    trained = sorted((r for r in runs["runs"] if r["filename"] == "train.py"), key=lambda r: r["params"]["lr"])
    status, diff = get_json(dashboard, f"/api/diff?a={trained[0]['run_id'][:8]}&b={trained[1]['run_id'][:8]}")
    assert diff["params"]["changed"] == {"lr": {"a": 0.1, "b": 0.2}}


def test_mistakes_get_one_line_errors(dashboard):
    status, body = get_json(dashboard, "/api/runs/abcdef99")
    assert status == 404 and body == {"error": "no run id starts with 'abcdef99'; see `trellis runs` for the ids"}
    status, body = get_json(dashboard, "/api/notebook?path=missing.ipynb")
    assert status == 404 and "no recorded kernel session ran missing.ipynb" in body["error"]
    status, body = get_json(dashboard, "/api/series?name=loss")
    assert status == 404 and "at least one run" in body["error"]


def test_nothing_changes_the_store(dashboard, recorded):
    before = store_files(recorded.root)
    for path in ("/api/runs", "/api/runs/latest", "/api/notebook?path=analysis.ipynb", "/api/diff?a=latest&b=latest"):
        assert request(dashboard.base, path)[0] == 200
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/api/runs", "/", "/objects/" + "0" * 64, "/api/nothing"):
            status, _, body = request(dashboard.base, path, method)
            assert status == 405 and b"read-only" in body
    assert store_files(recorded.root) == before


def test_objects_are_served_by_hash_only(dashboard, recorded):
    status, graph = get_json(dashboard, "/api/notebook?path=analysis.ipynb")
    html_output = next(o for e in graph["executions"] for o in e["outputs"] if "text/html" in o["data"])
    digest = html_output["data"]["text/html"]["object"]
    status, headers, body = request(dashboard.base, f"/objects/{digest}")
    assert status == 200 and body.decode() == HOSTILE
    assert headers["content-type"] == "application/octet-stream"
    assert headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in headers["content-security-policy"]
    secret = recorded.root / "secret.txt"
    secret.write_text("secret contents")
    try:
        for path in ("/objects/../trellis.db", "/objects/..%2ftrellis.db", "/objects/..%2F..%2F..%2Fsecret.txt",
                     "/objects/%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt", "/objects/" + "0" * 64,
                     "/objects/" + digest.upper(), "/objects/" + digest[:2] + "%2f" + digest,
                     "/objects/" + digest + "%00", "/objects//etc/passwd", "/objects/" + str(secret)):
            status, _, body = request(dashboard.base, path)
            assert status == 404, path
            assert b"secret contents" not in body and b"SQLite" not in body
    finally:
        secret.unlink()


def test_pages_carry_a_policy_that_runs_only_the_bundle(dashboard):
    status, headers, body = request(dashboard.base, "/")
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline'; frame" not in policy.split("script-src")[1].split(";")[0]
    assert b'<script type="module" src="/static/trellis.js">' in body
    status, headers, bundle = request(dashboard.base, "/static/trellis.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript") and b"cytoscape" in bundle


def test_beyond_loopback_every_request_needs_the_token(recorded):
    served = Dashboard(recorded, "--host", "0.0.0.0")
    try:
        assert "token=" in served.url and "every request needs the token" in served.line(10)
        token = urllib.parse.parse_qs(urllib.parse.urlsplit(served.url).query)["token"][0]
        port = urllib.parse.urlsplit(served.base).port
        assert listening_addresses(port) == ["00000000"]  # every address: hence the token
        local = f"http://127.0.0.1:{port}"
        for path in ("/", "/api/runs", "/static/trellis.js", "/objects/" + "0" * 64):
            status, _, body = request(local, path)
            assert status == 401 and b"needs its token" in body
        assert request(local, "/api/runs?token=wrong")[0] == 401
        status, headers, _ = request(local, f"/api/runs?token={token}")
        assert status == 200 and "HttpOnly" in headers["set-cookie"]
        cookie = headers["set-cookie"].split(";")[0]
        assert request(local, "/api/runs", headers={"Cookie": cookie})[0] == 200
        assert request(local, "/api/runs", headers={"Authorization": f"Bearer {token}"})[0] == 200
        assert request(local, "/api/runs", headers={"Cookie": "trellis_token=x" + token})[0] == 401
    finally:
        served.stop()


def test_starting_it_wrong_is_one_line(recorded, bare_folder):
    done = subprocess.run([sys.executable, "-m", "trellis.cli", "ui", "--no-browser"], cwd=bare_folder.root,
                          capture_output=True, text=True, env=bare_folder.env(), timeout=60)
    assert done.returncode == 1
    store = bare_folder.store_location()
    assert done.stderr.strip().splitlines() == [
        f"Error: no trellis store at {store}; run a script that imports trellis first"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "trellis.cli", "ui", "--no-browser", "--port", str(port)],
                              cwd=recorded.root, capture_output=True, text=True, env=recorded.env(), timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == f"Error: port {port} is in use; pick another with --port"
