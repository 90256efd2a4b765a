"""MusiCNN (Pons & Serra, 2019) in PyTorch, inference only, loading the upstream TF checkpoints.

Mirrors ``build_musicnn`` of the upstream module ``musicnn.models`` (musicnn 0.1.0, ``num_filt_midend=64``,
``num_units_backend=200``, front-end type ``7774timbraltemporal``) layer for layer, so that
the upstream variables map one to one onto this module's parameters:

* front-end: batch norm of the log-mel input, then five branches, each conv → ReLU → batch
  norm → max over the whole frequency axis: two "timbral" convs (7 frames × 38 / 67 mel
  bands, 204 filters, time zero-padded 3+3, valid in frequency) and three "temporal" convs
  (128 / 64 / 32 frames × 1 band, 51 filters, TF ``same`` padding) → 561 channels per frame;
* mid-end: three 1-D convs over time (7 frames, 64 filters, zero-padded 3+3), conv → ReLU →
  batch norm, the 2nd and 3rd with residual connections; front-end and the three mid-end
  outputs are concatenated ("dense connections") → 561 + 3 × 64 = 753 channels;
* back-end: max and mean over time (753 each), interleaved per channel as TF's flatten of
  ``concat([max, mean], axis=2)`` lays them out → 1506 → batch norm → dense 200 + ReLU →
  batch norm (the "penultimate" features) → dense 50 (logits; sigmoid gives the taggram).

Dropout is the identity at inference, so it is left out. TF batch norm's default epsilon is 1e-3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audiorec_assets.encoders.musicnn.tf_checkpoint import read_checkpoint

N_MELS = 96
PATCH_FRAMES = 187  # 3 s at 16 kHz, hop 256: librosa.time_to_frames(3, ...) + 1 upstream
TF_BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization default

MODELS: tuple[str, ...] = ("MSD_musicnn", "MTT_musicnn")

# Tag order of the two output layers, from the upstream module musicnn.configuration (musicnn 0.1.0, ISC licence).
MTT_LABELS: tuple[str, ...] = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip
MSD_LABELS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
    "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip
# The VGG models share the tag lists (upstream extractor picks the labels by the MSD/MTT prefix).
LABELS: dict[str, tuple[str, ...]] = {
    "MSD_musicnn": MSD_LABELS, "MTT_musicnn": MTT_LABELS, "MSD_vgg": MSD_LABELS, "MTT_vgg": MTT_LABELS,
}  # fmt: skip


@dataclass(frozen=True)
class MusicnnOutputs:
    """Per-patch outputs, the names and shapes upstream ``extractor`` returns for musicnn models."""

    taggram: np.ndarray  # (patches, 50) sigmoid tag probabilities
    penultimate: np.ndarray  # (patches, 200) batch-normed dense layer
    mean_pool: np.ndarray  # (patches, 753) mean over time of the dense-connected features
    max_pool: np.ndarray  # (patches, 753) max over time of the same


def _bn(channels: int) -> nn.Module:
    return nn.BatchNorm1d(channels, eps=TF_BN_EPSILON)


def _tf_same_pad(kernel: int) -> tuple[int, int]:
    """TF 'same' padding for stride 1: the extra pixel of an even kernel goes after, not before."""
    total = kernel - 1
    return total // 2, total - total // 2


class _FrontendBranch(nn.Module):
    """conv (over time × mel) → ReLU → batch norm → max over all mel positions."""

    def __init__(self, filters: int, time_kernel: int, mel_kernel: int, time_pad: tuple[int, int]):
        super().__init__()
        self.conv = nn.Conv2d(1, filters, kernel_size=(time_kernel, mel_kernel))
        self.bn = nn.BatchNorm2d(filters, eps=TF_BN_EPSILON)
        self.time_pad = time_pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, 1, frames, mels) → (batch, filters, frames).

        In eval mode the max over the mel positions is taken first and ReLU and batch norm are applied to the
        maxima only: both are monotone per channel (batch norm increasing where its scale γ/√(var+ε) ≥ 0,
        decreasing where it is negative, so there the minimum is taken), and a monotone map commutes with max —
        also in floating point, rounding being monotone. Same output, two fewer passes over the full
        ``filters × frames × mels`` map: ~11 % less CPU per patch (bench/RESULTS.md, "Encoders")."""
        x = self.conv(F.pad(x, (0, 0, *self.time_pad)))  # pad: (left, right) of mel axis, then of time axis
        if self.training:
            return self.bn(F.relu(x)).amax(dim=3)
        bn = self.bn
        rising = (bn.weight * torch.rsqrt(bn.running_var + bn.eps) >= 0)[:, None]
        extreme = x.amax(dim=3) if bool(rising.all()) else torch.where(rising, x.amax(dim=3), x.amin(dim=3))
        return F.batch_norm(F.relu(extreme), bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


class _MidendLayer(nn.Module):
    """1-D conv over time with 7 frames, zero-padded 3+3 → ReLU → batch norm."""

    def __init__(self, in_channels: int, filters: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, filters, kernel_size=7, padding=3)
        self.bn = _bn(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


class Musicnn(nn.Module):
    """MusiCNN for (batch, 187, 96) log-mel patches; see the module docstring for the layout."""

    def __init__(self, num_classes: int = 50, midend_filters: int = 64, backend_units: int = 200):
        super().__init__()
        timbral_filters, temporal_filters = int(1.6 * 128), int(1.6 * 32)  # upstream num_filt=1.6
        self.input_bn = nn.BatchNorm2d(1, eps=TF_BN_EPSILON)
        # Order matters: it is the order upstream creates (and so numbers) the TF variables.
        self.frontend = nn.ModuleList([
            *(_FrontendBranch(timbral_filters, 7, int(share * N_MELS), (3, 3)) for share in (0.4, 0.7)),
            *(_FrontendBranch(temporal_filters, k, 1, _tf_same_pad(k)) for k in (128, 64, 32)),
        ])
        frontend_channels = 2 * timbral_filters + 3 * temporal_filters  # 561
        self.midend = nn.ModuleList(
            [_MidendLayer(frontend_channels if i == 0 else midend_filters, midend_filters) for i in range(3)])
        self.pooled_channels = frontend_channels + 3 * midend_filters  # 753
        self.pool_bn = _bn(2 * self.pooled_channels)
        self.dense = nn.Linear(2 * self.pooled_channels, backend_units)
        self.dense_bn = _bn(backend_units)
        self.logits = nn.Linear(backend_units, num_classes)

    def forward_all(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        """mel: (batch, frames, 96) → logits, taggram, penultimate, mean_pool, max_pool."""
        x = self.input_bn(mel.unsqueeze(1))
        front = torch.cat([branch(x) for branch in self.frontend], dim=1)  # (batch, 561, frames)
        mid1 = self.midend[0](front)
        mid2 = self.midend[1](mid1) + mid1
        mid3 = self.midend[2](mid2) + mid2
        features = torch.cat([front, mid1, mid2, mid3], dim=1)  # (batch, 753, frames)
        max_pool = features.amax(dim=2)
        mean_pool = features.mean(dim=2)
        # TF flattens concat([max, mean], axis=2) of shape (753, 2): max0, mean0, max1, mean1, ...
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)
        penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))
        logits = self.logits(penultimate)
        return {"logits": logits, "taggram": torch.sigmoid(logits), "penultimate": penultimate, "mean_pool": mean_pool,
                "max_pool": max_pool}

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (batch, frames, 96) → penultimate features (batch, 200)."""
        return self.forward_all(mel)["penultimate"]


def _tf_bn(name: str) -> dict[str, tuple[str, str]]:
    torch_to_tf = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
    return {key: (f"{name}/{tf_name}", "vector") for key, tf_name in torch_to_tf.items()}


def tf_variable_map() -> dict[str, tuple[str, str]]:
    """torch state-dict key → (TF variable name, how to convert it).

    Upstream names come from ``tf.compat.v1.layers`` auto-numbering in creation order:
    input BN; per front-end branch a conv2d and a BN; per mid-end layer the same; then the
    back-end BN, dense, BN, dense.
    """
    mapping: dict[str, tuple[str, str]] = {}

    def add(prefix: str, tf_params: dict[str, tuple[str, str]]) -> None:
        mapping.update({f"{prefix}.{k}": v for k, v in tf_params.items()})

    def conv(name: str, kind: str) -> dict[str, tuple[str, str]]:
        return {"weight": (f"{name}/kernel", kind), "bias": (f"{name}/bias", "vector")}

    add("input_bn", _tf_bn("batch_normalization"))
    bn_index = 1
    for i in range(5):
        add(f"frontend.{i}.conv", conv(f"conv2d_{i}" if i else "conv2d", "conv2d"))
        add(f"frontend.{i}.bn", _tf_bn(f"batch_normalization_{bn_index}"))
        bn_index += 1
    for i in range(3):
        add(f"midend.{i}.conv", conv(f"conv2d_{5 + i}", "conv1d"))
        add(f"midend.{i}.bn", _tf_bn(f"batch_normalization_{bn_index}"))
        bn_index += 1
    add("pool_bn", _tf_bn(f"batch_normalization_{bn_index}"))
    add("dense", conv("dense", "dense"))
    add("dense_bn", _tf_bn(f"batch_normalization_{bn_index + 1}"))
    add("logits", conv("dense_1", "dense"))
    return mapping


def _convert(value: np.ndarray, kind: str) -> np.ndarray:
    """TF layouts → torch layouts: conv HWIO → OIHW, conv over a full-width input → (O, I, k), dense IO → OI."""
    if kind == "conv2d":
        return value.transpose(3, 2, 0, 1)
    if kind == "conv1d":  # TF kernel (7, channels, 1, filters): a 2-D conv spanning all channels
        return value[:, :, 0, :].transpose(2, 1, 0)
    if kind == "dense":
        return value.T
    return value


def load_musicnn(checkpoint_prefix: Path | str, device: str = "cpu") -> Musicnn:
    """A :class:`Musicnn` in eval mode on ``device`` with the weights of a TF checkpoint prefix.

    Raises ``ValueError`` naming the checkpoint when a variable is missing or has the wrong shape.
    """
    mapping = tf_variable_map()
    tensors = read_checkpoint(checkpoint_prefix, names=sorted({tf_name for tf_name, _ in mapping.values()}))
    model = Musicnn(num_classes=tensors["dense_1/kernel"].shape[1])
    return load_converted(model, tensors, mapping, _convert, f"{checkpoint_prefix}.index", device)


def load_converted(model: nn.Module, tensors: dict[str, np.ndarray], mapping: dict[str, tuple[str, str]],
                   convert: Callable[[np.ndarray, str], np.ndarray], source: str, device: str) -> nn.Module:
    """``model`` with the TF ``tensors`` loaded as ``mapping`` (torch key → (TF name, kind)) and ``convert`` say, in
    eval mode on ``device``; a variable of the wrong shape or a parameter without a TF counterpart is a
    ``ValueError`` naming ``source`` (shared by MusiCNN and VGG)."""
    state = {key: torch.from_numpy(np.ascontiguousarray(convert(tensors[tf_name], kind), dtype=np.float32))
             for key, (tf_name, kind) in mapping.items()}
    expected = model.state_dict()
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(f"{source}: {mapping[key][0]} has shape {tuple(value.shape)} after conversion, "
                             f"expected {tuple(expected[key].shape)}")
    # strict=False only because BatchNorm's num_batches_tracked has no TF counterpart.
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise ValueError(f"{source}: unmapped parameters {missing + unexpected}")
    return model.to(device).eval()


@torch.inference_mode()
def forward_in_chunks(model: nn.Module, mel_batch: np.ndarray, max_patches: int,
                      widths: dict[str, int]) -> dict[str, np.ndarray]:
    """``model.forward_all`` of log-mel patches ``(patches, 187, 96)``, ``max_patches`` per forward pass: the outputs
    named in ``widths``, each concatenated over the patches (``(0, widths[key])`` float32 without patches)."""
    device = next(model.parameters()).device
    parts: dict[str, list[np.ndarray]] = {k: [] for k in widths}
    for start in range(0, len(mel_batch), max_patches):
        chunk = torch.from_numpy(np.ascontiguousarray(mel_batch[start : start + max_patches], dtype=np.float32))
        out = model.forward_all(chunk.to(device))
        for key, values in parts.items():
            values.append(out[key].float().cpu().numpy())
    return {k: np.concatenate(v) if v else np.zeros((0, widths[k]), np.float32) for k, v in parts.items()}


def run_musicnn(model: Musicnn, mel_batch: np.ndarray, max_patches: int = 32) -> MusicnnOutputs:
    """Outputs of ``model`` for log-mel patches ``(patches, 187, 96)``, ``max_patches`` per forward pass."""
    pooled = model.pooled_channels
    widths = {"taggram": model.logits.out_features, "penultimate": model.dense.out_features, "mean_pool": pooled,
              "max_pool": pooled}
    return MusicnnOutputs(**forward_in_chunks(model, mel_batch, max_patches, widths))
