"""The catalogue as the session simulator walks it: checked track ids, works / albums in play order, and each
track's tastes (:mod:`.tastes`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from audiorec_assets.datasets.mock_logs.config import MockLogConfig
from audiorec_assets.datasets.mock_logs.tastes import TrackTastes, labels, track_tastes

# sequence columns tried when MockLogConfig.sequence_column is None (the first present that groups tracks)
AUTO_SEQUENCE_COLUMNS: tuple[str, ...] = ("work", "album")
# a numeric column ordering the tracks of a work / album (else the catalogue's row order)
ORDER_COLUMNS: tuple[str, ...] = ("track_number", "tracknumber", "track_no", "movement", "position")


@dataclass(frozen=True)
class CatalogueIndex:
    """Index structures the session simulator walks (track indices are rows of the tracks frame)."""

    track_ids: np.ndarray
    groups: list[np.ndarray]  # track indices of each work / album, in play order
    group_of: np.ndarray
    position: np.ndarray  # of each track within its group
    tastes: TrackTastes
    sequence_column: str | None


def index_catalogue(tracks: pd.DataFrame, config: MockLogConfig, vectors: np.ndarray | None,
                    rng: np.random.Generator) -> CatalogueIndex:
    """Check ``tracks`` (``track_id`` + metadata columns) and ``vectors`` (one row per track, or None) and index
    them; ``rng`` draws the audio / random clusters. Raises :class:`ValueError` naming the column at fault."""
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
    tastes = track_tastes(tracks, config, vectors, available, groups, group_of, rng)
    return CatalogueIndex(track_ids, groups, group_of, position, tastes, sequence)


def _sequence_column(tracks: pd.DataFrame, setting: str | None, available: list[str]) -> str | None:
    if setting == "":
        return None
    if setting is not None:
        if setting not in tracks.columns or setting == "track_id":
            raise ValueError(f"sequence_column: no column {setting!r} in the tracks table (available: {available})")
        return setting
    for column in AUTO_SEQUENCE_COLUMNS:
        if column in tracks.columns:
            code, _ = labels(tracks[column])
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
        code, _ = labels(tracks[sequence])
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
    groups = np.split(order, np.flatnonzero(np.diff(code[order])) + 1)
    position = np.empty(n, dtype=np.int64)
    for members in groups:
        position[members] = np.arange(len(members))
    return groups, code.astype(np.int64), position
