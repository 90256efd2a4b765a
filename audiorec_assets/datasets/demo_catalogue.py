"""The demo catalogue: styles, artists, albums and tracks with continuous audible attributes.

Every track has four attributes in *z units* (:data:`ATTRIBUTES`; the scales below turn them into tracks.csv
columns), which the synthesiser renders (:mod:`.demo_audio`) and listeners' tastes are defined over
(:mod:`.demo_listens`), and a timbre mix (a share ``blend`` of a second style's voice). Artists vary around their
style, albums around their artist, tracks around their album (docs/datasets.md, "The demo data set").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from audiorec_assets.datasets.demo_audio import TrackSound

ATTRIBUTES: tuple[str, ...] = ("tempo", "brightness", "register", "density")
_KEY_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# spreads (z units) of the hierarchy around the style's centre
ARTIST_SD = 0.5
ALBUM_SD = 0.35
TRACK_SD = 0.45  # within an album
_Z_LIMITS = np.array([[-2.0, 2.2], [-2.5, 2.5], [-3.7, 3.7], [-3.0, 2.6]])

NEW_RELEASE_SHARE = 0.12  # of the tracks, released inside the last month (the evaluation window)
NEW_RELEASE_DAYS = (3, 27)  # released this many days before the end of the log (min, max)
_LAST_REGULAR_RELEASE_DAYS = 75  # other albums come out at least this long before the end


@dataclass(frozen=True)
class Style:
    """One style: a voice, a drum pattern, a usual mode and the centre of its attributes (z units)."""

    name: str
    voice: str  # a key of demo_audio.VOICES
    centre: tuple[float, float, float, float]  # tempo, brightness, register, density
    mode: str  # "major" | "minor": the style's usual mode (artists flip it now and then)
    percussion: str  # "" | "four" (kick every beat + hats) | "backbeat" (kick 1&3, snare 2&4) | "hats"


STYLES: tuple[Style, ...] = (
    Style("ambient", "pad", (-1.3, -1.0, -0.3, -2.4), "major", ""),
    Style("synthwave", "saw", (0.4, 0.8, 0.2, 0.9), "minor", "four"),
    Style("chiptune", "square", (1.5, 1.2, 2.3, 2.2), "major", "hats"),
    Style("folk", "pluck", (-0.1, 0.0, 0.1, 0.7), "major", ""),
    Style("industrial", "noise", (1.0, 0.3, -2.6, 2.0), "minor", "four"),
    Style("gamelan", "bell", (-0.6, 0.5, 2.0, -0.5), "major", ""),
    Style("chapel", "organ", (-0.8, -0.3, -0.3, -1.6), "minor", ""),
    Style("dub", "bass", (-0.5, -1.5, -2.8, -0.5), "minor", "backbeat"),
)
STYLE_INDEX = {s.name: i for i, s in enumerate(STYLES)}


def tempo_bpm(z: np.ndarray) -> np.ndarray:
    return np.round(100.0 * 2.0 ** (0.4 * np.asarray(z)), 1)


def root_midi(z: np.ndarray) -> np.ndarray:
    return np.round(54.0 + 7.0 * np.asarray(z)).astype(int)


def notes_per_beat(z: np.ndarray, bpm: np.ndarray) -> np.ndarray:
    """Density is a note rate, 2 · 2^z notes per second, whatever the tempo (what the ear counts)."""
    return np.round(2.0 * 2.0 ** np.asarray(z) * 60.0 / np.asarray(bpm), 3)


def attribute_matrix(tracks: pd.DataFrame) -> np.ndarray:
    """``(n_tracks, 4)`` z units of the attributes as rendered, from the public tracks.csv columns: the inverse of
    the scales above (register from the rounded ``root_midi``), what listeners' tastes are measured against."""
    return np.column_stack(
        [
            np.log2(tracks["tempo_bpm"].to_numpy(dtype=float) / 100.0) / 0.4,
            tracks["brightness"].to_numpy(dtype=float),
            (tracks["root_midi"].to_numpy(dtype=float) - 54.0) / 7.0,
            np.log2(tracks["notes_per_beat"].to_numpy(dtype=float) * tracks["tempo_bpm"].to_numpy(dtype=float) / 120.0),
        ]
    )


