"""Reading query results into pandas, columnar where the driver allows it.

SQLite results go through ADBC into Arrow (several times faster than building a Python tuple
per row); every query given here must keep each column to one SQL type with no NULLs, since the
ADBC SQLite driver fixes a column's type from its first rows.
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from trellis.store.connection import Store


def read_frame(store: Store, sql: str, params: Sequence[Any], columns: list[str]) -> pd.DataFrame:
    if store.dialect.name == "sqlite":
        try:
            return _read_arrow(store.location, sql, params, columns)
        except Exception:
            pass
    rows = store.execute(sql, params)
    return pd.DataFrame.from_records(rows, columns=columns)


def _read_arrow(path: str, sql: str, params: Sequence[Any], columns: list[str]) -> pd.DataFrame:
    import adbc_driver_sqlite.dbapi as adbc

    with adbc.connect(f"file:{path}?mode=ro") as connection:
        with connection.cursor() as cursor:
            cursor.execute(sql, tuple(params))
            table = cursor.fetch_arrow_table()
    frame = table.to_pandas()
    frame.columns = columns
    return frame
