"""A script's own argparse arguments are its params: what argparse parsed from the command line,
compared with what the script itself printed of its namespace."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trellis

SCRIPT = """
import argparse, json, pathlib
import trellis
parser = argparse.ArgumentParser()
parser.add_argument("-e", "--epochs", type=int, default=3)
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
parser.add_argument("--layers", type=int, nargs="+", default=[4, 2])
parser.add_argument("--shuffle", action="store_true")
parser.add_argument("--api-token", default=None)
parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out"))
parser.parse_args(["--epochs", "999"])  # a list the program parses for itself is not the run's
args = parser.parse_args()
print(json.dumps({name: str(value) if isinstance(value, pathlib.Path) else value
                  for name, value in vars(args).items()}))
"""

options = st.fixed_dictionaries({}, optional={
    "--epochs": st.integers(-5, 10 ** 6).map(str),
    "--lr": st.floats(1e-6, 10, allow_nan=False).map(repr),
    "--optimizer": st.sampled_from(["sgd", "adam"]),
    "--layers": st.lists(st.integers(1, 512).map(str), min_size=1, max_size=4),
    "--shuffle": st.none(),
    "--api-token": st.text("abcdefXYZ0123", min_size=1, max_size=12),
    "--out": st.sampled_from(["models/m.pt", "x", "a b"]),
})


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(chosen=options)
def test_the_params_are_what_argparse_parsed(project, monkeypatch, chosen):
    monkeypatch.chdir(project.root)
    project.write("train.py", SCRIPT)
    argv = []
    for flag, value in chosen.items():
        argv += [flag] + ([] if value is None else value if isinstance(value, list) else [value])
    parsed = json.loads(project.run("train.py", *argv).stdout)
    params = trellis.show("latest")["params"]
    assert params.pop("api_token") == ("***" if parsed.pop("api_token") is not None else None)
    assert params == parsed


def test_a_name_given_to_trellis_arg_first_keeps_its_value(project, monkeypatch):
    monkeypatch.chdir(project.root)
    project.write("both.py", """
        import argparse, trellis
        lr = trellis.arg("lr", 0.5)
        parser = argparse.ArgumentParser()
        parser.add_argument("--lr", type=float, default=0.1)
        parser.add_argument("--batch", type=int, default=32)
        parser.parse_args()
    """)
    project.run("both.py", "--batch", "64")
    assert trellis.show("latest")["params"] == {"lr": 0.5, "batch": 64}
