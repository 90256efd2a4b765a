"""The bundled demo data set: a synthetic catalogue with audible attributes and a listening log.

``generate_demo(raw_dir)`` writes the "own catalogue" layout (docs/lake.md, "Input layouts"): ``audio/*.flac``
(22050 Hz mono), ``tracks.csv``, ``listens.csv`` (sorted by time), its synthetic marker and ``DEMO.md``. Only
``audiorec demo`` writes it (:func:`write_demo_if_empty`); no asset does. The generative model
(:mod:`.demo_catalogue`, :mod:`.demo_audio`, :mod:`.demo_listens`): docs/datasets.md, "The demo data set".
"""

from __future__ import annotations

import shutil
import textwrap
import time
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from audiorec_assets.data.sources import ONION_LOG, OWN_LOGS, holds_data
from audiorec_assets.data.synthetic import SYNTHETIC_MARKER
from audiorec_assets.datasets.demo_audio import SAMPLE_RATE, VOICES, TrackSound, synthesize, write_audio_files
from audiorec_assets.datasets.demo_catalogue import (ATTRIBUTES, NEW_RELEASE_SHARE, STYLES, attribute_matrix,
                                                     build_catalogue, style_mix, track_sound)
from audiorec_assets.datasets.demo_listens import CHART_SHARE, RADIO_SHARE, simulate_listens
from audiorec_assets.datasets.marker import describe_log, write_marker
from audiorec_assets.lakeio import atomic_dir, process_staging

__all__ = ["ATTRIBUTES", "DEMO_NOTE", "SAMPLE_RATE", "STYLES", "VOICES", "DemoModel", "DemoSummary", "TrackSound",
           "attribute_matrix", "build_catalogue", "demo_model", "generate_demo", "simulate_listens", "style_mix",
           "synthesize", "track_sound", "write_demo_if_empty"]

DEMO_NOTE = "DEMO.md"
DEMO_LOG = "listens.csv"
# bookkeeping kept out of tracks.csv
_PRIVATE_COLUMNS = ["artist_idx", "album_idx"]


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
    n_new_release_tracks: int
    first_listen: datetime
    last_listen: datetime
    seconds: float


@dataclass(frozen=True)
class DemoModel:
    """The generated data before it is written: the catalogue (with bookkeeping columns),
    the users' tastes and the log (``timestamp`` as pandas timestamps)."""

    tracks: pd.DataFrame
    users: pd.DataFrame
    listens: pd.DataFrame


@dataclass(frozen=True)
class DemoShape:
    """The sizes and span of a demo data set (keyword arguments of :func:`demo_model` / :func:`generate_demo`)."""

    n_tracks: int = 320
    n_users: int = 300
    start: date = date(2019, 1, 1)
    end: date = date(2020, 3, 1)
    sessions_per_user: float = 40.0
    min_seconds: float = 10.0
    max_seconds: float = 20.0

    def __post_init__(self) -> None:
        if self.n_tracks < 1 or self.n_users < 1:
            raise ValueError("n_tracks and n_users must be positive")
        if not (0 < self.min_seconds <= self.max_seconds):
            raise ValueError("need 0 < min_seconds <= max_seconds")
        if self.end <= self.start + timedelta(days=90):
            raise ValueError("the listening period must span more than three months")


def demo_model(seed: int = 0, **shape: object) -> tuple[DemoModel, np.random.Generator]:
    """The catalogue, tastes and log of :func:`generate_demo` (no files; ``shape``: the fields of
    :class:`DemoShape`), and the audio's generator."""
    size = DemoShape(**shape)  # type: ignore[arg-type]
    root = np.random.default_rng(seed)
    catalogue_rng, audio_rng, listener_rng = root.spawn(3)
    tracks = build_catalogue(catalogue_rng, size.n_tracks, size.start, size.end, size.min_seconds, size.max_seconds)
    listens, users = simulate_listens(listener_rng, tracks, size.n_users, size.start, size.end,
                                      size.sessions_per_user)
    return DemoModel(tracks, users, listens), audio_rng


