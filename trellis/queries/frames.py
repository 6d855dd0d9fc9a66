"""Reading query results into pandas, columnar where the driver allows it.

Results go through ADBC into Arrow (several times faster than building a Python tuple per
row): the SQLite driver reads the file, the PostgreSQL driver speaks the binary protocol. Every
query given here must keep each column to one SQL type with no NULLs, since the ADBC SQLite
driver fixes a column's type from its first rows.
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from trellis.store.connection import Store, database_lock


def read_frame(store: Store, sql: str, params: Sequence[Any], columns: list[str]) -> pd.DataFrame:
    try:
        if store.dialect.name == "sqlite":
            return _read_sqlite(store.location, sql, params, columns)
        return _read_postgres(store, sql, params, columns)
    except Exception:
        pass  # the driver is missing or refused the query: the DB-API connection reads it
    rows = store.execute(sql, params)
    return pd.DataFrame.from_records(rows, columns=columns)


def _read_sqlite(path: str, sql: str, params: Sequence[Any], columns: list[str]) -> pd.DataFrame:
    import adbc_driver_sqlite.dbapi as adbc

    with database_lock(path):  # ADBC's own copy of SQLite must not meet this process's at work
        with adbc.connect(f"file:{path}?mode=ro") as connection:
            with connection.cursor() as cursor:
                cursor.execute(sql, tuple(params))
                table = cursor.fetch_arrow_table()
    return _frame(table, columns)


def _read_postgres(store: Store, sql: str, params: Sequence[Any], columns: list[str]) -> pd.DataFrame:
    connection = store.readers.get("adbc")
    if connection is None:
        import adbc_driver_postgresql.dbapi as adbc

        connection = store.readers["adbc"] = adbc.connect(store.url)
    pieces = sql.split("?")  # the queries given here hold no literal question mark
    numbered = "".join(f"{piece}${n}" for n, piece in enumerate(pieces[:-1], 1)) + pieces[-1]
    with connection.cursor() as cursor:
        cursor.execute(numbered, tuple(params))
        table = cursor.fetch_arrow_table()
    return _frame(table, columns)


def _frame(table: Any, columns: list[str]) -> pd.DataFrame:
    frame = table.to_pandas()
    frame.columns = columns
    return frame
