"""Shallow net: one vector per user, one per item, cosine score, hinge loss against sampled negatives.

The two presets (which side is trained, negatives, margin, projection) and encoder ``none``: docs/recommenders.md.
guide: users initialised from the mean of their train items through the item projection (for an affine map, the
mean of the projected items). paper_code: tracks without train plays never receive a gradient (never a positive;
negatives are users), so they keep their audio vectors: that is how the cold tracks are scored.

Early stopping on the validation hinge loss against seeded negatives: one sample per fit (guide), a fresh one every
epoch (paper_code, as the authors' ``train.py:237``); the best epoch's weights restored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audiorec_assets.recommenders.base import TopN
from audiorec_assets.recommenders.data import InteractionData
from audiorec_assets.recommenders.runtime import dense_scores, make_generator
from audiorec_assets.recommenders.torch_base import (
    TorchRecommender,
    TrainingPlan,
    TrainingSettings,
    attach_item_table,
    mean_item_vectors,
    recommend_in_batches,
)
from audiorec_assets.recommenders.training import index_batches
from audiorec_assets.settings import ExperimentSettings

PRESET_MARGIN = {"guide": 1.0, "paper_code": 0.2}

# Bound on the (rows × negatives × dim) floats materialised per forward pass; larger batches are
# split into micro-batches whose gradients are summed, so the optimizer still sees the full batch.
MAX_CHUNK_FLOATS = 1 << 24

# Independent random streams of one fit (see runtime.make_generator).
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
    id_items: bool = False  # encoder none: the item table is learned ids, not audio

    @classmethod
    def from_settings(cls, settings: ExperimentSettings, n_users: int, n_items: int, audio_dim: int) -> ShallowConfig:
        """``audio_dim`` 0 means encoder ``none``: learned item ids of width ``shallow.id_dim``."""
        shallow, preset = settings.shallow, settings.preset
        guide = preset == "guide"
        id_items = audio_dim == 0
        table_dim = shallow.id_dim if id_items else audio_dim
        if guide:
            projection, hidden = ("item_linear", shallow.hidden_dim) if shallow.hidden_dim else ("none", 0)
        else:  # the authors' shared Linear+ReLU is always there; hidden_dim 0 keeps the width
            projection, hidden = "shared_linear_relu", shallow.hidden_dim or table_dim
        return cls(
            preset=preset, n_users=n_users, n_items=n_items, audio_dim=table_dim, hidden_dim=hidden,
            margin=shallow.margin if shallow.margin is not None else PRESET_MARGIN[preset],
            negatives=shallow.negatives, negative_kind="item" if guide else "user",
            items_trainable=id_items or not guide, users_trainable=guide, projection=projection, id_items=id_items,
        )

    @property
    def user_dim(self) -> int:
        """Width of the user table: the item output space (guide) or the item table's space (paper_code)."""
        return self.hidden_dim if self.projection == "item_linear" else self.audio_dim

    @property
    def rows_per_pair(self) -> int:
        """Rows a train pair becomes in a step: 1 with all its negative items (guide), or one copy per
        negative user (paper_code: ``repeat_interleave``)."""
        return self.negatives if self.negative_kind == "user" else 1

    @property
    def negatives_per_row(self) -> int:
        return self.negatives if self.negative_kind == "item" else 1


@dataclass(frozen=True)
class UnitTables:
    """The unit vectors of every user and item at one moment (no gradient)."""

    users: torch.Tensor
    items: torch.Tensor


