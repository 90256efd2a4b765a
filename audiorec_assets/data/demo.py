"""The bundled demo data set: a synthetic catalogue with audible styles and a listening log.

``generate_demo(raw_dir)`` writes the "own catalogue" layout (CONTRACT.md)::

    raw_dir/audio/<track_id>.flac   22050 Hz mono, 10-20 s, synthesised with numpy
    raw_dir/tracks.csv              track_id, artist, album, title, style, ... (generative attributes)
    raw_dir/listens.csv             user_id, track_id, timestamp (YYYY-MM-DD HH:MM:SS), sorted by time
    raw_dir/DEMO.md                 what generated the folder, with the seed

Everything is drawn from one ``np.random.default_rng(seed)``: the same seed gives
byte-identical CSV files and sample-identical audio. The generative model is written so
that audio similarity carries signal (users stick to a few styles, styles sound
different), album order carries signal (sessions play albums in order) and popularity is a
reasonable, but not the best, baseline (Zipf-like popularity within each style).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

SAMPLE_RATE = 22050
DEMO_NOTE = "DEMO.md"
_TABLE_SIZE = 4096
_SECONDS_PER_DAY = 86_400

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
MAJOR_PENTATONIC = (0, 2, 4, 7, 9)
MINOR_PENTATONIC = (0, 3, 5, 7, 10)
_KEY_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# synthesiser internals kept out of tracks.csv (root_midi is published as `key`)
_PRIVATE_COLUMNS = ["artist_idx", "album_idx", "style_idx", "tilt", "decay", "percussion_level", "root_midi"]


# ----------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Style:
    """One audible style: a timbre, a tempo range, a register, a mode and a rhythm."""

    name: str
    timbre: str  # a key of _VOICES
    tempo: tuple[float, float]  # bpm range of the style's artists
    register: tuple[int, int]  # MIDI range of the key's root
    mode: str  # "major" | "minor": the style's usual mode (artists flip it now and then)
    notes_per_beat: float
    percussion: str  # "" | "four" (kick every beat + hats) | "backbeat" (kick 1&3, snare 2&4) | "hats"


STYLES: tuple[Style, ...] = (
    Style("ambient", "pad", (58, 76), (48, 57), "major", 0.25, ""),
    Style("synthwave", "saw", (100, 124), (52, 62), "minor", 2.0, "four"),
    Style("chiptune", "square", (140, 168), (69, 79), "major", 4.0, "hats"),
    Style("folk", "pluck", (84, 108), (52, 62), "major", 2.0, ""),
    Style("industrial", "noise", (118, 138), (33, 40), "minor", 4.0, "four"),
    Style("gamelan", "bell", (60, 84), (67, 76), "major", 1.0, ""),
    Style("chapel", "organ", (66, 88), (48, 57), "minor", 0.5, ""),
    Style("dub", "bass", (68, 86), (31, 40), "minor", 1.0, "backbeat"),
)


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`generate_demo` wrote."""

    raw_dir: Path
    seed: int
    n_tracks: int
    n_albums: int
    n_artists: int
    n_users: int
    n_events: int
    first_listen: datetime
    last_listen: datetime
    seconds: float


@dataclass(frozen=True)
class TrackSound:
    """Everything the synthesiser needs for one track."""

    style: Style
    seconds: float
    tempo_bpm: float
    root_midi: int
    mode: str
    tilt: float  # spectral tilt: harmonic k is scaled by k**-tilt on top of the timbre (brightness)
    decay: float  # note decay multiplier (artist's touch)
    percussion_level: float


# ----------------------------------------------------------------------------- public entry


