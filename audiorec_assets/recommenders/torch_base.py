"""The shell of the torch recommenders (shallow, bert4rec): one ``fit`` for both, save and load without pickle.

:meth:`TorchRecommender.fit` is a template method: check the item vectors → the model's config
(:meth:`~TorchRecommender.make_config`) → its net (:meth:`~TorchRecommender.build_net`) → the model's
training data and callables (:meth:`~TorchRecommender.prepare_training`) → the shared loop
(:func:`~audiorec_assets.recommenders.training.train_with_early_stopping`) → a :class:`FitReport`.
A model module supplies those hooks, :meth:`~TorchRecommender.training_settings` and ``recommend``.
Also here: the inputs both models share and batched top-N scoring from dense score blocks.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from audiorec_assets.recommenders.base import (FitReport, Recommender, TopN, candidate_mask, exclude_and_top_n,
                                               top_n_in_blocks)
from audiorec_assets.recommenders.data import InteractionData, UserItems
from audiorec_assets.recommenders.persistence import (data_fingerprint, load_state, read_manifest, save_state,
                                                      write_manifest)
from audiorec_assets.recommenders.runtime import autocast, resolve_device, seeded, training_precision
from audiorec_assets.recommenders.training import (adam, plateau_scheduler, train_with_early_stopping, training_params,
                                                   uses_plateau_scheduler)
from audiorec_assets.settings import ExperimentSettings

# Learned item-id embeddings (encoder none) start as BERT's initializer: N(0, 0.02).
ID_INIT_STD = 0.02

TorchRecommenderT = TypeVar("TorchRecommenderT", bound="TorchRecommender")


class TrainingSettings(Protocol):
    """The settings section of a torch model (``settings.shallow``, ``settings.bert4rec``) that fit reads."""

    batch_size: int
    max_epochs: int
    patience: int
    lr: float


@dataclass
class TrainingPlan:
    """What a model hands the shared loop: one epoch of training, the validation loss (``None``: early
    stopping on the train loss) and the model's own entries for ``FitReport.params``."""

    train_epoch: Callable[[int], float]
    val_loss: Callable[[], float] | None
    params: dict[str, object] = field(default_factory=dict)


def item_vectors_tensor(item_vectors: np.ndarray, n_items: int, device: torch.device) -> torch.Tensor:
    """The item vectors as a float32 tensor on ``device``; checks one finite row per item."""
    if item_vectors.ndim != 2 or item_vectors.shape[0] != n_items:
        raise ValueError(
            f"item_vectors must have one row per item ({n_items} rows, item_idx order); got shape {item_vectors.shape}"
        )
    if not np.isfinite(item_vectors).all():
        bad = np.flatnonzero(~np.isfinite(item_vectors).all(axis=1))
        raise ValueError(f"item_vectors hold NaN/inf in rows (item_idx) {bad[:10].tolist()}; re-encode those tracks")
    return torch.as_tensor(np.ascontiguousarray(item_vectors, dtype=np.float32)).to(device)


