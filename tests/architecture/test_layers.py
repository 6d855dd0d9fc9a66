"""The layers, checked rather than remembered: data flows one way, capture → store → queries →
exporting / ui, with the package face (``trellis/__init__.py``, ``cli.py``, ``flor.py``) on top.

Every import is read from the source, those inside functions too (a file's head does not show
them). ``DEBTS`` names each import that breaks a rule today: the list may only shrink — a new
break fails, and so does a listed one that is gone (remove it from the list).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.sqlite_only("reads the source tree, not a store")

PACKAGE = Path(__file__).resolve().parents[2] / "trellis"

# room -> the rooms it may import (its own always allowed); the base is allowed everywhere
BASE = {"_errors", "_config", "_version"}
MAY_IMPORT = {
    "analysis": set(),
    "store": set(),
    "capture": {"store", "analysis"},
    "queries": {"store", "analysis"},
    "replaying": {"store", "queries", "analysis", "capture"},
    "exporting": {"queries"},
    "ui": {"queries", "exporting"},
    "sharing": {"store", "queries"},
    "forgetting": {"store", "queries"},
}
FACE = {"__init__", "__main__", "cli", "flor", "utils"}

DEBTS = {  # (importing module, imported module)
    ("trellis.exporting.html", "trellis.ui.bundle"),
    ("trellis.exporting.rdf", "trellis.store.connection"),
    ("trellis.sharing.flor_import", "trellis.capture.values"),  # encodes values as a run would
    ("trellis.ui.server", "trellis.store.connection"),
    ("trellis.ui.server", "trellis.store.objects"),
    ("trellis.ui.widget", "trellis.capture.notebook"),
    ("trellis.ui.widget", "trellis.capture.run"),
    ("trellis.ui.widget", "trellis.store.connection"),
}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports() -> list[tuple[str, str, int]]:
    """(importing module, imported trellis module, line) for every import in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(relative.parts).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # `from trellis import x` may name a module (trellis.x) or a name of the face
                targets = [f"{base}.{alias.name}" if (PACKAGE.parent / f"{base}.{alias.name}".replace(".", "/")).exists()
                           or (PACKAGE.parent / (f"{base}.{alias.name}".replace(".", "/") + ".py")).exists()
                           else base for alias in node.names]
            else:
                continue
            found += [(module, target, node.lineno) for target in targets
                      if target == "trellis" or target.startswith("trellis.")]
    return found


def breaks() -> set[tuple[str, str]]:
    broken = set()
    for module, target, _ in imports():
        source, destination = room(module), room(target)
        if source in FACE or destination in BASE or source == destination:
            continue
        if destination in FACE or destination not in MAY_IMPORT.get(source, set()):
            broken.add((module, target))
    return broken


def test_every_module_belongs_to_a_room():
    rooms = {room(module) for module, _, _ in imports()}
    assert rooms <= set(MAY_IMPORT) | FACE | BASE, rooms - set(MAY_IMPORT) - FACE - BASE


def test_no_import_runs_against_the_flow_beyond_the_known_debts():
    new = breaks() - DEBTS
    assert not new, "imports against the layers:\n" + "\n".join(f"  {a} -> {b}" for a, b in sorted(new))


def test_the_list_of_debts_is_true():
    paid = DEBTS - breaks()
    assert not paid, "no longer broken, remove from DEBTS:\n" + "\n".join(f"  {a} -> {b}" for a, b in sorted(paid))


def test_nothing_below_the_face_imports_the_face():
    upward = [(m, t, line) for m, t, line in imports() if room(m) not in FACE and t == "trellis"]
    assert not upward, upward


@pytest.mark.parametrize("pure", ["analysis", "store"])
def test_the_bottom_floors_import_nothing_above_them(pure):
    assert not [(m, t) for m, t in breaks() - DEBTS if room(m) == pure]


def test_git_is_called_from_one_module():
    # capture/snapshot.py also asks rev-parse directly: it reads its output when it fails
    calling = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                     if re.search(r'\[\s*"git",', path.read_text()))
    assert calling == ["capture/snapshot.py", "store/snapshots.py"]


def test_the_command_line_reads_only_through_the_public_functions():
    # it renders what trellis.<function> answers; it never opens a store or runs a query itself
    source = "\n".join(path.read_text() for path in (PACKAGE / "cli").glob("*.py"))
    assert "open_store" not in source
    assert not re.findall(r"from trellis\.(?:queries|sharing|replaying|exporting|forgetting)\b", source)
