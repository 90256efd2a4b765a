"""How a mock log is drawn: :class:`MockLogConfig`, its validation, and the default session rate."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd

SESSIONS_PER_MONTH = 4.0  # per user, for catalogues of 160 tracks or more
TRACKS_PER_SESSION_MONTH = 40.0  # smaller catalogues: one session a month per this many tracks
MIN_SESSIONS_PER_MONTH = 0.5


@dataclass(frozen=True)
class MockLogConfig:
    """How a mock log is drawn (docs/datasets.md, "Mock listening logs"). Every field has a default."""

    users: int = 200
    months: int = 13  # from start; at least 2: the derived split evaluates the last month, trains on the year before
    seed: int = 0
    start: date = date(2023, 1, 1)
    # metadata columns defining tastes; None: those of AUTO_TASTE_COLUMNS present, (): none (audio or random clusters)
    taste_columns: tuple[str, ...] | None = None
    values_per_taste: int = 2  # at most this many preferred values per taste column (each user draws 1..N)
    # clusters of the given vectors as one more taste (random clusters of works/albums when there is no other); 0: none
    audio_clusters: int = 8
    taste_strength: float = 0.8  # share of picks that start from a preferred value
    popularity_skew: float = 1.0  # Zipf exponent of popularity over works/albums (0: uniform)
    sessions_per_month: float | None = None  # per user, mean; None: default_sessions_per_month of the catalogue's size
    session_length: float = 6.0  # plays, mean
    repeat_prob: float = 0.25  # share of picks that replay a track the user played
    late_share: float = 0.12  # share of tracks released in the log's last month (the cold tracks)
    release_share: float = 0.1  # share released at other times inside the span
    # column whose tracks a session plays in order (work, album); None: first of AUTO_SEQUENCE_COLUMNS there; "": none
    sequence_column: str | None = None
    min_train_sessions: int = 3  # sessions every user has inside the train window

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
        return {**asdict(self), "start": self.start.isoformat(),
                "taste_columns": None if self.taste_columns is None else list(self.taste_columns)}


def default_sessions_per_month(n_tracks: int) -> float:
    """Sessions per user and month when the config leaves them open: :data:`SESSIONS_PER_MONTH`, fewer for a
    catalogue under ``SESSIONS_PER_MONTH * TRACKS_PER_SESSION_MONTH`` tracks (at least
    :data:`MIN_SESSIONS_PER_MONTH`), so that users of a small catalogue still discover tracks in the
    evaluation month instead of having heard everything before it."""
    return float(np.clip(n_tracks / TRACKS_PER_SESSION_MONTH, MIN_SESSIONS_PER_MONTH, SESSIONS_PER_MONTH))


def _check_int(config: MockLogConfig, name: str, minimum: int, why: str = "") -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}={value!r}: must be a whole number")
    if value < minimum:
        raise ValueError(f"{name}={value}: must be at least {minimum}" + (f" ({why})" if why else ""))
