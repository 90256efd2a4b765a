"""The ``audiorec`` command: ``demo`` runs the whole study on the lake, ``sql`` queries the warehouse,
``recommend`` lists a user's top tracks from a trained cell, ``similar`` a track's nearest tracks.

Exit codes: 0 done; 1 an error (a refused or failed query, a failed run); 2 bad input (an unknown user,
track, encoder, recommender or cell); 3 not materialized yet (the message names the partition)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from audiorec_assets.settings import LakePaths, default_lake, load_settings


def _instance():
    """The persistent Dagster instance when ``$DAGSTER_HOME`` is set (runs then show in ``dagster dev``)."""
    import dagster as dg

    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def _run(defs, instance, planned) -> bool:
    """One planned run (``defs/execute.py``), with its checks; its failures printed in one line each."""
    from audiorec_assets.defs.execute import execute

    started = time.perf_counter()
    print(f"[audiorec] {planned.label} ...", flush=True)
    result = execute(defs, instance, planned, run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}})
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            print(f"[audiorec]   check failed: {evaluation.asset_key.to_user_string()} {evaluation.check_name}",
                  flush=True)
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                error = event.step_failure_data.error
                while error is not None and error.cause is not None:  # the user's error, not Dagster's wrapper
                    error = error.cause
                message = error.message.strip() if error else ""
                print(f"[audiorec]   {event.step_key} failed: {message}", file=sys.stderr)
        print(f"[audiorec] {planned.label} failed (run {result.run_id}).", file=sys.stderr, flush=True)
        return False
    print(f"[audiorec] {planned.label} done in {time.perf_counter() - started:.1f} s", flush=True)
    return True


def demo(lake_root: Path) -> None:
    """Write the demo data if ``raw/`` is empty, then bring the study up to date as Dagster's automation
    would (``defs/execute.py``): observe the inputs, run what the automation conditions request, repeat."""
    from audiorec_assets.definitions import build_definitions
    from audiorec_assets.defs.execute import bring_up_to_date
    from audiorec_assets.defs.ingest import ensure_raw
    from audiorec_assets.defs.partitions import lake_members, sync_partitions
    from audiorec_assets.defs.resources import LakeResource

    lake = LakePaths(lake_root)
    lake.root.mkdir(parents=True, exist_ok=True)
    write_demo_settings(lake)
    settings = load_settings(lake.root)
    print(f"[audiorec] lake: {lake.root} (preset {settings.preset}; encoders {settings.encoders}; "
          f"recommenders {settings.recommenders})", flush=True)
    ensure_raw(LakeResource(root=str(lake.root)))
    defs = build_definitions(lake.root)
    instance = _instance()
    from audiorec_assets.run_health import fail_dead_runs

    for run_id in fail_dead_runs(instance):
        print(f"[audiorec] run {run_id} was still marked running but its process is gone: marked failed", flush=True)
    wanted = lake_members(lake, settings)
    sync_partitions(instance, wanted)
    for name, why in wanted.left_out.items():
        print(f"[audiorec] not run: encoder {name!r} cannot run here: {why}", flush=True)
    runs = bring_up_to_date(defs, instance, lake.root, lambda planned: _run(defs, instance, planned))
    failed = [p.label for p, ok in runs if not ok]
    if not runs:
        print("[audiorec] everything is up to date", flush=True)
    elif failed:
        print(f"[audiorec] {len(failed)} of {len(runs)} run(s) failed: {failed}", file=sys.stderr, flush=True)
    print_leaderboard(lake)
    if failed:
        raise SystemExit(1)


LEADERBOARD_COLUMNS = ["encoder", "recommender", "reference", "hitrate", "hitrate_ci_low", "hitrate_ci_high", "ndcg",
                       "recall", "n_users", "n_seeds"]


def write_demo_settings(lake: LakePaths) -> bool:
    """Write the demo's settings as ``<lake>/experiment.yaml`` when the demo will be generated (``raw/`` empty)
    and the lake has no settings yet; never overwrites a user's file. Returns whether it wrote."""
    from importlib import resources

    from audiorec_assets.lakeio import atomic_path, process_staging
    from audiorec_assets.settings import SETTINGS_FILE

    target = lake.root / SETTINGS_FILE
    raw_has_data = lake.raw.exists() and any(not p.name.startswith(".") for p in lake.raw.iterdir())
    if target.exists() or raw_has_data:
        return False
    text = resources.files("audiorec_assets.data").joinpath("demo_experiment.yaml").read_text()
    with atomic_path(target, staging=process_staging(lake.staging)) as tmp:
        tmp.write_text(text)
    print(f"[audiorec] wrote the demo's settings to {target} (sized for the demo; see the comments in it)", flush=True)
    return True


def print_leaderboard(lake: LakePaths) -> None:
    """The warm and the cold leaderboard, as stored (``audiorec.leaderboard``, ``audiorec.leaderboard_cold``)."""
    from audiorec_assets.warehouse import read_table

    if not (lake.table_dir("leaderboard") / "all.parquet").exists():
        raise SystemExit("[audiorec] no leaderboard yet: see the messages above.")
    for table, title in (("leaderboard", "warm tracks: test split"),
                         ("leaderboard_cold", "cold tracks (no train plays): test_cold split")):
        if not (lake.table_dir(table) / "all.parquet").exists():
            continue
        board = read_table(lake, table)
        k = int(board["k"].iloc[0]) if len(board) else "?"
        print(f"\nLeaderboard, {title}, @{k} (audiorec.{table}; reference = no audio):")
        columns = [c for c in LEADERBOARD_COLUMNS if c in board.columns]
        print(board[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))


