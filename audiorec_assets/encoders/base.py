"""What every audio encoder promises: mono float32 waveforms in, one float32 vector per track out."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

MODELS_ENV = "AUDIOREC_MODELS"


def models_dir_hint(context: EncoderContext) -> str:
    """The sentence every missing-weights error ends with."""
    return (
        f"The models folder is {context.resolved_models_dir()} (setting `encode.models_dir` in "
        f"experiment.yaml, else the environment variable {MODELS_ENV}, else the user cache)."
    )


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are absent; the message says which setting or folder to fill."""


class EncoderError(RuntimeError):
    """An encoder could not embed a track; the message names the track or file."""


@dataclass(frozen=True)
class EncoderContext:
    """Run-time choices an encoder needs (from ExperimentSettings.encode)."""

    device: str = "cpu"
    batch_size: int = 8
    models_dir: Path | None = None  # None: $AUDIOREC_MODELS, else the user cache dir
    seed: int = 42

    def resolved_models_dir(self) -> Path:
        if self.models_dir is not None:
            return Path(self.models_dir)
        if os.environ.get(MODELS_ENV):
            return Path(os.environ[MODELS_ENV])
        import platformdirs

        return Path(platformdirs.user_cache_dir("audiorec")) / "models"


class AudioEncoder(ABC):
    """A frozen pretrained (or built-in) model that maps audio to a fixed-size vector.

    The shared loader resamples to ``sample_rate`` and keeps the first ``clip_seconds`` (``None``: all);
    ``pooling`` describes the pooling for the metadata; ``embed`` does the model's windowing, layer and pooling.
    """

    name: ClassVar[str]
    dim: ClassVar[int]
    sample_rate: ClassVar[int]
    clip_seconds: ClassVar[float | None]
    pooling: ClassVar[str]
    model_id: ClassVar[str]

    def __init__(self, context: EncoderContext | None = None):
        self.context = context or EncoderContext()

    @property
    def model_dir(self) -> Path:
        """``<models_dir>/<name>``: where this encoder's weights (and any code it needs) live."""
        return self.context.resolved_models_dir() / self.name

    def require(self, problems: list[str]) -> None:
        """Raise one :class:`WeightsNotFoundError` listing everything missing, with where the models folder is."""
        if problems:
            raise WeightsNotFoundError(
                f"Encoder {self.name!r} cannot run: " + "; ".join(problems) + ". " + models_dir_hint(self.context)
            )

    def load(self) -> None:
        """Load weights (may raise :class:`WeightsNotFoundError`). Called once before ``embed``."""

    @abstractmethod
    def embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        """Embed a batch of mono float32 waveforms at ``sample_rate``: returns ``(n, dim)`` float32."""

    def describe(self) -> dict[str, object]:
        keys = ("dim", "sample_rate", "clip_seconds", "pooling", "model_id")
        return {"encoder": self.name, **{k: getattr(self, k) for k in keys}}
