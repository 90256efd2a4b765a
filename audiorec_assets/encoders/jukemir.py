"""JukeMIR: OpenAI Jukebox 5B's top prior, layer 36, via ``jukemirlib``; mean over time → 4800-d.

As in the study (and JukeMIR, Castellon et al. 2021): 44.1 kHz mono, the first 24 s, peak-normalised like
``jukemirlib.load_audio``, then ``jukemirlib.extract(audio=..., layers=[36])``: one 4800-d vector per VQ-VAE token
(≈ 345 per second), averaged over time (as jukemirlib's ``meanpool=True``). Install: docs/encoders.md; on CPU one
track takes minutes. ``<models_dir>/jukemir/`` is handed to jukemirlib as its ``CACHE_DIR`` (it would otherwise
download the ≈ 10 GB of weights to ``~/.cache/jukemirlib`` on first use: copy them from there).
"""

from __future__ import annotations

import importlib
from importlib.util import find_spec
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from audiorec_assets.encoders.base import AudioEncoder, EncoderContext, EncoderError

SAMPLE_RATE = 44100
CLIP_SECONDS = 24.0
LAYER = 36
DIM = 4800
WEIGHT_FILES: tuple[str, ...] = ("vqvae.pth.tar", "prior_level_2.pth.tar")
INSTALL_HINT = ("install jukemirlib from its source repository (GitHub rodrigo-castellon/jukemirlib), "
                "e.g. pip install <clone>")


def peak_normalize(waveform: np.ndarray) -> np.ndarray:
    """Divide by the peak absolute value (as ``jukemirlib.load_audio``); silence stays zero."""
    w = np.nan_to_num(np.asarray(waveform, dtype=np.float32).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.abs(w).max()) if w.size else 0.0
    return w / peak if peak > 0 else w


def pool_layer(acts: Mapping[int, Any] | np.ndarray, layer: int = LAYER) -> np.ndarray:
    """Mean over time of one layer's activations → ``(dim,)`` float32.

    ``acts`` is jukemirlib's ``{layer: array}`` or the array itself: ``(time, dim)`` is
    averaged over time, an already pooled ``(dim,)`` is returned as is.
    """
    if isinstance(acts, Mapping):
        if layer not in acts:
            raise EncoderError(f"jukemir: jukemirlib returned layers {sorted(acts)}, not {layer}")
        acts = acts[layer]
    a = np.asarray(acts, dtype=np.float64)
    if a.ndim == 2 and a.shape[0] == 0:
        raise EncoderError("jukemir: no frames to pool")
    if a.ndim not in (1, 2):
        raise EncoderError(f"jukemir: expected (time, dim) activations, got shape {a.shape}")
    return (a if a.ndim == 1 else a.mean(axis=0)).astype(np.float32)


def missing_requirements(model_dir: Path) -> list[str]:
    problems = []
    if find_spec("jukemirlib") is None:
        problems.append(f"the package jukemirlib is not installed: `{INSTALL_HINT}` (GPU with >= 13 GB advised)")
    missing = [f for f in WEIGHT_FILES if not (model_dir / f).is_file()]
    if missing:
        problems.append(f"missing {', '.join(missing)} in {model_dir}: the Jukebox 5B checkpoints that jukemirlib "
                        "caches in ~/.cache/jukemirlib on first use (run `jukemirlib.extract` once on a machine with "
                        "internet, then copy both files there)")
    return problems


class JukemirEncoder(AudioEncoder):
    name: ClassVar[str] = "jukemir"
    dim: ClassVar[int] = DIM
    sample_rate: ClassVar[int] = SAMPLE_RATE
    clip_seconds: ClassVar[float | None] = CLIP_SECONDS
    pooling: ClassVar[str] = "Jukebox 5B top prior layer 36, mean over time"
    model_id: ClassVar[str] = "openai/jukebox-5b (jukemirlib, layer 36)"

    def __init__(self, context: EncoderContext | None = None):
        super().__init__(context)
        self.lib: Any = None

    def load(self) -> None:
        self.require(missing_requirements(self.model_dir))
        lib = importlib.import_module("jukemirlib")
        # jukemirlib reads CACHE_DIR from its constants module when it sets the models up, and
        # DEVICE from the package; set both places so every version finds them.
        for target in (lib, getattr(lib, "constants", None)):
            if target is not None:
                target.CACHE_DIR = str(self.model_dir)
                target.DEVICE = self.context.device
        self.lib = lib

    def embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        if self.lib is None:
            self.load()
        max_samples = int(CLIP_SECONDS * SAMPLE_RATE)
        out = np.zeros((len(waveforms), DIM), dtype=np.float32)
        for i, w in enumerate(waveforms):
            audio = peak_normalize(np.asarray(w).reshape(-1)[:max_samples])  # cut, then normalise (as upstream)
            if audio.size == 0:
                raise EncoderError(f"jukemir: waveform #{i} of the batch is empty")
            vec = pool_layer(self.lib.extract(audio=audio, layers=[LAYER]), LAYER)
            if vec.shape != (DIM,):
                raise EncoderError(f"jukemir: layer {LAYER} gave a {vec.shape} vector, expected ({DIM},)")
            out[i] = vec
        return out
