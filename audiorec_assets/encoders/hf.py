"""Hugging Face audio encoders (MERT, Music2Vec), strictly offline (``local_files_only``): finding the snapshot,
loading the model, mean-pooled inference. torch, transformers and huggingface_hub are imported inside the functions.

Padding. A zero-padded, masked batch is exact (a track's vector does not depend on its batch mates) only when
nothing mixes padded frames into real ones: true for HuBERT-style models with layer-norm conv features (MERT),
false for group-norm feature encoders (the norm spans the padded time axis), batch-norm positional convs and
data2vec-audio (its 5 stacked positional convs see the padded frames). Those are batched by exact length only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from audiorec_assets.encoders.audio_input import (conv_output_lengths, length_batches, mean_over_frames,
                                                  prepare_waveforms)
from audiorec_assets.encoders.base import (AudioEncoder, EncoderContext, EncoderError, WeightsNotFoundError,
                                           models_dir_hint)

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"


def missing_snapshot_message(name: str, repo_id: str, folder: Path, context: EncoderContext) -> str:
    return (
        f"Encoder {name!r}: no weights for Hugging Face model {repo_id!r}. Create the folder {folder} "
        f"holding the model's snapshot (config.json, weights, preprocessor_config.json), e.g. on a machine "
        f"with access to the Hugging Face hub: `huggingface-cli download {repo_id} --local-dir {folder}` "
        f"(then copy the folder here), or put {repo_id} in this machine's Hugging Face cache. "
        f"{models_dir_hint(context)} Nothing is downloaded at run time."
    )


def hf_cache_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot of ``repo_id`` in the local Hugging Face cache, or ``None`` (never downloads)."""
    try:
        from huggingface_hub import snapshot_download  # a dependency of transformers

        path = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, offline mode errors, a broken cache
        return None
    return path if (path / CONFIG_FILE).is_file() else None


def resolve_weights_dir(context: EncoderContext, name: str, repo_id: str) -> Path:
    """``<models_dir>/<name>/`` if it holds a config.json, else the HF cache's snapshot, else raise."""
    folder = context.resolved_models_dir() / name
    if (folder / CONFIG_FILE).is_file():
        return folder
    if (cached := hf_cache_snapshot(repo_id)) is not None:
        return cached
    raise WeightsNotFoundError(missing_snapshot_message(name, repo_id, folder, context))


def fill_missing_config(config: Any, reference_class: str) -> list[str]:
    """Give ``config`` every attribute of ``transformers.<reference_class>()`` that it lacks; returns their names.

    Hub code written for an older transformers (MERT's) lacks attributes that newer base modules read and fails at
    construction; the reference class's defaults are the values those older versions behaved as.
    """
    import transformers

    defaults = getattr(transformers, reference_class)().to_dict()
    filled = [key for key in defaults if not key.startswith("_") and not hasattr(config, key)
              and key not in ("model_type", "architectures", "auto_map", "transformers_version")]
    for key in filled:
        setattr(config, key, defaults[key])
    return filled


def load_feature_extractor(weights_dir: Path, sample_rate: int) -> Any:
    """The snapshot's ``Wav2Vec2FeatureExtractor`` (or a standard one if it ships none), at ``sample_rate``."""
    from transformers import Wav2Vec2FeatureExtractor

    if (weights_dir / PREPROCESSOR_FILE).is_file():
        fe = Wav2Vec2FeatureExtractor.from_pretrained(str(weights_dir), local_files_only=True)
    else:
        log.warning("%s has no %s; using a standard Wav2Vec2FeatureExtractor (zero mean / unit variance per track)",
                    weights_dir, PREPROCESSOR_FILE)
        fe = Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=sample_rate, padding_value=0.0, do_normalize=True, return_attention_mask=True
        )
    if fe.sampling_rate != sample_rate:
        log.warning("%s declares sampling_rate %s; audio is fed at %s Hz as this encoder specifies",
                    weights_dir, fe.sampling_rate, sample_rate)
        fe.sampling_rate = sample_rate
    return fe


@dataclass
class HfAudioModel:
    """A loaded model, its feature extractor and how to batch it."""

    model: Any
    feature_extractor: Any
    device: str
    sample_rate: int
    padded_batches: bool  # False: batch only equal-length waveforms
    conv_kernels: tuple[int, ...]
    conv_strides: tuple[int, ...]

    @property
    def min_samples(self) -> int:
        """Receptive field of the conv feature encoder: the shortest input giving one frame."""
        field, jump = 1, 1
        for k, s in zip(self.conv_kernels, self.conv_strides):
            field += (k - 1) * jump
            jump *= s
        return field

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)


def supports_padded_batches(config: Any) -> bool:
    """Whether zero-padding + attention mask leaves each track's output unchanged (see module doc)."""
    return (getattr(config, "model_type", "") != "data2vec-audio"
            and getattr(config, "feat_extract_norm", "layer") == "layer"
            and not getattr(config, "conv_pos_batch_norm", False))


