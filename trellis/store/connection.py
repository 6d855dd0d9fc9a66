"""Open a store: find the project, pick the dialect, create or check the schema.

The write path speaks DB-API directly (stdlib ``sqlite3``, or psycopg for PostgreSQL): an ORM
would cost a short script more time to import than its whole capture. Statements are written
once with ``?`` placeholders; the dialect rewrites them for psycopg.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Sequence

from trellis import _config
from trellis._errors import StoreError
from trellis.store import schema, settings

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
        return text if self.placeholder == "?" else _percent_style(text)


@lru_cache(maxsize=1024)
def _percent_style(text: str) -> str:
    # psycopg reads % as the start of a placeholder, so a literal one (LIKE 'a%') is doubled.
    return text.replace("%", "%%").replace("?", "%s")


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


_DATABASE_LOCKS: dict[str, threading.RLock] = {}
_DATABASE_LOCKS_GUARD = threading.Lock()


def database_lock(path: str) -> threading.RLock:
    """The one lock of this process for the SQLite file at ``path``, held by every connection
    to it while it works.

    The ADBC driver that reads results into Arrow carries a copy of SQLite of its own. File
    locks belong to the process, so that copy cannot see the other's: opening the database while
    a ``sqlite3`` connection of the same process is working on it, it takes itself for the only
    connection and resets the shared-memory file the other has mapped (the process dies of
    SIGBUS, or the write fails with "locking protocol"). Within a process, the two take turns.
    """
    key = os.path.realpath(path)
    with _DATABASE_LOCKS_GUARD:
        return _DATABASE_LOCKS.setdefault(key, threading.RLock())


@dataclass
class Store:
    """A connection to one store, safe to share between the threads of a process.

    ``location`` names the store for messages (a PostgreSQL URL without its password); ``url``
    is what other readers connect with. ``objects`` is a folder, or an fsspec location such as
    ``s3://bucket/prefix`` (a ``UPath``, which has the same methods).
    """

    dialect: Dialect
    connection: Any
    location: str
    objects: Any
    project: Path
    lock: threading.RLock = field(default_factory=threading.RLock)
    url: str | None = None
    readers: dict[str, Any] = field(default_factory=dict)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.lock:
            cursor = self.connection.cursor()
            try:
                cursor.execute(self.dialect.sql(sql), tuple(params))
            except Exception as error:
                # psycopg refuses a NUL inside a text before sending anything: send it cleaned
                if not _nul_refused(error):
                    raise
                cursor.execute(self.dialect.sql(sql), _without_nul(params))
            rows = cursor.fetchall() if cursor.description else []
            cursor.close()
            return rows

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            if self.dialect is POSTGRES:
                rows = [_without_nul(row) if _has_nul(row) else row for row in rows]
            cursor = self.connection.cursor()
            cursor.executemany(self.dialect.sql(sql), rows)
            cursor.close()

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Append many rows: ``executemany`` on SQLite, COPY on PostgreSQL (20x faster there)."""
        if not rows:
            return
        if self.dialect is SQLITE:
            cursor = self.connection.cursor()
            cursor.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                rows,
            )
            cursor.close()
            return
        with self.connection.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                write = copy.write_row
                for row in rows:
                    try:
                        write(row)
                    except Exception as error:  # a row fails whole and alone; nothing of it is sent
                        if not _nul_refused(error):
                            raise
                        write(_without_nul(row))

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        """Column names and rows of a user's read-only SQL (``?`` placeholders on every store)."""
        with self.lock:
            cursor = self.connection.cursor()
            try:
                cursor.execute(self.dialect.sql(sql), tuple(params))
                columns = [c[0] for c in cursor.description or []]
                return columns, cursor.fetchall() if cursor.description else []
            finally:
                cursor.close()

    @contextmanager
    def transaction(self) -> Iterator["Store"]:
        """One write transaction; on SQLite it takes the write lock up front to avoid deadlocks."""
        with self.lock:
            if self.dialect is not SQLITE:
                with self.connection.transaction():
                    yield self
                return
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
            for reader in self.readers.values():
                reader.close()
            self.readers.clear()
            self.connection.close()


def _nul_refused(error: Exception) -> bool:
    return type(error).__module__.startswith("psycopg") and "NUL" in str(error)


def _has_nul(row: Sequence[Any]) -> bool:
    return any(type(value) is str and "\x00" in value for value in row)


