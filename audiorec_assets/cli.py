"""audiorec, the study on the command line: demo runs the whole study on the lake, materialize runs (part of)
it with a live display, status shows the encoder × recommender grid as Dagster's instance sees it, sql queries
the warehouse, recommend lists a user's top tracks from a trained cell, similar a track's nearest tracks.
New here? Run audiorec demo: it ends with commands to try next.

Exit codes: 0 done; 1 an error (a refused or failed query, a failed run); 2 bad input (an unknown user,
track, encoder, recommender or cell); 3 not materialized yet (the message names the partition); 130 / 143
demo or materialize stopped by SIGINT (Ctrl-C) / SIGTERM: the run in progress ends failed or canceled in
the instance and no further run starts."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from audiorec_assets.settings import LakePaths, SettingsError, default_lake, load_settings


COLUMNS_HELP = ("the columns to show, comma-separated, e.g. rank,track_id,title,tempo_bpm; 'all' for every column "
                "(default: rank, track_id, score or similarity, and the first three present of title, artist, "
                "composer, style, genre, album, work)")
SQL_BUSY_TIMEOUT_S = 5.0
SQL_PREFIX = "[audiorec] sql:"
QUERY_KINDS = "SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN, PRAGMA table_info"


def sql(lake_root: Path, query: str, busy_timeout_s: float = SQL_BUSY_TIMEOUT_S, fmt: str = "table") -> None:
    """Print the result of ``query`` on the warehouse as ``fmt``, read-only in fact: queries only, files read only
    under ``<lake>/tables``, nothing written (but, once, the views an older audiorec wrote), no extensions. Every
    error, and a warehouse busy for ``busy_timeout_s``, ends the command with one line and a non-zero exit."""
    import duckdb

    from audiorec_assets.queries import render
    from audiorec_assets.warehouse import outdated_views

    lake = LakePaths(lake_root)
    if not lake.warehouse.exists():
        raise SystemExit(f"{SQL_PREFIX} {lake.warehouse} does not exist yet: run `audiorec demo` (or the ingest) first.")
    con = _open_read_only(lake, busy_timeout_s)
    if outdated_views(con, lake):  # an older audiorec's views: from a copied lake they read the original's files
        con.close()
        _refresh_views(lake, busy_timeout_s)
        con = _open_read_only(lake, busy_timeout_s)
    try:
        _lock_down(con, lake)
        _refuse_non_queries(con, query, lake)
        frame = con.sql(query).df()
    except duckdb.Error as err:
        hint = f" (audiorec sql reads only files under {lake.tables})" if isinstance(err, duckdb.PermissionException) else ""
        raise SystemExit(f"{SQL_PREFIX} {_one_line(err)}{hint}") from None
    finally:
        con.close()
    print(render(frame, fmt))


def _open_read_only(lake: LakePaths, timeout_s: float):
    """A read-only connection to the warehouse, waiting up to ``timeout_s`` while a writer holds it."""
    import duckdb

    from audiorec_assets.warehouse import WarehouseBusyError, while_locked

    try:
        return while_locked(lambda: duckdb.connect(str(lake.warehouse), read_only=True), timeout_s, lambda holder: (
            f"the warehouse {lake.warehouse} is busy: {holder} has it open for writing (a run creating a new view "
            f"holds it for a moment; a DuckDB session opened without read-only holds it until closed). Waited "
            f"{timeout_s:.0f} s: try again."))
    except WarehouseBusyError as err:
        raise SystemExit(f"{SQL_PREFIX} {err}") from None
    except duckdb.Error as err:
        raise SystemExit(f"{SQL_PREFIX} {_one_line(err)}") from None


def _refresh_views(lake: LakePaths, timeout_s: float) -> None:
    """Rewrite the lake's outdated views (a moment of write access), or end the command with one line."""
    import duckdb

    from audiorec_assets.warehouse import WarehouseBusyError, refresh_views

    try:
        refresh_views(lake, timeout_s=timeout_s)
    except (WarehouseBusyError, duckdb.Error, OSError) as err:
        raise SystemExit(f"{SQL_PREFIX} the views in {lake.warehouse} are an older audiorec's (they may read "
                         f"another lake's files) and could not be rewritten: {_one_line(err)}") from None


