"""MusicFM 25 Hz (Won et al., 2024), FMA checkpoint, layer 12 → a 750-step time profile. Install: docs/encoders.md.

As in the study's code: 24 kHz mono, the first 30 s, ``MusicFM25Hz.get_latent(wav, layer_ix=12)`` gives
``(time, 1024)`` at 25 Hz, and the pooling averages over the **1024 channels**, not over time (MusicFM's README
writes ``emb.mean(-1)`` for "sequence-level" pooling, which on ``(batch, time, channel)`` averages channels): a time
profile, one value per 40 ms. Shorter outputs are zero-padded at the end to exactly 750 steps (step ``i`` is always
time ``i / 25`` s), longer ones cut; clips under 1 s are zero-padded to 1 s before the model. MusicFM has no
attention mask: batches hold only tracks of equal length. ``MusicFM25Hz`` reads the conformer's config from the
hub; the load redirects that lookup to a local ``config.json``, offline.
"""

from __future__ import annotations

import importlib
from importlib.util import find_spec
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from audiorec_assets.encoders.audio_input import length_batches
from audiorec_assets.encoders.base import AudioEncoder, EncoderContext, EncoderError, WeightsNotFoundError
from audiorec_assets.encoders.checkpoint import torch_load_checkpoint

SAMPLE_RATE = 24000
CLIP_SECONDS = 30.0
FRAME_RATE = 25
PROFILE_STEPS = int(CLIP_SECONDS * FRAME_RATE)  # 750
LAYER = 12
MIN_SECONDS = 1.0
HF_REPO = "minzwon/MusicFM"
WEIGHT_FILES: tuple[str, ...] = ("pretrained_fma.pt", "fma_stats.json")
CONFORMER_REPO = "facebook/wav2vec2-conformer-rope-large-960h-ft"
CONFORMER_DIR = "wav2vec2-conformer-rope-large-960h-ft"
CODE_MODULE = "musicfm.model.musicfm_25hz"
CODE_REPO = "<the MusicFM repository (GitHub minzwon/musicfm)>"
REQUIRED_PACKAGES: tuple[str, ...] = ("einops", "torchaudio")  # imported by MusicFM's code


def channel_mean(hidden: np.ndarray) -> np.ndarray:
    """``(time, channels)`` (or ``(1, time, channels)``) hidden states → ``(time,)`` mean over channels."""
    h = np.asarray(hidden, dtype=np.float64)
    if h.ndim == 3 and h.shape[0] == 1:
        h = h[0]
    if h.ndim != 2:
        raise EncoderError(f"musicfm: expected (time, channels) hidden states, got shape {h.shape}")
    return h.mean(axis=-1)


def fit_length(profile: np.ndarray, steps: int = PROFILE_STEPS) -> np.ndarray:
    """Cut to ``steps`` values, or zero-pad at the end up to ``steps`` (float32)."""
    p = np.asarray(profile, dtype=np.float32).reshape(-1)[:steps]
    if p.size < steps:
        p = np.pad(p, (0, steps - p.size))
    return p


def time_profile(hidden: np.ndarray, steps: int = PROFILE_STEPS) -> np.ndarray:
    """The study's MusicFM pooling: mean over channels, then exactly ``steps`` time steps."""
    return fit_length(channel_mean(hidden), steps)


def conformer_config_dir(model_dir: Path) -> Path | None:
    """Folder holding the conformer's config.json: ``<model_dir>/<CONFORMER_DIR>`` or the HF cache's."""
    local = model_dir / CONFORMER_DIR
    if (local / "config.json").is_file():
        return local
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    cached = try_to_load_from_cache(CONFORMER_REPO, "config.json")
    return Path(cached).parent if isinstance(cached, str) else None


def code_available(model_dir: Path) -> bool:
    if (model_dir / "musicfm" / "model" / "musicfm_25hz.py").is_file():
        return True
    try:
        return find_spec(CODE_MODULE) is not None
    except ImportError:  # the parent package "musicfm" is absent
        return False


def missing_requirements(model_dir: Path) -> list[str]:
    problems = []
    if not code_available(model_dir):
        problems.append(f"MusicFM's code is missing: `git clone {CODE_REPO} {model_dir / 'musicfm'}` "
                        f"(or put the clone's parent folder on PYTHONPATH)")
    missing_pkgs = [m for m in REQUIRED_PACKAGES if find_spec(m) is None]
    if missing_pkgs:
        problems.append(f"missing Python packages: `pip install {' '.join(missing_pkgs)}` "
                        "(torchaudio matching your torch)")
    missing = [f for f in WEIGHT_FILES if not (model_dir / f).is_file()]
    if missing:
        problems.append(f"missing {', '.join(missing)} in {model_dir}: download them from the Hugging Face repo "
                        f"{HF_REPO} (`huggingface-cli download {HF_REPO} {' '.join(WEIGHT_FILES)} --local-dir "
                        f"{model_dir}` on a machine with access)")
    if conformer_config_dir(model_dir) is None:
        conformer = model_dir / CONFORMER_DIR
        problems.append(f"missing the conformer config: put config.json of {CONFORMER_REPO} in {conformer} "
                        f"(`huggingface-cli download {CONFORMER_REPO} config.json --local-dir {conformer}`)")
    return problems


