"""Waveforms into batches and frames back into one vector: the audio-side helpers of the pretrained encoders
(``hf.py``, ``musicfm.py``), independent of any model library; torch is imported inside the functions.
Loading and resampling the audio files is ``audiorec_assets/data/audio.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from audiorec_assets.encoders.base import EncoderError

if TYPE_CHECKING:
    import torch


def prepare_waveforms(
    waveforms: Sequence[np.ndarray], max_samples: int | None, min_samples: int, encoder: str
) -> list[np.ndarray]:
    """Mono float32, cut to ``max_samples``, short ones zero-padded to ``min_samples``; empty raises."""
    out = []
    for i, w in enumerate(waveforms):
        w = np.asarray(w, dtype=np.float32).reshape(-1)
        if w.size == 0:
            raise EncoderError(f"{encoder}: waveform #{i} of the batch is empty")
        if max_samples is not None:
            w = w[:max_samples]
        if w.size < min_samples:
            w = np.pad(w, (0, min_samples - w.size))
        out.append(np.nan_to_num(w, nan=0.0, posinf=0.0, neginf=0.0))
    return out


def length_batches(lengths: Sequence[int], batch_size: int, same_length: bool) -> list[list[int]]:
    """Indices grouped into batches of at most ``batch_size``, sorted by length (less padding).

    With ``same_length`` a batch only holds waveforms of exactly equal length.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and (not same_length or lengths[batches[-1][-1]] == lengths[i]):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def conv_output_lengths(lengths: np.ndarray, kernels: Sequence[int], strides: Sequence[int]) -> np.ndarray:
    """Frames a stack of unpadded 1-D convs makes from ``lengths`` samples (``floor((L - k) / s) + 1``)."""
    out = np.asarray(lengths, dtype=np.int64)
    for k, s in zip(kernels, strides):
        out = np.maximum((out - k) // s + 1, 0)
    return out


def mean_over_frames(hidden: torch.Tensor, frames: np.ndarray) -> torch.Tensor:
    """Mean of ``hidden`` ``(batch, time, dim)`` over the first ``frames[b]`` time steps of each row
    (clamped to at least one step and at most ``time``): ``(batch, dim)``."""
    import torch

    frames = np.minimum(np.maximum(frames, 1), hidden.shape[1])
    steps = torch.arange(hidden.shape[1], device=hidden.device)
    valid = (steps[None, :] < torch.as_tensor(frames, device=hidden.device)[:, None]).unsqueeze(-1).to(hidden.dtype)
    return (hidden * valid).sum(dim=1) / valid.sum(dim=1)