def _lock_down(con, lake: LakePaths) -> None:
    """No file access outside ``<lake>/tables``, no extension installs or loads, and no way to undo that; the
    audiorec schema first in the search path."""
    import duckdb

    from audiorec_assets.warehouse import SCHEMA

    tables = str(lake.tables).rstrip("/").replace("'", "''") + "/"
    try:
        con.execute(f"SET allowed_directories = ['{tables}']")
    except duckdb.Error as err:
        raise SystemExit(f"{SQL_PREFIX} this DuckDB ({duckdb.__version__}) cannot limit file access to the lake "
                         f"({_one_line(err)}): install duckdb >= 1.1.") from None
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute(f"SET search_path = '{SCHEMA},main'")  # `from leaderboard`, `show tables`: as in DuckDB's CLI
    con.execute("SET lock_configuration = true")


_EXPLAIN = re.compile(r"\s*EXPLAIN\s*(\([^)]*\)\s*)?(ANALY[SZ]E\b)?", re.IGNORECASE)


def _refuse_non_queries(con, query: str, lake: LakePaths) -> None:
    """Stop unless every statement of ``query`` is a query (or EXPLAIN of one: EXPLAIN ANALYZE runs it)."""
    import duckdb

    for statement in con.extract_statements(query):
        kind = statement.type
        if kind == duckdb.StatementType.EXPLAIN:
            inner = con.extract_statements(_EXPLAIN.sub("", statement.query, count=1))
            kind = next((s.type for s in inner if s.type != duckdb.StatementType.SELECT), duckdb.StatementType.SELECT)
        if kind != duckdb.StatementType.SELECT:
            raise SystemExit(
                f"{SQL_PREFIX} read-only: {kind.name} statements are refused; run a query ({QUERY_KINDS}). "
                f"To keep a result, redirect this command's output, or read {lake.tables} with your own DuckDB.")


def _one_line(err: Exception) -> str:
    """DuckDB's message without its ``LINE 1:`` excerpt and caret: one line."""
    lines = [line.strip() for line in str(err).splitlines()]
    kept = [line for line in lines if line and not line.startswith("LINE ") and set(line) != {"^"}]
    return " ".join(kept) or type(err).__name__


def answer(what: str, fmt: str, ask, columns: str | None = None) -> None:
    """Print the :class:`audiorec_assets.queries.Answer` that ``ask()`` returns, its ``columns``
    (:func:`audiorec_assets.queries.choose_columns`); its header goes to stdout for ``table``/``markdown`` and to
    stderr for ``csv``/``json`` (so that stdout parses), its note to stderr. A
    :class:`~audiorec_assets.queries.QueryError` ends the command with its one line and its exit code."""
    from audiorec_assets.queries import QueryError, choose_columns, render

    try:
        result = ask()
        rows = choose_columns(result.rows, columns)
    except QueryError as err:
        print(f"[audiorec] {what}: {err}", file=sys.stderr, flush=True)
        raise SystemExit(err.exit_code) from None
    except SettingsError as err:
        raise SystemExit(f"[audiorec] {what}: {err}") from None
    if result.note:
        print(f"[audiorec] {what}: {result.note}", file=sys.stderr, flush=True)
    print(f"[audiorec] {result.header}", file=sys.stdout if fmt in ("table", "markdown") else sys.stderr, flush=True)
    print(render(rows, fmt))


