"""Music2Vec (``m-a-p/music2vec-v1``, transformers' ``Data2VecAudioModel``): 16 kHz, the first 30 s, zero mean /
unit variance per track, last hidden state (50 Hz) averaged over the valid frames → 768-d. Install: docs/encoders.md.

Discrepancy with the study: the authors' code fed Music2Vec 24 kHz audio (the rate it used for MERT), i.e. 1.5× too
slow for the model; audiorec feeds its correct 16 kHz, so these vectors are not bit-comparable with the paper's.
Batches hold only tracks of equal length: the model's positional convs see padded frames (``hf.py``).
"""

from __future__ import annotations

from typing import ClassVar

from audiorec_assets.encoders.hf import HfMeanPoolEncoder


class Music2VecEncoder(HfMeanPoolEncoder):
    name: ClassVar[str] = "music2vec"
    dim: ClassVar[int] = 768
    sample_rate: ClassVar[int] = 16000
    clip_seconds: ClassVar[float | None] = 30.0
    pooling: ClassVar[str] = "last hidden state, mean over time"
    model_id: ClassVar[str] = "m-a-p/music2vec-v1"

    repo_id: ClassVar[str] = "m-a-p/music2vec-v1"
    model_class: ClassVar[str | None] = "Data2VecAudioModel"
    batching: ClassVar[str] = "by_length"
