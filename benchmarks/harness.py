"""Fresh git repositories and child processes for the benchmarks.

Every measurement runs in a new process whose working directory is a new
temporary git repository with one commit (FlorDB refuses to run outside git, and
trellis records its run at the repository's root). The parent only starts
children, times them or reads the JSON they write, and takes medians.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

BENCH_DIR = Path(__file__).resolve().parent
WORKLOADS = BENCH_DIR / "workloads"

# Commits made by the fixture or by a tool (FlorDB auto-commits) must not depend
# on the machine's git configuration.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "trellis-bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "trellis-bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}

LOG_TAIL_CHARS = 3000


class MeasurementFailed(RuntimeError):
    """A benchmark child exited non-zero (the message ends with its output), or
    produced a result that cannot be right."""


@dataclass(frozen=True)
class Interpreter:
    """A Python interpreter and the environment its children get on top of ours."""

    python: str
    env: dict[str, str] = field(default_factory=dict)

    def environ(self, extra: dict[str, str]) -> dict[str, str]:
        # Measured as users run: with bytecode caches written and reused, which a shell that
        # sets PYTHONDONTWRITEBYTECODE would turn into a compile of every module on every start.
        inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        return {**inherited, **GIT_IDENTITY, **self.env, **extra}


class Sandbox:
    """A temporary directory that hands out fresh git repositories."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="trellis-bench-"))

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _new_dir(self) -> Path:
        return Path(tempfile.mkdtemp(dir=self.root))

    def create(self, files: dict[str, str]) -> Path:
        """A new repository holding `files` (name -> text) in its first commit."""
        repo = self._new_dir()
        for name, text in files.items():
            (repo / name).write_text(text)
        for args in (
            ["init", "-q", "-b", "main"],
            ["add", "-A"],
            ["commit", "-q", "--allow-empty", "-m", "benchmark fixture"],
        ):
            subprocess.run(
                ["git", *args],
                cwd=repo,
                env={**os.environ, **GIT_IDENTITY},
                check=True,
                stdout=subprocess.DEVNULL,
            )
        return repo

    @contextmanager
    def repo(self, files: dict[str, str]) -> Iterator[Path]:
        """A fresh repository, removed afterwards."""
        repo = self.create(files)
        try:
            yield repo
        finally:
            shutil.rmtree(repo, ignore_errors=True)

    @contextmanager
    def copy(self, template: Path) -> Iterator[Path]:
        """A fresh copy of an existing repository (with its stores), removed afterwards.

        The copy keeps the template's directory name: FlorDB names its database
        after it.
        """
        repo = self._new_dir() / template.name
        shutil.copytree(template, repo, symlinks=True)
        try:
            yield repo
        finally:
            shutil.rmtree(repo.parent, ignore_errors=True)


def workload(name: str) -> str:
    """The text of a workload script, to be placed in a fresh repository."""
    return (WORKLOADS / name).read_text()


def _run(interp: Interpreter, repo: Path, args: list[str], env: dict[str, str]) -> float:
    """Run `python ARGS` in `repo`; return its wall time; raise MeasurementFailed if it fails."""
    log = repo.parent / f"{repo.name}.log"
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [interp.python, *args],
            cwd=repo,
            env=interp.environ(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        raise MeasurementFailed(
            f"`{interp.python} {' '.join(args)}` exited {proc.returncode}:\n{tail}"
        )
    return seconds


def wall_time(interp: Interpreter, repo: Path, args: list[str], env: dict[str, str] | None = None) -> float:
    """Wall time of a whole `python ARGS` process started in `repo`."""
    return _run(interp, repo, args, env or {})


def run_script(interp: Interpreter, repo: Path, script: str, env: dict[str, str] | None = None) -> dict:
    """Run `script` in `repo` and return the JSON it wrote to $BENCH_OUT."""
    result = repo.parent / f"{repo.name}.json"
    _run(interp, repo, [script], {**(env or {}), "BENCH_OUT": str(result)})
    return json.loads(result.read_text())
