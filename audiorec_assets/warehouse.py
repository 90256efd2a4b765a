"""The SQL warehouse: Parquet files in ``<lake>/tables/<table>/`` behind views in ``warehouse.duckdb``; the ingest's
four tables behind the symlink ``tables/ingest`` (:func:`publish_ingest`, :func:`migrate_ingest_tables`).

DuckDB lets one process write a database file, and while it does no other process can open it, not even to read;
a reader blocks writers. So assets never write rows into the database: each writes Parquet atomically, and the
database holds only views over globs of those files, created once, or again only when their definition changes
(:func:`register_view` checks read-only first): runs and read-only sessions never wait on each other.

Relocatable (docs/lake.md, "The lake is relocatable"): a view names no lake; it reads the ``tables/`` beside the
database file the session opened, which DuckDB tells at query time through ``temp_directory`` (by default
``<database file>.tmp``: absolute from Python, as given from the DuckDB CLI). Paths relative to the lake root were
the other choice, but DuckDB resolves those against the current folder (or ``file_search_path``), so a session
started in another lake's folder would read that lake's rows without a word. Where a view cannot know its lake it
fails, naming the setting, rather than guess."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pandas as pd

from audiorec_assets.lakeio import (
    atomic_path, point_link, process_staging, publish_folder, publish_lock, sweep_legacy, sweep_processes,
)
from audiorec_assets.settings import INGEST_TABLES, LakePaths, table_folder

SCHEMA = "audiorec"
# the files a view reads: hidden files (temporaries of other tools, or of earlier versions) never match
VIEW_GLOB = "[!.]*.parquet"
VIEW_TIMEOUT_S = 15.0  # how long a genuinely new view waits for the warehouse
INGEST_VERSIONS = ".ingest"  # tables/.ingest/<id>/: the published ingest sets (the current one, the one before)


class WarehouseBusyError(RuntimeError):
    """Another process holds ``warehouse.duckdb`` open when a new view must be created."""


def table_files(lake: LakePaths, table: str) -> list[Path]:
    """The Parquet files of ``audiorec.<table>``: what its view reads."""
    folder = lake.table_dir(table)
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith(".")) if folder.exists() else []


Connect = Callable[[], AbstractContextManager]  # opens a writable warehouse connection (a context manager)


def write_table_file(lake: LakePaths, table: str, rows: pd.DataFrame, part: str = "all",
                     connect: Connect | None = None) -> Path:
    """Write ``rows`` as ``<lake>/tables/<table>/<part>.parquet`` atomically and make sure the view exists
    (``connect``: how to open the warehouse for that, e.g. a ``DuckDBResource``'s ``get_connection``)."""
    target = lake.table_dir(table) / f"{part}.parquet"
    with atomic_path(target, suffix=".parquet", staging=process_staging(lake.staging)) as tmp:
        rows.to_parquet(tmp, index=False)
    register_view(lake, table, connect=connect)
    return target


def sql_literal(value: object) -> str:
    """``value`` as an SQL string literal (quotes doubled), for the statements that take no parameters."""
    return "'" + str(value).replace("'", "''") + "'"


WAREHOUSE_FILE = "warehouse.duckdb"  # the name LakePaths gives the database: the views find their lake beside it
_TEMP_DIR = "current_setting('temp_directory')"
_TAG_PREFIX = "audiorec view "


def view_sql(table: str) -> str:
    """The definition of ``audiorec.<table>``, the same in every lake: the files of its folder (``tables/<table>/``,
    :func:`~audiorec_assets.settings.table_folder`) beside the database file the session opened (module docstring),
    or an error naming the setting that hides it."""
    temp_dir, spill = _TEMP_DIR, re.escape(f"{WAREHOUSE_FILE}.tmp")  # DuckDB's default: <database file>.tmp
    relative = f"NOT regexp_matches({temp_dir}, '^([/\\\\]|[A-Za-z]:)')"  # the DuckDB CLI keeps the path as given
    unknown = sql_literal(
        f"audiorec.{table} reads the tables/ beside its database file, which DuckDB's temp_directory names (by "
        f"default <database file>.tmp), but temp_directory is ") + f" || {temp_dir} || " + sql_literal(
        f": open the lake's {WAREHOUSE_FILE} itself (e.g. duckdb {WAREHOUSE_FILE} in the lake's folder), not by "
        f"ATTACH, and RESET temp_directory.")
    searched = sql_literal(
        f"audiorec.{table}: the database was opened by a relative path and file_search_path is set, which relative "
        f"paths would follow instead of the current folder: RESET file_search_path, or open {WAREHOUSE_FILE} by "
        f"its absolute path.")
    moved = sql_literal(f"audiorec.{table}: temp_directory is not this database's own <database file>.tmp, so "
                        f"the view cannot find its lake: RESET temp_directory.")
    attached = sql_literal(
        f"audiorec.{table}: another database with audiorec views is attached, and a view cannot tell which lake it "
        f"belongs to: open each lake's {WAREHOUSE_FILE} in a session of its own, or read a lake's files with "
        f"read_parquet('<lake>/{table_folder(table)}/*.parquet').")
    files = sql_literal(f"{table_folder(table)}/{VIEW_GLOB}")  # relative to the lake
    path = (f"CASE WHEN NOT regexp_matches({temp_dir}, '(^|[/\\\\]){spill}$') THEN error({unknown}) "
            f"WHEN {relative} AND current_setting('file_search_path') <> '' THEN error({searched}) "
            f"ELSE regexp_replace({temp_dir}, '{spill}$', '') || {files} END")
    own = "(SELECT path FROM duckdb_databases() WHERE database_name = current_database()) || '.tmp'"
    own_temp_dir = (f"CASE WHEN {relative} THEN ends_with({own}, '/' || regexp_replace({temp_dir}, '^([.][.]?/)+', ''))"
                    f" ELSE {own} = {temp_dir} END")
    guard = (f"(SELECT CASE WHEN count(*) FILTER (WHERE database_name <> current_database()) > 0 "
             f"THEN error({attached}) WHEN NOT ({own_temp_dir}) THEN error({moved}) ELSE true END "
             f"FROM duckdb_views() WHERE schema_name = '{SCHEMA}')")
    return (f"CREATE OR REPLACE VIEW {SCHEMA}.{table} AS SELECT * FROM read_parquet({path}, union_by_name = true) "
            f"WHERE {guard}")


def _view_tag(sql: str) -> str:
    """Stored as the view's comment: which definition the view has, without parsing DuckDB's rendering of it."""
    return _TAG_PREFIX + hashlib.sha1(sql.encode()).hexdigest()[:16]


_current_views: set[tuple[str, int, str, str]] = set()  # (warehouse, inode, table, tag) seen in this process


def _cache_key(lake: LakePaths, table: str, tag: str) -> tuple[str, int, str, str] | None:
    try:
        return (str(lake.warehouse), lake.warehouse.stat().st_ino, table, tag)
    except FileNotFoundError:
        return None


def _writer(lake: LakePaths) -> Connect:
    import duckdb

    return lambda: duckdb.connect(str(lake.warehouse))


def while_locked(action: Callable, timeout_s: float, busy: Callable[[str], str]):
    """``action()``, tried again while another process holds the warehouse, for up to ``timeout_s``; then
    :class:`WarehouseBusyError` with the message ``busy(holder)``."""
    import duckdb

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return action()
        except (duckdb.IOException, duckdb.ConnectionException) as err:
            if not is_lock_error(err):
                raise
            if time.monotonic() > deadline:
                raise WarehouseBusyError(busy(lock_holder(err))) from None
            time.sleep(0.25)


def register_view(lake: LakePaths, table: str, timeout_s: float | None = None, connect: Connect | None = None) -> None:
    """Make sure ``audiorec.<table>`` is the view over ``<lake>/tables/<table>/[!.]*.parquet``. A current view (the
    usual case) is checked read-only, never locking writers out; a new one waits up to ``timeout_s`` (default
    :data:`VIEW_TIMEOUT_S`) for other sessions to let go, then raises :class:`WarehouseBusyError` naming the table."""
    timeout_s = VIEW_TIMEOUT_S if timeout_s is None else timeout_s
    sql = view_sql(table)
    tag = _view_tag(sql)
    if _cache_key(lake, table, tag) in _current_views:
        return

    def create() -> None:
        if not _view_is_current(lake, table, tag):
            with (connect or _writer(lake))() as con:  # binding the view reads the files beside this database
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
                con.execute(sql)
                con.execute(f"COMMENT ON VIEW {SCHEMA}.{table} IS '{tag}'")

    while_locked(create, timeout_s, lambda holder: (
        f"audiorec.{table} needs a new view in {lake.warehouse} (first write of the table, or its definition "
        f"changed), but for {timeout_s:.0f} s {holder} kept the warehouse open. Close other DuckDB sessions on "
        f"it for a moment (read-only ones too) and run again; the rows are safe in {lake.table_dir(table)}."))
    if key := _cache_key(lake, table, tag):
        _current_views.add(key)


def _view_is_current(lake: LakePaths, table: str, tag: str) -> bool:
    """Whether the view exists with definition ``tag`` (read-only: works beside other readers)."""
    import duckdb

    if not lake.warehouse.exists():
        return False
    with duckdb.connect(str(lake.warehouse), read_only=True) as con:
        row = con.execute(
            "SELECT comment FROM duckdb_views() WHERE database_name = current_database() AND schema_name = $s "
            "AND view_name = $t", {"s": SCHEMA, "t": table}).fetchone()
    return row is not None and row[0] == tag


def outdated_views(con, lake: LakePaths) -> list[str]:
    """The views of ``audiorec`` in ``con`` (on ``lake``'s warehouse) with another definition than this one's (an
    older audiorec's, with absolute paths: from a copied lake they read the original) where the table has files,
    or that audiorec wrote; :func:`refresh_views` rewrites or drops them."""
    rows = con.execute("SELECT view_name, comment FROM duckdb_views() WHERE database_name = current_database() "
                       "AND schema_name = $s", {"s": SCHEMA}).fetchall()
    return sorted(table for table, comment in rows if comment != _view_tag(view_sql(table))
                  and (table_files(lake, table) or (comment or "").startswith(_TAG_PREFIX)))


def refresh_views(lake: LakePaths, timeout_s: float | None = None, connect: Connect | None = None) -> list[str]:
    """Rewrite the outdated views (:func:`outdated_views`) of tables with files, drop the others (opening the warehouse
    for writing only then, waiting as :func:`register_view` does); return the tables whose view changed."""
    import duckdb

    timeout_s = VIEW_TIMEOUT_S if timeout_s is None else timeout_s
    migrate_ingest_tables(lake)  # before the views are judged: they need files to be rewritten rather than dropped
    if not lake.warehouse.exists():
        return []

    def read() -> list[str]:
        with duckdb.connect(str(lake.warehouse), read_only=True) as con:
            return outdated_views(con, lake)

    outdated = while_locked(read, timeout_s, lambda holder: (
        f"{lake.warehouse} is busy: for {timeout_s:.0f} s {holder} kept it open for writing while audiorec "
        f"checked its views. Try again in a moment."))
    gone = [table for table in outdated if not table_files(lake, table)]
    for table in (t for t in outdated if t not in gone):
        register_view(lake, table, timeout_s, connect)
    if gone:
        def drop() -> None:
            with (connect or _writer(lake))() as con:
                for table in gone:
                    con.execute(f"DROP VIEW IF EXISTS {SCHEMA}.{table}")

        while_locked(drop, timeout_s, lambda holder: f"the outdated views {gone} in {lake.warehouse} must go, but "
                      f"for {timeout_s:.0f} s {holder} kept it open: close other sessions on it and run again.")
        _current_views.difference_update({k for k in _current_views if k[0] == str(lake.warehouse) and k[2] in gone})
    return outdated


def is_lock_error(err: Exception) -> bool:
    """DuckDB's errors for a database file held by another process (or, in this process, with other settings)."""
    text = str(err)
    return "Could not set lock" in text or "Conflicting lock" in text or "different configuration" in text


def lock_holder(err: Exception) -> str:
    """Who holds the warehouse, as far as DuckDB's error tells (``another process (PID 123, /usr/bin/python)``)."""
    found = re.search(r"held in (.+?) \(PID (\d+)\)", str(err))
    if found:
        return f"another process (PID {found.group(2)}, {found.group(1)})"
    if "different configuration" in str(err):
        return "a connection of this same process with other settings"
    return "another process"


def read_table(lake: LakePaths, table: str) -> pd.DataFrame:
    """All rows of a warehouse table, read from its Parquet files (no database lock needed)."""
    import duckdb

    files = table_files(lake, table)
    if not files:
        raise FileNotFoundError(f"Table {SCHEMA}.{table} has no data yet in {lake.table_dir(table)}: materialize it first.")
    with duckdb.connect() as con:
        return con.execute("SELECT * FROM read_parquet($files, union_by_name = true)", {"files": [str(f) for f in files]}).df()


def publish_ingest(lake: LakePaths, folder: Path, name: str, connect: Connect | None = None) -> Path:
    """Publish ``folder`` (``<table>/all.parquet`` for each of :data:`INGEST_TABLES`) as the lake's ingest tables, all
    in one step (:func:`~audiorec_assets.lakeio.publish_folder`), views ensured; return the version's folder."""
    missing = [t for t in INGEST_TABLES if not (folder / t / "all.parquet").is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {missing}: an ingest publishes all of {list(INGEST_TABLES)} or none.")
    version = publish_folder(folder, lake.ingest, lake.tables / INGEST_VERSIONS, name, lake.staging)
    for table in INGEST_TABLES:
        register_view(lake, table, connect=connect)
    return version


def migrate_ingest_tables(lake: LakePaths) -> bool:
    """Put the ingest tables behind the symlink ``tables/ingest`` where they are not, as if published: in a lake of
    an older audiorec they lie in ``tables/<table>/``, and a copy made by a tool that follows symlinks (``cp -r``,
    ``shutil.copytree``) has a folder ``tables/ingest/``. Once per lake; True when it moved them. (Moving a folder
    is not one step: a reader may find a table missing for microseconds, once.)"""
    versions = lake.tables / INGEST_VERSIONS
    legacy = [t for t in INGEST_TABLES if (lake.tables / t).is_dir()]
    if lake.ingest.is_symlink() or not (legacy or lake.ingest.is_dir() or (versions / "migrated").is_dir()):
        return False
    with publish_lock(lake.staging):
        if lake.ingest.is_symlink():  # another process moved them meanwhile
            return False
        version = versions / "migrated"  # a kill half-way: the next call moves the rest
        if lake.ingest.is_dir():
            shutil.rmtree(version, ignore_errors=True)
            versions.mkdir(parents=True, exist_ok=True)
            os.replace(lake.ingest, version)
        version.mkdir(parents=True, exist_ok=True)
        for table in legacy:
            if not (version / table).exists():
                os.replace(lake.tables / table, version / table)
        point_link(lake.ingest, version)
    return True


def sweep_lake(lake: LakePaths) -> list[Path]:
    """Rewrite outdated views (:func:`refresh_views`), remove staging folders whose processes are gone and the hidden
    temporaries earlier versions left beside their targets; return what it removed."""
    refresh_views(lake)
    folders = [lake.root, lake.tables, lake.tmp, lake.embeddings, lake.models]
    folders += _subdirs(lake.tables) + _subdirs(lake.models)  # tables/<table>/, models/<encoder>/
    folders += [lake.table_dir(t) for t in INGEST_TABLES]
    return sweep_processes(lake.staging) + sweep_legacy(folders)


def _subdirs(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []


def scratch_connection(lake: LakePaths, memory_limit: str = "3GB"):
    """An in-memory DuckDB connection for set work on lake files, spilling to ``<lake>/tmp``."""
    import duckdb

    lake.tmp.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET memory_limit = {sql_literal(memory_limit)}")  # SET takes no parameters
    con.execute(f"SET temp_directory = {sql_literal(lake.tmp)}")
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET TimeZone = 'UTC'")  # timestamps never shift with the machine's zone
    return con
