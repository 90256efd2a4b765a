"""Encoder registry: key → ``module:Class``. Adding an encoder is one module plus one line here.

Import strings, so that loading the registry (and the Dagster definitions) never imports torch or transformers.
"""

from __future__ import annotations

import importlib

from audiorec_assets.encoders.base import AudioEncoder, EncoderContext

AUDIO_ENCODERS: dict[str, str] = {
    "mfcc": "audiorec_assets.encoders.mfcc:MfccEncoder",
    "musicnn": "audiorec_assets.encoders.musicnn:MusicnnEncoder",
    "musicnn_mtt": "audiorec_assets.encoders.musicnn:MusicnnMttEncoder",
    "vgg_msd": "audiorec_assets.encoders.musicnn:VggMsdEncoder",
    "vgg_mtt": "audiorec_assets.encoders.musicnn:VggMttEncoder",
    "mert": "audiorec_assets.encoders.mert:MertEncoder",
    "music2vec": "audiorec_assets.encoders.music2vec:Music2VecEncoder",
    "encodecmae": "audiorec_assets.encoders.encodecmae:EncodecMaeEncoder",
    "jukemir": "audiorec_assets.encoders.jukemir:JukemirEncoder",
    "musicfm": "audiorec_assets.encoders.musicfm:MusicFmEncoder",
}

# Controls computed from other vectors, not from audio (see encoders/controls.py).
CONTROL_ENCODERS: tuple[str, ...] = ("shuffled", "random")

# Twins: encoders computed from another encoder's stored vectors (`defs/embeddings.py` waits for that base).
# `shuffled_<encoder>`: that encoder's vectors permuted across tracks (its own shuffled twin); plain
# `shuffled` permutes the vectors of the setting encode.shuffled_base.
SHUFFLED_PREFIX = "shuffled_"
# `hybrid_<encoder>`: that encoder's vectors beside standardised tracks.csv metadata (encoders/hybrid.py).
HYBRID_PREFIX = "hybrid_"
TWIN_PREFIXES: tuple[str, ...] = (SHUFFLED_PREFIX, HYBRID_PREFIX)


def _after(name: str, prefix: str) -> str | None:
    return name[len(prefix):] if name.startswith(prefix) and len(name) > len(prefix) else None


def shuffled_base_of(name: str, shuffled_base: str) -> str | None:
    """The encoder whose vectors the control ``name`` permutes (``None``: ``name`` is no shuffled control)."""
    if name == "shuffled":
        return shuffled_base
    return _after(name, SHUFFLED_PREFIX)


def hybrid_base_of(name: str) -> str | None:
    """The encoder whose vectors ``hybrid_<encoder>`` extends with metadata (``None``: no hybrid)."""
    return _after(name, HYBRID_PREFIX)


def twin_base_of(name: str, shuffled_base: str) -> str | None:
    """The encoder whose stored vectors the twin ``name`` (shuffled or hybrid) is computed from; else ``None``."""
    return shuffled_base_of(name, shuffled_base) or hybrid_base_of(name)


def twin_chain(name: str, shuffled_base: str) -> list[str]:
    """``name`` and the encoders it is computed from, nearest first (``hybrid_shuffled_mfcc`` →
    ``[hybrid_shuffled_mfcc, shuffled_mfcc, mfcc]``); a cycle (``encode.shuffled_base: shuffled``) stops."""
    chain = [name]
    while (base := twin_base_of(chain[-1], shuffled_base)) is not None and base not in chain:
        chain.append(base)
    return chain


def bad_hybrid(name: str, shuffled_base: str) -> bool:
    """Whether ``name`` is, or is computed from, a hybrid of ``none`` (no vectors) or of another hybrid."""
    chain = twin_chain(name, shuffled_base)
    hybrids = [i for i, e in enumerate(chain) if hybrid_base_of(e) is not None]
    return len(hybrids) > 1 or bool(hybrids and NO_AUDIO_ENCODER in chain[hybrids[0]:])


def is_twin(name: str) -> bool:
    """Whether ``name`` is computed from another encoder's vectors (independent of the settings)."""
    return name == "shuffled" or any(_after(name, p) is not None for p in TWIN_PREFIXES)


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