def mock_logs(lake_root: Path, users: int | None, months: int | None, seed: int | None, taste: str | None) -> None:
    """Write ``raw/listens.csv`` (+ its synthetic marker) for the lake's catalogue (``datasets/mock_logs/``)."""
    from audiorec_assets.datasets.mock_logs import MockLogConfig, write_mock_logs

    lake = LakePaths(lake_root)
    chosen = {k: v for k, v in dict(users=users, months=months, taste_columns=taste).items() if v is not None}
    try:
        config = MockLogConfig(seed=seed if seed is not None else load_settings(lake.root).seed, **chosen)
        report = write_mock_logs(lake.raw, config, staging=lake.staging)
    except (ValueError, FileExistsError, OSError) as err:
        raise SystemExit(f"[audiorec] mock-logs: {err}") from None
    print(f"[audiorec] mock-logs: wrote {report.log_path} ({report.rows} listens by {report.users} users of "
          f"{report.tracks_played}/{report.catalogue_tracks} tracks, {report.first_listen:%Y-%m-%d} to "
          f"{report.last_listen:%Y-%m-%d}; tastes over {list(report.taste_columns) or 'clusters'}; "
          f"{report.cold_tracks} cold tracks). It is synthetic: audiorec.split_info.synthetic says so.")
    if report.warm_eval_pairs == 0:
        print("[audiorec] mock-logs: warning: no warm evaluation pairs: val/test will be empty and the ingest's "
              "check will fail (use more tracks, or fewer --users / --months)", file=sys.stderr)
    if report.cold_tracks_played == 0:
        print("[audiorec] mock-logs: warning: no cold track is played in the evaluation window: test_cold will be "
              "empty", file=sys.stderr)


def answer_errors(what: str, command) -> None:
    """Run ``command``; bad settings end it with one line."""
    try:
        command()
    except SettingsError as err:
        raise SystemExit(f"[audiorec] {what}: {err}") from None


