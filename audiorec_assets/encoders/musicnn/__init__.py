"""Encoders from the ``musicnn`` package: PyTorch ports of its MusiCNN and VGG taggers on their TF checkpoints.

MusiCNN's 200-d penultimate layer is the one the study uses for MSD_musicnn (``../shared/SEED_NOTES.md``); VGG's
flattened ``pool5`` is audiorec's choice (``vgg``). No TensorFlow: ``tf_checkpoint`` reads the checkpoints, ``model``
and ``vgg`` rebuild the networks, ``weights`` finds or fetches the checkpoints, ``preprocess`` makes the log-mel
patches. torch and librosa are imported only when the encoder loads or embeds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from audiorec_assets.encoders.base import AudioEncoder, EncoderContext

if TYPE_CHECKING:
    from audiorec_assets.encoders.musicnn.model import Musicnn, MusicnnOutputs
    from audiorec_assets.encoders.musicnn.vgg import Vgg

__all__ = [
    "MusicnnEncoder", "MusicnnMttEncoder", "VggEncoder", "VggMsdEncoder", "VggMttEncoder",
    "load_pretrained", "load_pretrained_vgg", "musicnn_outputs",
]  # fmt: skip


def load_pretrained_vgg(model: str = "MSD_vgg", context: EncoderContext | None = None) -> Vgg:
    """The pretrained ``MSD_vgg`` or ``MTT_vgg`` network, in eval mode on ``context.device``, as ``load_pretrained``."""
    from audiorec_assets.encoders.musicnn.vgg import MODELS, load_vgg
    from audiorec_assets.encoders.musicnn.weights import locate_checkpoint

    if model not in MODELS:
        raise ValueError(f"{model!r} is not a VGG checkpoint; known: {list(MODELS)}")
    context = context or EncoderContext()
    return load_vgg(locate_checkpoint(model, context.resolved_models_dir()), device=context.device)


def load_pretrained(model: str = "MSD_musicnn", context: EncoderContext | None = None) -> Musicnn:
    """The pretrained ``MSD_musicnn`` or ``MTT_musicnn`` network, in eval mode on ``context.device``; the weights
    are located (or downloaded on first use) by ``weights``, else ``WeightsNotFoundError`` is raised."""
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

    The whole track, cut into non-overlapping 187-frame (3-s) log-mel patches; like upstream, the incomplete last
    patch is dropped; a track under 3 s is padded with silence to one patch, where upstream would fail. Patches of
    all tracks in a call go through the network together, at most :func:`patches_per_forward` at a time.
    """

    name: ClassVar[str] = "musicnn"
    dim: ClassVar[int] = 200
    sample_rate: ClassVar[int] = 16000
    clip_seconds: ClassVar[float | None] = None
    pooling: ClassVar[str] = "mean over non-overlapping 3-s patches of the MSD_musicnn penultimate layer"
    model_id: ClassVar[str] = "MSD_musicnn (musicnn 0.1.0)"
    checkpoint: ClassVar[str] = "MSD_musicnn"
    max_patches_per_forward: ClassVar[int] = 32  # on a GPU; ~25 MB of activations per patch on the front-end
    cpu_patches_per_forward: ClassVar[int] = 2  # see patches_per_forward

    def __init__(self, context: EncoderContext | None = None):
        super().__init__(context)
        self.network: Musicnn | None = None

    def load(self) -> None:
        """Locate (or download once) the checkpoint and build the network on ``context.device``."""
        if self.network is None:
            self.network = load_pretrained(self.checkpoint, self.context)

    def embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        """``(len(waveforms), 200)`` float32: per track, the mean penultimate vector of its patches."""
        def penultimate(patches: np.ndarray) -> np.ndarray:
            return musicnn_outputs(self.network, patches, patches_per_forward(self)).penultimate

        return mean_over_patches(self, waveforms, penultimate)