def load_hf_audio_model(
    weights_dir: Path,
    *,
    device: str,
    sample_rate: int,
    model_class: str | None = None,
    trust_remote_code: bool = False,
    config_defaults: str | None = None,
    batching: str = "auto",
) -> HfAudioModel:
    """Build the model in ``weights_dir`` on ``device``, offline.

    ``model_class`` names a transformers class (e.g. ``"Data2VecAudioModel"``); ``None`` uses
    ``AutoModel``, which with ``trust_remote_code`` runs the snapshot's own modelling code
    (its config.json ``auto_map``). ``config_defaults`` names a transformers config class
    whose defaults fill attributes the snapshot's config lacks (:func:`fill_missing_config`).
    ``batching``: ``"auto"`` (:func:`supports_padded_batches`), ``"padded"`` or ``"by_length"``.
    """
    import transformers
    from transformers import AutoConfig

    path = str(weights_dir)
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=True)
    if config_defaults:
        filled = fill_missing_config(config, config_defaults)
        if filled:
            log.info("%s: filled config attributes missing from the snapshot: %s", weights_dir, filled)
    cls = transformers.AutoModel if model_class is None else getattr(transformers, model_class)
    kwargs: dict[str, Any] = {"config": config, "local_files_only": True}
    if model_class is None:
        kwargs["trust_remote_code"] = trust_remote_code
    model = cls.from_pretrained(path, **kwargs)
    model.eval()
    model.to(device)
    if batching not in ("auto", "padded", "by_length"):
        raise ValueError(f"batching must be auto, padded or by_length, got {batching!r}")
    padded = supports_padded_batches(model.config) if batching == "auto" else batching == "padded"
    return HfAudioModel(
        model=model,
        feature_extractor=load_feature_extractor(weights_dir, sample_rate),
        device=device,
        sample_rate=sample_rate,
        padded_batches=padded,
        conv_kernels=tuple(int(k) for k in model.config.conv_kernel),
        conv_strides=tuple(int(s) for s in model.config.conv_stride),
    )


def embed_mean_pooled(
    bundle: HfAudioModel, waveforms: Sequence[np.ndarray], batch_size: int, max_samples: int | None = None
) -> np.ndarray:
    """``(n, hidden)`` float32: last hidden state averaged over each track's valid frames."""
    import torch

    name = type(bundle.model).__name__
    waves = prepare_waveforms(waveforms, max_samples, bundle.min_samples, name)
    out = np.zeros((len(waves), bundle.hidden_size), dtype=np.float32)
    lengths = [w.size for w in waves]
    for batch in length_batches(lengths, batch_size, same_length=not bundle.padded_batches):
        inputs = bundle.feature_extractor([waves[i] for i in batch], sampling_rate=bundle.sample_rate, padding=True,
                                          return_attention_mask=True, return_tensors="pt")
        values = inputs["input_values"].to(bundle.device, dtype=torch.float32)
        mask = inputs["attention_mask"].to(bundle.device)
        with torch.inference_mode():
            hidden = bundle.model(input_values=values, attention_mask=mask).last_hidden_state
        frames = conv_output_lengths(np.array([lengths[i] for i in batch]), bundle.conv_kernels, bundle.conv_strides)
        out[batch] = mean_over_frames(hidden, frames).float().cpu().numpy()
    if not np.all(np.isfinite(out)):
        raise EncoderError(f"{name}: non-finite embedding (check the audio and the weights)")
    return out


class HfMeanPoolEncoder(AudioEncoder):
    """An HF wav2vec-family encoder: last hidden state, mean over time. Subclasses set the ClassVars."""

    repo_id: ClassVar[str]
    model_class: ClassVar[str | None] = None  # None: AutoModel
    trust_remote_code: ClassVar[bool] = False
    config_defaults: ClassVar[str | None] = None
    batching: ClassVar[str] = "auto"

    def __init__(self, context: EncoderContext | None = None):
        super().__init__(context)
        self.weights_dir: Path | None = None
        self._bundle: HfAudioModel | None = None

    def load(self) -> None:
        self.weights_dir = resolve_weights_dir(self.context, self.name, self.repo_id)
        self._bundle = load_hf_audio_model(
            self.weights_dir, device=self.context.device, sample_rate=self.sample_rate, model_class=self.model_class,
            trust_remote_code=self.trust_remote_code, config_defaults=self.config_defaults, batching=self.batching)
        if self._bundle.hidden_size != self.dim:
            # Another checkpoint of the family (e.g. MERT-v1-95M) or a test model: this instance
            # reports the dimension it really produces (describe() and shape checks follow it).
            log.warning("%s: the model in %s has hidden size %d, not the expected %d; using %d", self.name,
                        self.weights_dir, self._bundle.hidden_size, type(self).dim, self._bundle.hidden_size)
            self.dim = self._bundle.hidden_size  # type: ignore[misc]  # instance override of the ClassVar

    def embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        if self._bundle is None:
            self.load()
        assert self._bundle is not None
        max_samples = None if self.clip_seconds is None else int(round(self.clip_seconds * self.sample_rate))
        return embed_mean_pooled(self._bundle, waveforms, self.context.batch_size, max_samples)
