"""What users read about the command line and the settings is generated from the code, and
the public names of ``import trellis`` change only on purpose."""

from __future__ import annotations

import ast
import runpy
import subprocess
import sys
from pathlib import Path

import click
import pytest

import trellis
from trellis._config import VARIABLES

pytestmark = pytest.mark.sqlite_only("reads the source tree, not a store")

ROOT = Path(__file__).resolve().parents[2]


def _commands():
    return list(runpy.run_path(str(ROOT / "scripts" / "reference"), run_name="reference")["commands"]())


def test_the_generated_references_are_up_to_date():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "reference"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name,command", _commands(), ids=lambda value: value if isinstance(value, str) else "")
def test_every_command_says_what_it_does_and_is_documented(name, command):
    assert command.get_short_help_str().strip(), f"{name} has no help"
    for parameter in command.params:
        if isinstance(parameter, click.Option) and not parameter.hidden:
            assert parameter.help, f"{name} {parameter.opts[0]} has no help"
    assert f"## `{name}`" in (ROOT / "docs" / "cli.md").read_text()


def test_python_dash_m_trellis_is_the_command_line():
    done = subprocess.run([sys.executable, "-m", "trellis", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"trellis, version {trellis.__version__}"


def _environment_reads() -> list[tuple[str, str, int]]:
    """(file, variable, line) for every TRELLIS_* variable read from os.environ in the package."""
    found = []
    for path in (ROOT / "trellis").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            name = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                    and ast.unparse(node.func.value) in ("os.environ", "environ") and node.args:
                name = node.args[0]
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in ("os.environ", "environ") \
                    and isinstance(node.ctx, ast.Load):
                name = node.slice
            elif isinstance(node, ast.Compare) and any(ast.unparse(c) in ("os.environ", "environ")
                                                       for c in node.comparators):
                name = node.left
            if isinstance(name, ast.Constant) and str(name.value).startswith("TRELLIS_"):
                found.append((str(path.relative_to(ROOT)), name.value, node.lineno))
    return found


def test_settings_are_read_in_one_place_and_each_is_documented():
    reads = _environment_reads()
    assert {file for file, _, _ in reads} == {"trellis/_config.py"}, reads
    assert {name for _, name, _ in reads} <= {v.name for v in VARIABLES}
    documented = (ROOT / "docs" / "environment.md").read_text()
    assert all(f"`{v.name}`" in documented for v in VARIABLES)


PUBLIC = [
    "log", "arg", "loop", "iteration", "checkpointing", "commit", "dataframe", "query", "runs",
    "show", "checkpoints", "load_checkpoint", "lineage", "status", "diff", "reproduce", "replay", "export",
    "import_runs", "forget", "notebook_history", "embed_notebook", "push",
    "pull", "sparql", "widget", "openlineage", "TrellisError", "BadArgumentError", "UnknownRunError",
    "UnknownNameError", "NoCheckpointError", "StoreError", "UntrustedObjectError",
]


def test_the_public_names_are_pinned_and_belong_to_the_face():
    assert sorted(trellis.__all__) == sorted(PUBLIC)
    for name in trellis.__all__:
        assert getattr(trellis, name).__module__ == "trellis", name


def test_no_module_of_the_package_shares_a_name_with_a_public_function():
    # importing trellis.<name> rebinds the package's attribute <name> to the module
    import pkgutil

    modules = {module.name for module in pkgutil.iter_modules(trellis.__path__)}
    assert not modules & set(trellis.__all__)
