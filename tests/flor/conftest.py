"""FlorDB 4.0.1 itself, in a virtualenv of its own (made once, then reused), next to trellis.

A behaviour is a script written for FlorDB (``import flordb as flor``) and the frames it reads
back. It runs twice, in two fresh git repositories both named ``proj``: with FlorDB in its
environment, and with only that line changed to ``from trellis import flor`` in ours. The
frames are compared cell by cell after ``str()``: FlorDB keeps every value as text, trellis
keeps its type.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import GIT_IDENTITY, Project, git
from tests.side_python import side_python

REPO = Path(__file__).resolve().parents[2]
PEER_DIR = Path(os.environ.get("TRELLIS_FLORDB_VENV", Path(__file__).parent / ".flordb"))
FLOR_IMPORT = "import flordb as flor"
TRELLIS_IMPORT = "from trellis import flor"

# The same pin the benchmarks install.
FLORDB_PIN = next(
    line.split("#")[0].strip() for line in (REPO / "benchmarks" / "peers.txt").read_text().splitlines()
    if line.startswith("flordb==")
)


@pytest.fixture(scope="session")
def flordb_python() -> Path:
    """The interpreter of a virtualenv holding the pinned FlorDB, installed from PyPI if missing."""
    return side_python(PEER_DIR, "import importlib.metadata as m; print(m.version('flordb'))",
                       FLORDB_PIN.split("==")[1], [FLORDB_PIN])


class Side:
    """One of the two: a git repository ``proj`` and the interpreter that runs flor in it."""

    def __init__(self, name: str, root: Path, python: Path, env: dict[str, str], import_line: str) -> None:
        self.name, self.root, self.python, self.env, self.import_line = name, root, python, env, import_line

    def write(self, filename: str, source: str) -> Path:
        source = textwrap.dedent(source)
        assert FLOR_IMPORT in source, "a behaviour is a FlorDB script: it imports flordb as flor"
        path = self.root / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source.replace(FLOR_IMPORT, self.import_line))
        return path

    def run(self, *argv: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(self.python), *argv], cwd=self.root, capture_output=True, text=True, env=self.env,
            timeout=240, input=stdin,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{self.name}: {' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def frames(self, *queries: tuple[str, ...]) -> list[dict]:
        """``flor.dataframe(*names)`` for each of ``queries``, read back in a separate process
        (not a recorded run on either side), normalised for comparison."""
        reader = textwrap.dedent(f"""
            import json, math, sys
            {self.import_line}
            def cell(value):
                try:
                    if value is None or value != value:
                        return None
                except (TypeError, ValueError):
                    pass
                if type(value).__name__ == "NAType":
                    return None
                return str(value)
            out = []
            for names in json.loads(sys.argv[1]):
                df = flor.dataframe(*names)
                stamps = sorted(set(df["tstamp"])) if "tstamp" in df.columns else []
                rows = []
                for record in df.to_dict("records"):
                    row = {{k: cell(v) for k, v in record.items()}}
                    if "tstamp" in row:
                        row["tstamp"] = "t%d" % stamps.index(record["tstamp"])
                    rows.append(row)
                out.append({{"columns": list(df.columns), "rows": rows, "empty": bool(df.empty)}})
            print("FRAMES" + json.dumps(out))
        """)
        done = self.run("-c", reader, json.dumps([list(q) for q in queries]))
        line = next(line for line in done.stdout.splitlines() if line.startswith("FRAMES"))
        return json.loads(line[len("FRAMES"):])


class Both:
    """The FlorDB side and the trellis side of one behaviour."""

    def __init__(self, flordb: Side, trellis: Side) -> None:
        self.flordb, self.trellis = flordb, trellis
        self.sides = (flordb, trellis)

    def write(self, filename: str, source: str) -> None:
        for side in self.sides:
            side.write(filename, source)

    def run(self, *argv: str, stdin: str | None = None) -> tuple[subprocess.CompletedProcess, ...]:
        return tuple(side.run(*argv, stdin=stdin) for side in self.sides)

    def frames(self, *queries: tuple[str, ...]) -> tuple[list[dict], list[dict]]:
        return self.flordb.frames(*queries), self.trellis.frames(*queries)


def _repository(root: Path) -> Path:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "README").write_text("a project\n")
    git(root, "add", "README")
    git(root, "commit", "-q", "-m", "first")
    return root


@pytest.fixture
def both(tmp_path: Path, flordb_python: Path) -> Both:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TRELLIS_", "MAKE", "PYTHON"))}
    base.update(GIT_IDENTITY, TQDM_DISABLE="1", PYTHONUNBUFFERED="1")
    flordb = Side("FlorDB", _repository(tmp_path / "flordb" / "proj"), flordb_python, dict(base), FLOR_IMPORT)
    trellis_root = _repository(tmp_path / "trellis" / "proj")
    trellis_env = Project(trellis_root).env(**GIT_IDENTITY, TQDM_DISABLE="1")
    trellis_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    trellis = Side("trellis", trellis_root, Path(sys.executable), trellis_env, TRELLIS_IMPORT)
    return Both(flordb, trellis)


def same_frames(flordb: list[dict], trellis: list[dict], queries: list[tuple[str, ...]]) -> None:
    """The same columns in the same order and the same rows (in any order), value by value."""
    for names, theirs, ours in zip(queries, flordb, trellis):
        assert ours["columns"] == theirs["columns"], f"dataframe{names}: columns differ"
        assert ours["empty"] == theirs["empty"], f"dataframe{names}: one is empty"
        key = lambda row: json.dumps(row, sort_keys=True)  # noqa: E731
        assert sorted(ours["rows"], key=key) == sorted(theirs["rows"], key=key), f"dataframe{names}: rows differ"