def main(argv: list[str] | None = None) -> None:
    from audiorec_assets.guide import sql_tables_help
    from audiorec_assets.queries import ALL_COLUMNS, DEFAULT_K, FORMATS, recommend_for_user, similar_tracks

    parser = argparse.ArgumentParser(prog="audiorec", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", type=Path, default=None, help="lake directory (default: $AUDIOREC_LAKE or ./data_lake)")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="write the demo data if raw/ is empty and run the whole study")
    demo_parser.add_argument("--dataset", choices=("demo", "classical"), default="demo",
                             help="demo: synthetic tones (no extra packages); classical: excerpts of the music21 "
                                  "corpus rendered with FluidSynth, with a mock listening log")
    formats = argparse.ArgumentParser(add_help=False)
    formats.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    sql_parser = commands.add_parser("sql", parents=[formats], help="run a read-only SQL query on the warehouse",
                                     description=f"Runs a read-only query ({QUERY_KINDS}) on "
                                                 "<lake>/warehouse.duckdb and prints the result.",
                                     epilog=sql_tables_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    sql_parser.add_argument("query")
    rec_parser = commands.add_parser("recommend", parents=[formats],
                                     help="top tracks for a user from a trained cell (default: the best with audio)")
    rec_parser.add_argument("--user", required=True, help="a user_id with train plays")
    rec_parser.add_argument("--encoder", default=None, help="default: the leaderboard's best cell with audio")
    rec_parser.add_argument("--recommender", default=None, help="default: the leaderboard's best cell")
    sim_parser = commands.add_parser("similar", parents=[formats],
                                     help="the tracks nearest a track by cosine similarity of an encoder's vectors")
    sim_parser.add_argument("--track", required=True, help="a track_id of audiorec.tracks")
    sim_parser.add_argument("--encoder", default=None,
                            help="default: the encoder of the leaderboard's best audio cell, else the first .npy")
    for listing in (rec_parser, sim_parser):
        listing.add_argument("-k", type=int, default=DEFAULT_K, help=f"how many tracks (default {DEFAULT_K})")
        columns = listing.add_mutually_exclusive_group()
        columns.add_argument("--columns", default=None, metavar="NAMES", help=COLUMNS_HELP)
        columns.add_argument("--all-columns", dest="columns", action="store_const", const=ALL_COLUMNS,
                             help="every column: the same as --columns all")
    mat_parser = commands.add_parser(
        "materialize", help="bring (part of) the study up to date through Dagster, with a live progress display",
        description="Runs the chosen cells and whatever they need that Dagster calls missing, stale or failed "
                    "(the ingest, the encoders' vectors), then the tables. Uses the instance of $DAGSTER_HOME when "
                    "set, so the runs show in `dagster dev`.")
    mat_parser.add_argument("--encoders", nargs="+", default=None, metavar="E", help="default: the settings' encoders")
    mat_parser.add_argument("--recommenders", nargs="+", default=None, metavar="R",
                            help="default: the settings' recommenders")
    mat_parser.add_argument("--select", default=None, metavar="SELECTION",
                            help="run exactly these assets (Dagster's selection syntax, e.g. 'key:audiorec/leaderboard'"
                                 " or 'group:recommenders'), for the chosen partitions")
    mat_parser.add_argument("--force", action="store_true", help="rerun the chosen cells even when up to date")
    mat_parser.add_argument("--dry-run", action="store_true", help="print the runs, run nothing")
    mat_parser.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")
    status_parser = commands.add_parser(
        "status", parents=[formats],
        help="the encoder × recommender grid: materialized / stale / failed / running / missing / not runnable")
    status_parser.add_argument("--no-observe", action="store_true",
                               help="do not record the inputs' current versions first (the observe sensor's job)")
    mock_parser = commands.add_parser(
        "mock-logs", help="write a synthetic raw/listens.csv for a catalogue without listening logs",
        description="Users with tastes over tracks.csv columns (or audio clusters), popularity skew, sessions that "
                    "follow works, repeat listens and tracks released late (the cold-start split). Seeded; marked "
                    "synthetic in the lake (audiorec.split_info.synthetic). Never overwrites a real log.")
    mock_parser.add_argument("--users", type=int, default=None, help="how many users (default 200)")
    mock_parser.add_argument("--months", type=int, default=None, help="time span in months (default 13)")
    mock_parser.add_argument("--seed", type=int, default=None, help="default: the settings' seed")
    mock_parser.add_argument("--taste", default=None, metavar="COLUMNS",
                             help="tracks.csv columns tastes are defined over, comma-separated (default: composer, "
                                  "artist, genre, style, instrumentation, period, era where present)")
    args = parser.parse_args(argv)
    lake_root = (args.lake or default_lake()).resolve()
    if args.command in ("sql", "recommend", "similar", "status") and argv is None:  # `audiorec sql … | head`:
        import signal  # a reader that leaves ends a read-only command quietly, as Unix tools end

        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if args.command in ("demo", "materialize", "status"):  # Dagster's notes on its beta APIs are not for users
        import warnings

        import dagster as dg

        for category in (dg.BetaWarning, dg.PreviewWarning):
            warnings.filterwarnings("ignore", category=category)
    from audiorec_assets import runner
    from audiorec_assets.stopping import stop_on_signals

    if args.command == "demo":
        with stop_on_signals():  # SIGINT / SIGTERM: exit 130 / 143 once the run in progress is interrupted
            runner.demo(lake_root, args.dataset)
    elif args.command == "materialize":
        with stop_on_signals():
            answer_errors("materialize", lambda: runner.materialize(
                lake_root, args.encoders, args.recommenders, args.select, args.force, args.dry_run,
                rich=False if args.plain else None))
    elif args.command == "status":
        answer_errors("status", lambda: runner.status(lake_root, args.format, observe=not args.no_observe))
    elif args.command == "mock-logs":
        answer_errors("mock-logs", lambda: mock_logs(lake_root, args.users, args.months, args.seed, args.taste))
    elif args.command == "sql":
        sql(lake_root, args.query, fmt=args.format)
    elif args.command == "recommend":
        answer("recommend", args.format, lambda: recommend_for_user(
            LakePaths(lake_root), args.user, args.encoder, args.recommender, args.k), args.columns)
    elif args.command == "similar":
        answer("similar", args.format, lambda: similar_tracks(LakePaths(lake_root), args.track, args.encoder, args.k),
               args.columns)


if __name__ == "__main__":
    main()