def import_musicfm_class(model_dir: Path) -> type:
    """``MusicFM25Hz``, from the clone in ``<model_dir>/musicfm/`` if there, else from ``sys.path``."""
    if (model_dir / "musicfm" / "model" / "musicfm_25hz.py").is_file() and str(model_dir) not in sys.path:
        sys.path.insert(0, str(model_dir))
        importlib.invalidate_caches()
    return importlib.import_module(CODE_MODULE).MusicFM25Hz


@contextmanager
def conformer_config_from(folder: Path) -> Iterator[None]:
    """Redirect ``Wav2Vec2ConformerConfig.from_pretrained(<anything>)`` to ``folder``, offline."""
    from transformers import Wav2Vec2ConformerConfig

    had_own = "from_pretrained" in Wav2Vec2ConformerConfig.__dict__
    own = Wav2Vec2ConformerConfig.__dict__.get("from_pretrained")
    original = Wav2Vec2ConformerConfig.from_pretrained  # bound to the class

    def local(cls: type, _name: Any = None, *args: Any, **kwargs: Any) -> Any:
        kwargs["local_files_only"] = True
        return original(str(folder), *args, **kwargs)

    Wav2Vec2ConformerConfig.from_pretrained = classmethod(local)  # type: ignore[method-assign]
    try:
        yield
    finally:
        if had_own:
            Wav2Vec2ConformerConfig.from_pretrained = own  # type: ignore[method-assign]
        else:
            del Wav2Vec2ConformerConfig.from_pretrained


def load_musicfm(model_dir: Path, device: str) -> Any:
    """Build ``MusicFM25Hz`` (no hub access) and load the FMA checkpoint on CPU, then move it to ``device``."""
    cls = import_musicfm_class(model_dir)
    folder = conformer_config_dir(model_dir)
    if folder is None:  # pragma: no cover - checked before
        raise WeightsNotFoundError(f"musicfm: no config.json for {CONFORMER_REPO}")
    with conformer_config_from(folder):
        model = cls(is_flash=False, stat_path=str(model_dir / "fma_stats.json"), model_path=None)
    ckpt = torch_load_checkpoint(model_dir / "pretrained_fma.pt")
    state = ckpt["state_dict"] if isinstance(ckpt, dict) and "state_dict" in ckpt else ckpt
    if all(k.startswith("model.") for k in state):  # Lightning prefix, stripped as upstream does
        state = {k[len("model.") :]: v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    model.to(device)
    return model


class MusicFmEncoder(AudioEncoder):
    name: ClassVar[str] = "musicfm"
    dim: ClassVar[int] = PROFILE_STEPS
    sample_rate: ClassVar[int] = SAMPLE_RATE
    clip_seconds: ClassVar[float | None] = CLIP_SECONDS
    pooling: ClassVar[str] = "layer 12, mean over the 1024 channels → 750-step (25 Hz × 30 s) time profile"
    model_id: ClassVar[str] = "minzwon/MusicFM (MusicFM25Hz, pretrained_fma.pt)"

    def __init__(self, context: EncoderContext | None = None):
        super().__init__(context)
        self.model: Any = None

    def load(self) -> None:
        self.require(missing_requirements(self.model_dir))
        self.model = load_musicfm(self.model_dir, self.context.device)

    def embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        import torch

        if self.model is None:
            self.load()
        max_samples = int(CLIP_SECONDS * SAMPLE_RATE)
        min_samples = int(MIN_SECONDS * SAMPLE_RATE)
        waves = []
        for i, w in enumerate(waveforms):
            w = np.nan_to_num(np.asarray(w, dtype=np.float32).reshape(-1)[:max_samples])
            if w.size == 0:
                raise EncoderError(f"musicfm: waveform #{i} of the batch is empty")
            waves.append(np.pad(w, (0, max(0, min_samples - w.size))))
        out = np.zeros((len(waves), PROFILE_STEPS), dtype=np.float32)
        for batch in length_batches([w.size for w in waves], self.context.batch_size, same_length=True):
            x = torch.as_tensor(np.stack([waves[i] for i in batch]), dtype=torch.float32, device=self.context.device)
            with torch.inference_mode():
                hidden = self.model.get_latent(x, layer_ix=LAYER)
            hidden = hidden.float().cpu().numpy()
            for row, i in enumerate(batch):
                out[i] = time_profile(hidden[row])
        return out
