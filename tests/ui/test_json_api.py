"""docs/json-api.md describes every address under /api/ of the running dashboard: the same
addresses as the app's routing table, the parameters each one's code reads, and the keys of what
each answers on a recorded project."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.ui.test_hostile_data import routes_of_the_app
from tests.ui.test_server import get_json

DOC = Path(__file__).resolve().parents[2] / "docs" / "json-api.md"


def documented() -> dict[str, tuple[set[str], set[str] | None]]:
    """address -> (parameters, keys of the answer; None for a list)."""
    found = {}
    for section in re.split(r"^### ", DOC.read_text(), flags=re.M)[1:]:
        address = re.match(r"`GET (\S+)`", section).group(1)
        parameters = re.search(r"^Parameters: (.*?)\n(?=Keys:)", section, re.M | re.S).group(1)
        keys = re.search(r"^Keys: (.*?)\.\n", section, re.M | re.S).group(1)
        without_asides = re.sub(r"\([^)]*\)", "", parameters)
        found[address] = (set(re.findall(r"`(\w+)`", without_asides)),
                          None if keys == "a list" else set(re.findall(r"`(\w+)`", keys)))
    return found


def test_every_address_is_documented_with_the_parameters_it_reads(recorded):
    app = {path: params for path, params in routes_of_the_app(recorded.root) if path.startswith("/api/")}
    doc = documented()
    assert set(doc) == set(app)
    assert {path: params for path, (params, _) in doc.items()} == app


def test_every_address_answers_with_the_documented_keys(recorded, dashboard):
    runs = get_json(dashboard, "/api/runs")[1]["runs"]
    a, b = runs[-1]["run_id"], runs[0]["run_id"]
    examples = {"ref": "latest", "name": "loss", "run": "latest", "path": "analysis.ipynb",
                "target": "model.txt", "downstream": "0", "group": "1", "a": a, "b": b}
    for address, (params, keys) in documented().items():
        path = address.replace("{ref}", examples["ref"])
        query = [f"{name}={examples[name]}" for name in sorted(params) if "{" + name + "}" not in address
                 and not (address.endswith("/code") and name == "path")]
        status, answer = get_json(dashboard, path + ("?" + "&".join(query) if query else ""))
        assert status == 200, (address, answer)
        if keys is None:
            assert isinstance(answer, list) and answer, address
        else:
            assert set(answer) == keys, (address, set(answer) ^ keys)
