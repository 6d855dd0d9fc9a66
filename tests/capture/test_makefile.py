"""Build context from real make runs: a real Makefile whose recipes run Python that calls
build_context() and prints what it found."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trellis.capture.makefile import PROBE_VAR, build_context

REPO = Path(__file__).resolve().parents[2]
PROBE = (
    "import json; from trellis.capture.makefile import build_context; "
    "print(json.dumps(build_context()))"
)

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any make or trellis state (pytest itself may run under make)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS", "TRELLIS_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).replace("    ", "\t"))  # recipe lines need tabs


def make(cwd: Path, *args: str) -> list[dict]:
    """Run make and return the JSON objects its recipes printed, one per line."""
    done = subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # parallel recipes (-j2) may print their lines into each other's: read object after object
    decoder, found, text = json.JSONDecoder(), [], done.stdout
    at = text.find("{")
    while at != -1:
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            at = text.find("{", at + 1)
            continue
        found.append(value)
        at = text.find("{", end)
    return found


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "pipeline"
    for name in ("a", "b"):
        write(root / f"data/{name}.csv", "x,y\n1,2\n")
    write(
        root / "Makefile",
        f"""\
        PY := {sys.executable}
        PROBE := {PROBE}
        LR := 0.1

        models/model.json: data/a.csv data/b.csv
            @$(PY) -c '$(PROBE)' --out $@

        reports/%.json: data/%.csv
            @$(PY) -c '$(PROBE)' --lr $(LR) $<

        cleared/%.json: data/%.csv
            @MAKEFLAGS= $(PY) -c '$(PROBE)' --lr $(LR) $<

        direct/%.json: data/%.csv
            @$(PY) probe.py $@
        """,
    )
    # No shell metacharacters in that last recipe: make execs Python itself, with no shell.
    write(root / "probe.py", PROBE + "\n")
    return root


def test_target_with_two_prerequisites(project: Path) -> None:
    [context] = make(project, "models/model.json")

    assert context["kind"] == "make"
    assert context["target"] == "models/model.json"
    assert context["prerequisites"] == ["data/a.csv", "data/b.csv"]
    assert context["recipe"] == [f"{sys.executable} -c '{PROBE}' --out models/model.json"]
    assert context["recipe_source"] == ["@$(PY) -c '$(PROBE)' --out $@"]
    assert context["makefile"] == str(project / "Makefile")
    assert context["directory"] == str(project)
    assert context["goals"] == ["models/model.json"]
    assert context["make_command"] == ["make", "--no-print-directory", "models/model.json"]
    assert "error" not in context


def test_default_goal(project: Path) -> None:
    [context] = make(project)
    assert context["target"] == "models/model.json"
    assert context["goals"] == ["models/model.json"]


def test_pattern_rule_with_a_variable_tells_its_targets_apart(project: Path) -> None:
    contexts = make(project, "-j2", "reports/b.json", "LR=0.5", "reports/a.json")

    by_target = {context["target"]: context for context in contexts}
    assert sorted(by_target) == ["reports/a.json", "reports/b.json"]
    for name in ("a", "b"):
        context = by_target[f"reports/{name}.json"]
        assert context["prerequisites"] == [f"data/{name}.csv"]
        assert context["recipe"] == [f"{sys.executable} -c '{PROBE}' --lr 0.5 data/{name}.csv"]
        assert context["recipe_source"] == ["@$(PY) -c '$(PROBE)' --lr $(LR) $<"]
        assert context["goals"] == ["reports/b.json", "reports/a.json"]
        assert "LR=0.5" in context["make_command"]


def test_command_line_variable_when_the_recipe_clears_makeflags(project: Path) -> None:
    # Only make's own command line still says LR=0.5 (and it beats the makefile's `LR := 0.1`).
    [context] = make(project, "LR=0.5", "cleared/a.json")
    assert context["target"] == "cleared/a.json"
    assert context["recipe"] == [f"MAKEFLAGS= {sys.executable} -c '{PROBE}' --lr 0.5 data/a.csv"]


def test_oneshell_recipe_is_matched_as_a_whole(tmp_path: Path) -> None:
    root = tmp_path / "oneshell"
    write(root / "in.csv", "x\n")
    write(
        root / "Makefile",
        f"""\
        .ONESHELL:
        out.json: in.csv
            @cd .
            {sys.executable} -c '{PROBE}' --in $<
            echo done >&2
        """,
    )
    [context] = make(root)
    assert context["target"] == "out.json"
    assert context["prerequisites"] == ["in.csv"]
    assert context["recipe"][1] == f"{sys.executable} -c '{PROBE}' --in in.csv"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_command_the_shell_replaced_itself_with(tmp_path: Path) -> None:
    # bash execs the last command of `cd . && cmd`: make is then our parent, and our argv is
    # only part of the recipe line's words.
    root = tmp_path / "bash"
    write(
        root / "Makefile",
        f"""\
        SHELL := {shutil.which("bash")}
        first.json:
            cd . && {sys.executable} -c '{PROBE}' --which first
        second.json:
            cd . && {sys.executable} -c '{PROBE}' --which second
        """,
    )
    [context] = make(root, "-s", "second.json")
    assert context["target"] == "second.json"
    assert context["recipe"] == [f"cd . && {sys.executable} -c '{PROBE}' --which second"]


def test_command_executed_without_a_shell(project: Path) -> None:
    [context] = make(project, "direct/a.json")
    assert context["target"] == "direct/a.json"
    assert context["prerequisites"] == ["data/a.csv"]
    assert context["recipe"] == [f"{sys.executable} probe.py direct/a.json"]


def test_sub_make_with_directory_file_and_inherited_variable(tmp_path: Path) -> None:
    root = tmp_path / "top"
    write(root / "Makefile", "all:\n    @$(MAKE) -C stage -f build.mk features.parquet\n")
    write(root / "stage/raw.csv", "x\n")
    write(
        root / "stage/build.mk",
        f"""\
        TAG := dev

        features.parquet: raw.csv | cache
            @{sys.executable} -c '{PROBE}' --tag $(TAG) \\
              --seed 3 > $@.json; cat $@.json

        cache:
            @mkdir -p cache
        """,
    )

    [context] = make(root, "TAG=v7", "-j", "2")

    stage = root / "stage"
    assert context["target"] == "features.parquet"
    assert context["prerequisites"] == ["raw.csv"]  # the order-only `cache` is not one
    assert context["directory"] == str(stage)
    assert context["makefile"] == str(stage / "build.mk")
    assert context["goals"] == ["features.parquet"]
    assert context["make_command"] == ["make", "-C", "stage", "-f", "build.mk", "features.parquet"]
    # TAG=v7 reached the sub-make through MAKEFLAGS only, not on its command line, and beats
    # the makefile's own `TAG := dev` as a command-line variable does.
    assert context["recipe"] == [
        f"{sys.executable} -c '{PROBE}' --tag v7 \\\n  --seed 3 > features.parquet.json; cat features.parquet.json"
    ]


def test_flags_of_the_running_make_stay_out_of_the_dry_runs(project: Path) -> None:
    # --debug reaches children through MAKEFLAGS; in a dry run it would mix its messages
    # into the recipe.
    [context] = make(project, "--debug=b", "-k", "models/model.json")
    assert context["target"] == "models/model.json"
    assert context["recipe"] == [f"{sys.executable} -c '{PROBE}' --out models/model.json"]


def test_recipe_lines_make_runs_even_when_dry_do_not_recurse(tmp_path: Path) -> None:
    # `+` lines run under `make -n` too, so trellis's dry runs start this recipe again.
    root = tmp_path / "plus"
    write(
        root / "Makefile",
        f"""\
        out.txt:
            +@{sys.executable} -c '{PROBE}' >> contexts.jsonl
        """,
    )
    done = subprocess.run(["make", "out.txt"], cwd=root, env=clean_env(), capture_output=True, timeout=60)
    assert done.returncode == 0
    contexts = [json.loads(line) for line in (root / "contexts.jsonl").read_text().splitlines()]
    real = [c for c in contexts if "error" not in c]
    probes = [c for c in contexts if "error" in c]
    assert [c["target"] for c in real] == ["out.txt"]
    assert probes and all("dry run" in c["error"] for c in probes)


def test_secrets_on_the_make_command_line_are_masked(project: Path) -> None:
    [context] = make(project, "models/model.json", "API_TOKEN=s3cr3t", "--eval=DB_PASSWORD=hunter2")
    assert "API_TOKEN=***" in context["make_command"]
    assert "s3cr3t" not in json.dumps(context)
    assert "hunter2" not in json.dumps(context)
    assert context["target"] == "models/model.json"


def test_not_under_make_reports_the_parent_command(tmp_path: Path) -> None:
    # `; true` keeps the shell alive as our parent instead of exec'ing Python.
    script = f"{sys.executable} -c '{PROBE}'; true"
    done = subprocess.run(
        ["sh", "-c", script], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert json.loads(done.stdout) == {"kind": "command", "parent_command": ["sh", "-c", script]}


def test_parent_command_secrets_are_masked(tmp_path: Path) -> None:
    script = f"{sys.executable} -c '{PROBE}'; true"
    done = subprocess.run(
        ["sh", "-c", script, "sh", "--api-key", "abc123"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(done.stdout)["parent_command"] == ["sh", "-c", script, "sh", "--api-key", "***"]


def test_makelevel_without_a_make_process(tmp_path: Path) -> None:
    # MAKELEVEL leaks into everything a recipe starts (a notebook server, a daemon): with no
    # make among the ancestors, it is a plain command. The probe is orphaned on purpose, so
    # that no make above pytest (`make test`) is among its ancestors either.
    out = tmp_path / "context.json"
    code = "import time; time.sleep(0.5); " + PROBE
    launcher = (
        "import subprocess, sys; "
        f"subprocess.Popen([sys.executable, '-c', {code!r}], stdout=open({str(out)!r}, 'w'))"
    )
    env = clean_env(MAKELEVEL="1")
    subprocess.run([sys.executable, "-c", launcher], env=env, check=True, timeout=60)
    deadline = time.monotonic() + 60
    while not out.read_text().endswith("\n") and time.monotonic() < deadline:
        time.sleep(0.05)
    context = json.loads(out.read_text())
    assert context["kind"] == "command"
    assert "error" not in context


def test_in_process_without_make(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAKELEVEL", raising=False)
    monkeypatch.delenv(PROBE_VAR, raising=False)
    context = build_context()
    assert context["kind"] == "command"
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as cmdline:
        assert context["parent_command"][:1] == [os.fsdecode(cmdline.read().split(b"\0")[0])]
