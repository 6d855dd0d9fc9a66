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
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import quote

from trellis import _config
from trellis._errors import StoreError, TrellisError
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
    # an aggregate mean whose running sum cannot overflow, where the database has one
    mean: str = "AVG({})"

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
    # a float8 sum of values near 1e308 is an error here, not infinity; numeric sums exactly
    "CAST(AVG(CAST({} AS NUMERIC)) AS DOUBLE PRECISION)",
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
        """Column names and rows of a user's SQL (``?`` placeholders on every store), which may
        only read: one statement, in a read-only transaction on PostgreSQL; on SQLite no ATTACH
        (nor VACUUM INTO), no PRAGMA that sets anything, no extension loaded, no write."""
        with self.lock:
            try:
                if self.dialect is SQLITE:
                    return self._query_sqlite(sql, params)
                return self._query_postgres(sql, params)
            except TrellisError:
                raise
            except Exception as error:  # the database's own message about the user's SQL
                # PostgreSQL adds lines of context (the PL/pgSQL line, the statement) below it
                text = str(error).strip()
                raise TrellisError(f"query failed: {text.splitlines()[0] if text else type(error).__name__}") from None

    def _query_sqlite(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple]]:
        refused: list[str] = []
        self.connection.set_authorizer(partial(_reading_only, refused))
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, tuple(params))
            columns = [c[0] for c in cursor.description or []]
            return columns, cursor.fetchall() if cursor.description else []
        except sqlite3.DatabaseError:
            if refused:
                raise TrellisError(
                    f"query failed: {refused[0]} is refused: a query only reads the store"
                ) from None
            raise
        finally:
            cursor.close()
            self.connection.set_authorizer(None)

    def _query_postgres(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple]]:
        with self.connection.cursor() as cursor:
            cursor.execute("BEGIN READ ONLY")
            try:
                # a prepared statement holds one command: "COMMIT; DROP ..." cannot leave the
                # read-only transaction
                cursor.execute(self.dialect.sql(sql), tuple(params), prepare=True)
                columns = [c[0] for c in cursor.description or []]
                return columns, cursor.fetchall() if cursor.description else []
            finally:
                cursor.execute("ROLLBACK")

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

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
        return _connect_sqlite_read_only(path)
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


def _connect_sqlite_read_only(path: Path) -> sqlite3.Connection:
    """A connection that can only read, also for a reader who may not write the store's folder.

    A store in WAL mode is read through its shared-memory index (``trellis.db-shm``), which
    SQLite creates beside the database when it is missing, as it is once the last writer has
    closed the store. A reader who cannot create it reads the file as immutable instead: that is
    right only when the write-ahead log holds nothing (every committed row is then in the file
    itself), so it is done only then. A writer who starts while such a reader reads would go
    unseen by that reader (its next command opens the store anew and sees the log).
    """
    if not path.exists():
        raise StoreError(f"no trellis store at {path}; run a script that imports trellis first")
    try:
        return _read_only_connection(path, "mode=ro")
    except sqlite3.OperationalError:
        if os.access(path.parent, os.W_OK):
            raise
    log = path.with_name(path.name + "-wal")
    if log.exists() and log.stat().st_size > 0:
        raise StoreError(
            f"cannot read the store at {path}: its folder is not writable for you and {log.name}"
            " holds writes not yet in the database; ask its owner to run any trellis command"
            " there (that folds them in), or for write access to the folder"
        )
    return _read_only_connection(path, "immutable=1")


def _read_only_connection(path: Path, mode: str) -> sqlite3.Connection:
    connection = sqlite3.connect(
        f"file:{quote(str(path))}?{mode}", uri=True, timeout=_config.lock_timeout(),
        check_same_thread=False,
    )
    try:
        connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # opens the file now
        connection.execute("PRAGMA query_only=1")
    except BaseException:
        connection.close()
        raise
    return connection


# What a user's query may do on SQLite (sqlite3's authorizer callback): read, call functions,
# and run the pragmas that only report.
_READING = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE}
_REFUSED_FUNCTIONS = {"load_extension", "fts3_tokenizer"}
# pragmas that read whatever their argument (a table or index name)
_PRAGMAS_OF_A_NAME = {"table_info", "table_xinfo", "table_list", "index_info", "index_xinfo",
                      "index_list", "foreign_key_list", "foreign_key_check"}
# pragmas that read when given no argument (with one, most set)
_PRAGMAS_READ = {"application_id", "collation_list", "compile_options", "data_version",
                 "database_list", "encoding", "freelist_count", "function_list", "integrity_check",
                 "journal_mode", "module_list", "page_count", "page_size", "pragma_list",
                 "query_only", "quick_check", "schema_version", "user_version"}
_SCHEMA_TABLES = {"sqlite_master", "sqlite_temp_master", "sqlite_schema"}


def _reading_only(refused: list[str], action: int, first: str | None, second: str | None,
                  database: str | None, trigger: str | None) -> int:
    if action in _READING:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        if (second or "").lower() in _REFUSED_FUNCTIONS:
            refused.append(f"{second}()")
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        name = (first or "").lower()
        if name in _PRAGMAS_OF_A_NAME or (name in _PRAGMAS_READ and second is None):
            return sqlite3.SQLITE_OK
        refused.append(f"PRAGMA {first}" + (f"={second}" if second is not None else ""))
        return sqlite3.SQLITE_DENY
    if action in _ROWS_CHANGED and (first or "").lower() in _SCHEMA_TABLES:
        # CREATE, DROP and table-valued pragmas touch the schema's table first; the statement
        # itself is refused next, and SQLite refuses a direct write to that table
        return sqlite3.SQLITE_OK
    refused.append(_ACTIONS.get(action, "a statement that changes the store"))
    return sqlite3.SQLITE_DENY


_ROWS_CHANGED = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}
_ACTIONS = {
    sqlite3.SQLITE_ATTACH: "ATTACH (or VACUUM INTO)", sqlite3.SQLITE_DETACH: "DETACH",
    sqlite3.SQLITE_INSERT: "INSERT", sqlite3.SQLITE_UPDATE: "UPDATE",
    sqlite3.SQLITE_DELETE: "DELETE", sqlite3.SQLITE_TRANSACTION: "a transaction",
    sqlite3.SQLITE_SAVEPOINT: "a savepoint", sqlite3.SQLITE_ALTER_TABLE: "ALTER TABLE",
    sqlite3.SQLITE_ANALYZE: "ANALYZE", sqlite3.SQLITE_REINDEX: "REINDEX",
    **{getattr(sqlite3, f"SQLITE_{verb}_{what}"): f"{verb} {what.replace('_', ' ')}"
       for verb in ("CREATE", "DROP")
       for what in ("INDEX", "TABLE", "TRIGGER", "VIEW", "TEMP_INDEX", "TEMP_TABLE",
                    "TEMP_TRIGGER", "TEMP_VIEW", "VTABLE")},
}


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
