"""A throwaway PostgreSQL cluster for the test run, and a fresh database for each test.

``pytest --store=postgresql`` (or ``TRELLIS_TEST_STORE=postgresql``) runs the suite against a
real server: the one named by ``TRELLIS_TEST_POSTGRES`` (an admin URL) if set, else a cluster
made here with Debian's ``initdb`` on a free loopback port, owned by an unprivileged user when
the tests run as root (the server refuses to run as root), and removed at the end. Each test
project gets a database of its own through its ``.trellis/config.json``, so its scripts, the
CLI and the test's own calls all find it the way a user's project would.
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    if which:
        return Path(which).parent
    raise pytest.UsageError(
        "PostgreSQL is not installed: run scripts/ensure-postgresql (or make test), or set"
        " TRELLIS_TEST_POSTGRES to the admin URL of a server"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """``initdb`` + ``pg_ctl start`` in a temporary folder. For tests durability is off (the data
    is thrown away); a benchmark asks for the server's default, durable settings."""

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.bin = _binaries()
        self.folder = Path(tempfile.mkdtemp(prefix="trellis-postgres-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(self.folder, self.user)

    def _run(self, *args: str) -> None:
        done = subprocess.run(args, user=self.user, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.folder / "server.log"
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}"
                               f"{log.read_text() if log.exists() else ''}")

    def start(self) -> str:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "trellis", "--auth=trust",
                  "-E", "UTF8", "--locale=C", "-N")
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=300"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(str(self.bin / "pg_ctl"), "start", "-w", "-D", str(self.data),
                  "-l", str(self.folder / "server.log"), "-o", options)
        return f"postgresql://trellis@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class Databases:
    """New, empty databases (a copy of template0 costs about 40 ms), all dropped at the end."""

    def __init__(self, admin_url: str) -> None:
        import psycopg

        self.admin_url = admin_url
        self.connection = psycopg.connect(admin_url, autocommit=True)
        self.numbers = itertools.count(1)
        self.prefix = f"trellis_test_{os.getpid()}_"
        self.names: list[str] = []

    def create(self) -> str:
        name = f"{self.prefix}{next(self.numbers)}"
        self.connection.execute(f"CREATE DATABASE {name} TEMPLATE template0 STRATEGY FILE_COPY")
        self.names.append(name)
        base = self.admin_url.rsplit("/", 1)[0]
        return f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"

    def close(self) -> None:
        for name in self.names:
            self.connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.connection.close()


current: Databases | None = None


def configure(root: Path) -> None:
    """Give the project at ``root`` a database of its own, as `trellis config store` would."""
    settings = root / ".trellis" / "config.json"
    if current is None or settings.exists() or not root.is_dir():
        return
    settings.parent.mkdir(exist_ok=True)
    settings.write_text(json.dumps({"store": current.create()}))


def configured_store(root: Path) -> str | None:
    settings = root / ".trellis" / "config.json"
    return json.loads(settings.read_text()).get("store") if settings.exists() else None


def server_url() -> tuple[str, Cluster | None]:
    configured = os.environ.get("TRELLIS_TEST_POSTGRES")
    if configured:
        return configured, None
    cluster = Cluster()
    return cluster.start(), cluster