def style_mix(tracks: pd.DataFrame) -> np.ndarray:
    """``(n_tracks, n_styles)``: each track's timbre mix, ``1 - blend`` of its style + ``blend`` of ``blend_style``."""
    mix = np.zeros((len(tracks), len(STYLES)))
    rows = np.arange(len(tracks))
    blend = tracks["blend"].to_numpy(dtype=float)
    mix[rows, tracks["style"].map(STYLE_INDEX).to_numpy()] = 1.0 - blend
    second = tracks["blend_style"].fillna("").to_numpy()
    has = second != ""
    mix[rows[has], [STYLE_INDEX[s] for s in second[has]]] += blend[has]
    return mix


def track_sound(row) -> TrackSound:
    """The synthesiser's input for one row of the catalogue (a namedtuple from ``itertuples``)."""
    style = STYLES[STYLE_INDEX[row.style]]
    blend_style = row.blend_style if isinstance(row.blend_style, str) else ""
    return TrackSound(
        seconds=float(row.duration_s), tempo_bpm=float(row.tempo_bpm), root_midi=int(row.root_midi), mode=row.mode,
        brightness=float(row.brightness), notes_per_beat=float(row.notes_per_beat), voice=style.voice,
        percussion=style.percussion, percussion_level=float(row.percussion_level),
        blend_voice=STYLES[STYLE_INDEX[blend_style]].voice if blend_style else "",
        blend=float(row.blend) if blend_style else 0.0, decay=float(row.decay),
    )


def build_catalogue(
    rng: np.random.Generator, n_tracks: int, start: date, end: date, min_seconds: float, max_seconds: float
) -> pd.DataFrame:
    """One row per track, in artist → album (release order) → track order; ids ``t0001``….

    Artists get a style round-robin over a shuffled style list (so even a tiny catalogue covers several styles);
    about half the albums predate ``start``, the rest come out before the last 75 days, and
    :data:`NEW_RELEASE_SHARE` of the tracks are on artists' latest albums moved into the last month.
    """
    style_order = rng.permutation(len(STYLES))
    last_release = end - timedelta(days=_LAST_REGULAR_RELEASE_DAYS)
    rows: list[dict] = []
    artist_idx = album_idx = 0
    used_names: set[str] = set()
    while len(rows) < n_tracks:
        style_idx = int(style_order[artist_idx % len(STYLES)])
        style = STYLES[style_idx]
        artist = _unique_name(rng, used_names, _artist_name)
        mode = style.mode if rng.random() > 0.15 else ("minor" if style.mode == "major" else "major")
        artist_z = np.asarray(style.centre) + rng.normal(0.0, ARTIST_SD, len(ATTRIBUTES))
        decay = float(np.exp(rng.normal(0.0, 0.2)))
        percussion_level = rng.uniform(0.6, 1.0)
        if rng.random() < 0.6:
            others = [i for i in range(len(STYLES)) if i != style_idx]
            blend_style, artist_blend = STYLES[int(rng.choice(others))].name, rng.uniform(0.1, 0.4)
        else:
            blend_style, artist_blend = "", 0.0
        n_albums = int(rng.choice([1, 2, 3], p=[0.2, 0.55, 0.25]))
        releases = sorted(_release_date(rng, start, last_release) for _ in range(n_albums))
        for release in releases:
            album = _unique_name(rng, used_names, _album_name)
            size = int(rng.integers(3, 7))
            album_z = artist_z + rng.normal(0.0, ALBUM_SD, len(ATTRIBUTES))
            album_blend = artist_blend + rng.normal(0.0, 0.08) if blend_style else 0.0
            for number in range(1, size + 1):
                if len(rows) == n_tracks:
                    break
                z = np.clip(album_z + rng.normal(0.0, TRACK_SD, len(ATTRIBUTES)), _Z_LIMITS[:, 0], _Z_LIMITS[:, 1])
                blend = float(np.clip(album_blend + rng.normal(0.0, 0.08), 0.0, 0.5)) if blend_style else 0.0
                rows.append(dict(  # in tracks.csv's column order
                    artist=artist, album=album, title=_track_title(rng), style=style.name, track_number=number,
                    release_date=release.isoformat(),
                    duration_s=round(float(rng.uniform(min_seconds, max_seconds)), 2),
                    tempo_bpm=float(tempo_bpm(z[0])), brightness=round(float(z[1]), 3),
                    root_midi=int(root_midi(z[2])), notes_per_beat=float(notes_per_beat(z[3], tempo_bpm(z[0]))),
                    mode=mode, timbre=style.voice, blend_style=blend_style, blend=round(blend, 3),
                    percussion=style.percussion or "none", percussion_level=round(float(percussion_level), 3),
                    decay=round(decay, 3), artist_idx=artist_idx, album_idx=album_idx,
                ))
            album_idx += 1
        artist_idx += 1
    tracks = pd.DataFrame(rows)
    width = max(4, len(str(n_tracks)))
    tracks.insert(0, "track_id", [f"t{i:0{width}d}" for i in range(1, n_tracks + 1)])
    tracks["key"] = [_KEY_NAMES[m % 12] for m in tracks["root_midi"]]
    tracks["new_release"] = _move_new_releases(rng, tracks, end)
    tracks["popularity"] = _popularity(rng, tracks)
    return tracks


