"""The train / val / test / test_cold split, in DuckDB (SQL in ``sql/split.sql``); the presets ``guide`` and
``paper_code``, the windows and ``test_cold``: docs/split.md."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from importlib import resources
from math import ceil
from pathlib import Path

import numpy as np
import pandas as pd

from audiorec_assets.data.sources import PARQUET_OPTIONS, Layout
from audiorec_assets.lakeio import atomic_path
from audiorec_assets.settings import ExperimentSettings
from audiorec_assets.warehouse import sql_literal

ONION_TRAIN_START = datetime(2019, 2, 20)
ONION_TEST_START = datetime(2020, 2, 20)
EVAL_DAYS = 30
TRAIN_DAYS = 365


class SplitError(ValueError):
    """The split cannot be made with these settings and data; the message says which setting to change."""


@dataclass(frozen=True)
class SplitWindows:
    """Half-open windows: train ``[train_start, test_start)``, evaluation ``[test_start, test_end)``; in the
    ``guide`` preset ``val_end`` cuts the evaluation window into val (before) and test."""

    train_start: datetime
    test_start: datetime
    test_end: datetime
    val_end: datetime | None


@dataclass(frozen=True)
class SplitReport:
    """Counts of what the split kept and dropped, for metadata and tests. ``dropped_cold_track``: the new-to-user
    pairs of warm users on tracks without train plays (the ``test_cold`` pairs); ``cold_tracks``: every catalogue
    track without train plays (the ``test_cold`` candidates), listened in the evaluation window or not."""

    events_in_window: int
    train_pairs: int
    eval_pairs_before_filters: int
    dropped_not_new: int
    dropped_cold_user: int
    dropped_cold_track: int
    val_pairs: int
    test_pairs: int
    train_users: int
    val_users: int
    test_users: int
    test_cold_pairs: int
    test_cold_users: int
    cold_tracks: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def resolve_windows(con, listens: Path, layout: Layout, settings: ExperimentSettings) -> SplitWindows:
    """The study's dates for Onion, dates derived from the data otherwise; settings override either."""
    split = settings.split
    min_ts, max_ts = con.execute("SELECT min(ts), max(ts) FROM read_parquet($p)", {"p": str(listens)}).fetchone()
    if layout is Layout.ONION:
        test_start = split.test_start or ONION_TEST_START
        train_start = split.train_start or ONION_TRAIN_START
    else:
        test_start = split.test_start or _midnight(max_ts - timedelta(days=EVAL_DAYS))
        train_start = split.train_start or max(_midnight(min_ts), test_start - timedelta(days=TRAIN_DAYS))
    # "no upper bound" (the study's code): end just after the last event
    test_end = split.test_end or (max_ts + timedelta(seconds=1))
    if not train_start < test_start < test_end:
        raise SplitError(
            f"Settings split.train_start={train_start}, split.test_start={test_start}, split.test_end={test_end} "
            f"must be increasing (the data span {min_ts} .. {max_ts})."
        )
    val_end = test_start + (test_end - test_start) * split.val_fraction if settings.preset == "guide" else None
    return SplitWindows(train_start, test_start, test_end, val_end)


def _midnight(ts: datetime) -> datetime:
    return datetime(ts.year, ts.month, ts.day)


MissingAudio = Callable[[list[str], int], None]


