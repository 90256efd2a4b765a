"""Can a built-in audio encoder run on this machine? A cheap look for its weights, never a load or a download.

The encoder partitions of the Dagster graph offer only encoders that can run here
(``audiorec_assets/defs/partitions.py``); the reason an encoder cannot is shown instead.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from audiorec_assets.encoders import AUDIO_ENCODERS, audio_encoder_class
from audiorec_assets.encoders.base import EncoderContext

# encoders whose module says what is missing from their weights folder
_REQUIREMENT_MODULES = {"jukemir", "musicfm", "encodecmae"}


def weights_problem(name: str, context: EncoderContext) -> str | None:
    """``None`` when encoder ``name`` can run here, else one sentence saying what is missing and where."""
    if name not in AUDIO_ENCODERS:
        raise KeyError(f"{name!r} is not a built-in audio encoder")
    if name == "mfcc":
        return None  # no weights
    if name == "musicnn":
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


def weights_files(name: str, context: EncoderContext) -> list[Path]:
    """The files of encoder ``name``'s weights folder (``<models_dir>/<name>``), for its input fingerprint."""
    folder = context.resolved_models_dir() / name
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
