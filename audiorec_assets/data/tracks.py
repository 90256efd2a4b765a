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

    Track ids are sorted ascending and numbered from 0 (the study's ``trackid_sorted.csv``). ``audio_path`` is
    relative to ``lake``'s root (``raw/audio/<id>.flac``) when the file lies inside it, so a moved or copied lake
    reads its own audio; absolute otherwise (or without ``lake``). Listens without audio are only counted here
    (the split applies ``missing_audio``); unreadable audio gets a NaN duration, which the blocking tracks check
    names. ``probe``: the ingest's, whose tracks check then opens no file again (:func:`_durations`)."""
    audio = find_audio_names(source.audio_dir)
    listened = {row[0] for row in con.execute("SELECT DISTINCT track_id FROM read_parquet($p)", {"p": str(listens)}).fetchall()}
    if not audio:
        raise SourceError(f"No audio files (wav, flac, mp3, ogg) in {source.audio_dir}: "
                          "put one file per track there, named <track_id>.<ext>.")
    track_ids = sorted(audio)
    # audio_dir / name as lake.relative and str() have it, joined as strings (a Path per file costs more)
    folder = lake.relative(source.audio_dir) if lake else str(source.audio_dir)
    stored = [audio[t] if folder == "." else f"{folder.rstrip('/')}/{audio[t]}" for t in track_ids]
    files = stored if lake is None else [os.path.join(str(source.audio_dir), audio[t]) for t in track_ids]
    tracks = pd.DataFrame({"track_id": track_ids, "item_idx": pd.Series(range(len(track_ids)), dtype="int32"),
                           "audio_path": stored, "duration_s": _durations(files, stored, lake, probe)})
    if source.tracks_csv is not None:
        tracks = tracks.merge(read_track_metadata(source.tracks_csv), on="track_id", how="left")
    missing = sorted(listened - set(audio))
    return tracks, CatalogueReport(tracks=len(tracks), listened_without_audio=len(missing),
                                   audio_without_listens=len(set(audio) - listened), examples_without_audio=missing[:5])


def _durations(files: list[str], stored: list[str], lake: LakePaths | None, probe: bool = False) -> list[float]:
    """``duration_or_nan`` of each file: remembered in ``lake.audio_verdicts`` where the file is unchanged, else
    read (with ``probe``: probed as the tracks check probes it, and the verdict remembered). Keys are the check's
    (``LakePaths.resolve`` of the ``stored`` path), built with ``os.path.join``: the same string at a fraction of
    the cost over 56 512 files; a key that did not match would only mean a header read."""
    if lake is None:
        return [duration_or_nan(Path(path)) for path in files]
    root = str(lake.root)
    checked = [os.path.join(root, stored_path) for stored_path in stored]
    if probe:
        from audiorec_assets.data.quality import file_verdicts

        known = [None if verdict is None else verdict[3] for verdict in file_verdicts(checked, lake.audio_verdicts)]
    else:
        remembered = remembered_durations(lake.audio_verdicts)
        known = [remembered.get((key, *stamp)) if remembered and (stamp := file_fingerprint(key)) else None
                 for key in checked]
    return [duration_or_nan(Path(path)) if duration is None else duration for path, duration in zip(files, known)]


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
