"""Music2Vec (``m-a-p/music2vec-v1``, a data2vec-audio model): last hidden state, mean over time → 768-d.

The model is transformers' own ``Data2VecAudioModel`` (no hub code). It was pre-trained on
16 kHz audio, and that is what this encoder feeds it, the first 30 s, normalised to zero
mean / unit variance per track (the snapshot's feature extractor if it has one, else the
standard ``Wav2Vec2FeatureExtractor`` of data2vec-audio). The last hidden state (50 Hz) is
averaged over the valid frames.

Discrepancy with the study: the authors' extraction code fed Music2Vec 24 kHz audio (the
rate it used for MERT), i.e. audio played 1.5× too slow from the model's point of view.
audiorec uses the model's correct 16 kHz, so its Music2Vec vectors are not bit-comparable
with the paper's.

data2vec-audio's five stacked positional convolutions see padded frames, so padded
batches would change a track's vector: tracks are only batched with tracks of exactly the
same length (with 30-s clips, nearly all of them).

Weights: ``<models_dir>/music2vec/`` (config.json + weights), else the Hugging Face cache.
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