class ShallowNet(nn.Module):
    """User and item tables, an optional projection, and the cosine hinge loss."""

    def __init__(self, config: ShallowConfig, audio_vectors: torch.Tensor):
        super().__init__()
        self.config = config
        attach_item_table(self, config, audio_vectors)
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
        # the unit item vectors when they never change (fix_item_space), else None
        self._unit_items: torch.Tensor | None = None
        self.fix_item_space()

    @torch.no_grad()
    def init_users(self, mean_item_vectors: torch.Tensor) -> None:
        """Set each user to the mean of their train items, in the space where users live."""
        self.user_table.copy_(self.item_projection(mean_item_vectors))

    def unit_user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """``normalize(shared_projection(user_table[users]))``, row by row (the definition)."""
        return F.normalize(self.shared_projection(self.user_table[users]), dim=-1)

    def unit_item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """``normalize(shared_projection(item_projection(item_table[items])))``, row by row (the definition)."""
        return F.normalize(self.shared_projection(self.item_projection(self.item_table[items])), dim=-1)

    def item_embeddings(self, items: torch.Tensor) -> torch.Tensor:
        """Unit-length item vectors, shape ``items.shape + (dim,)``; frozen items without a projection are
        normalised once per fit (:meth:`fix_item_space`) and only gathered here."""
        if self._unit_items is not None:
            return self._unit_items[items]
        return self.unit_item_vectors(items)

    @torch.no_grad()
    def fix_item_space(self) -> None:
        """Normalise the item table once where the unit item vectors never change during a fit (guide: frozen audio,
        no projection); a no-op where the item space is learned."""
        if not self.config.items_trainable and self.config.projection == "none":
            self._unit_items = self.unit_item_vectors(torch.arange(self.config.n_items, device=self.item_table.device))

    def hinge_losses(self, users: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor,
                     tables: UnitTables | None = None) -> torch.Tensor:
        """``max(0, margin - s_pos + s_neg)`` per (pair, negative), shape ``(rows, negatives)``.

        ``negatives`` are items scored against the pair's user (guide) or users scored against the
        pair's item (paper_code). With ``tables`` the indices are rows of those unit vectors, computed
        beforehand (:func:`_hinge_sum`), and only gathered here.
        """
        user_embeddings = self.unit_user_vectors if tables is None else tables.users.__getitem__
        item_embeddings = self.item_embeddings if tables is None else tables.items.__getitem__
        user_vectors, item_vectors = user_embeddings(users), item_embeddings(items)
        positive = (user_vectors * item_vectors).sum(-1, keepdim=True)
        if self.config.negative_kind == "item":
            negative = torch.einsum("rd,rkd->rk", user_vectors, item_embeddings(negatives))
        else:
            negative = torch.einsum("rd,rkd->rk", item_vectors, user_embeddings(negatives))
        return torch.clamp(self.config.margin - positive + negative, min=0)

    @torch.no_grad()
    def unit_tables(self) -> UnitTables:
        """Every user's and item's unit vector, computed once (for evaluations without a gradient)."""
        return UnitTables(users=_in_row_blocks(self.unit_user_vectors, self.config.n_users, self.item_table.device),
                          items=self.all_item_embeddings())

    @torch.no_grad()
    def all_item_embeddings(self) -> torch.Tensor:
        return _in_row_blocks(self.item_embeddings, self.config.n_items, self.item_table.device)


