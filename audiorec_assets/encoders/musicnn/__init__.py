"""MusiCNN encoder: a PyTorch port of upstream MusiCNN that loads its TensorFlow checkpoints.

No TensorFlow: ``tf_checkpoint`` reads the checkpoint files, ``model`` rebuilds the network,
``weights`` finds (or, on first use, fetches) the checkpoints, ``preprocess`` makes the
log-mel patches. torch and librosa are imported only when the encoder loads or embeds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from audiorec_assets.encoders.base import AudioEncoder, EncoderContext

if TYPE_CHECKING:
    from audiorec_assets.encoders.musicnn.model import Musicnn, MusicnnOutputs

__all__ = ["MusicnnEncoder", "load_pretrained", "musicnn_outputs"]


def load_pretrained(model: str = "MSD_musicnn", context: EncoderContext | None = None) -> Musicnn:
    """The pretrained ``MSD_musicnn`` or ``MTT_musicnn`` network, in eval mode on ``context.device``.

    Weights are located (and downloaded on first use) as described in ``weights``; raises
    :class:`~audiorec_assets.encoders.base.WeightsNotFoundError` when they cannot be had.
    """
    from audiorec_assets.encoders.musicnn.model import load_musicnn
    from audiorec_assets.encoders.musicnn.weights import locate_checkpoint

    context = context or EncoderContext()
    return load_musicnn(locate_checkpoint(model, context.resolved_models_dir()), device=context.device)


def musicnn_outputs(network: Musicnn, mel_batch: np.ndarray, max_patches: int = 32) -> MusicnnOutputs:
    """taggram, penultimate, mean_pool and max_pool of log-mel patches ``(patches, 187, 96)``."""
    from audiorec_assets.encoders.musicnn.model import run_musicnn

    return run_musicnn(network, mel_batch, max_patches=max_patches)


class MusicnnEncoder(AudioEncoder):
    """Track embedding = mean over 3-s patches of MusiCNN's 200-d penultimate layer (MSD model).

    The whole track is used (``clip_seconds=None``), cut into non-overlapping 187-frame
    (3-s) log-mel patches; like upstream, the incomplete last patch is dropped. A track
    shorter than 3 s is zero-padded (silence) to one patch, where upstream would fail.
    Patches of all tracks in a call go through the network together, at most
    ``max_patches_per_forward`` at a time.
    """

    name: ClassVar[str] = "musicnn"
    dim: ClassVar[int] = 200
    sample_rate: ClassVar[int] = 16000
    clip_seconds: ClassVar[float | None] = None
    pooling: ClassVar[str] = "mean over non-overlapping 3-s patches of the MSD_musicnn penultimate layer"
    model_id: ClassVar[str] = "MSD_musicnn (musicnn 0.1.0)"
    checkpoint: ClassVar[str] = "MSD_musicnn"
    max_patches_per_forward: ClassVar[int] = 32  # ~25 MB of activations per patch on the front-end

    def __init__(self, context: EncoderContext | None = None):
        super().__init__(context)
        self.network: Musicnn | None = None

    def load(self) -> None:
        """Locate (or download once) the checkpoint and build the network on ``context.device``."""
        if self.network is None:
            self.network = load_pretrained(self.checkpoint, self.context)

    def embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        """``(len(waveforms), 200)`` float32: per track, the mean penultimate vector of its patches."""
        from audiorec_assets.encoders.musicnn.preprocess import waveform_patches

        if not waveforms:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        assert self.network is not None
        per_track = [waveform_patches(w) for w in waveforms]
        outputs = musicnn_outputs(self.network, np.concatenate(per_track), self.max_patches_per_forward)
        bounds = np.cumsum([0] + [len(p) for p in per_track])
        vectors = [outputs.penultimate[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]
        return np.stack(vectors).astype(np.float32)