def _without_nul(row: Sequence[Any]) -> tuple:
    """PostgreSQL text cannot hold NUL characters: each becomes U+FFFD."""
    return tuple(value.replace("\x00", "\ufffd") if type(value) is str else value for value in row)


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
            f"file:{path}?mode=ro", uri=True, timeout=_config.lock_timeout(), check_same_thread=False
        )
        connection.execute("PRAGMA query_only=1")
        return connection
    path.parent.mkdir(parents=True, exist_ok=True)
    timeout = _config.lock_timeout()
    connection = sqlite3.connect(
        path, timeout=timeout, isolation_level=None, check_same_thread=False
    )
    connection.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    # DB-API transactions are managed by hand (BEGIN IMMEDIATE ... COMMIT).
    connection.isolation_level = None
    return connection


POSTGRES_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://")


def libpq_url(url: str) -> str:
    """The URL as libpq (psycopg, ADBC) reads it: without SQLAlchemy's driver suffix."""
    return "postgresql://" + url.split("://", 1)[1]


def without_password(url: str) -> str:
    return re.sub(r"^([a-z+]+://[^:/@]*):[^@/]*@", r"\1:***@", url)


def _connect_postgres(url: str, read_only: bool) -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError("a PostgreSQL store needs psycopg: pip install 'trellis[postgres]'") from None
    try:
        connection = psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=15)
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise StoreError(f"cannot connect to the store at {without_password(url)}: {reason}") from None
    # a lock held elsewhere makes a write wait this long and fail, as SQLite's busy timeout does
    connection.execute(f"SET lock_timeout = {int(_config.lock_timeout() * 1000)}")
    if read_only:
        connection.execute("SET default_transaction_read_only = on")
        found = connection.execute("SELECT to_regclass('runs') IS NOT NULL").fetchone()
        if not found[0]:
            connection.close()
            raise StoreError(
                f"no trellis store at {without_password(url)}; run a script that imports trellis first"
            )
    return connection


_NAMED = re.compile(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)")


def _schema_is_current(store: Store) -> bool:
    """On PostgreSQL, DDL takes locks that make concurrent writers wait: skip it when it would
    change nothing."""
    present = {name for (name,) in store.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema()"
    )}
    if not set(_NAMED.findall(schema.TABLES)) <= present:
        return False
    return store.execute("SELECT MAX(version) FROM schema_version")[0][0] == schema.SCHEMA_VERSION


def _ensure_schema(store: Store) -> None:
    ddl = schema.TABLES.format(**store.dialect.types)
    if store.dialect is POSTGRES and _schema_is_current(store):
        return
    with store.transaction():
        if store.dialect is POSTGRES:
            # concurrent CREATE TABLE IF NOT EXISTS can collide in the catalog: one at a time
            store.execute("SELECT pg_advisory_xact_lock(?)", (0x7472656C6C6973,))
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
                store.execute(statement.format(**store.dialect.types))
            store.execute("UPDATE schema_version SET version = ?", (target,))


def objects_location(location: str | None, root: Path) -> Any:
    """A folder, or an fsspec URL (``s3://bucket/prefix``) every machine of a team reaches."""
    if not location:
        return root / STORE_DIR / "objects"
    if "://" in location and not location.startswith("file://"):
        try:
            from upath import UPath

            return UPath(location)
        except ImportError:
            raise StoreError(
                f"objects at {location} need fsspec: pip install 'trellis[shared]'"
            ) from None
        except Exception as error:
            raise StoreError(f"cannot use {location} for objects: {error}") from None
    return Path(location.removeprefix("file://")).expanduser()


def configured_url(root: Path) -> str | None:
    """``TRELLIS_STORE``, else the project's ``trellis config store``."""
    return _config.store_url() or settings.read(root).get("store")


def open_store(
    url: str | None = None, *, root: Path | None = None, read_only: bool = False,
    objects: str | None = None,
) -> Store:
    """Open the store named by ``url``, ``TRELLIS_STORE``, the project's ``trellis config
    store``, or else the project's ``.trellis/``. A store other than the project's own keeps its
    objects at ``objects``, ``TRELLIS_OBJECTS`` or ``trellis config objects`` when one is given
    (else a SQLite store beside its file, a PostgreSQL one in the project's ``.trellis/``)."""
    root = project_root(root)
    url = url or configured_url(root)
    # The project's own store keeps its objects beside it; another store may keep them elsewhere.
    location = (objects or _config.objects_url() or settings.read(root).get("objects")
                if url else None)
    if url and url.startswith(POSTGRES_SCHEMES):
        folder = objects_location(location, root)
        if location is None and not read_only:  # objects under .trellis/ must stay out of commits
            _exclude_from_git(root)
        store = Store(POSTGRES, _connect_postgres(url, read_only), without_password(url), folder, root,
                      url=libpq_url(url))
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
        folder = objects_location(location, root) if location else db.parent / "objects"
        store = Store(SQLITE, connection, str(db), folder, root, lock=database_lock(str(db)), url=str(db))
    if not read_only:
        try:
            _ensure_schema(store)
        except BaseException:
            store.close()
            raise
    return store
