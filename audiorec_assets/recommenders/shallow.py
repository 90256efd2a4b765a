"""Shallow net: one vector per user, one per item, cosine score, hinge loss against sampled negatives.

Two presets (``settings.preset``, see SEED_NOTES.md):

``guide``
    Item vectors are the audio vectors, frozen (a buffer that is never written). With
    ``shallow.hidden_dim > 0`` a learned ``Linear(audio_dim → hidden_dim)`` maps them into a smaller
    space, and users live in that space. User vectors are learned, initialised from the mean of the
    user's train items (passed through the projection, which for an affine map equals the mean of the
    projected items). Each train pair gets ``shallow.negatives`` (20) negative *items* drawn uniformly;
    loss ``mean(clamp(1.0 - s_pos + s_neg, 0))``.

``paper_code``
    What the authors' code ran: user and item tables of the audio dimension, items initialised from the
    audio vectors and *trained*, users initialised from the mean of their train items and *frozen*. An
    optional shared ``Linear+ReLU`` (``hidden_dim > 0``) is applied to both sides. Each train pair is
    visited ``shallow.negatives`` (20) times per epoch, each time with one random negative *user*
    (scored against the pair's item); loss ``mean(max(0, 0.2 - s_pos + s_neg))``; the plateau
    scheduler divides the learning rate by 10 after 5 flat validation epochs.

Both: Adam, batches of ``shallow.batch_size`` rows (guide: positive pairs with all their negatives;
paper_code: rows of the repeated pair set, each with one negative), early stopping on the validation
hinge loss (val pairs with a fixed, seeded negative sample) and the best epoch's weights restored.
Scores for recommending are the cosine of the user and every item.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audiorec_assets.recommenders import torch_utils as tu
from audiorec_assets.recommenders.base import FitReport, TopN
from audiorec_assets.recommenders.data import InteractionData
from audiorec_assets.settings import ExperimentSettings

PRESET_MARGIN = {"guide": 1.0, "paper_code": 0.2}

# Bound on the (rows × negatives × dim) floats materialised per forward pass; larger batches are
# split into micro-batches whose gradients are summed, so the optimizer still sees the full batch.
MAX_CHUNK_FLOATS = 1 << 24

# Independent random streams of one fit (see tu.make_generator).
STREAM_TRAIN, STREAM_VAL = 1, 2


@dataclass(frozen=True)
class ShallowConfig:
    """Architecture and loss of one shallow net; saved with the weights and enough to rebuild it."""

    preset: str
    n_users: int
    n_items: int
    audio_dim: int
    hidden_dim: int
    margin: float
    negatives: int
    negative_kind: Literal["item", "user"]  # guide samples items, the authors' code users
    items_trainable: bool
    users_trainable: bool
    projection: Literal["none", "item_linear", "shared_linear_relu"]

    @classmethod
    def from_settings(cls, settings: ExperimentSettings, n_users: int, n_items: int, audio_dim: int) -> ShallowConfig:
        shallow, preset = settings.shallow, settings.preset
        guide = preset == "guide"
        projection = "none" if shallow.hidden_dim == 0 else ("item_linear" if guide else "shared_linear_relu")
        return cls(
            preset=preset,
            n_users=n_users,
            n_items=n_items,
            audio_dim=audio_dim,
            hidden_dim=shallow.hidden_dim,
            margin=shallow.margin if shallow.margin is not None else PRESET_MARGIN[preset],
            negatives=shallow.negatives,
            negative_kind="item" if guide else "user",
            items_trainable=not guide,
            users_trainable=guide,
            projection=projection,
        )

    @property
    def user_dim(self) -> int:
        """Width of the user table: the item output space (guide) or the audio space (paper_code)."""
        return self.hidden_dim if self.projection == "item_linear" else self.audio_dim

    @property
    def rounds_per_epoch(self) -> int:
        """How often an epoch visits each train pair: once (guide) or once per negative (paper_code)."""
        return self.negatives if self.negative_kind == "user" else 1

    @property
    def negatives_per_row(self) -> int:
        return self.negatives if self.negative_kind == "item" else 1


class ShallowNet(nn.Module):
    """User and item tables, an optional projection, and the cosine hinge loss."""

    def __init__(self, config: ShallowConfig, audio_vectors: torch.Tensor):
        super().__init__()
        self.config = config
        if config.items_trainable:
            self.item_table = nn.Parameter(audio_vectors.clone())
        else:
            # Not persistent: the frozen vectors live in the lake and are passed again at load.
            self.register_buffer("item_table", audio_vectors, persistent=False)
        users = torch.zeros(config.n_users, config.user_dim, device=audio_vectors.device)
        if config.users_trainable:
            self.user_table = nn.Parameter(users)
        else:
            self.register_buffer("user_table", users)
        self.item_projection: nn.Module = nn.Identity()
        self.shared_projection: nn.Module = nn.Identity()
        if config.projection == "item_linear":
            self.item_projection = nn.Linear(config.audio_dim, config.hidden_dim)
        elif config.projection == "shared_linear_relu":
            self.shared_projection = nn.Sequential(nn.Linear(config.audio_dim, config.hidden_dim), nn.ReLU())
        self.to(audio_vectors.device)

    @torch.no_grad()
    def init_users(self, mean_item_vectors: torch.Tensor) -> None:
        """Set each user to the mean of their train items, in the space where users live."""
        self.user_table.copy_(self.item_projection(mean_item_vectors))

    def user_embeddings(self, users: torch.Tensor) -> torch.Tensor:
        """Unit-length user vectors, shape ``users.shape + (dim,)``."""
        return F.normalize(self.shared_projection(self.user_table[users]), dim=-1)

    def item_embeddings(self, items: torch.Tensor) -> torch.Tensor:
        """Unit-length item vectors, shape ``items.shape + (dim,)``."""
        return F.normalize(self.shared_projection(self.item_projection(self.item_table[items])), dim=-1)

    def hinge_losses(self, users: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """``max(0, margin - s_pos + s_neg)`` per (pair, negative), shape ``(rows, negatives)``.

        ``negatives`` are items scored against the pair's user (guide) or users scored against the
        pair's item (paper_code).
        """
        user_vectors, item_vectors = self.user_embeddings(users), self.item_embeddings(items)
        positive = (user_vectors * item_vectors).sum(-1, keepdim=True)
        if self.config.negative_kind == "item":
            negative = torch.einsum("rd,rkd->rk", user_vectors, self.item_embeddings(negatives))
        else:
            negative = torch.einsum("rd,rkd->rk", item_vectors, self.user_embeddings(negatives))
        return torch.clamp(self.config.margin - positive + negative, min=0)

    def all_item_embeddings(self) -> torch.Tensor:
        return self.item_embeddings(torch.arange(self.config.n_items, device=self.item_table.device))


@dataclass(frozen=True)
class _Pairs:
    """The (user, item) pairs of one split, as aligned index tensors on the device."""

    users: torch.Tensor
    items: torch.Tensor


def _pairs(data: InteractionData, split: str, device: torch.device) -> _Pairs:
    user_items = data.split(split)
    return _Pairs(
        users=torch.as_tensor(user_items.row_ids(), dtype=torch.int64, device=device),
        items=torch.as_tensor(user_items.indices, dtype=torch.int64, device=device),
    )


def _hinge_sum(
    net: ShallowNet, users: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor, *, backward_scale: float | None
) -> float:
    """Sum of the hinge terms of a batch, computed in memory-bounded micro-batches.

    With ``backward_scale`` each micro-batch's ``sum * backward_scale`` is back-propagated, so the
    accumulated gradient equals that of the whole batch's scaled sum.
    """
    # the gathered negatives are audio vectors (before any projection) or user vectors
    per_row = negatives.shape[1] * max(net.config.audio_dim, net.config.user_dim)
    chunk = max(1, MAX_CHUNK_FLOATS // max(1, per_row))
    total = 0.0
    for start in range(0, len(users), chunk):
        part = slice(start, start + chunk)
        loss_sum = net.hinge_losses(users[part], items[part], negatives[part]).sum()
        if backward_scale is not None:
            (loss_sum * backward_scale).backward()
        total += float(loss_sum.detach())
    return total


def _sample_negatives(config: ShallowConfig, rows: int, per_row: int, generator: torch.Generator) -> torch.Tensor:
    population = config.n_items if config.negative_kind == "item" else config.n_users
    return torch.randint(population, (rows, per_row), generator=generator, dtype=torch.int64)


def _train_epoch(
    net: ShallowNet, optimizer: torch.optim.Optimizer, train: _Pairs, batch_size: int, generator: torch.Generator
) -> float:
    """One epoch: every train pair ``rounds_per_epoch`` times, each round freshly shuffled; mean hinge."""
    config, device = net.config, train.users.device
    total, count = 0.0, 0
    for _round in range(config.rounds_per_epoch):
        # A fresh permutation per round: a stratified shuffle of the repeated pair set that needs
        # O(pairs) memory instead of O(pairs × negatives).
        order = torch.randperm(len(train.users), generator=generator).to(device)
        for batch in tu.index_batches(order, batch_size):
            negatives = _sample_negatives(config, len(batch), config.negatives_per_row, generator).to(device)
            optimizer.zero_grad(set_to_none=True)
            terms = negatives.numel()
            total += _hinge_sum(net, train.users[batch], train.items[batch], negatives, backward_scale=1.0 / terms)
            count += terms
            optimizer.step()
    return total / max(count, 1)


def _val_loss_fn(net: ShallowNet, val: _Pairs, generator: torch.Generator) -> Callable[[], float]:
    """The validation loss: mean hinge over val pairs with one fixed negative sample (drawn now)."""
    negatives = _sample_negatives(net.config, len(val.users), net.config.negatives, generator).to(val.users.device)

    def val_loss() -> float:
        return _hinge_sum(net, val.users, val.items, negatives, backward_scale=None) / max(negatives.numel(), 1)

    return val_loss


class ShallowRecommender(tu.TorchRecommender):
    """Cosine scores of learned user vectors against (frozen or trained) item vectors."""

    name = "shallow"

    @classmethod
    def build_net(cls, config: dict[str, Any], item_vectors: torch.Tensor) -> ShallowNet:
        return ShallowNet(ShallowConfig(**config), item_vectors)

    def fit(self, data: InteractionData, item_vectors: np.ndarray) -> FitReport:
        started = time.perf_counter()
        settings = self.settings
        device = tu.resolve_device(settings.encode.device)
        audio = tu.item_vectors_tensor(item_vectors, data.n_items, device)
        config = ShallowConfig.from_settings(settings, data.n_users, data.n_items, audio.shape[1])
        with tu.seeded(settings.seed, device):
            net = self.build_net(asdict(config), audio)
            net.init_users(tu.mean_item_vectors(data.train, audio))
            optimizer = tu.adam(net, settings.shallow.lr)
            train, val = _pairs(data, "train", device), _pairs(data, "val", device)
            train_generator = tu.make_generator(settings.seed, STREAM_TRAIN)
            val_generator = tu.make_generator(settings.seed, STREAM_VAL)
            history = tu.train_with_early_stopping(
                net,
                optimizer,
                train_epoch=lambda _: _train_epoch(net, optimizer, train, settings.shallow.batch_size, train_generator),
                val_loss=_val_loss_fn(net, val, val_generator) if len(val.users) else None,
                max_epochs=settings.shallow.max_epochs,
                patience=settings.shallow.patience,
                scheduler=tu.plateau_scheduler(optimizer, enabled=tu.uses_plateau_scheduler(settings)),
                label=f"shallow[{settings.preset}]",
            )
        self._remember(net, data, item_vectors)
        params = tu.training_params(config, net, settings, settings.shallow.batch_size, settings.shallow.lr, device)
        return tu.fit_report(history, params, time.perf_counter() - started)

    def recommend(self, users: np.ndarray, n: int) -> TopN:
        net, data = self._fitted()
        with torch.no_grad():
            items = net.all_item_embeddings()

            def score_block(block: np.ndarray) -> torch.Tensor:
                return net.user_embeddings(torch.as_tensor(block, dtype=torch.int64, device=items.device)) @ items.T

            return tu.recommend_in_batches(users, n, data, score_block)