def generate_demo(
    raw_dir: Path,
    seed: int = 0,
    n_tracks: int = 240,
    n_users: int = 300,
    *,
    start: date = date(2019, 1, 1),
    end: date = date(2020, 3, 1),
    sessions_per_user: float = 30.0,
    min_seconds: float = 10.0,
    max_seconds: float = 20.0,
    write_audio: bool = True,
) -> DemoSummary:
    """Write the demo data set to ``raw_dir`` and return what was written.

    Deterministic in ``seed`` (the audio flag does not change the CSV files: the catalogue,
    the audio and the listeners draw from separate children of the one seeded generator).
    Refuses (``FileExistsError``) to write into a folder holding a listening log that it
    did not generate; a previous demo in ``raw_dir`` is replaced.
    """
    t0 = time.perf_counter()
    if n_tracks < 1 or n_users < 1:
        raise ValueError("n_tracks and n_users must be positive")
    if not (0 < min_seconds <= max_seconds):
        raise ValueError("need 0 < min_seconds <= max_seconds")
    if end <= start + timedelta(days=60):
        raise ValueError("the listening period must span more than two months")
    raw_dir = Path(raw_dir)
    _prepare_dir(raw_dir)

    root = np.random.default_rng(seed)
    catalogue_rng, audio_rng, listener_rng = root.spawn(3)
    tracks = build_catalogue(catalogue_rng, n_tracks, start, end, min_seconds, max_seconds)
    listens = simulate_listens(listener_rng, tracks, n_users, start, end, sessions_per_user)

    if write_audio:
        write_audio_files(audio_rng, tracks, raw_dir / "audio")
    public = tracks.drop(columns=_PRIVATE_COLUMNS)
    public.to_csv(raw_dir / "tracks.csv", index=False, lineterminator="\n")
    out = listens.assign(timestamp=listens["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    out[["user_id", "track_id", "timestamp"]].to_csv(raw_dir / "listens.csv", index=False, lineterminator="\n")
    (raw_dir / DEMO_NOTE).write_text(_demo_note(seed, tracks, n_users, len(listens), start, end))

    return DemoSummary(
        raw_dir=raw_dir,
        seed=seed,
        n_tracks=len(tracks),
        n_albums=int(tracks["album_idx"].nunique()),
        n_artists=int(tracks["artist_idx"].nunique()),
        n_users=int(listens["user_id"].nunique()),
        n_events=len(listens),
        first_listen=listens["timestamp"].iloc[0].to_pydatetime(),
        last_listen=listens["timestamp"].iloc[-1].to_pydatetime(),
        seconds=time.perf_counter() - t0,
    )


def _prepare_dir(raw_dir: Path) -> None:
    """Create ``raw_dir``; clear an older demo; never overwrite someone's own data."""
    from audiorec_assets.data.sources import ONION_LOG, OWN_LOGS

    raw_dir.mkdir(parents=True, exist_ok=True)
    logs = [raw_dir / n for n in (*OWN_LOGS, ONION_LOG, ONION_LOG + ".bz2") if (raw_dir / n).exists()]
    if logs and not (raw_dir / DEMO_NOTE).exists():
        raise FileExistsError(
            f"{raw_dir} already holds a listening log ({logs[0].name}) that is not the demo: pick another folder."
        )
    audio_dir = raw_dir / "audio"
    if (raw_dir / DEMO_NOTE).exists() and audio_dir.is_dir():
        for old in audio_dir.glob("*.flac"):  # a smaller earlier demo must not leave orphans behind
            old.unlink()
    for log in logs:
        log.unlink()


# ----------------------------------------------------------------------------- catalogue


def build_catalogue(
    rng: np.random.Generator, n_tracks: int, start: date, end: date, min_seconds: float, max_seconds: float
) -> pd.DataFrame:
    """One row per track, in artist → album (release order) → track order; ids ``t0001``….

    Artists get a style round-robin over a shuffled style list (so even a tiny catalogue
    covers several styles) and a personal variation of it; albums have 3-6 tracks and a
    release date (about half before ``start``, the rest before the last two months, so
    that every track can be heard in a training window); popularity is Zipf-like over
    the albums of a style.
    """
    style_order = rng.permutation(len(STYLES))
    last_release = end - timedelta(days=75)
    rows: list[dict] = []
    artist_idx = album_idx = 0
    used_names: set[str] = set()
    while len(rows) < n_tracks:
        style_idx = int(style_order[artist_idx % len(STYLES)])
        style = STYLES[style_idx]
        artist = _unique_name(rng, used_names, _artist_name)
        mode = style.mode if rng.random() > 0.15 else ("minor" if style.mode == "major" else "major")
        tempo_centre = rng.uniform(*style.tempo)
        root_centre = int(rng.integers(style.register[0], style.register[1] + 1))
        tilt = rng.normal(0.0, 0.25)
        decay = float(np.exp(rng.normal(0.0, 0.2)))
        percussion_level = rng.uniform(0.6, 1.0)
        n_albums = int(rng.choice([1, 2, 3], p=[0.2, 0.55, 0.25]))
        releases = sorted(_release_date(rng, start, last_release) for _ in range(n_albums))
        for release in releases:
            album = _unique_name(rng, used_names, _album_name)
            size = int(rng.integers(3, 7))
            album_root = root_centre + int(rng.integers(-2, 3))  # one key per album
            for number in range(1, size + 1):
                if len(rows) == n_tracks:
                    break
                rows.append(
                    dict(
                        artist=artist,
                        album=album,
                        title=_track_title(rng),
                        style=style.name,
                        track_number=number,
                        release_date=release.isoformat(),
                        duration_s=round(float(rng.uniform(min_seconds, max_seconds)), 2),
                        tempo_bpm=round(float(tempo_centre * rng.uniform(0.96, 1.04)), 1),
                        root_midi=album_root,
                        mode=mode,
                        timbre=style.timbre,
                        notes_per_beat=style.notes_per_beat,
                        percussion=style.percussion or "none",
                        artist_idx=artist_idx,
                        album_idx=album_idx,
                        style_idx=style_idx,
                        tilt=tilt + rng.normal(0.0, 0.05),
                        decay=decay,
                        percussion_level=percussion_level,
                    )
                )
            album_idx += 1
        artist_idx += 1
    tracks = pd.DataFrame(rows)
    width = max(4, len(str(n_tracks)))
    tracks.insert(0, "track_id", [f"t{i:0{width}d}" for i in range(1, n_tracks + 1)])
    tracks["key"] = [_KEY_NAMES[m % 12] for m in tracks["root_midi"]]
    tracks["popularity"] = _popularity(rng, tracks)
    return tracks


def _release_date(rng: np.random.Generator, start: date, last_release: date) -> date:
    if rng.random() < 0.5:  # back catalogue
        return start - timedelta(days=int(rng.integers(1, 8 * 365)))
    return start + timedelta(days=int(rng.integers(0, (last_release - start).days + 1)))


def _popularity(rng: np.random.Generator, tracks: pd.DataFrame) -> np.ndarray:
    """Latent track popularity: Zipf over the albums of each style, openers a bit more played."""
    album_style = tracks.groupby("album_idx")["style_idx"].first()
    album_weight = np.zeros(len(album_style))
    for _, albums in album_style.groupby(album_style):
        ranks = rng.permutation(len(albums)) + 1
        album_weight[albums.index.to_numpy()] = 1.0 / ranks**1.5
    weight = album_weight[tracks["album_idx"].to_numpy()]
    weight = weight / tracks["track_number"].to_numpy() ** 0.3 * rng.lognormal(0.0, 0.3, len(tracks))
    return np.round(weight / weight.max(), 4)


_SYLLABLES = tuple("ka lo mi ren to va shi dor el na qu ix bel sar um fen zo ria".split())
_ADJECTIVES = tuple("Silver Quiet Broken Golden Distant Electric Hollow Velvet Northern Paper Neon Iron".split())
_NOUNS = tuple("River Engine Garden Signal Harbour Lantern Winter Circuit Orchard Mirror Tide Ember".split())


def _artist_name(rng: np.random.Generator) -> str:
    first = "".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 4)))).capitalize()
    if rng.random() < 0.5:
        return f"The {first}s"
    return f"{first} {''.join(rng.choice(_SYLLABLES, size=2)).capitalize()}"


