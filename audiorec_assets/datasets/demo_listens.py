"""The demo's listeners: tastes over audible attributes, sessions that play albums in order.

A user's taste is style weights (matched against each track's timbre mix) and an ideal point ``mu`` in the
attribute space with a tolerance ``width``. A track's *appeal* (fit × style match: :meth:`_User.appeal`) weighs every
choice: the album a session picks, which of its tracks play or are skipped (unlogged), the radio picks
(docs/datasets.md, "The demo data set").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from audiorec_assets.datasets.demo_catalogue import ATTRIBUTES, STYLE_INDEX, STYLES, attribute_matrix, style_mix
from audiorec_assets.datasets.marker import sorted_log, user_ids

_SECONDS_PER_DAY = 86_400
OTHER_STYLES_SHARE = 0.06  # of the style taste, spread over all styles (the rest on 1-2 favourites)
TASTE_OFFSET_SD = 0.5  # a user's ideal point around their favourite styles' centre (z units)
TASTE_DRIFT_SD = 0.25  # how far it moves over the log
WIDTH_RANGE = (0.5, 0.8)  # tolerance of the attribute kernel (z units)
FRESH_BOOST, FRESH_DAYS = 4.0, 14.0  # fresh albums: weight × (1 + boost · exp(-age / days))
POPULARITY_POWER = 0.6  # album / radio choices weigh popularity**this (with appeal and affinity)
SKIP_FLOOR, SKIP_POWER = 0.2, 0.5  # a track plays with probability floor + (1 - floor) * (appeal / album's best)**power
ACTIVITY_GROWTH = 1.0  # a day at the end of the log draws 1 + this times the sessions of the first day
RADIO_SHARE = 0.2  # of the steps of a session, a radio pick instead of the album's next track
CHART_SHARE = 0.1  # of the radio picks, a chart hit (popularity², any style)
_HOUR_WEIGHTS = np.array([3, 2, 1, 0.5, 0.3, 0.3, 0.8, 2, 3, 3, 3, 3, 4, 4, 3, 3, 4, 5, 6, 7, 8, 8, 7, 5], dtype=float)


@dataclass(frozen=True)
class _Catalogue:
    """Index structures the session simulator walks."""

    album_tracks: list[np.ndarray]  # track indices of album a, in album order
    album_of: np.ndarray  # album of each track
    album_size: np.ndarray
    album_style: np.ndarray
    album_release: np.ndarray  # seconds since start (may be negative)
    album_weight: np.ndarray  # album popularity (sum of its tracks')
    album_artist: np.ndarray
    next_album: np.ndarray  # the artist's next album (release order), -1 if none
    style_albums: list[np.ndarray]
    track_popularity: np.ndarray
    track_release: np.ndarray
    attributes: np.ndarray  # (tracks, 4) z units, as rendered
    mix: np.ndarray  # (tracks, styles) timbre mix


def _index_catalogue(tracks: pd.DataFrame, start: date) -> _Catalogue:
    album_idx = tracks["album_idx"].to_numpy()
    n_albums = int(album_idx.max()) + 1
    album_tracks = [np.flatnonzero(album_idx == a) for a in range(n_albums)]
    first = [int(t[0]) for t in album_tracks]
    album_style = tracks["style"].map(STYLE_INDEX).to_numpy()[first]
    release = pd.to_datetime(tracks["release_date"].to_numpy()[first])
    album_release = ((release - pd.Timestamp(start)).total_seconds()).to_numpy()
    album_weight = np.bincount(album_idx, weights=tracks["popularity"].to_numpy(), minlength=n_albums)
    album_artist = tracks["artist_idx"].to_numpy()[first]
    next_album = np.full(n_albums, -1)
    same_artist_next = album_artist[1:] == album_artist[:-1]  # albums are numbered in release order per artist
    next_album[:-1][same_artist_next] = np.arange(1, n_albums)[same_artist_next]
    return _Catalogue(
        album_tracks=album_tracks, album_of=album_idx, album_size=np.bincount(album_idx, minlength=n_albums),
        album_style=album_style, album_release=album_release, album_weight=album_weight, album_artist=album_artist,
        next_album=next_album, style_albums=[np.flatnonzero(album_style == s) for s in range(len(STYLES))],
        track_popularity=tracks["popularity"].to_numpy(), track_release=album_release[album_idx],
        attributes=attribute_matrix(tracks), mix=style_mix(tracks),
    )


@dataclass
class _User:
    """One listener's taste and state while their sessions are simulated."""

    taste_start: np.ndarray  # over styles
    taste_end: np.ndarray
    mu_start: np.ndarray  # ideal point in attribute space
    mu_end: np.ndarray
    width: float
    explore: float
    affinity: np.ndarray  # per album: the user's affinity to its artist
    plays: np.ndarray  # per track
    encountered: np.ndarray  # per track: played or skipped

    def appeal(self, cat: _Catalogue, frac: float) -> tuple[np.ndarray, np.ndarray]:
        """(style taste, appeal per track) at ``frac`` of the log."""
        taste = (1.0 - frac) * self.taste_start + frac * self.taste_end
        mu = (1.0 - frac) * self.mu_start + frac * self.mu_end
        fit = np.exp(-0.5 * np.sum(((cat.attributes - mu) / self.width) ** 2, axis=1))
        return taste, fit * (cat.mix @ taste)


