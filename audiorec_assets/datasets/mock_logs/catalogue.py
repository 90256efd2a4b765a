"""The catalogue of a lake's ``raw/`` folder: the tracks with audio, with their ``tracks.csv`` columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from audiorec_assets.data.sources import find_audio
from audiorec_assets.data.tracks import read_track_metadata


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
    meta = read_track_metadata(tracks_csv)  # as the ingest reads it (a SourceError is a ValueError)
    with_audio = meta[meta["track_id"].isin(audio)]
    without_row = sorted(set(audio) - set(meta["track_id"]))
    extra = pd.DataFrame({"track_id": without_row, **{c: "" for c in meta.columns if c != "track_id"}})
    catalogue = pd.concat([with_audio, extra], ignore_index=True)[list(meta.columns)]
    return catalogue, int(len(meta) - len(with_audio))
