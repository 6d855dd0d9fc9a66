"""Shared set-up: real git projects in temporary folders, scripts run as real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import postgres

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "tester", "GIT_AUTHOR_EMAIL": "tester@localhost",
    "GIT_COMMITTER_NAME": "tester", "GIT_COMMITTER_EMAIL": "tester@localhost",
}


def stop(process: subprocess.Popen, seconds: float = 30) -> None:
    """Ask a server started by a test to exit; kill it if it does not within ``seconds``."""
    process.terminate()
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_from_processes(project: Project, processes: int, values: int, timeout: float,
                       **env: str) -> None:
    """``processes`` scripts at once, each logging ``values`` ints, worker * 1e6 + i, into the
    project's store; all must succeed within ``timeout`` seconds."""
    project.write("writer.py", f"""
        import sys, trellis
        worker = int(sys.argv[1])
        for i in trellis.loop("i", range({values})):
            trellis.log("value", worker * 1_000_000 + i)
    """)
    started = [
        subprocess.Popen([sys.executable, "writer.py", str(w)], cwd=project.root, env=project.env(**env))
        for w in range(processes)
    ]
    assert [p.wait(timeout) for p in started] == [0] * processes


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
        env={**os.environ, **GIT_IDENTITY},
    ).stdout


class Project:
    """A folder (a git repository unless asked otherwise) to run scripts in."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.interpreter = sys.executable  # a side environment's, for a library we do not install

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def env(self, **extra: str) -> dict[str, str]:
        postgres.configure(self.root)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRELLIS_", "MAKE"))}
        env.update({"TRELLIS_PROGRESS": "0", "PYTHONUNBUFFERED": "1"}, **extra)
        return env

    def run(self, script: str, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [self.interpreter, script, *args], cwd=self.root, capture_output=True, text=True,
            env=self.env(**env), timeout=240,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{script} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def python(self, code: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [self.interpreter, "-c", textwrap.dedent(code)], cwd=self.root, capture_output=True,
            text=True, env=self.env(**env), timeout=240,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"python -c failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def cli(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [self.interpreter, "-m", "trellis.cli", *args], cwd=self.root, capture_output=True,
            text=True, env=self.env(**(env or {})), timeout=240,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"trellis {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def store_location(self) -> str:
        """Where the project's store is, as trellis names it in messages."""
        from trellis.store.connection import without_password

        postgres.configure(self.root)
        url = postgres.configured_store(self.root)
        return without_password(url) if url else str(self.root / ".trellis" / "trellis.db")

    def store(self):
        from trellis.store.connection import open_store

        postgres.configure(self.root)
        return open_store(root=self.root, read_only=True)


def new_project(root: Path) -> Project:
    """A fresh git repository at ``root`` (for fixtures wider than one test)."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    return Project(root)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "proj"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "README").write_text("a project\n")
    git(root, "add", "README")
    git(root, "commit", "-q", "-m", "first")
    return Project(root)


@pytest.fixture
def bare_folder(tmp_path: Path) -> Project:
    root = tmp_path / "nogit"
    root.mkdir()
    return Project(root)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store", choices=("sqlite", "postgresql"),
        default=os.environ.get("TRELLIS_TEST_STORE", "sqlite"),
        help="the store every test records into: a SQLite file per project, or a PostgreSQL"
             " database per test on a throwaway server (tests/postgres.py)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only(reason): runs on the SQLite pass only (reads the SQLite file itself, or checks what the store does not change)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--store") != "sqlite":
        for item in items:
            marker = item.get_closest_marker("sqlite_only")
            if marker is not None:
                item.add_marker(pytest.mark.skip(reason=f"SQLite only: {marker.args[0]}"))


def postgres_mode(config: pytest.Config) -> bool:
    return config.getoption("--store") == "postgresql"


@pytest.fixture(scope="session", autouse=True)
def _postgres_server(request: pytest.FixtureRequest):
    """Under --store=postgresql, every Project records into a database of its own on a real
    server, named in its ``.trellis/config.json`` (what `trellis config store` writes)."""
    if not postgres_mode(request.config):
        yield
        return
    url, cluster = postgres.server_url()
    postgres.current = postgres.Databases(url)
    yield
    postgres.current.close()
    postgres.current = None
    if cluster is not None:
        cluster.stop()


@pytest.fixture
def new_store(tmp_path: Path) -> str:
    """The URL of another, empty store: a database on the server under --store=postgresql."""
    if postgres.current is not None:
        return postgres.current.create()
    return str(tmp_path / "other-store" / "trellis.db")


@pytest.fixture(autouse=True)
def _no_ambient_store(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TRELLIS_"):
            monkeypatch.delenv(name)


CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by scripts/ensure-chromium
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium per test module: Playwright's sync API allows one at a time, and
    holds an asyncio loop open in this thread while it runs, which later tests must not meet."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
