"""The catalogue: one row per track with audio, ``item_idx`` = rank of the sorted track id."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from audiorec_assets.data.audio import duration_or_nan
from audiorec_assets.data.audio_verdicts import file_fingerprint, remembered_durations
from audiorec_assets.data.sources import RawSource, SourceError, find_audio_names
from audiorec_assets.settings import LakePaths


@dataclass(frozen=True)
class CatalogueReport:
    tracks: int
    listened_without_audio: int
    audio_without_listens: int
    examples_without_audio: list[str]


def build_tracks(con, source: RawSource, listens: Path, lake: LakePaths | None = None, probe: bool = False
                 ) -> tuple[pd.DataFrame, CatalogueReport]:
    """``audiorec.tracks`` rows: track_id, item_idx, audio_path, duration_s (+ tracks.csv columns).

    ``audio_path`` is relative to ``lake``'s root (``raw/audio/<id>.flac``) when the file lies inside it,
    so a moved or copied lake reads its own audio; absolute otherwise (or without ``lake``).

    Track ids are sorted ascending and numbered from 0 (the study's ``trackid_sorted.csv``).
    Whether listens without audio are an error is decided by the split (setting ``missing_audio``);
    here they are counted. Unreadable audio gets a NaN duration; the blocking tracks check
    names every such file.

    With ``lake``, a file whose (path, size, mtime_ns) the tracks check has already probed takes its duration
    from ``lake.audio_verdicts`` (the same :func:`~audiorec_assets.data.audio.duration_or_nan`, remembered);
    only new or changed files, or all of them before the check's first run, have their header read.

    With ``lake`` and ``probe`` (the ingest, whose blocking tracks check follows), a new or changed file is not
    only read for its duration but probed as the check probes it, once
    (:func:`~audiorec_assets.data.quality.file_verdicts`: the header's duration comes from the same open), and the
    verdict remembered in ``lake.audio_verdicts``: the check then opens no file again.
    """
    audio = find_audio_names(source.audio_dir)
    listened = {row[0] for row in con.execute("SELECT DISTINCT track_id FROM read_parquet($p)", {"p": str(listens)}).fetchall()}
    if not audio:
        raise SourceError(
            f"No audio files ({', '.join(('wav', 'flac', 'mp3', 'ogg'))}) in {source.audio_dir}: "
            f"put one file per track there, named <track_id>.<ext>."
        )
    track_ids = sorted(audio)
    # audio_dir / name as lake.relative and str() have it, joined as strings (a Path per file costs more)
    folder = lake.relative(source.audio_dir) if lake else str(source.audio_dir)
    stored = [audio[t] if folder == "." else f"{folder.rstrip('/')}/{audio[t]}" for t in track_ids]
    files = stored if lake is None else [os.path.join(str(source.audio_dir), audio[t]) for t in track_ids]
    tracks = pd.DataFrame(
        {
            "track_id": track_ids,
            "item_idx": pd.Series(range(len(track_ids)), dtype="int32"),
            "audio_path": stored,
            "duration_s": _durations(files, stored, lake, probe),
        }
    )
    if source.tracks_csv is not None:
        tracks = tracks.merge(read_track_metadata(source.tracks_csv), on="track_id", how="left")
    missing = sorted(listened - set(audio))
    report = CatalogueReport(
        tracks=len(tracks),
        listened_without_audio=len(missing),
        audio_without_listens=len(set(audio) - listened),
        examples_without_audio=missing[:5],
    )
    return tracks, report


def _durations(files: list[str], stored: list[str], lake: LakePaths | None, probe: bool = False) -> list[float]:
    """``duration_or_nan`` of each file: remembered by the tracks check where the file is unchanged, else read
    (with ``probe``: probed, and the verdict remembered).

    Keys are the check's (``LakePaths.resolve`` of the ``stored`` path), built with ``os.path.join`` (the same
    string for what ``LakePaths.relative`` stores, at a fraction of the cost over 56 512 files); a key that did
    not match would only mean a header read.
    Without ``probe`` only reads the verdicts file: the check, which probes every file, is what writes it (whole,
    in one rename).
    """
    if lake is None:
        return [duration_or_nan(Path(path)) for path in files]
    root = str(lake.root)
    checked = [os.path.join(root, stored_path) for stored_path in stored]
    if probe:
        from audiorec_assets.data.quality import file_verdicts

        verdicts = file_verdicts(checked, lake.audio_verdicts)
        return [duration_or_nan(Path(path)) if verdict is None else verdict[3]
                for path, verdict in zip(files, verdicts)]
    remembered = remembered_durations(lake.audio_verdicts)
    durations = []
    for path, key in zip(files, checked):
        fingerprint = file_fingerprint(key) if remembered else None
        duration = remembered.get((key, *fingerprint)) if fingerprint else None
        durations.append(duration_or_nan(Path(path)) if duration is None else duration)
    return durations


def read_track_metadata(tracks_csv: Path) -> pd.DataFrame:
    """``tracks.csv`` as the ingest joins it onto ``audiorec.tracks``: every cell text (empty cells ``""``),
    one row per ``track_id``, without the columns the catalogue computes itself."""
    meta = pd.read_csv(tracks_csv, dtype=str, keep_default_na=False)
    if "track_id" not in meta.columns:
        raise SourceError(f"{tracks_csv}: needs a track_id column; found {list(meta.columns)}.")
    duplicated = meta["track_id"][meta["track_id"].duplicated()]
    if len(duplicated):
        raise SourceError(f"{tracks_csv}: track_id {duplicated.iloc[0]!r} appears more than once.")
    reserved = {"item_idx", "audio_path", "duration_s"} & set(meta.columns)
    return meta.drop(columns=sorted(reserved))
