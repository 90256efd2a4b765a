"""The cells of the study: which encoder × recommender pairs a configuration asks for (encoder ``none`` = no
audio; the rules: :mod:`audiorec_assets.recommenders`, docs/recommenders.md)."""

from __future__ import annotations

from audiorec_assets.encoders import NO_AUDIO_ENCODER as NO_AUDIO
from audiorec_assets.recommenders import recommender_entry
from audiorec_assets.settings import ExperimentSettings

Cell = tuple[str, str]  # (encoder, recommender)


class CellError(ValueError):
    """An encoder × recommender pair that cannot exist; the message says why and what to use."""


def check_cell(encoder: str, recommender: str) -> None:
    """Raise :class:`CellError` when ``recommender`` cannot run on ``encoder``."""
    audio = recommender_entry(recommender).audio
    if audio == "required" and encoder == NO_AUDIO:
        raise CellError(f"recommender {recommender!r} scores tracks by their vectors and cannot run on encoder "
                        f"{NO_AUDIO!r} (no audio); pick an audio encoder")
    if audio == "none" and encoder != NO_AUDIO:
        raise CellError(f"recommender {recommender!r} uses no audio: it runs once, under encoder {NO_AUDIO!r}, "
                        f"not under {encoder!r}")


def is_valid_cell(encoder: str, recommender: str) -> bool:
    try:
        check_cell(encoder, recommender)
    except CellError:
        return False
    return True


def study_cells(settings: ExperimentSettings) -> list[Cell]:
    """Every cell the settings ask for, audio encoders first, then the ``none`` references."""
    audio_encoders = [e for e in settings.encoders if e != NO_AUDIO]
    cells = [(e, r) for e in audio_encoders for r in settings.recommenders if is_valid_cell(e, r)]
    references = [r for r in settings.recommenders
                  if recommender_entry(r).audio == "none"
                  or (NO_AUDIO in settings.encoders and recommender_entry(r).audio == "optional")]
    return cells + [(NO_AUDIO, r) for r in references]