SQL_BUSY_TIMEOUT_S = 5.0
SQL_PREFIX = "[audiorec] sql:"
QUERY_KINDS = "SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN, PRAGMA table_info"


def sql(lake_root: Path, query: str, busy_timeout_s: float = SQL_BUSY_TIMEOUT_S, fmt: str = "table") -> None:
    """Print the result of ``query`` on the warehouse (as ``fmt``: :data:`audiorec_assets.queries.FORMATS`), read-only in fact: queries only, files read only under
    ``<lake>/tables`` (what the views read), nothing written, no extensions installed or loaded. Every error,
    and a warehouse busy for ``busy_timeout_s``, ends the command with one line and a non-zero exit."""
    import duckdb

    lake = LakePaths(lake_root)
    if not lake.warehouse.exists():
        raise SystemExit(f"{SQL_PREFIX} {lake.warehouse} does not exist yet: run `audiorec demo` (or the ingest) first.")
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
    from audiorec_assets.queries import render

    print(render(frame, fmt))


def _open_read_only(lake: LakePaths, timeout_s: float):
    """A read-only connection to the warehouse, waiting up to ``timeout_s`` while a writer holds it."""
    import duckdb

    from audiorec_assets.warehouse import is_lock_error, lock_holder

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return duckdb.connect(str(lake.warehouse), read_only=True)
        except duckdb.Error as err:
            if not is_lock_error(err):
                raise SystemExit(f"{SQL_PREFIX} {_one_line(err)}") from None
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"{SQL_PREFIX} the warehouse {lake.warehouse} is busy: {lock_holder(err)} has it open for "
                    f"writing (a run creating a new view holds it for a moment; a DuckDB session opened without "
                    f"read-only holds it until closed). Waited {timeout_s:.0f} s: try again.") from None
            time.sleep(0.2)


def _lock_down(con, lake: LakePaths) -> None:
    """No file access outside ``<lake>/tables``, no extension installs or loads, and no way to undo that."""
    import duckdb

    tables = str(lake.tables).rstrip("/").replace("'", "''") + "/"
    try:
        con.execute(f"SET allowed_directories = ['{tables}']")
    except duckdb.Error as err:
        raise SystemExit(f"{SQL_PREFIX} this DuckDB ({duckdb.__version__}) cannot limit file access to the lake "
                         f"({_one_line(err)}): install duckdb >= 1.1.") from None
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
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


def answer(what: str, fmt: str, ask) -> None:
    """Print the :class:`audiorec_assets.queries.Answer` that ``ask()`` returns; its header goes to stdout
    for ``table``/``markdown`` and to stderr for ``csv``/``json`` (so that stdout parses). A
    :class:`~audiorec_assets.queries.QueryError` ends the command with its one line and its exit code."""
    from audiorec_assets.queries import QueryError, render
    from audiorec_assets.settings import SettingsError

    try:
        result = ask()
    except QueryError as err:
        print(f"[audiorec] {what}: {err}", file=sys.stderr, flush=True)
        raise SystemExit(err.exit_code) from None
    except SettingsError as err:
        raise SystemExit(f"[audiorec] {what}: {err}") from None
    header = f"[audiorec] {result.header}"
    print(header, file=sys.stdout if fmt in ("table", "markdown") else sys.stderr, flush=True)
    print(render(result.rows, fmt))


def main(argv: list[str] | None = None) -> None:
    from audiorec_assets.queries import DEFAULT_K, FORMATS

    parser = argparse.ArgumentParser(prog="audiorec", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", type=Path, default=None, help="lake directory (default: $AUDIOREC_LAKE or ./data_lake)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="write the demo data if raw/ is empty and run the whole study")
    formats = argparse.ArgumentParser(add_help=False)
    formats.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    sql_parser = commands.add_parser("sql", parents=[formats], help="run a read-only SQL query on the warehouse")
    sql_parser.add_argument("query")
    rec_parser = commands.add_parser("recommend", parents=[formats],
                                     help="top tracks for a user from a trained cell (default: the leaderboard's best)")
    rec_parser.add_argument("--user", required=True, help="a user_id with train plays")
    rec_parser.add_argument("--encoder", default=None, help="default: the leaderboard's best cell")
    rec_parser.add_argument("--recommender", default=None, help="default: the leaderboard's best cell")
    rec_parser.add_argument("-k", type=int, default=DEFAULT_K, help=f"how many tracks (default {DEFAULT_K})")
    sim_parser = commands.add_parser("similar", parents=[formats],
                                     help="the tracks nearest a track by cosine similarity of an encoder's vectors")
    sim_parser.add_argument("--track", required=True, help="a track_id of audiorec.tracks")
    sim_parser.add_argument("--encoder", default=None,
                            help="default: the encoder of the leaderboard's best audio cell, else the first .npy")
    sim_parser.add_argument("-k", type=int, default=DEFAULT_K, help=f"how many tracks (default {DEFAULT_K})")
    args = parser.parse_args(argv)
    lake_root = (args.lake or default_lake()).resolve()
    if args.command == "demo":
        demo(lake_root)
    elif args.command == "sql":
        sql(lake_root, args.query, fmt=args.format)
    elif args.command == "recommend":
        from audiorec_assets.queries import recommend_for_user

        answer("recommend", args.format, lambda: recommend_for_user(
            LakePaths(lake_root), args.user, args.encoder, args.recommender, args.k))
    elif args.command == "similar":
        from audiorec_assets.queries import similar_tracks

        answer("similar", args.format, lambda: similar_tracks(LakePaths(lake_root), args.track, args.encoder, args.k))


if __name__ == "__main__":
    main()
