"""Sessions: releases, popularity, when users listen, and what a session plays (picks, works / albums in order,
repeats), down to each play's time stamp. Times are seconds since the log's start."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audiorec_assets.data.splits import EVAL_DAYS
from audiorec_assets.datasets.mock_logs.config import MockLogConfig
from audiorec_assets.datasets.mock_logs.index import CatalogueIndex

DAY = 86_400.0
LATE_DAYS = (3, EVAL_DAYS - 2)  # late releases: this many days before the end of the log (inside its last month)
HISTORY_END_DAYS = EVAL_DAYS + 15  # forced train sessions end this long before the end of the log
TAIL_DAYS = 3  # one session falls in the log's last days, so the derived evaluation window is the last month
FRESH_BOOST, FRESH_DAYS = 4.0, 14.0  # a pick weighs a fresh release × (1 + boost · exp(-age / days))
NOVELTY = 0.3  # a new pick weighs a track the user has already heard this much
FROM_START = 0.7  # a picked work / album is played from its first track this often (else from the pick)
LATE_JOIN_SHARE = 0.2  # of the users, join at a random time in the first half of the train window
ACTIVITY_GROWTH = 0.5  # a day at the end of the log draws 1 + this times the sessions of the first day
GAP_SECONDS = (150.0, 420.0)  # between two plays of a session
SESSION_BREAK_S = 600.0  # at least this long between two sessions of a user
_HOUR_WEIGHTS = 1.0 + 0.9 * np.cos(2 * np.pi * (np.arange(24) - 20) / 24)  # peak at 20:00, trough at 08:00


@dataclass
class User:
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


def draw_releases(rng: np.random.Generator, cat: CatalogueIndex, config: MockLogConfig,
                  period: float) -> tuple[np.ndarray, np.ndarray]:
    """(release time of each track in seconds since the start, -1 for out before the log; late flags).

    Whole groups come out together. ``late_share`` of the tracks come out in the last month, at least one group when
    the share is positive and there are two groups or more; ``release_share`` at random times between the first
    week and the last month. One group at least is out at the start.
    """
    n, n_groups = len(cat.track_ids), len(cat.groups)
    sizes = np.array([len(g) for g in cat.groups])
    release = np.full(n, -1.0)
    late = np.zeros(n, dtype=bool)
    order = list(rng.permutation(n_groups))
    spare = n_groups - 1  # groups that may still move into the log
    for share, window, flag in ((config.late_share, (period - LATE_DAYS[1] * DAY, period - LATE_DAYS[0] * DAY),
                                 True),
                                (config.release_share, (7 * DAY, period - HISTORY_END_DAYS * DAY), False)):
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


def draw_popularity(rng: np.random.Generator, cat: CatalogueIndex, skew: float) -> np.ndarray:
    """Zipf over groups (a random rank each), times per-track log-normal noise; sums to 1."""
    ranks = rng.permutation(len(cat.groups))
    group_weight = 1.0 / (ranks + 1.0) ** skew
    popularity = group_weight[cat.group_of] * rng.lognormal(0.0, 0.3, len(cat.track_ids))
    return popularity / popularity.sum()


def session_starts(rng: np.random.Generator, config: MockLogConfig, sessions_per_month: float, joined: float,
                   history_start: float, history_end: float, period: float, tail: bool) -> np.ndarray:
    """Sorted session start times (seconds since the start): ``min_train_sessions`` inside the train
    window, the rest over the user's days (more towards the end), evening-heavy; ``tail`` adds one in
    the log's last days."""
    months_active = (period - joined) / period * config.months
    n_more = int(rng.poisson(rng.lognormal(np.log(sessions_per_month * months_active), 0.5)))
    first_day, n_days = int(joined // DAY), int(period // DAY)
    days = np.arange(first_day, n_days)
    weight = 1.0 + ACTIVITY_GROWTH * days / n_days
    picked = rng.choice(days, size=n_more, p=weight / weight.sum()) * DAY
    forced = rng.uniform(max(joined, history_start), history_end, config.min_train_sessions)
    forced = np.floor(forced / DAY) * DAY
    tail_days = (np.floor(period / DAY) - rng.integers(1, TAIL_DAYS + 1, size=int(tail))) * DAY
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


def _pick(rng: np.random.Generator, user: User, config: MockLogConfig, weight: np.ndarray,
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


def _session(rng: np.random.Generator, cat: CatalogueIndex, user: User, config: MockLogConfig, now: float,
             release: np.ndarray, in_span: np.ndarray) -> list[int]:
    """Track indices of one session: picks, each followed by the rest of its work / album in order.

    A pick weighs a track by the user's ``appeal`` (popularity, less once heard), 0 before its release and
    × (1 + FRESH_BOOST · exp(-age / FRESH_DAYS)) after it (for releases inside the log)."""
    weight = user.appeal.copy()
    out_at = release[in_span]
    boost = 1.0 + FRESH_BOOST * np.exp(-np.maximum(now - out_at, 0.0) / (FRESH_DAYS * DAY))
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


def play_sessions(rng: np.random.Generator, cat: CatalogueIndex, user: User, config: MockLogConfig,
                  starts: np.ndarray, release: np.ndarray, in_span: np.ndarray, popularity: np.ndarray,
                  period: float) -> tuple[np.ndarray, np.ndarray]:
    """The user's plays from the sessions at ``starts`` (each at least :data:`SESSION_BREAK_S` after the
    user's previous play, plays :data:`GAP_SECONDS` apart): (track indices, whole seconds), those before
    ``period``. Updates ``user`` with what it heard."""
    seq: list[int] = []
    when: list[float] = []
    free_at = -np.inf
    for t in starts:
        t = max(float(t), free_at + SESSION_BREAK_S)
        if t >= period:
            break
        played = _session(rng, cat, user, config, t, release, in_span)
        if not played:
            continue
        gaps = rng.uniform(*GAP_SECONDS, len(played))
        times = t + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
        user.heard(played, popularity)
        seq += played
        when += times.tolist()
        free_at = float(times[-1] + gaps[-1])
    stamps = np.floor(np.asarray(when, dtype=np.float64))
    keep = stamps < period
    return np.asarray(seq, dtype=np.int64)[keep], stamps[keep].astype(np.int64)