def _album_name(rng: np.random.Generator) -> str:
    return f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"


def _track_title(rng: np.random.Generator) -> str:
    return f"{rng.choice(_NOUNS)} of {rng.choice(_ADJECTIVES).lower()} {rng.choice(_NOUNS).lower()}"


def _unique_name(rng: np.random.Generator, used: set[str], make) -> str:
    name = make(rng)
    suffix = 2
    base = name
    while name in used:  # small word lists collide; a Roman-free numeral keeps names unique
        name = f"{base} {suffix}"
        suffix += 1
    used.add(name)
    return name


# ----------------------------------------------------------------------------- listeners


@dataclass(frozen=True)
class _Catalogue:
    """Index structures the session simulator walks."""

    album_tracks: list[np.ndarray]  # track indices of album a, in album order
    album_style: np.ndarray
    album_release: np.ndarray  # seconds since start (may be negative)
    album_weight: np.ndarray  # album popularity (sum of its tracks')
    album_artist: np.ndarray
    next_album: np.ndarray  # the artist's next album (release order), -1 if none
    style_albums: list[np.ndarray]
    track_popularity: np.ndarray
    track_style: np.ndarray
    n_styles: int


def _index_catalogue(tracks: pd.DataFrame, start: date) -> _Catalogue:
    album_idx = tracks["album_idx"].to_numpy()
    n_albums = int(album_idx.max()) + 1
    album_tracks = [np.flatnonzero(album_idx == a) for a in range(n_albums)]
    first = [int(t[0]) for t in album_tracks]
    album_style = tracks["style_idx"].to_numpy()[first]
    release = pd.to_datetime(tracks["release_date"].to_numpy()[first])
    album_release = ((release - pd.Timestamp(start)).total_seconds()).to_numpy()
    album_weight = np.bincount(album_idx, weights=tracks["popularity"].to_numpy(), minlength=n_albums)
    album_artist = tracks["artist_idx"].to_numpy()[first]
    next_album = np.full(n_albums, -1)
    same_artist_next = album_artist[1:] == album_artist[:-1]  # albums are numbered in release order per artist
    next_album[:-1][same_artist_next] = np.arange(1, n_albums)[same_artist_next]
    return _Catalogue(
        album_tracks=album_tracks,
        album_style=album_style,
        album_release=album_release,
        album_weight=album_weight,
        album_artist=album_artist,
        next_album=next_album,
        style_albums=[np.flatnonzero(album_style == s) for s in range(len(STYLES))],
        track_popularity=tracks["popularity"].to_numpy(),
        track_style=tracks["style_idx"].to_numpy(),
        n_styles=len(STYLES),
    )


