"""The SQL warehouse: Parquet files in ``<lake>/tables/<table>/`` behind views in ``warehouse.duckdb``.

DuckDB lets one process write a database file and blocks others while it does. Assets
therefore never write rows into the database: each writes its rows atomically as Parquet
(one file per partition), and the database only holds views over those files. A view over a
glob picks up new partition files without touching the database again, so readers and
parallel runs meet the database file only for a brief ``CREATE VIEW``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from audiorec_assets.lakeio import atomic_path
from audiorec_assets.settings import LakePaths

SCHEMA = "audiorec"


class WarehouseBusyError(RuntimeError):
    """Another process holds ``warehouse.duckdb`` open for writing."""


def write_table_file(lake: LakePaths, table: str, rows: pd.DataFrame, part: str = "all") -> Path:
    """Write ``rows`` as ``<lake>/tables/<table>/<part>.parquet`` atomically and make sure the view exists."""
    target = lake.table_dir(table) / f"{part}.parquet"
    with atomic_path(target, suffix=".parquet") as tmp:
        rows.to_parquet(tmp, index=False)
    register_view(lake, table)
    return target


def remove_table_file(lake: LakePaths, table: str, part: str) -> None:
    path = lake.table_dir(table) / f"{part}.parquet"
    if path.exists():
        path.unlink()


def register_view(lake: LakePaths, table: str, timeout_s: float = 60.0) -> None:
    """(Re)create ``audiorec.<table>`` as a view over ``<lake>/tables/<table>/*.parquet``."""
    import duckdb

    glob = str(lake.table_dir(table) / "*.parquet").replace("'", "''")
    sql = (
        f"CREATE SCHEMA IF NOT EXISTS {SCHEMA};"
        f"CREATE OR REPLACE VIEW {SCHEMA}.{table} AS SELECT * FROM read_parquet('{glob}', union_by_name = true)"
    )
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with duckdb.connect(str(lake.warehouse)) as con:
                con.execute(sql)
            return
        except duckdb.IOException as err:  # the file is locked by another process
            if time.monotonic() > deadline:
                raise WarehouseBusyError(
                    f"{lake.warehouse} stayed locked for {timeout_s:.0f} s ({err}). Close other DuckDB sessions "
                    f"writing to it (read-only ones: `duckdb -readonly`); the rows are safe in {lake.table_dir(table)}."
                ) from err
            time.sleep(0.5)


def read_table(lake: LakePaths, table: str) -> pd.DataFrame:
    """All rows of a warehouse table, read from its Parquet files (no database lock needed)."""
    import duckdb

    files = sorted(lake.table_dir(table).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"Table {SCHEMA}.{table} has no data yet in {lake.table_dir(table)}: materialize it first.")
    with duckdb.connect() as con:
        return con.execute("SELECT * FROM read_parquet($files, union_by_name = true)", {"files": [str(f) for f in files]}).df()


def scratch_connection(lake: LakePaths, memory_limit: str = "3GB"):
    """An in-memory DuckDB connection for set work on lake files, spilling to ``<lake>/tmp``."""
    import duckdb

    lake.tmp.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET temp_directory = '{lake.tmp}'")
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET TimeZone = 'UTC'")  # timestamps never shift with the machine's zone
    return con