def _in_row_blocks(embed: Callable[[torch.Tensor], torch.Tensor], n_rows: int, device: torch.device) -> torch.Tensor:
    """``embed(arange(n_rows))`` (no gradient) in blocks of rows, so a projection's intermediates never exist for the
    whole table at once (at 56 512 × 4 800 each is 1 GB)."""
    first = embed(torch.arange(min(n_rows, 1), device=device))
    out = torch.empty((n_rows, first.shape[-1]), dtype=first.dtype, device=device)
    step = max(1, (MAX_CHUNK_FLOATS // 2) // max(1, first.shape[-1]))
    for start in range(0, n_rows, step):
        index = torch.arange(start, min(start + step, n_rows), device=device)
        out[start : start + len(index)] = embed(index)
    return out


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


def _hinge_sum(net: ShallowNet, users: torch.Tensor, items: torch.Tensor, negatives: torch.Tensor, *,
               backward_scale: float | None) -> torch.Tensor:
    """Sum of the hinge terms of a batch, a tensor on the device (no host sync per step).

    Each distinct user and item of the batch is embedded once (a paper_code step draws 200 000 negative users from
    20 000; validation, without a gradient: every user and item once); the hinge terms are then computed in
    memory-bounded micro-batches that only gather those unit vectors. With ``backward_scale`` each micro-batch's
    ``sum * backward_scale`` is back-propagated to the unit vectors, and their accumulated gradient once through the
    embedding (norm, projection, tables): the same gradient as the whole batch's scaled sum.
    """
    user_kind = net.config.negative_kind == "user"
    if backward_scale is None:
        with torch.no_grad():
            tables = net.unit_tables()
        positions = (users, items, negatives)
        embedded: list[tuple[torch.Tensor, torch.Tensor]] = []
    else:
        user_index = torch.cat([users, negatives.ravel()]) if user_kind else users
        item_index = items if user_kind else torch.cat([items, negatives.ravel()])
        distinct_users, user_at = torch.unique(user_index, return_inverse=True)
        distinct_items, item_at = torch.unique(item_index, return_inverse=True)
        user_vectors, item_vectors = net.unit_user_vectors(distinct_users), net.item_embeddings(distinct_items)
        # leaves that collect the micro-batches' gradients; backward through the embedding once, at the end
        tables = UnitTables(users=user_vectors.detach().requires_grad_(user_vectors.requires_grad),
                            items=item_vectors.detach().requires_grad_(item_vectors.requires_grad))
        embedded = [(v, leaf) for v, leaf in ((user_vectors, tables.users), (item_vectors, tables.items))
                    if v.requires_grad]
        n = len(users)
        negative_at = (user_at[n:] if user_kind else item_at[n:]).view_as(negatives)
        positions = (user_at[:n], item_at[:n], negative_at)
    row_users, row_items, row_negatives = positions
    per_row = (negatives.shape[1] + 2) * max(tables.users.shape[1], 1)
    chunk = max(1, MAX_CHUNK_FLOATS // per_row)
    total = torch.zeros((), dtype=torch.float64, device=users.device)
    for start in range(0, len(users), chunk):
        part = slice(start, start + chunk)
        loss_sum = net.hinge_losses(row_users[part], row_items[part], row_negatives[part], tables).sum()
        if backward_scale is not None:
            (loss_sum * backward_scale).backward()
        total += loss_sum.detach()
    if embedded:
        torch.autograd.backward([v for v, _ in embedded],
                                [leaf.grad if leaf.grad is not None else torch.zeros_like(leaf) for _, leaf in embedded])
    return total


def _sample_negatives(pool: torch.Tensor, rows: int, per_row: int, generator: torch.Generator) -> torch.Tensor:
    """``(rows, per_row)`` entries of ``pool`` (CPU) drawn uniformly with replacement."""
    return pool[torch.randint(len(pool), (rows, per_row), generator=generator, dtype=torch.int64)]


def negative_pool(config: ShallowConfig, data: InteractionData) -> torch.Tensor:
    """What negatives are drawn from: the train vocabulary (guide's items) or every user (paper_code)."""
    if config.negative_kind == "item":
        return torch.as_tensor(data.train_items, dtype=torch.int64)
    return torch.arange(config.n_users, dtype=torch.int64)


def _train_epoch(net: ShallowNet, optimizer: torch.optim.Optimizer, train: _Pairs, batch_size: int, pool: torch.Tensor,
                 generator: torch.Generator) -> float:
    """One epoch over the shuffled train pairs, one optimiser step per ``batch_size`` pairs (paper_code: each
    repeated as the authors' training step, :attr:`ShallowConfig.rows_per_pair`); mean hinge."""
    config, device = net.config, train.users.device
    total, count = torch.zeros((), dtype=torch.float64, device=device), 0
    order = torch.randperm(len(train.users), generator=generator).to(device)
    for batch in index_batches(order, batch_size):
        users, items = train.users[batch], train.items[batch]
        if config.rows_per_pair > 1:
            users = users.repeat_interleave(config.rows_per_pair)
            items = items.repeat_interleave(config.rows_per_pair)
        negatives = _sample_negatives(pool, len(users), config.negatives_per_row, generator).to(device)
        terms = negatives.numel()
        total += _hinge_sum(net, users, items, negatives, backward_scale=1.0 / terms)
        count += terms
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # freed now, not at the next step: validation runs without them
    return float(total) / max(count, 1)


def steps_per_epoch(n_pairs: int, batch_size: int) -> int:
    """Optimiser steps of one epoch (reported: a batch as large as the data means one step)."""
    return max(1, -(-n_pairs // batch_size))


def _val_loss_fn(net: ShallowNet, val: _Pairs, pool: torch.Tensor, generator: torch.Generator) -> Callable[[], float]:
    """The validation loss: mean hinge over val pairs against negatives drawn now, once (guide), or at every call."""
    def draw() -> torch.Tensor:
        return _sample_negatives(pool, len(val.users), net.config.negatives, generator).to(val.users.device)
    fixed = draw() if net.config.preset == "guide" else None

    def val_loss() -> float:
        negatives = draw() if fixed is None else fixed
        return float(_hinge_sum(net, val.users, val.items, negatives, backward_scale=None)) / max(negatives.numel(), 1)

    return val_loss


class ShallowRecommender(TorchRecommender):
    """Cosine scores of learned user vectors against (frozen or trained) item vectors."""

    name = "shallow"

    def training_settings(self) -> TrainingSettings:
        return self.settings.shallow

    def make_config(self, data: InteractionData, audio_dim: int) -> ShallowConfig:
        return ShallowConfig.from_settings(self.settings, data.n_users, data.n_items, audio_dim)

    @classmethod
    def build_net(cls, config: dict[str, Any], item_vectors: torch.Tensor) -> ShallowNet:
        return ShallowNet(ShallowConfig(**config), item_vectors)

    def prepare_training(self, net: ShallowNet, optimizer: torch.optim.Optimizer,
                         data: InteractionData) -> TrainingPlan:
        seed, batch_size, device = self.settings.seed, self.settings.shallow.batch_size, net.item_table.device
        net.init_users(mean_item_vectors(data.train, net.item_table))
        train, val = _pairs(data, "train", device), _pairs(data, "val", device)
        pool = negative_pool(net.config, data)
        train_generator = make_generator(seed, STREAM_TRAIN)
        val_generator = make_generator(seed, STREAM_VAL)
        return TrainingPlan(
            train_epoch=lambda _: _train_epoch(net, optimizer, train, batch_size, pool, train_generator),
            val_loss=_val_loss_fn(net, val, pool, val_generator) if len(val.users) else None,
            params={
                "steps_per_epoch": steps_per_epoch(len(train.users), batch_size),
                "rows_per_step": min(len(train.users), batch_size) * net.config.rows_per_pair,
            },
        )

    def recommend(self, users: np.ndarray, n: int, candidates: np.ndarray | None = None) -> TopN:
        net, data = self._fitted()
        with torch.no_grad():
            items = net.all_item_embeddings()

            def score_block(block: np.ndarray) -> torch.Tensor:
                users_in_block = torch.as_tensor(block, dtype=torch.int64, device=items.device)
                return dense_scores(net.unit_user_vectors(users_in_block), items)

            return recommend_in_batches(users, n, data, score_block, candidates=candidates)
