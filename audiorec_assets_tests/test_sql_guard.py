"""`audiorec sql` is read-only in fact: queries only, reads only under <lake>/tables, one-line errors."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from audiorec_assets.cli import main, sql
from audiorec_assets.settings import LakePaths
from audiorec_assets.warehouse import write_table_file

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def warehouse_lake(lake):
    """A lake with one table, ``audiorec.metrics``, behind its view."""
    rows = pd.DataFrame({"encoder": ["mfcc", "random"], "recommender": ["knn", "knn"], "value": [0.3, 0.1]})
    write_table_file(LakePaths(lake), "metrics", rows, part="mfcc__knn")
    return lake


def audiorec(lake: Path, *args: str) -> subprocess.CompletedProcess:
    """The command as a user runs it."""
    return subprocess.run([sys.executable, "-m", "audiorec_assets.cli", "--lake", str(lake), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def refused(lake: Path, query: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main(["--lake", str(lake), "sql", query])
    message = stop.value.code
    assert isinstance(message, str) and "\n" not in message, message  # one line, exit status 1
    return message


def test_queries_work(warehouse_lake, capsys):
    for query in ("SELECT encoder, value FROM audiorec.metrics ORDER BY value DESC",
                  "WITH best AS (SELECT max(value) AS v FROM audiorec.metrics) SELECT * FROM best",
                  "DESCRIBE audiorec.metrics", "SHOW ALL TABLES", "SUMMARIZE audiorec.metrics",
                  "PRAGMA table_info('audiorec.metrics')", "EXPLAIN SELECT * FROM audiorec.metrics",
                  f"SELECT count(*) AS n FROM read_parquet('{warehouse_lake}/tables/metrics/*.parquet')"):
        main(["--lake", str(warehouse_lake), "sql", query])
    out = capsys.readouterr().out
    assert out.index("mfcc") < out.index("random") and "0.3" in out and "physical_plan" in out


def test_writes_reads_outside_the_lake_and_extensions_are_refused(warehouse_lake, tmp_path):
    metrics_dir = warehouse_lake / "tables" / "metrics"
    fake = metrics_dir / "fake.parquet"
    outside = tmp_path / "out.csv"
    assert "COPY statements are refused" in refused(warehouse_lake, f"COPY (SELECT 1 AS value) TO '{fake}'")
    assert "COPY" in refused(warehouse_lake, f"SELECT 1; COPY (SELECT 1) TO '{outside}'")
    assert "COPY" in refused(warehouse_lake, f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{fake}'")
    assert "INSERT statements are refused" in refused(warehouse_lake, "INSERT INTO audiorec.metrics VALUES ('x', 'y', 1)")
    assert "CREATE" in refused(warehouse_lake, "CREATE TABLE t AS SELECT 1")
    for query in ("INSTALL httpfs", "LOAD httpfs", "SET enable_external_access = true", f"ATTACH '{tmp_path}/x.db'"):
        assert "refused" in refused(warehouse_lake, query)
    assert sorted(p.name for p in metrics_dir.iterdir()) == ["mfcc__knn.parquet"] and not outside.exists()

    for query in ("SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM read_text('/etc/hostname')",
                  f"SELECT * FROM read_text('{warehouse_lake}/tables/../../../../etc/passwd')",
                  f"SELECT * FROM read_text('{warehouse_lake}/experiment.yaml')", "SELECT * FROM glob('/etc/*')",
                  "SELECT * FROM 'https://example.com/x.parquet'"):
        message = refused(warehouse_lake, query)
        assert "Permission Error" in message and f"reads only files under {warehouse_lake}/tables" in message


def test_errors_are_one_line_with_a_nonzero_exit(warehouse_lake, tmp_path):
    copy = audiorec(warehouse_lake, "sql", f"COPY (SELECT 1) TO '{warehouse_lake}/tables/metrics/fake.parquet'")
    assert copy.returncode != 0 and "Traceback" not in copy.stderr
    assert copy.stderr.strip().count("\n") == 0 and "read-only: COPY statements are refused" in copy.stderr
    typo = audiorec(warehouse_lake, "sql", "SELEC 1")
    assert typo.returncode != 0 and typo.stderr.strip() == '[audiorec] sql: Parser Error: syntax error at or near "SELEC"'
    missing = refused(warehouse_lake, "SELECT nope FROM audiorec.metrics")
    assert missing.startswith("[audiorec] sql: Binder Error") and "LINE 1" not in missing
    assert "does not exist yet" in refused(tmp_path / "empty", "SELECT 1")


def test_a_busy_warehouse_is_one_line_naming_the_writer(warehouse_lake):
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, duckdb
        con = duckdb.connect({str(warehouse_lake / 'warehouse.duckdb')!r})  # a writer, e.g. a run creating a view
        print("open", flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert writer.stdout.readline().strip() == b"open"
        with pytest.raises(SystemExit) as stop:
            sql(warehouse_lake, "SELECT 1", busy_timeout_s=0.5)
        message = stop.value.code
        assert "\n" not in message and "is busy" in message and f"PID {writer.pid}" in message
        busy = audiorec(warehouse_lake, "sql", "SELECT 1")  # the command waits a few seconds, then says so
        assert busy.returncode != 0 and "Traceback" not in busy.stderr and "is busy" in busy.stderr
    finally:
        writer.kill()
        writer.wait()
    main(["--lake", str(warehouse_lake), "sql", "SELECT 1"])  # and works again once the writer is gone


def test_table_names_work_unqualified_as_in_duckdbs_cli(warehouse_lake, capsys):
    """The session's search path starts with schema audiorec: `show tables` lists its views, `from metrics`
    reads audiorec.metrics, and the search path cannot be changed back (the configuration is locked)."""
    write_table_file(LakePaths(warehouse_lake), "leaderboard", pd.DataFrame({"encoder": ["mfcc"], "hitrate": [0.5]}))
    main(["--lake", str(warehouse_lake), "sql", "SHOW TABLES", "--format", "csv"])
    assert capsys.readouterr().out.split() == ["name", "leaderboard", "metrics"]
    main(["--lake", str(warehouse_lake), "sql", "select encoder, value from metrics order by value desc",
          "--format", "csv"])
    assert capsys.readouterr().out.split() == ["encoder,value", "mfcc,0.3", "random,0.1"]
    main(["--lake", str(warehouse_lake), "sql", "select * from leaderboard", "--format", "json"])
    assert capsys.readouterr().out.strip() == '[{"encoder":"mfcc","hitrate":0.5}]'
    main(["--lake", str(warehouse_lake), "sql", "DESCRIBE leaderboard", "--format", "csv"])
    described = capsys.readouterr().out.splitlines()
    assert described[0].startswith("column_name,column_type") and [r.split(",")[0] for r in described[1:]] == [
        "encoder", "hitrate"]
    assert "refused" in refused(warehouse_lake, "SET search_path = 'main'")
    assert "refused" in refused(warehouse_lake, "SET schema = 'main'")


def test_a_reader_that_leaves_ends_the_query_quietly(warehouse_lake):
    """`audiorec sql … | head -1`: no BrokenPipeError traceback, as with Unix tools."""
    audiorec = Path(sys.executable).parent / "audiorec"
    query = subprocess.Popen([str(audiorec), "--lake", str(warehouse_lake), "sql", "select * from range(200000)",
                              "--format", "csv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.run(["head", "-n", "1"], stdin=query.stdout, capture_output=True, text=True)
    query.stdout.close()
    err = query.stderr.read().decode()
    query.wait(60)
    assert head.stdout.strip() == "range"
    assert "Traceback" not in err and "BrokenPipe" not in err
