"""The ``musicnn`` package's VGG tagger (MSD_vgg, MTT_vgg) in PyTorch, inference only, from its TF checkpoints.

Mirrors ``vgg(x, is_training, num_classes, num_filters=128)`` of the upstream module ``musicnn.models``
(musicnn 0.1.0; ``define_model`` builds both VGG models with 128 filters) layer for layer:

* batch norm of the ``(187, 96)`` log-mel patch (the same 3-s input as MusiCNN; upstream's extractor
  refuses any other length for VGG because the dense layer's input size depends on it);
* five blocks of conv 3×3 (128 filters, TF ``same``) → ReLU → batch norm → max pool (TF ``valid``):
  pool 4×1 stride 2×2, then 2×2/2 three times, then 4×4/4 — time × mel goes
  187×96 → 92×48 → 46×24 → 23×12 → 11×6 → 2×1;
* ``pool5`` flattened in TF's (time, mel, channel) order → 256 → dense 50 (logits; sigmoid = taggram).

Embedding layer (audiorec's choice: neither the study nor the musicnn authors pick one): VGG has no hidden dense
layer, so the analogue of MusiCNN's penultimate layer is the flattened ``pool5`` (256-d), upstream's extractor's
``features['pool5']`` (``(patches, 2, 128)``, here flattened time-major). Dropout (identity at inference) is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audiorec_assets.encoders.musicnn.model import TF_BN_EPSILON, _convert, _tf_bn, forward_in_chunks, load_converted
from audiorec_assets.encoders.musicnn.tf_checkpoint import read_checkpoint

VGG_FILTERS = 128  # upstream define_model: vgg(x, is_training, num_classes, 128) for MSD_vgg and MTT_vgg
# (pool size, stride) per block, (time, mel); TF max_pooling2d with the default 'valid' padding.
POOLS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((4, 1), (2, 2)),
    ((2, 2), (2, 2)),
    ((2, 2), (2, 2)),
    ((2, 2), (2, 2)),
    ((4, 4), (4, 4)),
)
POOL5_SHAPE = (2, 1)  # time × mel after the fifth pool, for a 187 × 96 patch
MODELS: tuple[str, ...] = ("MSD_vgg", "MTT_vgg")


@dataclass(frozen=True)
class VggOutputs:
    """Per-patch outputs: the tag probabilities and the embedding layer."""

    taggram: np.ndarray  # (patches, 50) sigmoid tag probabilities
    pool5: np.ndarray  # (patches, 256) flattened pool5, time-major as TF flattens it


class _VggBlock(nn.Module):
    """conv 3×3 same → ReLU → batch norm → max pool."""

    def __init__(self, in_channels: int, filters: int, pool: tuple[int, int], stride: tuple[int, int]):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, filters, kernel_size=3, padding=1)  # odd kernel: TF same = 1+1
        self.bn = nn.BatchNorm2d(filters, eps=TF_BN_EPSILON)
        self.pool = nn.MaxPool2d(kernel_size=pool, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.bn(F.relu(self.conv(x))))


class Vgg(nn.Module):
    """The musicnn package's VGG for (batch, 187, 96) log-mel patches; see the module docstring."""

    def __init__(self, num_classes: int = 50, filters: int = VGG_FILTERS):
        super().__init__()
        self.input_bn = nn.BatchNorm2d(1, eps=TF_BN_EPSILON)
        self.blocks = nn.ModuleList(
            [_VggBlock(1 if i == 0 else filters, filters, pool, stride) for i, (pool, stride) in enumerate(POOLS)]
        )
        self.logits = nn.Linear(POOL5_SHAPE[0] * POOL5_SHAPE[1] * filters, num_classes)

    def forward_all(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        """mel: (batch, 187, 96) → logits, taggram, pool5 (batch, 256)."""
        x = self.input_bn(mel.unsqueeze(1))  # (batch, 1, time, mel): TF's NHWC with H = time, W = mel
        for block in self.blocks:
            x = block(x)
        if tuple(x.shape[2:]) != POOL5_SHAPE:
            raise ValueError(f"VGG needs 187-frame patches (pool5 {POOL5_SHAPE}); got pool5 {tuple(x.shape[2:])}")
        pool5 = x.permute(0, 2, 3, 1).flatten(1)  # TF flattens NHWC: time, mel, channel
        logits = self.logits(pool5)
        return {"logits": logits, "taggram": torch.sigmoid(logits), "pool5": pool5}

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (batch, 187, 96) → the 256-d embedding (flattened pool5)."""
        return self.forward_all(mel)["pool5"]


def tf_variable_map() -> dict[str, tuple[str, str]]:
    """torch state-dict key → (TF variable name, how to convert it).

    Upstream names the convs ``1CNN`` … ``5CNN``; batch norms are auto-numbered in creation order
    (input, then one per block); the output layer is ``dense``.
    """
    mapping = {f"input_bn.{k}": v for k, v in _tf_bn("batch_normalization").items()}
    for i in range(len(POOLS)):
        mapping[f"blocks.{i}.conv.weight"] = (f"{i + 1}CNN/kernel", "conv2d")
        mapping[f"blocks.{i}.conv.bias"] = (f"{i + 1}CNN/bias", "vector")
        mapping.update({f"blocks.{i}.bn.{k}": v for k, v in _tf_bn(f"batch_normalization_{i + 1}").items()})
    mapping["logits.weight"] = ("dense/kernel", "dense")
    mapping["logits.bias"] = ("dense/bias", "vector")
    return mapping


def load_vgg(checkpoint_prefix: Path | str, device: str = "cpu") -> Vgg:
    """A :class:`Vgg` in eval mode on ``device`` with the weights of a TF checkpoint prefix.

    Raises ``ValueError`` naming the checkpoint when a variable is missing or has the wrong shape.
    """
    mapping = tf_variable_map()
    try:
        tensors = read_checkpoint(checkpoint_prefix, names=sorted({tf for tf, _ in mapping.values()}))
    except ValueError as err:
        raise ValueError(f"{checkpoint_prefix}.index: not a musicnn VGG checkpoint ({err})") from err
    model = Vgg(num_classes=tensors["dense/kernel"].shape[1])
    return load_converted(model, tensors, mapping, _convert, f"{checkpoint_prefix}.index", device)


def run_vgg(model: Vgg, mel_batch: np.ndarray, max_patches: int = 16) -> VggOutputs:
    """Outputs of ``model`` for log-mel patches ``(patches, 187, 96)``, ``max_patches`` per forward pass."""
    widths = {"taggram": model.logits.out_features, "pool5": model.logits.in_features}
    return VggOutputs(**forward_in_chunks(model, mel_batch, max_patches, widths))