def _release_date(rng: np.random.Generator, start: date, last_release: date) -> date:
    if rng.random() < 0.5:  # back catalogue
        return start - timedelta(days=int(rng.integers(1, 8 * 365)))
    return start + timedelta(days=int(rng.integers(0, (last_release - start).days + 1)))


def _move_new_releases(rng: np.random.Generator, tracks: pd.DataFrame, end: date) -> np.ndarray:
    """Move the latest albums of some artists into the last month (in place); returns the flag per track.

    Artists are taken in a random order that cycles through the styles, so the new albums spread over styles.
    A catalogue of fewer than four albums gets none (it must keep training tracks).
    """
    flag = np.zeros(len(tracks), dtype=bool)
    n_albums = int(tracks["album_idx"].nunique())
    target = int(round(NEW_RELEASE_SHARE * len(tracks)))
    if n_albums < 4 or target == 0:
        return flag
    last_album = tracks.groupby("artist_idx")["album_idx"].max()
    artist_style = tracks.groupby("artist_idx")["style"].first()
    by_style = [rng.permutation(artist_style.index[artist_style == s.name].to_numpy()) for s in STYLES]
    style_order = rng.permutation(len(STYLES))
    order = [int(by_style[s][i]) for i in range(max(map(len, by_style))) for s in style_order if i < len(by_style[s])]
    for artist in order:
        if flag.sum() >= target:
            break
        album = tracks["album_idx"].to_numpy() == last_album[artist]
        if flag.sum() + album.sum() > 1.5 * target and flag.any():
            continue  # a big album would overshoot: try the next artist
        day = end - timedelta(days=int(rng.integers(NEW_RELEASE_DAYS[0], NEW_RELEASE_DAYS[1] + 1)))
        tracks.loc[album, "release_date"] = day.isoformat()
        flag |= album
    return flag


def _popularity(rng: np.random.Generator, tracks: pd.DataFrame) -> np.ndarray:
    """Latent track popularity: Zipf over the albums of each style, openers a bit more played."""
    album_style = tracks.groupby("album_idx")["style"].first()
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
    base = name = make(rng)
    suffix = 2
    while name in used:  # small word lists collide; a numeral keeps names unique
        name = f"{base} {suffix}"
        suffix += 1
    used.add(name)
    return name
