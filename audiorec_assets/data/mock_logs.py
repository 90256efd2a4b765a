"""Mock listening logs for a catalogue that has none (the guide's "Extending to Your Dataset", step 3).

``mock_listens(tracks, config)`` turns a catalogue (``track_id`` plus metadata columns, as in
``tracks.csv``) into a listening log ``user_id, track_id, timestamp`` that the study's split can use;
``write_mock_logs(raw_dir, config)`` does it for a lake's ``raw/`` folder and marks the log synthetic
(:data:`~audiorec_assets.data.sources.SYNTHETIC_MARKER`), so the ingest labels every table built from
it (``audiorec.split_info.synthetic``).

The listeners (all randomness from ``MockLogConfig.seed``):

* **tastes** — each user prefers 1 to ``values_per_taste`` values of every taste column (metadata
  columns such as composer or instrumentation; values with more tracks find more fans) and/or of
  the audio clusters (k-means of given item vectors; random clusters of works/albums when there is
  nothing else). A share ``taste_strength`` of the picks start from one preferred value (tracks that
  also match the user's other tastes weigh :data:`TASTE_BONUS` × more); the others from the whole
  catalogue by popularity;
* **popularity** — Zipf-like (exponent ``popularity_skew``) over works/albums, with per-track noise;
* **sessions** — evening-heavy, a little more frequent as the log goes on (``sessions_per_month``;
  by default fewer for a small catalogue, so users still discover tracks in the evaluation month);
  a session plays a work or album (``sequence_column``) in order, mostly from its first track, then
  moves on to another pick; without a sequence column every track is a pick of its own;
* **repeat listens** — a share ``repeat_prob`` of the picks return to a track the user played
  (weighted by plays); new picks weigh tracks already heard :data:`NOVELTY` × less;
* **releases** — ``late_share`` of the tracks (whole works/albums) come out in the log's last
  month, which the derived split evaluates: nobody plays them before, so they are the cold tracks
  of ``test_cold``; ``release_share`` more come out at random times before it (new arrivals that
  the train window sees). Fresh releases are boosted for a couple of weeks;
* **history** — every user has at least ``min_train_sessions`` sessions inside the train window of
  the derived split (the year before the last month), so every user is warm; a fifth of the users
  join later than the start.

None of it is real behaviour: the log measures what an encoder recovers of these assumptions.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from audiorec_assets.data.sources import (
    ONION_LOG,
    OWN_LOGS,
    SYNTHETIC_MARKER,
    find_audio,
    marker_describes,
    read_synthetic_marker,
)
from audiorec_assets.data.splits import EVAL_DAYS, TRAIN_DAYS

MOCK_LOG_VERSION = 1  # bump when the same config and catalogue give another log
MOCK_LOG_FILE = "listens.csv"
# taste columns used when MockLogConfig.taste_columns is None (those present with two or more values)
AUTO_TASTE_COLUMNS: tuple[str, ...] = ("composer", "artist", "genre", "style", "instrumentation", "period", "era")
# sequence columns tried when MockLogConfig.sequence_column is None (the first present that groups tracks)
AUTO_SEQUENCE_COLUMNS: tuple[str, ...] = ("work", "album")
# a numeric column ordering the tracks of a work / album (else the catalogue's row order)
ORDER_COLUMNS: tuple[str, ...] = ("track_number", "tracknumber", "track_no", "movement", "position")

_DAY = 86_400.0
LATE_DAYS = (3, EVAL_DAYS - 2)  # late releases: this many days before the end of the log (inside its last month)
HISTORY_END_DAYS = EVAL_DAYS + 15  # forced train sessions end this long before the end of the log
TAIL_DAYS = 3  # one session falls in the log's last days, so the derived evaluation window is the last month
FRESH_BOOST, FRESH_DAYS = 4.0, 14.0  # a pick weighs a fresh release × (1 + boost · exp(-age / days))
NOVELTY = 0.3  # a new pick weighs a track the user has already heard this much
FROM_START = 0.7  # a picked work / album is played from its first track this often (else from the pick)
TASTE_BONUS = 3.0  # a taste pick weighs a track this much more for each other taste it matches
LATE_JOIN_SHARE = 0.2  # of the users, join at a random time in the first half of the train window
ACTIVITY_GROWTH = 0.5  # a day at the end of the log draws 1 + this times the sessions of the first day
GAP_SECONDS = (150.0, 420.0)  # between two plays of a session
SESSION_BREAK_S = 600.0  # at least this long between two sessions of a user
SESSIONS_PER_MONTH = 4.0  # per user, for catalogues of 160 tracks or more
TRACKS_PER_SESSION_MONTH = 40.0  # smaller catalogues: one session a month per this many tracks
MIN_SESSIONS_PER_MONTH = 0.5
_HOUR_WEIGHTS = 1.0 + 0.9 * np.cos(2 * np.pi * (np.arange(24) - 20) / 24)  # peak at 20:00, trough at 08:00


@dataclass(frozen=True)
class MockLogConfig:
    """How a mock log is drawn (README.md, "Mock listening logs"). Every field has a default.

    * ``users``, ``months`` (from ``start``; at least 2: the derived split evaluates the last month
      and trains on the year before), ``seed``;
    * ``taste_columns`` — metadata columns defining tastes; ``None``: those of
      :data:`AUTO_TASTE_COLUMNS` present, ``()``: none (audio or random clusters only);
    * ``values_per_taste`` — at most this many preferred values per taste column (each user draws 1..N);
    * ``audio_clusters`` — clusters of the given vectors as one more taste (random clusters of
      works/albums when there is no other taste); 0: none;
    * ``taste_strength`` — share of picks that start from a preferred value;
    * ``popularity_skew`` — Zipf exponent of popularity over works/albums (0: uniform);
    * ``sessions_per_month`` (per user, mean; ``None``: :func:`default_sessions_per_month` of the
      catalogue's size), ``session_length`` (plays, mean);
    * ``repeat_prob`` — share of picks that replay a track the user played;
    * ``late_share`` — share of tracks released in the log's last month (the cold tracks);
      ``release_share`` — share released at other times inside the span;
    * ``sequence_column`` — column whose tracks a session plays in order (work, album); ``None``:
      the first of :data:`AUTO_SEQUENCE_COLUMNS` present, ``""``: none;
    * ``min_train_sessions`` — sessions every user has inside the train window.
    """

    users: int = 200
    months: int = 13
    seed: int = 0
    start: date = date(2023, 1, 1)
    taste_columns: tuple[str, ...] | None = None
    values_per_taste: int = 2
    audio_clusters: int = 8
    taste_strength: float = 0.8
    popularity_skew: float = 1.0
    sessions_per_month: float | None = None
    session_length: float = 6.0
    repeat_prob: float = 0.25
    late_share: float = 0.12
    release_share: float = 0.1
    sequence_column: str | None = None
    min_train_sessions: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.start, str):
            try:
                object.__setattr__(self, "start", date.fromisoformat(self.start))
            except ValueError:
                raise ValueError(f"start={self.start!r}: expected a date like 2023-01-01") from None
        elif isinstance(self.start, datetime):
            object.__setattr__(self, "start", self.start.date())
        elif not isinstance(self.start, date):
            raise ValueError(f"start={self.start!r}: expected a date like 2023-01-01")
        if isinstance(self.taste_columns, str):
            names = tuple(c.strip() for c in self.taste_columns.split(",") if c.strip())  # "composer,work"
            object.__setattr__(self, "taste_columns", names)
        elif self.taste_columns is not None:
            object.__setattr__(self, "taste_columns", tuple(self.taste_columns))
        _check_int(self, "users", 1)
        _check_int(self, "months", 2, "the derived split evaluates the last month and trains on the months before")
        _check_int(self, "values_per_taste", 1)
        _check_int(self, "audio_clusters", 0)
        _check_int(self, "min_train_sessions", 1)
        _check_int(self, "seed", 0)
        if self.start.year < 1990 or self.start.year + self.months // 12 + 1 >= 2100:
            raise ValueError(f"start={self.start}, months={self.months}: the log must lie within 1990-2100")
        for name in ("taste_strength", "repeat_prob", "late_share", "release_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value}: must be between 0 and 1")
        if self.late_share + self.release_share >= 1.0:
            raise ValueError(f"late_share + release_share = {self.late_share + self.release_share}: must be below 1 "
                             "(some tracks must be out when the log starts)")
        if self.popularity_skew < 0:
            raise ValueError(f"popularity_skew={self.popularity_skew}: must be 0 or more")
        if self.sessions_per_month is not None and not self.sessions_per_month > 0:
            raise ValueError(f"sessions_per_month={self.sessions_per_month}: must be positive")
        if not self.session_length >= 1:
            raise ValueError(f"session_length={self.session_length}: must be at least 1 (plays per session)")
        for name in self.taste_columns or ():
            if not name:
                raise ValueError("taste_columns: an empty column name")

    @property
    def end(self) -> date:
        """The first day after the log: ``start`` plus ``months`` calendar months."""
        return (pd.Timestamp(self.start) + pd.DateOffset(months=self.months)).date()

    def as_dict(self) -> dict[str, object]:
        """JSON-ready (dates as ISO text, tuples as lists)."""
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["taste_columns"] = None if self.taste_columns is None else list(self.taste_columns)
        return out


def default_sessions_per_month(n_tracks: int) -> float:
    """Sessions per user and month when the config leaves them open: :data:`SESSIONS_PER_MONTH`, fewer for a
    catalogue under ``SESSIONS_PER_MONTH * TRACKS_PER_SESSION_MONTH`` tracks (at least
    :data:`MIN_SESSIONS_PER_MONTH`), so that users of a small catalogue still discover tracks in the
    evaluation month instead of having heard everything before it."""
    return float(np.clip(n_tracks / TRACKS_PER_SESSION_MONTH, MIN_SESSIONS_PER_MONTH, SESSIONS_PER_MONTH))


def _check_int(config: MockLogConfig, name: str, minimum: int | None, why: str = "") -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}={value!r}: must be a whole number")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}={value}: must be at least {minimum}" + (f" ({why})" if why else ""))


@dataclass(frozen=True)
class MockLog:
    """A generated log and the truth behind it.

    ``listens``: user_id, track_id, timestamp (pandas timestamps), sorted by time. ``preferences``:
    one row per user × taste × preferred value (``user_id, taste, value``; ``taste`` is a column of
    the catalogue, ``audio_cluster`` or ``random_cluster``). ``tracks``: per catalogue track
    ``track_id, release`` (NaT: out before the log), ``late``, ``popularity``, ``group`` (work / album
    number) and ``taste:<taste>`` per taste (the track's value, ``""`` for none).
    """

    listens: pd.DataFrame
    preferences: pd.DataFrame
    tracks: pd.DataFrame
    taste_columns: tuple[str, ...]
    sequence_column: str | None


@dataclass(frozen=True)
class MockLogReport:
    """What :func:`write_mock_logs` wrote, with the windows the default split derives from this log:
    ``cold_tracks`` = catalogue tracks without a play in its train window (the ``test_cold`` candidates),
    ``cold_share`` of the catalogue, ``cold_tracks_played`` = those of them played in its evaluation window;
    ``warm_eval_pairs`` = evaluation-window pairs new to their user on tracks with train plays (what val and
    test will hold: 0 means the ingest's interactions check fails; use more tracks or fewer sessions)."""

    log_path: Path
    marker_path: Path
    rows: int
    users: int
    catalogue_tracks: int
    tracks_played: int
    first_listen: datetime
    last_listen: datetime
    cold_tracks: int
    cold_share: float
    cold_tracks_played: int
    warm_eval_pairs: int
    taste_columns: tuple[str, ...]
    sequence_column: str | None
    metadata_rows_without_audio: int
    seconds: float

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out.update(log_path=str(self.log_path), marker_path=str(self.marker_path),
                   first_listen=str(self.first_listen), last_listen=str(self.last_listen),
                   taste_columns=list(self.taste_columns))
        return out


# ----------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class _Catalogue:
    """Index structures the session simulator walks (track indices are rows of the tracks frame)."""

    track_ids: np.ndarray
    groups: list[np.ndarray]  # track indices of each work / album, in play order
    group_of: np.ndarray
    position: np.ndarray  # of each track within its group
    taste_names: tuple[str, ...]
    taste_codes: list[np.ndarray]  # per taste: value code of each track, -1 for none
    taste_values: list[np.ndarray]  # per taste: the value of each code
    sequence_column: str | None


def _prepare(tracks: pd.DataFrame, config: MockLogConfig, vectors: np.ndarray | None,
             rng: np.random.Generator) -> _Catalogue:
    if not isinstance(tracks, pd.DataFrame) or "track_id" not in tracks.columns:
        found = list(tracks.columns) if isinstance(tracks, pd.DataFrame) else type(tracks).__name__
        raise ValueError(f"tracks: needs a track_id column; found {found}")
    if tracks.empty:
        raise ValueError("tracks: the catalogue is empty; a mock log needs at least one track")
    ids = tracks["track_id"]
    if ids.isna().any() or (ids.astype(str).str.strip() == "").any():
        raise ValueError("tracks: a track_id is empty")
    track_ids = ids.astype(str).to_numpy(dtype=object)
    duplicated = pd.Series(track_ids)[pd.Series(track_ids).duplicated()]
    if len(duplicated):
        raise ValueError(f"tracks: track_id {duplicated.iloc[0]!r} appears more than once")
    for track in track_ids:
        if '"' in track or track != track.strip():
            raise ValueError(f"track_id {track!r}: a double quote or surrounding white space, which the listening "
                             "log reader refuses or trims; rename the track (its audio file)")
    n = len(track_ids)
    if vectors is not None:
        vectors = np.asarray(vectors, dtype=np.float64)
        if vectors.ndim != 2 or vectors.shape[0] != n or vectors.shape[1] < 1:
            raise ValueError(f"vectors: expected shape ({n}, d), one row per track, got {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise ValueError("vectors: hold NaN or infinite values")
        if config.audio_clusters == 0:
            raise ValueError("vectors were given but audio_clusters=0: set audio_clusters >= 2 to use them")

    available = [c for c in tracks.columns if c != "track_id"]
    sequence = _sequence_column(tracks, config.sequence_column, available)
    groups, group_of, position = _groups(tracks, sequence)

    names: list[str] = []
    codes: list[np.ndarray] = []
    values: list[np.ndarray] = []
    if config.taste_columns is None:
        wanted = [c for c in AUTO_TASTE_COLUMNS if c in tracks.columns and _labels(tracks[c])[1].size >= 2]
    else:
        wanted = list(dict.fromkeys(config.taste_columns))
        for column in wanted:
            if column == "track_id":
                raise ValueError("taste_columns: track_id names every track apart; pick metadata columns "
                                 f"(available: {available})")
            if column not in tracks.columns:
                raise ValueError(f"taste_columns: no column {column!r} in the tracks table (available: {available})")
    for column in wanted:
        code, value = _labels(tracks[column])
        if value.size == 0:
            raise ValueError(f"taste_columns: column {column!r} has no values")
        names.append(str(column))
        codes.append(code)
        values.append(value)
    if vectors is not None:
        labels = _audio_clusters(vectors, config.audio_clusters, int(rng.integers(2**31)))
        if labels is not None:
            names.append("audio_cluster")
            codes.append(labels)
            values.append(np.array([f"c{i}" for i in range(int(labels.max()) + 1)], dtype=object))
    elif not names and config.audio_clusters >= 1 and len(groups) >= 2:
        k = min(config.audio_clusters, len(groups))
        cluster_of_group = rng.permutation(np.arange(len(groups)) % k)  # every cluster non-empty
        names.append("random_cluster")
        codes.append(cluster_of_group[group_of])
        values.append(np.array([f"c{i}" for i in range(k)], dtype=object))
    return _Catalogue(track_ids, groups, group_of, position, tuple(names), codes, values, sequence)


def _labels(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code per track, -1 for an empty value; the value of each code), codes in order of first appearance."""
    text = column.where(column.notna(), "").astype(str).str.strip()
    code, uniques = pd.factorize(text.where(text != "", None), use_na_sentinel=True)
    return code.astype(np.int64), np.asarray(uniques, dtype=object)


def _sequence_column(tracks: pd.DataFrame, setting: str | None, available: list[str]) -> str | None:
    if setting == "":
        return None
    if setting is not None:
        if setting not in tracks.columns or setting == "track_id":
            raise ValueError(f"sequence_column: no column {setting!r} in the tracks table (available: {available})")
        return setting
    for column in AUTO_SEQUENCE_COLUMNS:
        if column in tracks.columns:
            code, _ = _labels(tracks[column])
            if np.bincount(code[code >= 0], minlength=1).max() >= 2:  # some value groups two tracks or more
                return column
    return None


def _groups(tracks: pd.DataFrame, sequence: str | None) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Works / albums in play order: tracks sharing the sequence column's value (an empty value: a
    group of its own), ordered by the first :data:`ORDER_COLUMNS` column present, else by row."""
    n = len(tracks)
    if sequence is None:
        code = np.arange(n)
    else:
        code, _ = _labels(tracks[sequence])
        alone = code < 0
        code = code.copy()
        code[alone] = code.max(initial=-1) + 1 + np.arange(int(alone.sum()))
        code = pd.factorize(code)[0]  # groups numbered by first appearance
    order_key = np.arange(n, dtype=np.float64)
    for column in ORDER_COLUMNS:
        if column in tracks.columns:
            numbers = pd.to_numeric(tracks[column], errors="coerce").to_numpy(dtype=np.float64)
            order_key = np.where(np.isnan(numbers), np.inf, numbers)
            break
    order = np.lexsort((np.arange(n), order_key, code))
    groups = [g for g in np.split(order, np.flatnonzero(np.diff(code[order])) + 1)]
    position = np.empty(n, dtype=np.int64)
    for members in groups:
        position[members] = np.arange(len(members))
    return groups, code.astype(np.int64), position


def _audio_clusters(vectors: np.ndarray, k: int, seed: int) -> np.ndarray | None:
    """k-means labels of the L2-normalised vectors (fewer clusters when there are fewer distinct rows)."""
    from sklearn.cluster import KMeans

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    k = min(k, len(np.unique(np.round(unit, 6), axis=0)))
    if k < 2:
        return None
    labels = KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(unit)
    return pd.factorize(labels)[0].astype(np.int64)  # numbered by first appearance: stable names


# ----------------------------------------------------------------------------- the simulation


@dataclass
class _User:
    """One listener's tastes and what they have played so far."""

    taste_weights: list[np.ndarray]  # per taste: 0 off the user's values, TASTE_BONUS ** (other tastes matched) on
    plays: np.ndarray  # per track
    appeal: np.ndarray  # per track: popularity, × NOVELTY once heard
    replay: np.ndarray  # per track: sqrt(plays), so favourites come back without running away

    def heard(self, tracks: list[int], popularity: np.ndarray) -> None:
        np.add.at(self.plays, tracks, 1)
        heard = np.unique(tracks)
        self.appeal[heard] = popularity[heard] * NOVELTY
        self.replay[heard] = np.sqrt(self.plays[heard])


def mock_model(tracks: pd.DataFrame, config: MockLogConfig | None = None,
               vectors: np.ndarray | None = None) -> MockLog:
    """The mock log of ``tracks`` (``track_id`` + metadata columns) and the truth behind it.

    ``vectors``: optional item vectors, one row per row of ``tracks``; their k-means clusters become
    one more taste. Same config, tracks (rows in the same order) and vectors: an identical log.
    Raises :class:`ValueError` naming the setting or column at fault.
    """
    config = config or MockLogConfig()
    root = np.random.default_rng(config.seed)
    catalogue_rng, user_rng = root.spawn(2)
    cat = _prepare(tracks, config, vectors, catalogue_rng)
    n = len(cat.track_ids)
    start = pd.Timestamp(config.start)
    period = (pd.Timestamp(config.end) - start).total_seconds()

    release, late = _releases(catalogue_rng, cat, config, period)
    popularity = _popularity(catalogue_rng, cat, config.popularity_skew)
    in_span = np.flatnonzero(release > 0)  # tracks released inside the log

    sessions_per_month = config.sessions_per_month or default_sessions_per_month(n)
    history_end = period - HISTORY_END_DAYS * _DAY
    history_start = max(0.0, period - (EVAL_DAYS + TRAIN_DAYS - 5) * _DAY)
    user_width = max(4, len(str(config.users)))
    value_weight = [np.bincount(code[code >= 0], minlength=len(vals)) ** 0.5
                    for code, vals in zip(cat.taste_codes, cat.taste_values)]
    tail_user = int(user_rng.integers(config.users))
    user_col: list[np.ndarray] = []
    item_col: list[np.ndarray] = []
    stamp_col: list[np.ndarray] = []
    preference_rows: list[tuple[str, str, str]] = []
    for u in range(config.users):
        user_id = f"u{u + 1:0{user_width}d}"
        prefs: list[np.ndarray] = []
        for name, code, vals, weight in zip(cat.taste_names, cat.taste_codes, cat.taste_values, value_weight):
            k = min(int(user_rng.integers(1, config.values_per_taste + 1)), len(vals))
            chosen = user_rng.choice(len(vals), size=k, replace=False, p=weight / weight.sum())
            prefs.append(np.isin(code, chosen))
            preference_rows += [(user_id, name, str(vals[c])) for c in sorted(chosen)]
        bonus = TASTE_BONUS ** np.maximum(np.sum(prefs, axis=0) - 1, 0) if prefs else np.ones(n)
        user = _User(taste_weights=[mask * bonus for mask in prefs], plays=np.zeros(n, dtype=np.int64),
                     appeal=popularity.copy(), replay=np.zeros(n))
        joined = 0.0
        if user_rng.random() < LATE_JOIN_SHARE:
            joined = float(user_rng.uniform(history_start, history_start + 0.5 * (history_end - history_start)))
        starts = _session_starts(user_rng, config, sessions_per_month, joined, history_start, history_end,
                                 period, tail=u == tail_user)
        seq: list[int] = []
        when: list[float] = []
        free_at = -np.inf
        for t in starts:
            t = max(float(t), free_at + SESSION_BREAK_S)
            if t >= period:
                break
            played = _session(user_rng, cat, user, config, t, release, in_span)
            if not played:
                continue
            gaps = user_rng.uniform(*GAP_SECONDS, len(played))
            times = t + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
            user.heard(played, popularity)
            seq += played
            when += times.tolist()
            free_at = float(times[-1] + gaps[-1])
        stamps = np.floor(np.asarray(when, dtype=np.float64))
        keep = stamps < period
        user_col.append(np.full(int(keep.sum()), u))
        item_col.append(np.asarray(seq, dtype=np.int64)[keep])
        stamp_col.append(stamps[keep].astype(np.int64))

    users = np.concatenate(user_col)
    items = np.concatenate(item_col)
    stamps = np.concatenate(stamp_col)
    order = np.lexsort((np.arange(len(users)), users, stamps))  # by time; ties keep a user's order
    users, items, stamps = users[order], items[order], stamps[order]
    listens = pd.DataFrame({
        "user_id": np.array([f"u{i + 1:0{user_width}d}" for i in range(config.users)], dtype=object)[users],
        "track_id": cat.track_ids[items],
        "timestamp": start + pd.to_timedelta(stamps, unit="s"),
    })
    truth = pd.DataFrame({
        "track_id": cat.track_ids,
        "release": [start + pd.Timedelta(seconds=float(r)) if r > 0 else pd.NaT for r in release],
        "late": late,
        "popularity": popularity,
        "group": cat.group_of,
        **{f"taste:{name}": np.where(code >= 0, vals[np.maximum(code, 0)], "")
           for name, code, vals in zip(cat.taste_names, cat.taste_codes, cat.taste_values)},
    })
    preferences = pd.DataFrame(preference_rows, columns=["user_id", "taste", "value"])
    return MockLog(listens, preferences, truth, cat.taste_names, cat.sequence_column)


def mock_listens(tracks: pd.DataFrame, config: MockLogConfig | None = None,
                 vectors: np.ndarray | None = None) -> pd.DataFrame:
    """The listening log of :func:`mock_model`: ``user_id, track_id, timestamp``, sorted by time."""
    return mock_model(tracks, config, vectors).listens


def _releases(rng: np.random.Generator, cat: _Catalogue, config: MockLogConfig,
              period: float) -> tuple[np.ndarray, np.ndarray]:
    """(release time of each track in seconds since the start, -1 for out before the log; late flags).

    Whole groups come out together. ``late_share`` of the tracks come out in the last month, at
    least one group when the share is positive and there are two groups or more; ``release_share``
    at random times between the first week and the last month. One group at least is out at the start.
    """
    n, n_groups = len(cat.track_ids), len(cat.groups)
    sizes = np.array([len(g) for g in cat.groups])
    release = np.full(n, -1.0)
    late = np.zeros(n, dtype=bool)
    order = list(rng.permutation(n_groups))
    spare = n_groups - 1  # groups that may still move into the log
    for share, window, flag in ((config.late_share, (period - LATE_DAYS[1] * _DAY, period - LATE_DAYS[0] * _DAY),
                                 True),
                                (config.release_share, (7 * _DAY, period - HISTORY_END_DAYS * _DAY), False)):
        if share <= 0:
            continue
        target, moved = share * n, 0
        while order and spare > 0 and moved < target:
            at_least_one = flag and moved == 0
            if not at_least_one and moved + sizes[order[0]] / 2 > target:
                break  # the next group would overshoot the share by more than it falls short
            group = order.pop(0)
            members = cat.groups[group]
            release[members] = float(rng.uniform(*window))
            late[members] = flag
            moved += len(members)
            spare -= 1
    return release, late


def _popularity(rng: np.random.Generator, cat: _Catalogue, skew: float) -> np.ndarray:
    """Zipf over groups (a random rank each), times per-track log-normal noise; sums to 1."""
    ranks = rng.permutation(len(cat.groups))
    group_weight = 1.0 / (ranks + 1.0) ** skew
    popularity = group_weight[cat.group_of] * rng.lognormal(0.0, 0.3, len(cat.track_ids))
    return popularity / popularity.sum()


def _session_starts(rng: np.random.Generator, config: MockLogConfig, sessions_per_month: float, joined: float,
                    history_start: float, history_end: float, period: float, tail: bool) -> np.ndarray:
    """Sorted session start times (seconds since the start): ``min_train_sessions`` inside the train
    window, the rest over the user's days (more towards the end), evening-heavy; ``tail`` adds one in
    the log's last days."""
    months_active = (period - joined) / period * config.months
    n_more = int(rng.poisson(rng.lognormal(np.log(sessions_per_month * months_active), 0.5)))
    first_day, n_days = int(joined // _DAY), int(period // _DAY)
    days = np.arange(first_day, n_days)
    weight = 1.0 + ACTIVITY_GROWTH * days / n_days
    picked = rng.choice(days, size=n_more, p=weight / weight.sum()) * _DAY
    forced = rng.uniform(max(joined, history_start), history_end, config.min_train_sessions)
    forced = np.floor(forced / _DAY) * _DAY
    tail_days = (np.floor(period / _DAY) - rng.integers(1, TAIL_DAYS + 1, size=int(tail))) * _DAY
    base = np.concatenate([picked, forced, tail_days])
    hours = rng.choice(24, size=len(base), p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    return np.sort(base + hours * 3600.0 + rng.uniform(0.0, 3600.0, len(base)))


def _choose(rng: np.random.Generator, weight: np.ndarray, exclude: list[int]) -> int | None:
    """An index drawn with probability proportional to ``weight`` (modified in place: ``exclude`` zeroed);
    None when every weight is 0."""
    weight[exclude] = 0.0
    cumulative = np.cumsum(weight)
    total = float(cumulative[-1])
    if not total > 0:
        return None
    return int(min(np.searchsorted(cumulative, rng.random() * total, side="right"), len(weight) - 1))


def _pick(rng: np.random.Generator, user: _User, config: MockLogConfig, weight: np.ndarray,
          exclude: list[int]) -> int | None:
    """One track to start playing from, not in ``exclude``: a replay, a taste pick or a popularity pick by
    ``weight`` (0 for tracks not out yet); None when nothing is left."""
    if rng.random() < config.repeat_prob:
        track = _choose(rng, user.replay.copy(), exclude)
        if track is not None:
            return track
    if user.taste_weights and rng.random() < config.taste_strength:
        taste = user.taste_weights[int(rng.integers(len(user.taste_weights)))]
        track = _choose(rng, weight * taste, exclude)
        if track is not None:
            return track
    return _choose(rng, weight.copy(), exclude)


def _session(rng: np.random.Generator, cat: _Catalogue, user: _User, config: MockLogConfig, now: float,
             release: np.ndarray, in_span: np.ndarray) -> list[int]:
    """Track indices of one session: picks, each followed by the rest of its work / album in order.

    A pick weighs a track by the user's ``appeal`` (popularity, less once heard), 0 before its release and
    × (1 + FRESH_BOOST · exp(-age / FRESH_DAYS)) after it (for releases inside the log)."""
    weight = user.appeal.copy()
    out_at = release[in_span]
    boost = 1.0 + FRESH_BOOST * np.exp(-np.maximum(now - out_at, 0.0) / (FRESH_DAYS * _DAY))
    weight[in_span] *= np.where(out_at <= now, boost, 0.0)
    n_plays = int(rng.geometric(1.0 / config.session_length))
    played: list[int] = []
    members: np.ndarray = np.empty(0, dtype=np.int64)
    pos = 0
    while len(played) < n_plays:
        if pos >= len(members):
            track = _pick(rng, user, config, weight, played)
            if track is None:
                break
            members = cat.groups[cat.group_of[track]]
            pos = 0 if rng.random() < FROM_START else int(cat.position[track])
        played.append(int(members[pos]))
        pos += 1
    return played


# ----------------------------------------------------------------------------- the lake


def read_catalogue(raw_dir: Path) -> tuple[pd.DataFrame, int]:
    """(tracks with audio in ``raw_dir/audio``: ``track_id`` + the ``tracks.csv`` columns, rows in
    ``tracks.csv`` order then audio without a row, sorted; rows of ``tracks.csv`` without audio)."""
    raw_dir = Path(raw_dir)
    audio = find_audio(raw_dir / "audio")
    if not audio:
        raise ValueError(f"{raw_dir / 'audio'}: no audio files (wav, flac, mp3, ogg); a mock log is drawn over "
                         "the tracks with audio: put one file per track there, named <track_id>.<ext>")
    tracks_csv = raw_dir / "tracks.csv"
    if not tracks_csv.exists():
        return pd.DataFrame({"track_id": pd.Series(sorted(audio), dtype=object)}), 0
    meta = pd.read_csv(tracks_csv, dtype=str, keep_default_na=False)
    if "track_id" not in meta.columns:
        raise ValueError(f"{tracks_csv}: needs a track_id column; found {list(meta.columns)}")
    duplicated = meta["track_id"][meta["track_id"].duplicated()]
    if len(duplicated):
        raise ValueError(f"{tracks_csv}: track_id {duplicated.iloc[0]!r} appears more than once")
    with_audio = meta[meta["track_id"].isin(audio)]
    without_row = sorted(set(audio) - set(meta["track_id"]))
    extra = pd.DataFrame({"track_id": without_row, **{c: "" for c in meta.columns if c != "track_id"}})
    catalogue = pd.concat([with_audio, extra], ignore_index=True)[list(meta.columns)]
    return catalogue, int(len(meta) - len(with_audio))


def write_mock_logs(raw_dir: Path, config: MockLogConfig | None = None, vectors: np.ndarray | None = None,
                    staging: Path | None = None) -> MockLogReport:
    """Draw a mock log for the catalogue in ``raw_dir`` and write ``raw_dir/listens.csv`` with its marker.

    The catalogue: the audio files in ``raw_dir/audio`` with the ``tracks.csv`` columns when there is
    one (no ``tracks.csv``: tastes come from ``vectors`` or random clusters). ``vectors``: optional
    item vectors in ``item_idx`` order (track ids sorted, as ``<lake>/embeddings/<encoder>.npy``).
    Refuses (:class:`FileExistsError`) when ``raw_dir`` holds a listening log that is not the mock log
    its :data:`SYNTHETIC_MARKER` describes; replaces an earlier mock log. Both files are written
    atomically (temporaries in ``staging``, by default the lake's ``tmp/staging/``); the marker holds
    the config, :data:`MOCK_LOG_VERSION` and the log's size and SHA-1, and no time, so the same
    config writes the same bytes.
    """
    from audiorec_assets.fingerprints import array_digest, digest
    from audiorec_assets.lakeio import atomic_path, process_staging

    started = time.perf_counter()
    config = config or MockLogConfig()
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise ValueError(f"{raw_dir}: no such folder; put the catalogue's audio in {raw_dir / 'audio'} first")
    marker = raw_dir / SYNTHETIC_MARKER
    previous = _refuse_real_logs(raw_dir, marker)
    catalogue, rows_without_audio = read_catalogue(raw_dir)
    in_catalogue_order = None
    if vectors is not None:
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(catalogue):
            raise ValueError(f"vectors: expected shape ({len(catalogue)}, d), one row per track with audio in "
                             f"item_idx order (sorted track ids), got {vectors.shape}")
        item_idx = {t: i for i, t in enumerate(sorted(catalogue["track_id"]))}
        in_catalogue_order = vectors[[item_idx[t] for t in catalogue["track_id"]]]
    model = mock_model(catalogue, config, in_catalogue_order)
    listens = model.listens
    text = listens.assign(timestamp=listens["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(
        index=False, lineterminator="\n")
    payload = text.encode("utf-8")
    described = {
        "synthetic": True,
        "generator": "audiorec mock-logs (audiorec_assets.data.mock_logs)",
        "version": MOCK_LOG_VERSION,
        "config": config.as_dict(),
        "vectors": None if vectors is None else {"shape": list(vectors.shape), "sha1": array_digest(vectors)},
        "taste_columns": list(model.taste_columns),
        "sequence_column": model.sequence_column,
        "log": {"file": MOCK_LOG_FILE, "bytes": len(payload), "sha1": digest(payload)},
        "note": "A synthetic listening log: not real behaviour. Delete this file and listens.csv to remove it.",
    }
    staging = process_staging(staging if staging is not None else raw_dir.parent / "tmp" / "staging")

    def write_marker(content: dict) -> None:
        with atomic_path(marker, staging=staging) as tmp:
            tmp.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    if previous is not None:  # until the new log is in place, the marker also names the old one
        write_marker({**described, "previous_log": previous})
    else:
        write_marker(described)
    with atomic_path(raw_dir / MOCK_LOG_FILE, staging=staging) as tmp:
        tmp.write_bytes(payload)
    if previous is not None:
        write_marker(described)

    cold, cold_played, warm_eval = _split_preview(listens, catalogue["track_id"])
    return MockLogReport(
        log_path=raw_dir / MOCK_LOG_FILE,
        marker_path=marker,
        rows=len(listens),
        users=int(listens["user_id"].nunique()),
        catalogue_tracks=len(catalogue),
        tracks_played=int(listens["track_id"].nunique()),
        first_listen=listens["timestamp"].iloc[0].to_pydatetime(),
        last_listen=listens["timestamp"].iloc[-1].to_pydatetime(),
        cold_tracks=cold,
        cold_share=round(cold / len(catalogue), 4),
        cold_tracks_played=cold_played,
        warm_eval_pairs=warm_eval,
        taste_columns=model.taste_columns,
        sequence_column=model.sequence_column,
        metadata_rows_without_audio=rows_without_audio,
        seconds=round(time.perf_counter() - started, 2),
    )


def _refuse_real_logs(raw_dir: Path, marker: Path) -> dict | None:
    """Raise :class:`FileExistsError` for a log in ``raw_dir`` that the marker does not describe; return
    the marker's ``log`` entry when ``raw_dir`` holds the mock log it describes (None: no log)."""
    logs = [raw_dir / name for name in (*OWN_LOGS, ONION_LOG, ONION_LOG + ".bz2") if (raw_dir / name).exists()]
    if not logs:
        return None
    described = None
    if marker.exists():
        try:
            described = read_synthetic_marker(marker)
        except ValueError:
            described = None
    for log in logs:
        if log.name != MOCK_LOG_FILE or described is None or not marker_describes(described, log):
            why = (" (the demo's log: a mock log is for your own catalogue)" if (raw_dir / "DEMO.md").exists()
                   else f" (no readable {SYNTHETIC_MARKER} describes it)" if described is None
                   else f" ({SYNTHETIC_MARKER} describes another log: it was replaced or edited)")
            raise FileExistsError(
                f"{log} is a real listening log{why}: mock-logs never overwrites one. Move it out of {raw_dir} "
                "(or use another lake) to write a mock log.")
    return described["log"] if described is not None else None


def _split_preview(listens: pd.DataFrame, catalogue: pd.Series) -> tuple[int, int, int]:
    """(catalogue tracks without a train play, those of them played in the evaluation window, new-to-user
    evaluation pairs of warm users on warm tracks) under the windows ``splits.resolve_windows`` derives
    for an own catalogue with default settings."""
    first, last = listens["timestamp"].min(), listens["timestamp"].max()
    test_start = (last - pd.Timedelta(days=EVAL_DAYS)).normalize()
    train_start = max(first.normalize(), test_start - pd.Timedelta(days=TRAIN_DAYS))
    ts = listens["timestamp"]
    train = listens.loc[(ts >= train_start) & (ts < test_start), ["user_id", "track_id"]].drop_duplicates()
    evaluation = listens.loc[ts >= test_start, ["user_id", "track_id"]].drop_duplicates()
    cold = set(catalogue) - set(train["track_id"])
    new = evaluation.merge(train, how="left", indicator=True).query("_merge == 'left_only'")
    warm = new[new["user_id"].isin(set(train["user_id"])) & new["track_id"].isin(set(train["track_id"]))]
    return len(cold), len(cold & set(evaluation["track_id"])), len(warm)


__all__ = [
    "AUTO_SEQUENCE_COLUMNS",
    "AUTO_TASTE_COLUMNS",
    "MOCK_LOG_FILE",
    "MOCK_LOG_VERSION",
    "MockLog",
    "MockLogConfig",
    "MockLogReport",
    "default_sessions_per_month",
    "mock_listens",
    "mock_model",
    "read_catalogue",
    "write_mock_logs",
]