def make_split(con, listens: Path, catalogue_track_ids: list[str], windows: SplitWindows,
               settings: ExperimentSettings, target: Path, missing_audio: MissingAudio | None = None) -> SplitReport:
    """Collapse, filter and split the listens into ``target`` (Parquet rows of ``audiorec.interactions``: user_id,
    track_id, first_ts, plays, split; sorted by split (train, val, test, test_cold), user, first_ts, track), in
    DuckDB (the log is read once); ``target`` is replaced atomically. Listens inside the windows on tracks outside
    the catalogue (no audio) are left out; when there are any, ``missing_audio`` is called first with their track
    ids (sorted) and number of events, and may raise to stop the split before anything is written."""
    _register_column(con, "catalogue", "track_id", catalogue_track_ids)
    params = {"listens": str(listens), "train_start": windows.train_start, "test_start": windows.test_start,
              "test_end": windows.test_end}
    for statement in _split_statements():
        con.execute(statement, {k: v for k, v in params.items() if f"${k}" in statement})
    without_audio = con.sql("SELECT track_id, events FROM listened_without_audio ORDER BY track_id").fetchall()
    if without_audio and missing_audio is not None:
        missing_audio([track for track, _ in without_audio], int(sum(events for _, events in without_audio)))
    if settings.preset == "guide":
        assert windows.val_end is not None
        # a view holds no parameters: the cut as a literal, in epoch microseconds (exact)
        val_end = windows.val_end
        if val_end.tzinfo is not None:  # the log's times are UTC without a zone
            val_end = val_end.astimezone(timezone.utc).replace(tzinfo=None)
        val_end_us = (val_end - datetime(1970, 1, 1)) // timedelta(microseconds=1)
        split_sql = f"CASE WHEN e.first_ts < make_timestamp({val_end_us}) THEN 'val' ELSE 'test' END"
    else:
        _register_column(con, "val_users", "user_id", _paper_code_val_users(con, settings))
        split_sql = "CASE WHEN e.user_id IN (SELECT user_id FROM val_users) THEN 'val' ELSE 'test' END"
    # a view (not a table of millions of rows): the COPY below sorts it once, the summary reads it once
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW interactions AS
              SELECT user_id, track_id, first_ts, plays, 'train' AS split, 0 AS split_order FROM train_pairs
              UNION ALL
              SELECT e.user_id, e.track_id, e.first_ts, e.plays, {split_sql},
                     CASE WHEN {split_sql} = 'val' THEN 1 ELSE 2 END FROM eval_pairs AS e
              UNION ALL
              SELECT user_id, track_id, first_ts, plays, 'test_cold', 3 FROM cold_pairs"""
    )
    # the sort by (split, user, first_ts, track) on integer ranks of the ids (every user of a split is a train
    # user, every track a catalogue track): the same order, at about two thirds of the CPU of sorting the strings
    con.execute("CREATE OR REPLACE TEMP TABLE user_rank AS SELECT user_id, "
                "(row_number() OVER (ORDER BY user_id))::INTEGER AS user_rank FROM train_users")
    con.execute("CREATE OR REPLACE TEMP TABLE track_rank AS SELECT track_id, "
                "(row_number() OVER (ORDER BY track_id))::INTEGER AS track_rank FROM (SELECT DISTINCT track_id FROM catalogue)")
    with atomic_path(target, suffix=".parquet") as partial:
        con.execute(f"""COPY (SELECT i.user_id, i.track_id, i.first_ts, i.plays, i.split FROM interactions AS i
                              JOIN user_rank AS u ON u.user_id = i.user_id
                              JOIN track_rank AS t ON t.track_id = i.track_id
                              ORDER BY i.split_order, u.user_rank, i.first_ts, t.track_rank)
                        TO {sql_literal(partial)} ({PARQUET_OPTIONS})""")
    return _report(con)


def split_summary(con) -> pd.DataFrame:
    """Per split (train, val, test, test_cold, in that order; a split without rows gets zeros): pairs, users,
    tracks, plays, first and last listen, of the split :func:`make_split` just made on ``con``."""
    return con.sql(
        """WITH names(split, split_order) AS (VALUES ('train', 0), ('val', 1), ('test', 2), ('test_cold', 3))
           SELECT n.split, coalesce(p.pairs, 0) AS pairs, coalesce(p.users, 0) AS users,
                  coalesce(p.tracks, 0) AS tracks, coalesce(p.plays, 0) AS plays, p.first_listen, p.last_listen
           FROM names AS n LEFT JOIN split_summary AS p USING (split)
           ORDER BY n.split_order"""
    ).df()


def _register_column(con, table: str, column: str, values: list[str]) -> None:
    frame = pd.DataFrame({column: pd.Series(values, dtype=object)})
    con.register(f"{table}_df", frame)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {column}::VARCHAR AS {column} FROM {table}_df")
    con.unregister(f"{table}_df")


_INTEGER_ID = re.compile(r"-?[0-9]+")


def pandas_user_order(users: Iterable[str]) -> list[str]:
    """``users`` in the order the authors' pandas code sees them after ``groupby``: sorted, as
    numbers when every id is an integer (``read_csv`` parses such a column as int), else as strings."""
    ids = list(users)
    if ids and all(_INTEGER_ID.fullmatch(u) for u in ids):
        return sorted(ids, key=lambda u: (int(u), u))
    return sorted(ids)


def paper_code_user_split(users: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(val users, test users) = ``sklearn.model_selection.train_test_split(users, test_size=1 - val_fraction,
    random_state=seed)``, reimplemented (ShuffleSplit): test = the first ``ceil(test_size * n)`` of a
    ``RandomState(seed)`` permutation, val = the rest. ``users`` must already be in :func:`pandas_user_order`."""
    n = len(users)
    n_test = ceil((1 - val_fraction) * n)
    n_train = n - n_test
    if n_test <= 0 or n_train <= 0:
        raise SplitError(
            f"preset paper_code: {n} warm evaluation user(s) cannot be split with split.val_fraction={val_fraction} "
            f"({n_train} val / {n_test} test users); widen the evaluation window (split.test_start, split.test_end) "
            "or change split.val_fraction."
        )
    array = np.array(users, dtype=object)
    permutation = np.random.RandomState(seed).permutation(n)
    return list(array[permutation[n_test:n_test + n_train]]), list(array[permutation[:n_test]])


