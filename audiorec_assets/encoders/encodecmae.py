"""EnCodecMAE ``base`` (Pepino et al., 2023): 4-s chunks, visible-encoder output, mean over frames → 768-d.

The study ran ``encodecmae.load_model('base')`` and ``model.extract_features_from_array(audio)`` (24 kHz), which
cuts the waveform into consecutive 4-s chunks (the last one shorter, not padded), runs each chunk alone through
EnCodec's encoder (75 frames/s) and the MAE's visible encoder and concatenates the frames. The same here, except:

* a track's full 4-s chunks run as one batch (equal length, no cross-sample interaction in eval mode: same frames);
* a last partial chunk shorter than one EnCodec frame (320 samples) is dropped (upstream would get zero or one
  degenerate frame); a whole track that short is zero-padded to one frame;
* the mean is over all frames of all chunks (frame-weighted, exactly upstream's ``features.mean(axis=0)``).

Loading is upstream's ``load_model`` on the local files of ``lpepino/encodecmae-base`` (install: docs/encoders.md).
``EncodecModel.encodec_model_24khz()`` would download EnCodec's weights, but they are part of ``model.pt`` (a frozen
sub-module of the MAE), so the build runs with ``pretrained=False`` and ``model.pt`` fills them.
"""

from __future__ import annotations

from importlib.util import find_spec
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from audiorec_assets.encoders.base import AudioEncoder, EncoderContext, EncoderError
from audiorec_assets.encoders.checkpoint import torch_load_checkpoint

SAMPLE_RATE = 24000
CHUNK_SECONDS = 4.0
CHUNK_SAMPLES = int(CHUNK_SECONDS * SAMPLE_RATE)
ENCODEC_HOP = 320  # EnCodec 24 kHz: 75 frames per second
REPO_ID = "lpepino/encodecmae-base"
WEIGHT_FILES: tuple[str, ...] = ("model.pt", "config.gin", "imports")
REQUIRED_MODULES: tuple[tuple[str, str], ...] = (  # (module, what to install)
    ("encodecmae", "encodecmae (source repository: GitHub habla-liaa/encodecmae)"), ("encodec", "encodec==0.1.1"),
    ("gin", "gin-config"), ("ginpipe", "ginpipe"), ("pytorch_lightning", "pytorch_lightning"),
    ("einops", "einops"), ("torchaudio", "torchaudio"),  # encodec imports both at import time
)
INSTALL_HINT = (
    "install encodecmae from its source repository (GitHub habla-liaa/encodecmae), then pip install encodec==0.1.1 "
    "ginpipe gin-config pytorch_lightning einops torchaudio  # torchaudio: the build matching your torch"
)


def chunk_waveform(
    waveform: np.ndarray, chunk_samples: int = CHUNK_SAMPLES, min_samples: int = ENCODEC_HOP
) -> tuple[np.ndarray, np.ndarray | None]:
    """Split into ``(full, tail)``: ``full`` is ``(k, chunk_samples)`` (``k`` may be 0), ``tail`` the rest or ``None``.

    A tail shorter than ``min_samples`` is dropped, unless there is no full chunk: then the
    whole (short) waveform is zero-padded to ``min_samples`` and returned as the tail.
    """
    w = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if w.size == 0:
        raise EncoderError("encodecmae: cannot embed an empty waveform")
    k = w.size // chunk_samples
    full = w[: k * chunk_samples].reshape(k, chunk_samples)
    rest = w[k * chunk_samples :]
    if rest.size >= min_samples:
        return full, rest
    if k == 0:
        return full, np.pad(rest, (0, min_samples - rest.size))
    return full, None


def pool_frames(blocks: Sequence[np.ndarray]) -> np.ndarray:
    """Mean over all frames of all ``(frames, dim)`` blocks, i.e. of their concatenation (float32)."""
    blocks = [np.asarray(b, dtype=np.float64) for b in blocks if np.asarray(b).shape[0] > 0]
    if not blocks:
        raise EncoderError("encodecmae: the model produced no frames")
    total = sum(b.sum(axis=0) for b in blocks)
    count = sum(b.shape[0] for b in blocks)
    return (total / count).astype(np.float32)


