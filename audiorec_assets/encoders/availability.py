"""Can a built-in encoder run here? A cheap look for an audio encoder's weights (never a load or a download), or
for ``hybrid_<encoder>`` at ``raw/tracks.csv``; ``defs/partitions.py`` offers only encoders that can run."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from audiorec_assets.encoders import AUDIO_ENCODERS, audio_encoder_class
from audiorec_assets.encoders.base import EncoderContext
from audiorec_assets.settings import HybridSettings

# encoders whose module says what is missing from their weights folder
_REQUIREMENT_MODULES = {"jukemir", "musicfm", "encodecmae"}


def weights_problem(name: str, context: EncoderContext) -> str | None:
    """``None`` when encoder ``name`` can run here, else one sentence saying what is missing and where."""
    if name not in AUDIO_ENCODERS:
        raise KeyError(f"{name!r} is not a built-in audio encoder")
    if name == "mfcc":
        return None  # no weights
    if _from_musicnn_package(name):
        from audiorec_assets.encoders.musicnn.weights import downloads_allowed, find_checkpoint

        checkpoint = audio_encoder_class(name)(context).checkpoint
        if find_checkpoint(context.resolved_models_dir(), checkpoint) is not None or downloads_allowed():
            return None
        return f"no {checkpoint} checkpoint under {context.resolved_models_dir()} and downloads are off"
    if name in _REQUIREMENT_MODULES:
        module = importlib.import_module(f"audiorec_assets.encoders.{name}")
        missing = module.missing_requirements(context.resolved_models_dir() / name)
        return "; ".join(missing) if missing else None
    from audiorec_assets.encoders.base import WeightsNotFoundError
    from audiorec_assets.encoders.hf import resolve_weights_dir

    try:
        resolve_weights_dir(context, name, audio_encoder_class(name).repo_id)
    except WeightsNotFoundError as err:
        return str(err)
    return None


def _from_musicnn_package(name: str) -> bool:
    """Whether ``name`` runs a checkpoint of the ``musicnn`` package (MusiCNN or VGG; ``encoders/musicnn``)."""
    return AUDIO_ENCODERS[name].startswith("audiorec_assets.encoders.musicnn:")


def weights_files(name: str, context: EncoderContext) -> list[Path]:
    """The files of encoder ``name``'s weights folder, for its input fingerprint: ``<models_dir>/<name>``, or
    for an encoder of the ``musicnn`` package the folder of its own checkpoint (the package's others beside it
    do not count)."""
    folder = context.resolved_models_dir() / name
    if name in AUDIO_ENCODERS and _from_musicnn_package(name):
        from audiorec_assets.encoders.musicnn.weights import find_checkpoint

        prefix = find_checkpoint(context.resolved_models_dir(), audio_encoder_class(name).checkpoint)
        folder = Path(os.path.dirname(prefix)) if prefix is not None else folder / "missing"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def metadata_problem(raw_dir: Path, hybrid: HybridSettings) -> str | None:
    """``None`` when ``raw_dir`` has a ``tracks.csv`` (read as the ingest reads it) with at least one metadata
    column that ``hybrid_<encoder>`` can use under the ``hybrid`` settings; else one sentence saying why not."""
    from audiorec_assets.data.sources import Layout, SourceError, detect_source
    from audiorec_assets.data.tracks import read_track_metadata
    from audiorec_assets.encoders.hybrid import HybridError, metadata_columns, metadata_features

    try:
        source = detect_source(raw_dir)
    except SourceError as err:
        return f"needs the track metadata of tracks.csv, and there is no raw data to read yet ({err})"
    if source.tracks_csv is None:
        where = ("the Music4All-Onion layout has no tracks.csv" if source.layout is Layout.ONION
                 else f"{raw_dir / 'tracks.csv'} does not exist")
        return f"needs track metadata, but {where} (own catalogue: tracks.csv with track_id plus metadata columns)"
    try:
        metadata = read_track_metadata(source.tracks_csv)
        if not metadata_columns(metadata):
            return f"{source.tracks_csv} has no metadata columns besides track_id"
        _, used, excluded = metadata_features(metadata, hybrid.columns, hybrid.max_categories)
    except (SourceError, HybridError) as err:
        return str(err)
    except (ValueError, OSError) as err:  # a malformed csv: the ingest names it too
        return f"{source.tracks_csv} cannot be read: {err}"
    if not used:
        why = "; ".join(f"{name}: {reason}" for name, reason in excluded.items())
        return f"no metadata column of {source.tracks_csv} is usable ({why})"
    return None