def simulate_listens(
    rng: np.random.Generator, tracks: pd.DataFrame, n_users: int, start: date, end: date, sessions_per_user: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The listening log (user_id, track_id, timestamp, sorted by time) and the users' tastes (one row per user:
    the ideal point and style weights at the start and the end of the log, ``width``, ``explore``, ...)."""
    cat = _index_catalogue(tracks, start)
    period = (end - start).days * _SECONDS_PER_DAY
    style_appeal = rng.dirichlet(np.full(len(STYLES), 2.0))  # some styles have more fans
    present = np.array([len(a) > 0 for a in cat.style_albums], dtype=float)
    centres = np.array([s.centre for s in STYLES])
    n_artists = int(cat.album_artist.max()) + 1
    ids = user_ids(n_users)
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    stamps: list[np.ndarray] = []
    profiles: list[dict] = []
    for u in range(n_users):
        taste_start = _taste(rng, style_appeal * present)
        taste_end = 0.75 * taste_start + 0.25 * _taste(rng, style_appeal * present)  # slight drift
        favourites = np.argsort(-taste_start, kind="stable")[:2]
        centre = taste_start[favourites] @ centres[favourites] / taste_start[favourites].sum()
        mu_start = centre + rng.normal(0.0, TASTE_OFFSET_SD, len(ATTRIBUTES))
        user = _User(
            taste_start=taste_start,
            taste_end=taste_end,
            mu_start=mu_start,
            mu_end=mu_start + rng.normal(0.0, TASTE_DRIFT_SD, len(ATTRIBUTES)),
            width=float(rng.uniform(*WIDTH_RANGE)),
            explore=float(rng.uniform(0.4, 0.8)),
            # favourite artists: within a style, some artists suit a user better for reasons the audio does not show
            affinity=rng.lognormal(0.0, 0.5, n_artists)[cat.album_artist],
            plays=np.zeros(len(tracks), dtype=np.int64),
            encountered=np.zeros(len(tracks), dtype=bool),
        )
        n_sessions = max(2, int(round(rng.lognormal(np.log(sessions_per_user), 0.75))))
        joined = 0.0 if rng.random() < 0.75 else rng.uniform(0.0, 0.6) * period
        starts = _session_starts(rng, n_sessions, joined, period)
        seq: list[int] = []
        when: list[float] = []
        free_at = -np.inf
        for t in starts:
            t = max(t, free_at + 600.0)  # one session at a time per user
            if t >= period:
                break
            played = _session(rng, cat, user, t, t / period)
            gaps = rng.uniform(140.0, 320.0, len(played))
            times = t + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
            np.add.at(user.plays, played, 1)
            seq.extend(played)
            when.extend(times.tolist())
            free_at = times[-1] + gaps[-1]
        keep = np.asarray(when) < period
        users.append(np.full(int(keep.sum()), u))
        items.append(np.asarray(seq, dtype=np.int64)[keep])
        stamps.append(np.floor(np.asarray(when)[keep]).astype(np.int64))
        profiles.append(
            {
                "user_id": ids[u],
                "favourite_styles": " ".join(STYLES[s].name for s in favourites if taste_start[s] > 0.2),
                **{f"mu_{a}": round(float(v), 4) for a, v in zip(ATTRIBUTES, user.mu_start)},
                **{f"mu_{a}_end": round(float(v), 4) for a, v in zip(ATTRIBUTES, user.mu_end)},
                **{f"taste_{st.name}": round(float(v), 4) for st, v in zip(STYLES, user.taste_start)},
                **{f"taste_{st.name}_end": round(float(v), 4) for st, v in zip(STYLES, user.taste_end)},
                "width": round(user.width, 4),
                "explore": round(user.explore, 4),
                "sessions": n_sessions,
            }
        )
    listens = sorted_log(ids, tracks["track_id"].to_numpy(), users, items, stamps, start)
    return listens, pd.DataFrame(profiles)


def _taste(rng: np.random.Generator, appeal: np.ndarray) -> np.ndarray:
    """A sparse distribution over styles: 1-2 favourites carry 1 - OTHER_STYLES_SHARE, the rest a little."""
    p = appeal / appeal.sum()
    n_fav = 1 if rng.random() < 0.45 else 2
    n_fav = min(n_fav, int((p > 0).sum()))
    favourites = rng.choice(len(p), size=n_fav, replace=False, p=p)
    taste = OTHER_STYLES_SHARE * rng.dirichlet(np.full(len(p), 0.4)) * (p > 0)
    taste[favourites] += (1.0 - OTHER_STYLES_SHARE) * rng.dirichlet(np.full(n_fav, 3.0))
    return taste / taste.sum()


def _session_starts(rng: np.random.Generator, n: int, joined: float, period: float) -> np.ndarray:
    """Sorted session start times (seconds since start): days weighted by :data:`ACTIVITY_GROWTH`, evening-heavy
    hours."""
    first_day, n_days = int(joined // _SECONDS_PER_DAY), int(period // _SECONDS_PER_DAY)
    day_weight = 1.0 + ACTIVITY_GROWTH * np.arange(first_day, n_days) / n_days  # people listen more as time goes on
    days = first_day + rng.choice(n_days - first_day, size=n, p=day_weight / day_weight.sum())
    hours = rng.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    return np.sort(days * _SECONDS_PER_DAY + hours * 3600 + rng.uniform(0, 3600, size=n))


def _session(rng: np.random.Generator, cat: _Catalogue, user: _User, now: float, frac: float) -> list[int]:
    """Track indices of one listening session.

    A style from the taste, then an album of it: with probability ``explore`` one the user has not met yet, else
    one they know (often resuming at the first track they have not met). The album is walked in order (mean ~5
    plays), sometimes on into the artist's next album; :data:`RADIO_SHARE` of the steps are radio picks instead.
    """
    taste, appeal = user.appeal(cat, frac)
    released_album = cat.album_release <= now
    style_ok = np.bincount(cat.album_style, weights=released_album, minlength=len(STYLES)) > 0
    p = taste * style_ok
    style = int(rng.choice(len(STYLES), p=p / p.sum()))
    albums = cat.style_albums[style][released_album[cat.style_albums[style]]]
    album_appeal = np.bincount(cat.album_of, weights=appeal, minlength=len(cat.album_size)) / cat.album_size
    met = np.bincount(cat.album_of, weights=user.encountered, minlength=len(cat.album_size))
    heard = np.bincount(cat.album_of, weights=user.plays, minlength=len(cat.album_size))
    fresh = albums[met[albums] == 0]
    known = albums[heard[albums] > 0]
    if len(fresh) and (rng.random() < user.explore or not len(known)):
        age_days = np.maximum(now - cat.album_release[fresh], 0.0) / _SECONDS_PER_DAY
        boost = 1.0 + FRESH_BOOST * np.exp(-age_days / FRESH_DAYS)
        w = cat.album_weight[fresh] ** POPULARITY_POWER * user.affinity[fresh] * album_appeal[fresh] * boost
        album = int(rng.choice(fresh, p=w / w.sum())) if w.sum() > 0 else int(rng.choice(fresh))
        pos = 0 if rng.random() < 0.85 else int(rng.integers(cat.album_size[album]))
    elif len(known):
        w = heard[known] * cat.album_weight[known] ** POPULARITY_POWER * user.affinity[known] * album_appeal[known]
        album = int(rng.choice(known, p=w / w.sum())) if w.sum() > 0 else int(rng.choice(known))
        unmet = np.flatnonzero(~user.encountered[cat.album_tracks[album]])
        if len(unmet) and rng.random() < 0.6:
            pos = int(unmet[0])  # carry on where the user stopped
        else:
            pos = 0 if rng.random() < 0.6 else int(rng.integers(cat.album_size[album]))
    else:  # every released album of the style met, none liked: any of them
        album, pos = int(rng.choice(albums)), 0
    n_plays = 1 + int(rng.geometric(0.22))
    played: list[int] = []
    steps = 0
    while len(played) < n_plays and steps < 4 * n_plays:
        steps += 1
        if rng.random() < RADIO_SHARE:
            played.append(_radio_track(rng, cat, appeal, now))
            continue
        tracks = cat.album_tracks[album]
        if pos >= len(tracks):
            nxt = cat.next_album[album]
            if nxt < 0 or cat.album_release[nxt] > now or rng.random() > 0.35:
                break
            album, pos, tracks = int(nxt), 0, cat.album_tracks[nxt]
        track = int(tracks[pos])
        pos += 1
        best = appeal[tracks].max()
        keep = SKIP_FLOOR + (1.0 - SKIP_FLOOR) * (appeal[track] / best) ** SKIP_POWER if best > 0 else 1.0
        user.encountered[track] = True
        if rng.random() < keep:
            played.append(track)
    if not played:  # everything skipped: the user settles for the album's best track
        tracks = cat.album_tracks[album]
        played.append(int(tracks[np.argmax(appeal[tracks])]))
    user.encountered[played] = True
    return played


def _radio_track(rng: np.random.Generator, cat: _Catalogue, appeal: np.ndarray, now: float) -> int:
    """A released track slipped into a session (radio / shuffle): :data:`CHART_SHARE` a chart hit (popularity², any
    style: what makes popularity a fair baseline), else a track that appeals to the user."""
    released = cat.track_release <= now
    if rng.random() < CHART_SHARE:
        w = cat.track_popularity**2 * released
    else:
        w = cat.track_popularity**POPULARITY_POWER * appeal * released
        if w.sum() <= 0:
            w = cat.track_popularity * released
    return int(rng.choice(len(w), p=w / w.sum()))
