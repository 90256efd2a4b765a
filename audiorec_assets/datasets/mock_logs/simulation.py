"""The simulation: a catalogue and a config in, a :class:`MockLog` (the listening log and the truth behind
it) out. One seed drives it: a catalogue stream (clusters, releases, popularity) and a user stream."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from audiorec_assets.data.splits import EVAL_DAYS, TRAIN_DAYS
from audiorec_assets.datasets.marker import sorted_log, user_ids
from audiorec_assets.datasets.mock_logs.config import MockLogConfig, default_sessions_per_month
from audiorec_assets.datasets.mock_logs.index import index_catalogue
from audiorec_assets.datasets.mock_logs.sessions import (DAY, HISTORY_END_DAYS, LATE_JOIN_SHARE, User, draw_popularity,
                                                         draw_releases, play_sessions, session_starts)
from audiorec_assets.datasets.mock_logs.tastes import user_tastes


@dataclass(frozen=True)
class MockLog:
    """A generated log and the truth behind it."""

    listens: pd.DataFrame  # user_id, track_id, timestamp (pandas timestamps), sorted by time
    # user_id, taste (a column of the catalogue, audio_cluster or random_cluster), value: one row per preferred value
    preferences: pd.DataFrame
    # per catalogue track: track_id, release (NaT: out before the log), late, popularity, group (work / album
    # number) and taste:<taste> per taste (the track's value, "" for none)
    tracks: pd.DataFrame
    taste_columns: tuple[str, ...]
    sequence_column: str | None


def mock_model(tracks: pd.DataFrame, config: MockLogConfig | None = None,
               vectors: np.ndarray | None = None) -> MockLog:
    """The mock log of ``tracks`` (``track_id`` + metadata columns) and the truth behind it.

    ``vectors``: optional item vectors, one row per row of ``tracks``; their k-means clusters become one more taste.
    Same config, tracks (rows in the same order) and vectors: an identical log. Raises :class:`ValueError` naming
    the setting or column at fault.
    """
    config = config or MockLogConfig()
    root = np.random.default_rng(config.seed)
    catalogue_rng, user_rng = root.spawn(2)
    cat = index_catalogue(tracks, config, vectors, catalogue_rng)
    tastes = cat.tastes
    n = len(cat.track_ids)
    start = pd.Timestamp(config.start)
    period = (pd.Timestamp(config.end) - start).total_seconds()

    release, late = draw_releases(catalogue_rng, cat, config, period)
    popularity = draw_popularity(catalogue_rng, cat, config.popularity_skew)
    in_span = np.flatnonzero(release > 0)  # tracks released inside the log

    sessions_per_month = config.sessions_per_month or default_sessions_per_month(n)
    history_end = period - HISTORY_END_DAYS * DAY
    history_start = max(0.0, period - (EVAL_DAYS + TRAIN_DAYS - 5) * DAY)
    users = user_ids(config.users)
    value_weights = tastes.value_weights()
    tail_user = int(user_rng.integers(config.users))
    user_col: list[np.ndarray] = []
    item_col: list[np.ndarray] = []
    stamp_col: list[np.ndarray] = []
    preference_rows: list[tuple[str, str, str]] = []
    for u, user_id in enumerate(users):
        taste_weights, preferred = user_tastes(user_rng, tastes, value_weights, config.values_per_taste, user_id)
        preference_rows += preferred
        user = User(taste_weights=taste_weights, plays=np.zeros(n, dtype=np.int64),
                    appeal=popularity.copy(), replay=np.zeros(n))
        joined = 0.0
        if user_rng.random() < LATE_JOIN_SHARE:
            joined = float(user_rng.uniform(history_start, history_start + 0.5 * (history_end - history_start)))
        starts = session_starts(user_rng, config, sessions_per_month, joined, history_start, history_end,
                                period, tail=u == tail_user)
        items, stamps = play_sessions(user_rng, cat, user, config, starts, release, in_span, popularity, period)
        user_col.append(np.full(len(items), u))
        item_col.append(items)
        stamp_col.append(stamps)

    listens = sorted_log(users, cat.track_ids, user_col, item_col, stamp_col, config.start)
    truth = pd.DataFrame({
        "track_id": cat.track_ids,
        "release": [start + pd.Timedelta(seconds=float(r)) if r > 0 else pd.NaT for r in release],
        "late": late,
        "popularity": popularity,
        "group": cat.group_of,
        **{f"taste:{name}": np.where(code >= 0, vals[np.maximum(code, 0)], "")
           for name, code, vals in zip(tastes.names, tastes.codes, tastes.values)},
    })
    preferences = pd.DataFrame(preference_rows, columns=["user_id", "taste", "value"])
    return MockLog(listens, preferences, truth, tastes.names, cat.sequence_column)


def mock_listens(tracks: pd.DataFrame, config: MockLogConfig | None = None,
                 vectors: np.ndarray | None = None) -> pd.DataFrame:
    """The listening log of :func:`mock_model`: ``user_id, track_id, timestamp``, sorted by time."""
    return mock_model(tracks, config, vectors).listens