def simulate_listens(
    rng: np.random.Generator, tracks: pd.DataFrame, n_users: int, start: date, end: date, sessions_per_user: float
) -> pd.DataFrame:
    """The listening log (user_id, track_id, timestamp), sorted by timestamp.

    Each user has a taste (1-2 favourite styles dominate, drifting a little over time), a
    lognormal activity level, an exploration rate and a join date; sessions play albums in
    order (see :func:`_session`).
    """
    cat = _index_catalogue(tracks, start)
    period = (end - start).days * _SECONDS_PER_DAY
    style_appeal = rng.dirichlet(np.full(cat.n_styles, 2.0))  # some styles have more fans
    present = np.array([len(a) > 0 for a in cat.style_albums], dtype=float)
    width = max(4, len(str(n_users)))
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    stamps: list[np.ndarray] = []
    for u in range(n_users):
        taste_start = _taste(rng, style_appeal * present)
        taste_end = 0.75 * taste_start + 0.25 * _taste(rng, style_appeal * present)  # slight drift
        n_sessions = max(2, int(round(rng.lognormal(np.log(sessions_per_user), 0.75))))
        joined = 0.0 if rng.random() < 0.75 else rng.uniform(0.0, 0.6) * period
        starts = _session_starts(rng, n_sessions, joined, period)
        explore = rng.uniform(0.4, 0.8)
        # favourite artists: within a style, some artists suit a user better (their sound, too)
        affinity = rng.lognormal(0.0, 0.8, int(cat.album_artist.max()) + 1)[cat.album_artist]
        plays = np.zeros(len(tracks), dtype=np.int64)
        seq: list[int] = []
        when: list[float] = []
        free_at = -np.inf
        for t in starts:
            t = max(t, free_at + 600.0)  # one session at a time per user
            if t >= period:
                break
            frac = t / period
            taste = (1.0 - frac) * taste_start + frac * taste_end
            played = _session(rng, cat, taste, affinity, plays, t, explore)
            gaps = rng.uniform(140.0, 320.0, len(played))
            times = t + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
            np.add.at(plays, played, 1)
            seq.extend(played)
            when.extend(times.tolist())
            free_at = times[-1] + gaps[-1]
        keep = np.asarray(when) < period
        users.append(np.full(int(keep.sum()), u))
        items.append(np.asarray(seq, dtype=np.int64)[keep])
        stamps.append(np.floor(np.asarray(when)[keep]).astype(np.int64))
    user = np.concatenate(users)
    item = np.concatenate(items)
    stamp = np.concatenate(stamps)
    order = np.lexsort((np.arange(len(user)), user, stamp))  # by time; ties keep the session's order
    user, item, stamp = user[order], item[order], stamp[order]
    return pd.DataFrame(
        {
            "user_id": [f"u{i + 1:0{width}d}" for i in user],
            "track_id": tracks["track_id"].to_numpy()[item],
            "timestamp": pd.Timestamp(start) + pd.to_timedelta(stamp, unit="s"),
        }
    )


def _taste(rng: np.random.Generator, appeal: np.ndarray) -> np.ndarray:
    """A sparse distribution over styles: 1-2 favourites carry ~90 %, the rest a little."""
    p = appeal / appeal.sum()
    n_fav = 1 if rng.random() < 0.45 else 2
    n_fav = min(n_fav, int((p > 0).sum()))
    favourites = rng.choice(len(p), size=n_fav, replace=False, p=p)
    taste = 0.12 * rng.dirichlet(np.full(len(p), 0.4)) * (p > 0)
    taste[favourites] += 0.88 * rng.dirichlet(np.full(n_fav, 3.0))
    return taste / taste.sum()


_HOUR_WEIGHTS = np.array([3, 2, 1, 0.5, 0.3, 0.3, 0.8, 2, 3, 3, 3, 3, 4, 4, 3, 3, 4, 5, 6, 7, 8, 8, 7, 5], dtype=float)