def _paper_code_val_users(con, settings: ExperimentSettings) -> list[str]:
    """paper_code: the val half of the warm evaluation users (:func:`paper_code_user_split`)."""
    users = pandas_user_order(row[0] for row in con.sql("SELECT DISTINCT user_id FROM eval_pairs").fetchall())
    val_users, _ = paper_code_user_split(users, settings.split.val_fraction, settings.split.seed)
    return val_users


def _split_statements() -> list[str]:
    text = resources.files("audiorec_assets.data").joinpath("sql/split.sql").read_text()
    lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _report(con) -> SplitReport:
    # per split, once: the report's counts and :func:`split_summary`
    con.execute(
        """CREATE OR REPLACE TEMP TABLE split_summary AS
           SELECT split, count(*) AS pairs, count(DISTINCT user_id) AS users, count(DISTINCT track_id) AS tracks,
                  sum(plays) AS plays, min(first_ts) AS first_listen, max(first_ts) AS last_listen
           FROM interactions GROUP BY split"""
    )
    collapse = con.sql(
        """SELECT coalesce(sum(p.train_plays + p.eval_plays), 0),
                  count(*) FILTER (p.train_plays > 0),
                  count(*) FILTER (p.eval_plays > 0),
                  count(*) FILTER (p.eval_plays > 0 AND p.train_plays > 0),
                  count(*) FILTER (p.eval_plays > 0 AND p.train_plays = 0 AND u.user_id IS NULL),
                  count(*) FILTER (p.eval_plays > 0 AND p.train_plays = 0 AND u.user_id IS NOT NULL
                                   AND t.track_id IS NULL)
           FROM pair_periods AS p
           LEFT JOIN train_users AS u ON u.user_id = p.user_id
           LEFT JOIN train_tracks AS t ON t.track_id = p.track_id"""
    ).fetchone()
    per_split = {split: (pairs, users) for split, pairs, users in
                 con.sql("SELECT split, pairs, users FROM split_summary").fetchall()}
    pairs = {split: per_split.get(split, (0, 0))[0] for split in ("val", "test", "test_cold")}
    users = {split: per_split.get(split, (0, 0))[1] for split in ("train", "val", "test", "test_cold")}
    n_cold_tracks = con.sql("SELECT count(*) FROM cold_tracks").fetchone()[0]
    return SplitReport(*(int(c) for c in collapse), val_pairs=int(pairs["val"]), test_pairs=int(pairs["test"]),
                       train_users=int(users["train"]), val_users=int(users["val"]), test_users=int(users["test"]),
                       test_cold_pairs=int(pairs["test_cold"]), test_cold_users=int(users["test_cold"]),
                       cold_tracks=int(n_cold_tracks))
