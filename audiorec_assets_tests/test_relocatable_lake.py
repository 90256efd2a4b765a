"""A relocatable lake: the views of a copied or moved lake read the copy's own files, from `audiorec sql` and from
a plain DuckDB session, and never another lake's (issue 16, item 4)."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from audiorec_assets import warehouse
from audiorec_assets.settings import LakePaths
from audiorec_assets.warehouse import refresh_views, sweep_lake, write_table_file


def fill(lake: Path, who: str, views: bool = True) -> None:
    """Two tables whose rows say which lake wrote them (``views=False``: the files only, the views untouched)."""
    paths = LakePaths(lake)
    tables = {"metrics": ("mfcc__knn", pd.DataFrame({"who": [who, who], "value": [0.3, 0.1]})),
              "encoders": ("all", pd.DataFrame({"encoder": ["mfcc"], "who": [who]}))}
    for table, (part, rows) in tables.items():
        if views:
            write_table_file(paths, table, rows, part=part)
        else:
            rows.to_parquet(paths.table_dir(table) / f"{part}.parquet", index=False)


def cp_a(source: Path, target: Path) -> Path:
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    return target


def audiorec_sql(lake: Path, query: str, cwd: Path) -> subprocess.CompletedProcess:
    """`audiorec sql` as a user runs it (csv: the rows on stdout)."""
    return subprocess.run([sys.executable, "-m", "audiorec_assets.cli", "--lake", str(lake), "sql", query,
                           "--format", "csv"], cwd=cwd, capture_output=True, text=True, timeout=60)


def plain_duckdb(cwd: Path, query: str, database: str = "warehouse.duckdb", as_cli: bool = False,
                 setup: str = "") -> subprocess.CompletedProcess:
    """A plain DuckDB session (no audiorec code) started in ``cwd``: ``duckdb.connect('warehouse.duckdb')``.
    ``as_cli``: keep temp_directory as the path was given, as the DuckDB CLI does (Python makes it absolute)."""
    config = {"temp_directory": f"{database}.tmp"} if as_cli else {}
    code = textwrap.dedent(f"""
        import duckdb
        con = duckdb.connect({database!r}, read_only=True, config={config!r})
        for statement in {[setup] if setup else []!r}:
            con.execute(statement)
        print(sorted(set(con.sql({query!r}).fetchall())))
    """)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)


def who(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


BOTH = "SELECT m.who FROM audiorec.metrics m UNION ALL SELECT e.who FROM audiorec.encoders e"


def test_a_moved_lake_answers_from_its_own_files(tmp_path):
    original = tmp_path / "lake"
    fill(original, "original")
    copy = cp_a(original, tmp_path / "moved")
    shutil.rmtree(original)

    assert who(audiorec_sql(copy, BOTH, cwd=tmp_path)).split() == ["who", "original", "original", "original"]
    assert who(plain_duckdb(copy, BOTH)) == "[('original',)]"
    assert who(plain_duckdb(tmp_path, BOTH, database="moved/warehouse.duckdb")) == "[('original',)]"
    # the copy's own rows, rewritten after the move, through the same views
    write_table_file(LakePaths(copy), "encoders", pd.DataFrame({"encoder": ["mfcc"], "who": ["moved"]}))
    assert who(plain_duckdb(copy, "SELECT who FROM audiorec.encoders")) == "[('moved',)]"


def test_a_copy_never_returns_its_originals_rows(tmp_path):
    original = tmp_path / "lake"
    fill(original, "original")
    copy = cp_a(original, tmp_path / "copy")
    fill(copy, "copy")
    fill(original, "original-2")  # both lakes change after the copy

    for cwd in (copy, original, tmp_path):  # the cwd never decides which lake's files a view reads
        assert who(audiorec_sql(copy, BOTH, cwd=cwd)).split() == ["who", "copy", "copy", "copy"]
    assert who(plain_duckdb(copy, BOTH)) == "[('copy',)]"
    assert who(plain_duckdb(original, BOTH)) == "[('original-2',)]"
    assert who(plain_duckdb(original, BOTH, database=str(copy / "warehouse.duckdb"))) == "[('copy',)]"


def test_a_view_that_cannot_tell_its_lake_fails(tmp_path):
    original = tmp_path / "lake"
    fill(original, "original")
    copy = cp_a(original, tmp_path / "copy")
    fill(copy, "copy")
    with duckdb.connect(str(original / "warehouse.duckdb"), read_only=True) as con:
        con.execute(f"ATTACH '{copy / 'warehouse.duckdb'}' AS copy (READ_ONLY)")
        for query in ("SELECT * FROM copy.audiorec.metrics", "SELECT * FROM audiorec.metrics"):
            with pytest.raises(duckdb.InvalidInputException, match="another database with audiorec views"):
                con.sql(query).fetchall()
        con.execute("DETACH copy")
        con.execute(f"SET temp_directory = '{copy / 'warehouse.duckdb.tmp'}'")
        with pytest.raises(duckdb.InvalidInputException, match="temp_directory is not this database's own"):
            con.sql("SELECT * FROM audiorec.metrics").fetchall()
        con.execute(f"SET temp_directory = '{tmp_path / 'spill'}'")
        with pytest.raises(duckdb.InvalidInputException, match=r"temp_directory is .*spill: open the lake's"):
            con.sql("SELECT * FROM audiorec.metrics").fetchall()
        con.execute("RESET temp_directory")
        assert set(con.sql("SELECT who FROM audiorec.metrics").fetchall()) == {("original",)}
    with duckdb.connect() as con:  # attached to an in-memory session: no database file to find the lake by
        con.execute(f"ATTACH '{copy / 'warehouse.duckdb'}' AS copy (READ_ONLY)")
        with pytest.raises(duckdb.InvalidInputException, match="temp_directory is .tmp: open the lake's"):
            con.sql("SELECT * FROM copy.audiorec.metrics").fetchall()


def legacy_views(lake: Path, orphan: str = "") -> None:
    """The views as an older audiorec wrote them: absolute paths into ``lake`` (and an ``orphan`` view of a
    table without files)."""
    with duckdb.connect(str(lake / "warehouse.duckdb")) as con:
        for table in ("metrics", "encoders", *([orphan] if orphan else [])):
            folder = lake / "tables" / (table if table != orphan else "encoders")
            con.execute(f"CREATE OR REPLACE VIEW audiorec.{table} AS SELECT * FROM read_parquet("
                        f"'{folder}/[!.]*.parquet', union_by_name = true)")
            con.execute(f"COMMENT ON VIEW audiorec.{table} IS 'audiorec view 0123456789abcdef'")


def test_an_older_lakes_absolute_views_are_rewritten_before_they_are_read(tmp_path):
    original = tmp_path / "lake"
    fill(original, "original")
    legacy_views(original, orphan="dropped_table")
    copy = cp_a(original, tmp_path / "copy")
    fill(copy, "copy", views=False)
    assert who(plain_duckdb(copy, BOTH)) == "[('original',)]", "the bug: an old copy reads its original"

    assert who(audiorec_sql(copy, BOTH, cwd=tmp_path)).split() == ["who", "copy", "copy", "copy"]
    assert who(plain_duckdb(copy, BOTH)) == "[('copy',)]"  # rewritten in the file: plain sessions too
    with duckdb.connect(str(copy / "warehouse.duckdb"), read_only=True) as con:
        views = con.sql("SELECT view_name FROM duckdb_views() WHERE schema_name = 'audiorec'").fetchall()
        assert sorted(views) == [("encoders",), ("metrics",)]  # the outdated view of a table without files: gone
    assert refresh_views(LakePaths(copy)) == []  # current views: nothing to do, nothing opened for writing

    second = cp_a(original, tmp_path / "second")  # a run's first step rewrites them as well
    fill(second, "second", views=False)
    warehouse._current_views.clear()
    sweep_lake(LakePaths(second))
    assert who(plain_duckdb(second, BOTH)) == "[('second',)]"


def test_a_session_that_keeps_the_database_path_relative_reads_its_own_lake(tmp_path):
    """The DuckDB CLI (``duckdb warehouse.duckdb``) keeps temp_directory relative, as given; the views then
    read relative to the current folder, as the database was opened, unless file_search_path would redirect them."""
    original = tmp_path / "lake"
    fill(original, "original")
    copy = cp_a(original, tmp_path / "copy")
    fill(copy, "copy")
    assert who(plain_duckdb(copy, BOTH, as_cli=True)) == "[('copy',)]"
    assert who(plain_duckdb(original, BOTH, database="../copy/warehouse.duckdb", as_cli=True)) == "[('copy',)]"
    searched = plain_duckdb(copy, BOTH, as_cli=True, setup=f"SET file_search_path = '{original}'")
    assert searched.returncode != 0 and "RESET file_search_path" in searched.stderr
    other = plain_duckdb(copy, BOTH, as_cli=True, setup="SET temp_directory = '../lake/warehouse.duckdb.tmp'")
    assert other.returncode != 0 and "temp_directory is not this database's own" in other.stderr

    cli = shutil.which("duckdb")  # the real CLI, where installed
    if cli:
        run = subprocess.run([cli, "-readonly", "-csv", "warehouse.duckdb", "-c", "SELECT who FROM audiorec.encoders"],
                             cwd=copy, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and run.stdout.split() == ["who", "copy"], run.stderr