def _session_starts(rng: np.random.Generator, n: int, joined: float, period: float) -> np.ndarray:
    """Sorted session start times (seconds since start): uniform days, an evening-heavy daily rhythm."""
    first_day, n_days = int(joined // _SECONDS_PER_DAY), int(period // _SECONDS_PER_DAY)
    days = rng.integers(first_day, n_days, size=n)
    hours = rng.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    return np.sort(days * _SECONDS_PER_DAY + hours * 3600 + rng.uniform(0, 3600, size=n))


def _session(
    rng: np.random.Generator,
    cat: _Catalogue,
    taste: np.ndarray,
    affinity: np.ndarray,
    plays: np.ndarray,
    now: float,
    explore: float,
) -> list[int]:
    """Track indices of one listening session.

    Pick a style from the taste, then an album: with probability ``explore`` a not-yet-heard
    one (popularity × the user's affinity to the artist × a boost for fresh releases), else
    one the user knows (weighted by their plays, often resuming at the first unheard track).
    Play consecutive tracks in album order (mean ~5), sometimes on into the artist's next
    album; one play in ten is a radio pick instead (:func:`_radio_track`).
    """
    released = cat.album_release <= now
    style_ok = np.array([released[a].any() for a in cat.style_albums])
    p = taste * style_ok
    style = int(rng.choice(cat.n_styles, p=p / p.sum()))
    albums = cat.style_albums[style][released[cat.style_albums[style]]]
    heard = np.array([plays[cat.album_tracks[a]].sum() for a in albums])
    fresh = albums[heard == 0]
    known = albums[heard > 0]
    if len(fresh) and (rng.random() < explore or not len(known)):
        age_days = (now - cat.album_release[fresh]) / _SECONDS_PER_DAY
        w = cat.album_weight[fresh] * affinity[fresh] * (1.0 + 1.5 * np.exp(-np.maximum(age_days, 0.0) / 30.0))
        album = int(rng.choice(fresh, p=w / w.sum()))
        pos = 0 if rng.random() < 0.85 else int(rng.integers(len(cat.album_tracks[album])))
    else:
        w = heard[heard > 0].astype(float) * cat.album_weight[known] * affinity[known]
        album = int(rng.choice(known, p=w / w.sum()))
        unheard = np.flatnonzero(plays[cat.album_tracks[album]] == 0)
        if len(unheard) and rng.random() < 0.6:
            pos = int(unheard[0])  # carry on where the user stopped
        else:
            pos = 0 if rng.random() < 0.6 else int(rng.integers(len(cat.album_tracks[album])))
    n_plays = 1 + int(rng.geometric(0.22))
    played: list[int] = []
    while len(played) < n_plays:
        if rng.random() < 0.1:
            played.append(_radio_track(rng, cat, taste, now))
            continue
        tracks = cat.album_tracks[album]
        if pos >= len(tracks):
            nxt = cat.next_album[album]
            if nxt < 0 or cat.album_release[nxt] > now or rng.random() > 0.35:
                break
            album, pos, tracks = int(nxt), 0, cat.album_tracks[nxt]
        played.append(int(tracks[pos]))
        pos += 1
    return played or [int(cat.album_tracks[album][0])]


def _radio_track(rng: np.random.Generator, cat: _Catalogue, taste: np.ndarray, now: float) -> int:
    """A released track slipped into a session (radio / shuffle).

    30 % a chart hit (popularity², any style: what makes popularity a fair baseline),
    otherwise a popular track of the user's taste.
    """
    released_track = np.zeros(len(cat.track_popularity), dtype=bool)
    for a in np.flatnonzero(cat.album_release <= now):
        released_track[cat.album_tracks[a]] = True
    if rng.random() < 0.3:
        w = cat.track_popularity**2 * released_track
    else:
        w = cat.track_popularity * taste[cat.track_style] * released_track
    return int(rng.choice(len(w), p=w / w.sum()))


# ----------------------------------------------------------------------------- audio


def write_audio_files(rng: np.random.Generator, tracks: pd.DataFrame, audio_dir: Path) -> None:
    """Synthesise every track and write ``audio_dir/<track_id>.flac`` (16-bit)."""
    import soundfile as sf

    audio_dir.mkdir(parents=True, exist_ok=True)
    track_rngs = rng.spawn(len(tracks))  # one stream per track: a track's audio does not depend on the others
    for row, track_rng in zip(tracks.itertuples(index=False), track_rngs):
        sound = TrackSound(
            style=STYLES[row.style_idx],
            seconds=row.duration_s,
            tempo_bpm=row.tempo_bpm,
            root_midi=row.root_midi,
            mode=row.mode,
            tilt=row.tilt,
            decay=row.decay,
            percussion_level=row.percussion_level,
        )
        y = synthesize(track_rng, sound)
        sf.write(str(audio_dir / f"{row.track_id}.flac"), y, SAMPLE_RATE, format="FLAC", subtype="PCM_16")


def synthesize(rng: np.random.Generator, sound: TrackSound, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A mono float32 waveform of ``sound.seconds`` seconds, peak below 1, fades at both ends."""
    n = int(round(sound.seconds * sr))
    beat = int(round(60.0 / sound.tempo_bpm * sr))
    voice = _VOICES[sound.style.timbre]
    y = voice(rng, sound, n, beat, sr)
    if sound.style.percussion:
        y = y + 0.5 * sound.percussion_level * _percussion(rng, sound.style.percussion, n, beat, sr)
    y = y / (np.sqrt(np.mean(y**2)) + 1e-9) * 0.12  # equal loudness: styles differ by timbre, not level
    y = y + 2e-4 * _loop(rng.standard_normal(sr), n)  # a faint noise floor: no digital silence (log features)
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.05 * sr))
    y = y * fade
    peak = np.max(np.abs(y))
    if peak > 0.95:
        y = y * (0.95 / peak)
    return y.astype(np.float32)


# -- building blocks (all vectorised over samples)


def _scale(sound: TrackSound, pentatonic: bool = False) -> tuple[int, ...]:
    if pentatonic:
        return MAJOR_PENTATONIC if sound.mode == "major" else MINOR_PENTATONIC
    return MAJOR if sound.mode == "major" else MINOR


def _degrees_to_midi(degrees: np.ndarray, scale: tuple[int, ...], root: int) -> np.ndarray:
    steps = np.asarray(scale)
    return root + 12 * (degrees // len(steps)) + steps[degrees % len(steps)]


def _melody(rng: np.random.Generator, n_notes: int, low: int = -2, high: int = 9) -> np.ndarray:
    """Scale degrees of a tune: a random-walk motif of 8 notes, repeated with a few changes."""
    steps = rng.choice([-2, -1, 0, 1, 2, 3], size=8, p=[0.15, 0.3, 0.1, 0.3, 0.1, 0.05])
    motif = np.clip(np.cumsum(steps), low, high)
    reps = -(-n_notes // 8)
    tune = np.tile(motif, reps)[:n_notes] + np.repeat(rng.choice([0, 0, 2, -2, 4], size=reps), 8)[:n_notes]
    mutate = rng.random(n_notes) < 0.2
    tune[mutate] += rng.integers(-2, 3, size=int(mutate.sum()))
    return np.clip(tune, low, high)


def _hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=float) - 69.0) / 12.0)


def _note_index(n: int, note: int) -> np.ndarray:
    """Index of the note every sample belongs to (notes of ``note`` samples, back to back)."""
    return np.repeat(np.arange(-(-n // note)), note)[:n]


def _loop(cycle: np.ndarray, n: int) -> np.ndarray:
    """``cycle`` repeated to ``n`` samples: every note has the same shape, so shapes are computed once."""
    return np.tile(cycle, -(-n // len(cycle)))[:n]


def _phase(freq: np.ndarray, sr: int) -> np.ndarray:
    """Phase in cycles of a sample-wise frequency (continuous across note changes: no clicks)."""
    return np.cumsum(freq / sr)


def _table(amps: np.ndarray, tilt: float) -> np.ndarray:
    """One cycle of a waveform with harmonic k at amplitude ``amps[k-1] * k**-tilt``."""
    k = np.arange(1, len(amps) + 1)
    x = np.arange(_TABLE_SIZE) / _TABLE_SIZE
    wave = (amps * k**-tilt) @ np.sin(2 * np.pi * np.outer(k, x))
    return wave / np.max(np.abs(wave))


def _osc(table: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Wavetable lookup (phase >= 0 in cycles); the power-of-two table size makes the wrap a bit mask."""
    return table[(phase * _TABLE_SIZE).astype(np.int64) & (_TABLE_SIZE - 1)]


def _env(
    note: int, n: int, sr: int, attack: float, decay: float, release: float = 0.01, hold: float = 1.0
) -> np.ndarray:
    """Per-note attack / exponential decay / release envelope, over ``n`` samples of equal notes.

    The note sounds for ``hold`` of its length (gated notes), ``decay=np.inf`` sustains.
    """
    tau = np.arange(note)
    t = tau / sr
    rise = np.minimum(1.0, t / attack)
    fall = np.exp(-t / decay) if np.isfinite(decay) else 1.0
    tail = np.clip((hold * note - tau) / (release * sr), 0.0, 1.0)
    return _loop(rise * fall * tail, n)


def _lowpass(y: np.ndarray, cutoff: float, sr: int, order: int = 2) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    return sosfilt(butter(order, cutoff, btype="low", fs=sr, output="sos"), y)


def _bandpass(y: np.ndarray, low: float, high: float, sr: int) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    return sosfilt(butter(2, [low, high], btype="band", fs=sr, output="sos"), y)


def _chord_roots(rng: np.random.Generator, n_bars: int) -> np.ndarray:
    """Scale degrees of chord roots, one per bar, from a few common progressions."""
    progressions = np.array([[0, 5, 3, 4], [0, 3, 4, 3], [0, 4, 5, 3], [5, 3, 0, 4]])
    return np.tile(progressions[rng.integers(len(progressions))], -(-n_bars // 4))[:n_bars]


# -- the timbres


def _pad(rng: np.random.Generator, s: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """Sine-ish chords, slow swells, one chord per bar: dark, smooth, few onsets."""
    bar = 4 * beat
    idx = _note_index(n, bar)
    chords = _chord_roots(rng, idx[-1] + 1)
    table = _table(np.array([1.0, 0.25, 0.08]), s.tilt)
    t = np.arange(n) / sr
    y = np.zeros(n)
    for offset in (0, 2, 4):  # triad
        midi = _degrees_to_midi(chords + offset, _scale(s), s.root_midi)
        freq = _hz(midi)[idx] * (1.0 + 0.003 * np.sin(2 * np.pi * (0.2 + offset * 0.05) * t))
        y += _osc(table, _phase(freq, sr))
    env = _env(bar, n, sr, attack=0.6 * s.decay, decay=np.inf, release=0.5)
    return y * env * (0.8 + 0.2 * np.sin(2 * np.pi * 0.25 * t))


def _saw(rng: np.random.Generator, s: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """Bright sawtooth lead over a sawtooth bass: buzzy, lots of high harmonics."""
    note = int(beat / s.style.notes_per_beat)
    idx = _note_index(n, note)
    lead = _degrees_to_midi(_melody(rng, idx[-1] + 1), _scale(s), s.root_midi + 12)
    table = _table(1.0 / np.arange(1, 15), s.tilt)
    y = _osc(table, _phase(_hz(lead)[idx], sr)) * _env(note, n, sr, 0.005, 0.35 * s.decay, 0.02)
    bidx = _note_index(n, 4 * beat)
    bass = _degrees_to_midi(_chord_roots(rng, bidx[-1] + 1), _scale(s), s.root_midi - 12)
    return y + 0.7 * _osc(table, _phase(_hz(bass)[bidx], sr)) * _env(4 * beat, n, sr, 0.01, 1.5, 0.05)


def _square(rng: np.random.Generator, s: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """Fast square-wave arpeggios, gated notes, triangle bass: the 8-bit console sound."""
    note = int(beat / s.style.notes_per_beat)
    idx = _note_index(n, note)
    n_notes = idx[-1] + 1
    chords = np.repeat(_chord_roots(rng, n_notes // 16 + 1), 16)[:n_notes]
    arpeggio = chords + _loop(np.array([0, 2, 4, 7]), n_notes)
    midi = _degrees_to_midi(arpeggio, _scale(s), s.root_midi)
    odd = np.array([1.0 / k if k % 2 else 0.0 for k in range(1, 16)])
    y = _osc(_table(odd, s.tilt), _phase(_hz(midi)[idx], sr)) * _env(note, n, sr, 0.001, np.inf, 0.002, hold=0.7)
    bidx = _note_index(n, 2 * beat)
    bass_roots = np.repeat(_chord_roots(rng, bidx[-1] // 2 + 1), 2)[: bidx[-1] + 1]
    bass = _degrees_to_midi(bass_roots, _scale(s), s.root_midi - 24)
    tri = _table(np.array([1.0 / k**2 if k % 2 else 0.0 for k in range(1, 10)]), 0.0)
    return y + 0.6 * _osc(tri, _phase(_hz(bass)[bidx], sr))


def _pluck(rng: np.random.Generator, s: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """Plucked string: bright attack whose upper harmonics die first (two decaying layers)."""
    note = int(beat / s.style.notes_per_beat)
    idx = _note_index(n, note)
    midi = _degrees_to_midi(_melody(rng, idx[-1] + 1, low=-3, high=11), _scale(s), s.root_midi)
    phase = _phase(_hz(midi)[idx], sr)
    bright = _table(1.0 / np.arange(1, 13) ** 0.8, s.tilt)
    body = _table(np.array([1.0, 0.4, 0.15]), 0.0)
    y = _osc(bright, phase) * _env(note, n, sr, 0.002, 0.06 * s.decay)
    y += _osc(body, phase) * _env(note, n, sr, 0.002, 0.5 * s.decay)
    bidx = _note_index(n, 2 * beat)
    bass_roots = np.repeat(_chord_roots(rng, bidx[-1] // 2 + 1), 2)[: bidx[-1] + 1]
    bass = _degrees_to_midi(bass_roots, _scale(s), s.root_midi - 12)
    return y + 0.5 * _osc(body, _phase(_hz(bass)[bidx], sr)) * _env(2 * beat, n, sr, 0.002, 0.8 * s.decay)


def _noise(rng: np.random.Generator, s: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """Band-passed noise bursts on sixteenths with accents (a two-beat loop), over a distorted drone."""
    note = int(beat / s.style.notes_per_beat)
    cycle = 8 * note
    centre = 1500.0 * np.exp(s.tilt)
    hiss = _bandpass(rng.standard_normal(2 * cycle), centre * 0.5, min(centre * 3.0, 0.45 * sr), sr)[cycle:]
    accents = np.repeat(rng.choice([0.2, 0.5, 1.0], size=8, p=[0.3, 0.3, 0.4]), note)
    bursts = hiss / (np.std(hiss) + 1e-9) * accents * _env(note, cycle, sr, 0.001, 0.05 * s.decay)
    t = np.arange(n) / sr
    drone = np.tanh(3.0 * np.sin(2 * np.pi * _hz(s.root_midi) * t) + np.sin(2 * np.pi * _hz(s.root_midi + 7) * t))
    return _loop(bursts, n) + 0.5 * drone


def _bell(rng: np.random.Generator, s: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """FM bells: inharmonic partials (modulator ratio 3.5) whose brightness fades with the note."""
    note = int(beat / s.style.notes_per_beat)
    idx = _note_index(n, note)
    midi = _degrees_to_midi(_melody(rng, idx[-1] + 1, low=0, high=8), _scale(s, pentatonic=True), s.root_midi)
    phase = 2 * np.pi * _phase(_hz(midi)[idx], sr)
    index = _loop(3.0 * np.exp(s.tilt) * np.exp(-np.arange(note) / (0.3 * sr)), n)
    return np.sin(phase + index * np.sin(3.5 * phase)) * _env(note, n, sr, 0.002, 0.7 * s.decay, 0.03)


def _organ(rng: np.random.Generator, s: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """Drawbar organ: sustained chords with octave-rich, flat harmonics and a slow melody."""
    drawbars = np.array([1.0, 0.9, 0.6, 0.7, 0.0, 0.5, 0.0, 0.5, 0.0, 0.0, 0.0, 0.3])
    table = _table(drawbars, s.tilt)
    bar = 4 * beat
    cidx = _note_index(n, bar)
    chords = _chord_roots(rng, cidx[-1] + 1)
    vibrato = 1.0 + 0.004 * np.sin(2 * np.pi * 6.0 * np.arange(n) / sr)
    y = np.zeros(n)
    for offset in (0, 2, 4):
        midi = _degrees_to_midi(chords + offset, _scale(s), s.root_midi - 12)
        y += 0.5 * _osc(table, _phase(_hz(midi)[cidx] * vibrato, sr))
    y *= _env(bar, n, sr, 0.03, np.inf, 0.05)
    note = int(beat / s.style.notes_per_beat)
    idx = _note_index(n, note)
    midi = _degrees_to_midi(_melody(rng, idx[-1] + 1), _scale(s), s.root_midi)
    return y + _osc(table, _phase(_hz(midi)[idx] * vibrato, sr)) * _env(note, n, sr, 0.03, np.inf, 0.05)


def _bass(rng: np.random.Generator, s: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """Deep, round sub-bass lines (sine + a little 2nd/3rd harmonic), low-passed, with rests."""
    note = int(beat / s.style.notes_per_beat)
    idx = _note_index(n, note)
    midi = _degrees_to_midi(_melody(rng, idx[-1] + 1, low=-2, high=7), _scale(s), s.root_midi)
    table = _table(np.array([1.0, 0.35, 0.12]), s.tilt)
    sounding = rng.random(idx[-1] + 1) >= 0.2  # dub leaves space
    y = _osc(table, _phase(_hz(midi)[idx], sr)) * _env(note, n, sr, 0.01, 0.9 * s.decay, 0.05) * sounding[idx]
    return _lowpass(y, 400.0, sr)


_VOICES = {
    "pad": _pad,
    "saw": _saw,
    "square": _square,
    "pluck": _pluck,
    "noise": _noise,
    "bell": _bell,
    "organ": _organ,
    "bass": _bass,
}


def _percussion(rng: np.random.Generator, pattern: str, n: int, beat: int, sr: int) -> np.ndarray:
    """A drum loop (kick / snare / hats one-shots placed in one pattern cycle), repeated to ``n``."""
    t = np.arange(int(0.3 * sr)) / sr
    kick = np.sin(2 * np.pi * np.cumsum(50.0 + 90.0 * np.exp(-t / 0.03)) / sr) * np.exp(-t / 0.09)
    hat = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t / 0.012) * 0.35  # differencing = crude high-pass
    snare = (0.6 * rng.standard_normal(len(t)) + np.sin(2 * np.pi * 190.0 * t)) * np.exp(-t / 0.06) * 0.6
    half = beat // 2
    hits = {
        "four": [(kick, 0), (hat, half), (kick, beat), (hat, beat + half)],
        "backbeat": [(kick, 0), (snare, beat)],
        "hats": [(hat, 0), (hat, half), (hat, beat), (hat, beat + half), (snare, beat)],
    }[pattern]
    cycle = np.zeros(2 * beat)
    for sound, offset in hits:  # a handful of hits per cycle, not a loop over samples
        part = sound[: len(cycle)]
        cycle[(offset + np.arange(len(part))) % len(cycle)] += part  # tails wrap into the next cycle
    return _loop(cycle, n)


def _demo_note(seed: int, tracks: pd.DataFrame, n_users: int, n_events: int, start: date, end: date) -> str:
    import textwrap

    styles = textwrap.fill(
        "- Styles: " + ", ".join(f"{s.name} ({s.timbre})" for s in STYLES) + ". A style fixes the timbre "
        "(harmonic profile, noise or FM), a tempo range, a register, a usual mode and a rhythm "
        "(notes per beat, percussion pattern).",
        width=88,
        subsequent_indent="  ",
    )
    return f"""# Demo data (generated)

This folder was written by `audiorec demo` (`audiorec_assets.data.demo.generate_demo`)
with **seed {seed}**: {len(tracks)} synthetic tracks, {n_users} synthetic users and
{n_events} listening events between {start.isoformat()} and {end.isoformat()}.
Nothing here is real music or real people; the same seed regenerates the same files.

Generative model:

{styles}
- Artists belong to one style with a personal variation (tempo, key, brightness,
  note decay); albums (3-6 tracks, release dates) belong to artists, tracks to albums.
  `tracks.csv` lists these attributes; `popularity` is the latent popularity
  (Zipf-like over a style's albums).
- Users have a taste (1-2 favourite styles carry ~90 %, drifting slightly), a lognormal
  activity level, an exploration rate, favourite artists and a join date. A session
  picks a style, then a new album (popularity, boosted while fresh) or a known one (own
  plays, resuming where they stopped), and plays tracks in album order, sometimes into
  the artist's next album; one play in ten is a radio pick (a chart hit or a popular
  track of the user's styles).
"""