def patches_per_forward(encoder: MusicnnEncoder | VggEncoder) -> int:
    """Patches per forward pass: ``max_patches_per_forward`` on a GPU, ``cpu_patches_per_forward`` (one or two)
    elsewhere. On a CPU a larger batch's activations (tens to hundreds of MB per layer) are fresh memory maps from
    the C allocator on every pass, and the kernel's zeroing of their pages cost as much CPU as the convolutions
    (bench/RESULTS.md, "Encoders": the whole encoding path 1.9-2.0x faster for MusiCNN, 1.4-1.6x for VGG)."""
    if str(encoder.context.device).startswith("cuda"):
        return encoder.max_patches_per_forward
    return encoder.cpu_patches_per_forward


def mean_over_patches(encoder: AudioEncoder, waveforms: list[np.ndarray],
                      layer: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``(len(waveforms), encoder.dim)`` float32: per track, the mean of ``layer`` over its 3-s log-mel patches
    (all tracks' patches in one batch; ``layer(patches) -> (patches, dim)``); what every musicnn-package encoder
    returns."""
    from audiorec_assets.encoders.musicnn.preprocess import waveform_patches

    if not waveforms:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    encoder.load()
    per_track = [waveform_patches(w) for w in waveforms]
    outputs = layer(np.concatenate(per_track))
    bounds = np.cumsum([0] + [len(p) for p in per_track])
    return np.stack([outputs[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]).astype(np.float32)


class MusicnnMttEncoder(MusicnnEncoder):
    """As ``musicnn``, on the MagnaTagATune model: mean over 3-s patches of MTT_musicnn's 200-d penultimate layer."""

    name: ClassVar[str] = "musicnn_mtt"
    pooling: ClassVar[str] = "mean over non-overlapping 3-s patches of the MTT_musicnn penultimate layer"
    model_id: ClassVar[str] = "MTT_musicnn (musicnn 0.1.0)"
    checkpoint: ClassVar[str] = "MTT_musicnn"


class VggEncoder(AudioEncoder):
    """Track embedding = mean over 3-s patches of a musicnn-package VGG's flattened ``pool5`` (256-d), the input of
    its output layer (audiorec's choice: ``vgg``). Same input and batching as :class:`MusicnnEncoder`."""

    dim: ClassVar[int] = 256
    sample_rate: ClassVar[int] = 16000
    clip_seconds: ClassVar[float | None] = None
    checkpoint: ClassVar[str]
    max_patches_per_forward: ClassVar[int] = 16  # on a GPU; ~10 MB of activations per patch in the first block
    cpu_patches_per_forward: ClassVar[int] = 1  # see patches_per_forward

    def __init__(self, context: EncoderContext | None = None):
        super().__init__(context)
        self.network: Vgg | None = None

    def load(self) -> None:
        """Locate (or download once) the checkpoint and build the network on ``context.device``."""
        if self.network is None:
            self.network = load_pretrained_vgg(self.checkpoint, self.context)

    def embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        """``(len(waveforms), 256)`` float32: per track, the mean flattened pool5 of its patches."""
        from audiorec_assets.encoders.musicnn.vgg import run_vgg

        def pool5(patches: np.ndarray) -> np.ndarray:
            return run_vgg(self.network, patches, patches_per_forward(self)).pool5

        return mean_over_patches(self, waveforms, pool5)


class VggMsdEncoder(VggEncoder):
    name: ClassVar[str] = "vgg_msd"
    pooling: ClassVar[str] = "mean over non-overlapping 3-s patches of MSD_vgg's flattened pool5"
    model_id: ClassVar[str] = "MSD_vgg (musicnn 0.1.0)"
    checkpoint: ClassVar[str] = "MSD_vgg"


class VggMttEncoder(VggEncoder):
    name: ClassVar[str] = "vgg_mtt"
    pooling: ClassVar[str] = "mean over non-overlapping 3-s patches of MTT_vgg's flattened pool5"
    model_id: ClassVar[str] = "MTT_vgg (musicnn 0.1.0)"
    checkpoint: ClassVar[str] = "MTT_vgg"