def mean_item_vectors(user_items: UserItems, item_vectors: torch.Tensor) -> torch.Tensor:
    """Unweighted mean of each user's item vectors, ``(n_users, dim)``; zeros for users without items.

    Summed in float64 over chunks of pairs, so no (pairs × dim) copy of the vectors is made.
    """
    vectors = item_vectors.detach().to("cpu")  # cast to float64 a chunk at a time: no float64 copy of the table
    rows = torch.as_tensor(user_items.row_ids(), dtype=torch.int64)
    items = torch.as_tensor(user_items.indices, dtype=torch.int64)
    sums = torch.zeros(user_items.n_users, vectors.shape[1], dtype=torch.float64)
    chunk = max(1, (1 << 22) // max(1, vectors.shape[1]))
    for start in range(0, len(items), chunk):
        sums.index_add_(0, rows[start : start + chunk], vectors[items[start : start + chunk]].double())
    counts = torch.as_tensor(user_items.lengths(), dtype=torch.float64).clamp(min=1.0)
    return (sums / counts.unsqueeze(1)).float().to(item_vectors.device)


def attach_item_table(net: nn.Module, config: Any, audio_vectors: torch.Tensor) -> None:
    """Give ``net`` its ``item_table``: learned ids of width ``config.audio_dim``, N(0, 0.02) (encoder none,
    ``config.id_items``), the audio vectors as a trained parameter (``config.items_trainable``), or the
    audio vectors as a frozen buffer that is not saved (the lake holds them; load passes them again)."""
    if config.id_items:
        ids = torch.randn(config.n_items, config.audio_dim) * ID_INIT_STD
        net.item_table = nn.Parameter(ids.to(audio_vectors.device))
    elif config.items_trainable:
        net.item_table = nn.Parameter(audio_vectors.clone())
    else:
        net.register_buffer("item_table", audio_vectors, persistent=False)


def recommend_in_batches(users: np.ndarray, n: int, data: InteractionData,
                         score_block: Callable[[np.ndarray], torch.Tensor], max_cells: int = 1 << 24,
                         candidates: np.ndarray | None = None) -> TopN:
    """Top-``n`` per user from dense score blocks ``score_block(user_batch) -> (batch, n_items)``.

    Users are scored in batches of at most ``max_cells`` scores to bound memory; only ``candidates``
    (default: the train vocabulary) are ranked and each user's train items are excluded
    (:func:`exclude_and_top_n`).
    """
    allowed = candidate_mask(data, candidates)

    def rank_block(block_users: np.ndarray) -> TopN:
        # masked and ranked where it was scored (the GPU on cuda); only the top-n come back to the host
        return exclude_and_top_n(score_block(block_users).detach().float(), block_users, data, n, allowed)

    return top_n_in_blocks(users, n, max(1, max_cells // max(1, data.n_items)), rank_block)


class TorchRecommender(Recommender):
    """The template ``fit`` (module docstring), the fitted net, save as safetensors plus the manifest, load without
    pickle. :meth:`build_net` is the one constructor of both fit and load; its net carries the config dataclass as
    ``config``, with ``id_items``."""

    # whether training may run under bf16 autocast (setting encode.precision; see runtime.training_precision)
    autocast_safe: ClassVar[bool] = False

    def __init__(self, settings: ExperimentSettings):
        super().__init__(settings)
        self.net: nn.Module | None = None
        self.data: InteractionData | None = None
        self._fingerprint: dict[str, Any] | None = None

    @abstractmethod
    def training_settings(self) -> TrainingSettings:
        """The model's settings section: batch size, epochs, patience and learning rate."""

    @abstractmethod
    def make_config(self, data: InteractionData, audio_dim: int) -> Any:
        """The config dataclass of the net to fit (``audio_dim`` 0: encoder ``none``)."""

    @classmethod
    @abstractmethod
    def build_net(cls, config: dict[str, Any], item_vectors: torch.Tensor) -> nn.Module:
        """An untrained net for the saved ``config`` (a dataclass dict) over ``item_vectors``."""

    @abstractmethod
    def prepare_training(self, net: Any, optimizer: torch.optim.Optimizer, data: InteractionData) -> TrainingPlan:
        """Initialise what the net takes from the data and build the epoch and validation callables.

        Runs seeded, right after the net and its optimizer are built and before the first epoch.
        """

    def fit(self, data: InteractionData, item_vectors: np.ndarray) -> FitReport:
        started = time.perf_counter()
        settings, section = self.settings, self.training_settings()
        device = resolve_device(settings.encode.device)
        audio = item_vectors_tensor(item_vectors, data.n_items, device)
        config = self.make_config(data, audio.shape[1])
        precision = training_precision(settings.encode.precision, device, self.autocast_safe)
        with seeded(settings.seed, device), autocast(precision, device):
            net = self.build_net(asdict(config), audio)
            optimizer = adam(net, section.lr)
            plan = self.prepare_training(net, optimizer, data)
            report = train_with_early_stopping(
                net, optimizer, train_epoch=plan.train_epoch, val_loss=plan.val_loss, max_epochs=section.max_epochs,
                patience=section.patience, label=f"{self.name}[{settings.preset}]",
                scheduler=plateau_scheduler(optimizer, enabled=uses_plateau_scheduler(settings)),
            )
        self._remember(net, data, item_vectors)
        params = training_params(config, net, settings, section.batch_size, section.lr, device)
        report.params = {**params, **plan.params, "precision": precision, **report.params}
        report.seconds = time.perf_counter() - started
        return report

    def _remember(self, net: nn.Module, data: InteractionData, item_vectors: np.ndarray) -> None:
        net.eval()
        self.net, self.data = net, data
        self._fingerprint = data_fingerprint(data, item_vectors)

    def _fitted(self) -> tuple[Any, InteractionData]:
        if self.net is None or self.data is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() or load() first")
        return self.net, self.data

    @property
    def scores_unseen_items(self) -> bool:
        """Audio items can be scored without train plays; learned ids cannot."""
        net, _ = self._fitted()
        return not net.config.id_items

    def save(self, directory: Path) -> None:
        net, _ = self._fitted()
        save_state(directory, net)
        write_manifest(directory, self.name, self._fingerprint or {}, asdict(net.config))

    @classmethod
    def load(cls: type[TorchRecommenderT], directory: Path, settings: ExperimentSettings, data: InteractionData,
             item_vectors: np.ndarray) -> TorchRecommenderT:
        """Rebuild the saved net on ``settings.encode.device``; its architecture comes from the saved config."""
        config, fingerprint = read_manifest(directory, cls.name, data, item_vectors)
        state = load_state(directory)
        device = resolve_device(settings.encode.device)
        net = cls.build_net(config, item_vectors_tensor(item_vectors, data.n_items, device))
        net.load_state_dict(state)
        net.eval()
        model = cls(settings)
        model.net, model.data, model._fingerprint = net, data, fingerprint
        return model
