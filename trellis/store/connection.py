"""Open a store: find the project, pick the dialect, create or check the schema.

The write path speaks DB-API directly (stdlib ``sqlite3``, or psycopg for PostgreSQL): an ORM
would cost a short script more time to import than its whole capture.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from trellis import _config
from trellis._errors import StoreError
from trellis.store import schema

STORE_DIR = ".trellis"
DB_NAME = "trellis.db"


def project_root(start: Path | None = None) -> Path:
    """The folder that holds ``.git`` above ``start``, else ``start`` itself."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return here


@dataclass
class Dialect:
    name: str
    types: dict[str, str]
    placeholder: str

    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


SQLITE = Dialect(
    "sqlite",
    {"id": "INTEGER PRIMARY KEY", "key": "INTEGER PRIMARY KEY", "int": "INTEGER", "float": "REAL"},
    "?",
)
POSTGRES = Dialect(
    "postgresql",
    {"id": "BIGSERIAL PRIMARY KEY", "key": "BIGINT PRIMARY KEY", "int": "BIGINT",
     "float": "DOUBLE PRECISION"},
    "%s",
)


@dataclass
class Store:
    """A connection to one store, safe to share between the threads of a process."""

    dialect: Dialect
    connection: Any
    location: str
    objects: Path
    project: Path
    lock: threading.RLock = field(default_factory=threading.RLock)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.lock:
            cursor = self.connection.cursor()
            cursor.execute(self.dialect.sql(sql), tuple(params))
            rows = cursor.fetchall() if cursor.description else []
            cursor.close()
            return rows

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            cursor = self.connection.cursor()
            cursor.executemany(self.dialect.sql(sql), rows)
            cursor.close()

    @contextmanager
    def transaction(self) -> Iterator["Store"]:
        """One write transaction; on SQLite it takes the write lock up front to avoid deadlocks."""
        with self.lock:
            if self.dialect is SQLITE:
                self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self.connection.rollback()
                raise
            else:
                self.connection.commit()

    def close(self) -> None:
        with self.lock:
            self.connection.close()


def _exclude_from_git(root: Path) -> None:
    """Keep the store out of the user's commits and snapshots without editing .gitignore."""
    git = root / ".git"
    if git.is_file():
        text = git.read_text().strip()
        if not text.startswith("gitdir:"):
            return
        git = (root / text.split(":", 1)[1].strip()).resolve()
        common = git / "commondir"
        if common.exists():
            git = (git / common.read_text().strip()).resolve()
    if not git.is_dir():
        return
    exclude = git / "info" / "exclude"
    line = f"/{STORE_DIR}/"
    try:
        current = exclude.read_text() if exclude.exists() else ""
        if line not in current.splitlines():
            exclude.parent.mkdir(parents=True, exist_ok=True)
            with exclude.open("a") as handle:
                handle.write(("" if current.endswith("\n") or not current else "\n") + line + "\n")
    except OSError:
        pass


def _connect_sqlite(path: Path, read_only: bool) -> sqlite3.Connection:
    if read_only:
        if not path.exists():
            raise StoreError(f"no trellis store at {path}; run a script that imports trellis first")
        connection = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=60, check_same_thread=False
        )
        connection.execute("PRAGMA query_only=1")
        return connection
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(
        path, timeout=60, isolation_level=None, check_same_thread=False
    )
    connection.execute("PRAGMA busy_timeout=60000")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    # DB-API transactions are managed by hand (BEGIN IMMEDIATE ... COMMIT).
    connection.isolation_level = None
    return connection


def _connect_postgres(url: str) -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError("a PostgreSQL store needs psycopg: pip install 'trellis[postgres]'") from None
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))


def _ensure_schema(store: Store) -> None:
    ddl = schema.TABLES.format(**store.dialect.types)
    with store.transaction():
        for statement in filter(str.strip, ddl.split(";")):
            store.execute(statement)
        versions = store.execute("SELECT version FROM schema_version")
        if not versions:
            store.execute("INSERT INTO schema_version (version) VALUES (?)", (schema.SCHEMA_VERSION,))
            return
        version = max(v for (v,) in versions)
        if version > schema.SCHEMA_VERSION:
            raise StoreError(
                f"the store at {store.location} has schema version {version},"
                f" newer than this trellis ({schema.SCHEMA_VERSION}); upgrade trellis"
            )
        for target in range(version + 1, schema.SCHEMA_VERSION + 1):
            for statement in schema.MIGRATIONS[target]:
                store.execute(statement)
            store.execute("UPDATE schema_version SET version = ?", (target,))


def open_store(
    url: str | None = None, *, root: Path | None = None, read_only: bool = False
) -> Store:
    """Open the store named by ``url``, ``TRELLIS_STORE``, or the project's ``.trellis/``."""
    root = project_root(root)
    url = url or _config.store_url()
    if url and url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        objects = Path(os.environ.get("TRELLIS_OBJECTS") or root / STORE_DIR / "objects")
        store = Store(POSTGRES, _connect_postgres(url), url, objects, root)
    else:
        if url is None:
            db = root / STORE_DIR / DB_NAME
            if not read_only:
                db.parent.mkdir(exist_ok=True)
                _exclude_from_git(root)
        else:
            target = Path(url.removeprefix("sqlite:///")).expanduser()
            db = target if target.suffix in (".db", ".sqlite", ".sqlite3") else target / DB_NAME
        try:
            connection = _connect_sqlite(db, read_only)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the store at {db}: {error}") from None
        store = Store(SQLITE, connection, str(db), db.parent / "objects", root)
    if not read_only:
        _ensure_schema(store)
    return store
