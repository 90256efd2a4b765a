"""Encoder registry: key → ``module:Class``. Adding an encoder is one module plus one line here.

Entries are import strings so that loading the registry (and the Dagster definitions)
never imports torch or transformers.
"""

from __future__ import annotations

import importlib

from audiorec_assets.encoders.base import AudioEncoder, EncoderContext

AUDIO_ENCODERS: dict[str, str] = {
    "mfcc": "audiorec_assets.encoders.mfcc:MfccEncoder",
    "musicnn": "audiorec_assets.encoders.musicnn:MusicnnEncoder",
    "mert": "audiorec_assets.encoders.mert:MertEncoder",
    "music2vec": "audiorec_assets.encoders.music2vec:Music2VecEncoder",
    "encodecmae": "audiorec_assets.encoders.encodecmae:EncodecMaeEncoder",
    "jukemir": "audiorec_assets.encoders.jukemir:JukemirEncoder",
    "musicfm": "audiorec_assets.encoders.musicfm:MusicFmEncoder",
}

# Controls computed from other vectors, not from audio (see encoders/controls.py).
CONTROL_ENCODERS: tuple[str, ...] = ("shuffled", "random")

# `shuffled_<encoder>`: that encoder's vectors permuted across tracks (its own shuffled twin);
# plain `shuffled` permutes the vectors of the setting encode.shuffled_base.
SHUFFLED_PREFIX = "shuffled_"


def shuffled_base_of(name: str, shuffled_base: str) -> str | None:
    """The encoder whose vectors the control ``name`` permutes (``None``: ``name`` is no shuffled control)."""
    if name == "shuffled":
        return shuffled_base
    if name.startswith(SHUFFLED_PREFIX) and len(name) > len(SHUFFLED_PREFIX):
        return name[len(SHUFFLED_PREFIX):]
    return None


# No audio at all: a (tracks × 0) array; recommenders learn item ids instead (or use none).
NO_AUDIO_ENCODER = "none"

BUILTIN_ENCODERS: tuple[str, ...] = (*AUDIO_ENCODERS, *CONTROL_ENCODERS, NO_AUDIO_ENCODER)


def audio_encoder_class(name: str) -> type[AudioEncoder]:
    try:
        target = AUDIO_ENCODERS[name]
    except KeyError:
        raise KeyError(f"Unknown audio encoder {name!r}; known: {sorted(AUDIO_ENCODERS)}") from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def make_audio_encoder(name: str, context: EncoderContext | None = None) -> AudioEncoder:
    return audio_encoder_class(name)(context)