def chunk_frames(model: Any, chunks: np.ndarray, device: str) -> list[np.ndarray]:
    """Run equal-length chunks ``(b, samples)`` as one batch through ``model.forward_finetune``: one ``(frames, dim)``
    array per chunk (upstream's ``visible_embeddings``)."""
    import torch

    if chunks.shape[0] == 0:
        return []
    wav = torch.as_tensor(np.ascontiguousarray(chunks), dtype=torch.float32, device=device)
    lens = torch.full((chunks.shape[0],), chunks.shape[1], dtype=torch.long, device=device)
    with torch.inference_mode():
        out = model.forward_finetune({"wav": wav, "wav_lens": lens})["visible_embeddings"]
    return list(out.float().cpu().numpy())


def embed_track(model: Any, waveform: np.ndarray, device: str, max_chunks_per_batch: int = 8) -> np.ndarray:
    """One track's vector: chunk, run, pool (see the module docstring)."""
    full, tail = chunk_waveform(waveform)
    blocks: list[np.ndarray] = []
    step = max(1, max_chunks_per_batch)
    for start in range(0, full.shape[0], step):
        blocks.extend(chunk_frames(model, full[start : start + step], device))
    if tail is not None:
        blocks.extend(chunk_frames(model, tail[None, :], device))
    return pool_frames(blocks)


def missing_requirements(model_dir: Path) -> list[str]:
    """Human-readable problems (missing packages, missing files); empty when all is there."""
    problems = []
    missing_pkgs = [pip for mod, pip in REQUIRED_MODULES if find_spec(mod) is None]
    if missing_pkgs:
        problems.append(f"missing Python packages ({', '.join(missing_pkgs)}): install with `{INSTALL_HINT}`")
    missing_files = [f for f in WEIGHT_FILES if not (model_dir / f).is_file()]
    if missing_files:
        problems.append(
            f"missing {', '.join(missing_files)} in {model_dir}: copy the files model.pt, config.gin and imports "
            f"of the Hugging Face repo {REPO_ID} there (e.g. `huggingface-cli download {REPO_ID} --local-dir "
            f"{model_dir}` on a machine with access)"
        )
    return problems


@contextmanager
def encodec_without_download() -> Iterator[None]:
    """Make ``EncodecModel.encodec_model_24khz()`` build an untrained model instead of downloading weights."""
    from encodec import EncodecModel

    original = EncodecModel.__dict__["encodec_model_24khz"]
    factory = EncodecModel.encodec_model_24khz

    def untrained(pretrained: bool = True, repository: Any = None) -> Any:
        return factory(pretrained=False)  # (a repository only makes sense with pretrained weights)

    EncodecModel.encodec_model_24khz = staticmethod(untrained)
    try:
        yield
    finally:
        EncodecModel.encodec_model_24khz = original


def load_encodecmae(model_dir: Path, device: str) -> Any:
    """Upstream ``encodecmae.load_model`` with local files instead of the hub (module docstring)."""
    import gin
    from encodecmae.hub import get_model
    from ginpipe.core import gin_configure_externals

    saved = gin.config_str()
    gin.clear_config()
    try:
        gin_configure_externals({"module_list": [str(model_dir / "imports")]})
        gin.parse_config_file(str(model_dir / "config.gin"))
        with encodec_without_download():
            model = get_model()()
        ckpt = torch_load_checkpoint(model_dir / "model.pt")
        model.load_state_dict(ckpt["state_dict"] if "state_dict" in ckpt else ckpt)
    finally:
        gin.clear_config()
        if saved:
            gin.parse_config(saved)
    if hasattr(getattr(model, "visible_encoder", None), "compile"):
        model.visible_encoder.compile = False  # as upstream's HEAR wrapper: no torch.compile at inference
    model.eval()
    model.to(device)
    return model


class EncodecMaeEncoder(AudioEncoder):
    name: ClassVar[str] = "encodecmae"
    dim: ClassVar[int] = 768
    sample_rate: ClassVar[int] = SAMPLE_RATE
    clip_seconds: ClassVar[float | None] = 30.0
    pooling: ClassVar[str] = "4-s chunks (last partial chunk kept), mean over all frames"
    model_id: ClassVar[str] = REPO_ID

    def __init__(self, context: EncoderContext | None = None):
        super().__init__(context)
        self.model: Any = None

    def load(self) -> None:
        self.require(missing_requirements(self.model_dir))
        self.model = load_encodecmae(self.model_dir, self.context.device)

    def embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        if self.model is None:
            self.load()
        out = []
        for i, w in enumerate(waveforms):
            try:
                out.append(embed_track(self.model, w, self.context.device, self.context.batch_size))
            except EncoderError as err:
                raise EncoderError(f"waveform #{i} of the batch: {err}") from err
        return np.stack(out).astype(np.float32) if out else np.zeros((0, self.dim), dtype=np.float32)