def generate_demo(raw_dir: Path, seed: int = 0, *, write_audio: bool = True, **shape: object) -> DemoSummary:
    """Write the demo data set to ``raw_dir`` and return what was written (``shape``: see :class:`DemoShape`).

    Deterministic in ``seed``: byte-identical CSV files, sample-identical audio; the audio flag does not change the
    CSV files (the catalogue, the audio and the listeners draw from separate children of the one seeded
    generator). Refuses (``FileExistsError``) a folder holding a listening log it did not generate; replaces a
    previous demo. The :data:`SYNTHETIC_MARKER` is written before the log, so the log is never there unflagged.
    """
    t0 = time.perf_counter()
    size = DemoShape(**shape)  # type: ignore[arg-type]
    model, audio_rng = demo_model(seed, **shape)
    raw_dir = Path(raw_dir)
    _prepare_dir(raw_dir)
    tracks, listens = model.tracks, model.listens
    if write_audio:
        sounds = [track_sound(row) for row in tracks.itertuples(index=False)]
        write_audio_files(audio_rng, sounds, [raw_dir / "audio" / f"{t}.flac" for t in tracks["track_id"]])
    tracks.drop(columns=_PRIVATE_COLUMNS).to_csv(raw_dir / "tracks.csv", index=False, lineterminator="\n")
    out = listens.assign(timestamp=listens["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    payload = out[["user_id", "track_id", "timestamp"]].to_csv(index=False, lineterminator="\n").encode("utf-8")
    write_marker(raw_dir / SYNTHETIC_MARKER, _marker(seed, size, payload))
    (raw_dir / DEMO_LOG).write_bytes(payload)
    (raw_dir / DEMO_NOTE).write_text(_demo_note(seed, tracks, size.n_users, len(listens), size.start, size.end))

    return DemoSummary(
        raw_dir=raw_dir, seed=seed, n_tracks=len(tracks), n_albums=int(tracks["album_idx"].nunique()),
        n_artists=int(tracks["artist_idx"].nunique()), n_users=int(listens["user_id"].nunique()),
        n_events=len(listens), n_new_release_tracks=int(tracks["new_release"].sum()),
        first_listen=listens["timestamp"].iloc[0].to_pydatetime(),
        last_listen=listens["timestamp"].iloc[-1].to_pydatetime(), seconds=time.perf_counter() - t0,
    )


def write_demo_if_empty(raw_dir: Path, staging: Path, seed: int = 0, **shape: object) -> DemoSummary | None:
    """What ``audiorec demo`` does first: write the demo data set into ``raw_dir`` when it holds no data (missing,
    empty, or only hidden files such as ``.keep``, which stay); None, touching nothing, when it holds data.

    The demo is generated in a temporary folder under ``staging`` (a lake's ``tmp/staging/``), with copies of the
    hidden files, and swapped in for ``raw_dir`` in one step: an interrupted generation never leaves a half-written
    ``raw/``."""
    if holds_data(raw_dir):
        return None
    with atomic_dir(raw_dir, staging=process_staging(staging)) as folder:
        for hidden in sorted(raw_dir.iterdir()) if raw_dir.is_dir() else []:
            if hidden.is_dir() and not hidden.is_symlink():
                shutil.copytree(hidden, folder / hidden.name, symlinks=True)
            else:
                shutil.copy2(hidden, folder / hidden.name, follow_symlinks=False)
        summary = generate_demo(folder, seed=seed, **shape)
    return replace(summary, raw_dir=raw_dir)


def _marker(seed: int, size: DemoShape, payload: bytes) -> dict:
    """The demo log's :data:`SYNTHETIC_MARKER`: what wrote it, with its seed and sizes, and the log it describes."""
    shape = {name: value.isoformat() if isinstance(value, date) else value for name, value in asdict(size).items()}
    return {
        "synthetic": True,
        # the module's path when first written (now datasets/): the marker's bytes are part of raw/'s version
        "generator": "audiorec demo (audiorec_assets.data.demo)",
        "seed": seed,
        "shape": shape,
        "log": describe_log(DEMO_LOG, payload),
        "note": f"A synthetic listening log: not real behaviour ({DEMO_NOTE} says how it was drawn).",
    }


def _prepare_dir(raw_dir: Path) -> None:
    """Create ``raw_dir``; clear an older demo; never overwrite someone's own data."""
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


def _demo_note(seed: int, tracks: pd.DataFrame, n_users: int, n_events: int, start: date, end: date) -> str:
    def para(text: str) -> str:
        return textwrap.fill(text, width=88, subsequent_indent="  ", break_on_hyphens=False)

    n_new = int(tracks["new_release"].sum())
    new_albums = tracks.loc[tracks["new_release"], "album"].nunique()
    items = [  # wrapped by para(): the source's line breaks are not the note's
        "Styles: " + ", ".join(f"{s.name} ({s.voice})" for s in STYLES) + ". A style fixes the voice (harmonic "
        "profile, noise or FM), a drum pattern, a usual mode and the centre of the continuous attributes.",
        "Every track has continuous audible attributes that the synthesiser renders: tempo (`tempo_bpm`, with a pulse "
        "on every beat), brightness (`brightness`: spectral tilt, noise band, FM index and a low-pass), register "
        "(`root_midi`, `key`), rhythm density (a note rate: `notes_per_beat` x tempo) and a timbre mix (a share "
        "`blend` of the voice of `blend_style`). Artists vary around their style, albums around their artist, and "
        "tracks around their album, so tracks of one album are related but not alike.",
        f"Albums (3-6 tracks) have release dates; {n_new} tracks on {new_albums} albums (`new_release`, about "
        f"{NEW_RELEASE_SHARE:.0%}) come out inside the last month, the evaluation window of the derived split, so "
        "they have no training plays (cold start). `popularity` is the latent popularity (Zipf-like over a style's "
        "albums).",
        "A user's taste is a point in the attribute space (near their 1-2 favourite styles, plus a personal offset, "
        "drifting slightly), a tolerance, and style weights matched against each track's timbre mix; a track's "
        "appeal is how close it sounds to that point times the style match. Users also have a lognormal activity "
        "level (growing over the log), an exploration rate, favourite artists (which the audio does not show) and a "
        "join date. The tastes are not written here: `audiorec_assets.datasets.demo.demo_model(seed)` (same sizes) "
        "regenerates them.",
        "A session picks a style, then a new album (popularity x artist affinity x appeal, boosted while fresh) or a "
        "known one (own plays, resuming where they stopped), and walks it in album order, sometimes into the "
        "artist's next album; tracks that appeal less are skipped more often (skips are not logged); at each step a "
        f"radio pick may come in instead ({RADIO_SHARE:.0%} of the steps: mostly an appealing track, "
        f"{CHART_SHARE:.0%} of them a chart hit).",
    ]
    model = "\n".join(para("- " + item) for item in items)
    return f"""# Demo data (generated)

This folder was written by `audiorec demo` (`audiorec_assets.datasets.demo.generate_demo`)
with **seed {seed}**: {len(tracks)} synthetic tracks, {n_users} synthetic users and
{n_events} listening events between {start.isoformat()} and {end.isoformat()}.
Nothing here is real music or real people; the same seed regenerates the same files.
`{SYNTHETIC_MARKER}` flags `{DEMO_LOG}` synthetic: every table built from it says so
(`audiorec.split_info.synthetic`).

Generative model:

{model}
"""
