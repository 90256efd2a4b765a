"""What every recommender promises: fit on the train split, top-N for any users, save and reload."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from audiorec_assets.recommenders.data import InteractionData
from audiorec_assets.settings import ExperimentSettings


@dataclass
class FitReport:
    """What training did: per-epoch curves (empty for models without training) and the best epoch."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    seconds: float = 0.0
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class TopN:
    """Recommendations for ``users``: ``items[r, j]`` is the (j+1)-th best item_idx, -1 when fewer exist."""

    users: np.ndarray  # (n,) user index
    items: np.ndarray  # (n, N) int64
    scores: np.ndarray  # (n, N) float32, NaN where items == -1


class Recommender(ABC):
    """A recommender over frozen item vectors (``item_vectors[i]`` belongs to ``item_idx`` i).

    ``item_vectors`` of width 0 mean encoder ``none`` (no audio): a recommender that can learns
    item ids instead, one that cannot refuses. ``recommend`` ranks only ``candidates`` (default:
    the train vocabulary, ``data.train_items``) and never returns a user's train items.
    """

    name: ClassVar[str]
    # whether fitting depends on the seed (trained models run once per seed of ``settings.run_seeds``)
    seeded: ClassVar[bool] = True

    def __init__(self, settings: ExperimentSettings):
        self.settings = settings

    @abstractmethod
    def fit(self, data: InteractionData, item_vectors: np.ndarray) -> FitReport:
        """Train on ``data.train`` (``data.val`` may drive early stopping)."""

    @abstractmethod
    def recommend(self, users: np.ndarray, n: int, candidates: np.ndarray | None = None) -> TopN:
        """Top-``n`` of ``candidates`` (sorted item_idx; None = the train vocabulary) for user indices
        ``users``, train history excluded."""

    @property
    def scores_unseen_items(self) -> bool:
        """Whether the fitted model can score tracks without train plays from their audio (cold start)."""
        return False

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the fitted model to ``directory`` without pickles."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, settings: ExperimentSettings, data: InteractionData, item_vectors: np.ndarray) -> Recommender:
        """Rebuild a fitted model written by :meth:`save`."""


def history_mask_coords(users: np.ndarray, data: InteractionData) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) coordinates of every train item of ``users`` (row r ↔ ``users[r]``), without a per-user loop."""
    train = data.train
    starts, lengths = train.indptr[users], train.indptr[users + 1] - train.indptr[users]
    rows = np.repeat(np.arange(len(users)), lengths)
    # position of each entry inside its row's slice: global offset minus the row's first offset
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return rows, train.indices[np.repeat(starts, lengths) + offsets]


def candidate_mask(data: InteractionData, candidates: np.ndarray | None) -> np.ndarray:
    """Boolean ``(n_items,)``: True for the items that may be ranked (default: the train vocabulary)."""
    allowed = np.zeros(data.n_items, dtype=bool)
    allowed[data.train_items if candidates is None else np.asarray(candidates, dtype=np.int64)] = True
    return allowed


def exclude_and_top_n(scores: np.ndarray, users: np.ndarray, data: InteractionData, n: int,
                      allowed: np.ndarray | None = None) -> TopN:
    """Mask each user's train items (and every item not ``allowed``) in a dense ``(len(users), n_items)``
    score block and take top-``n``.

    Shared by score-everything models (shallow, bert4rec). ``scores`` is modified in place.
    Within the top ``n``, equal scores are ordered by item index (ascending).
    """
    if allowed is not None:
        scores[:, ~allowed] = -np.inf
    rows, cols = history_mask_coords(users, data)
    scores[rows, cols] = -np.inf
    n_eff = min(n, scores.shape[1])
    if n_eff == 0:
        empty = np.full((len(users), n), -1, dtype=np.int64)
        return TopN(users=users, items=empty, scores=np.full((len(users), n), np.nan, dtype=np.float32))
    candidates = np.argpartition(-scores, n_eff - 1, axis=1)[:, :n_eff]
    candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    # within the top n: score descending, then item index ascending (deterministic order of ties)
    order = np.take_along_axis(candidates, np.lexsort((candidates, -candidate_scores), axis=1), axis=1)
    items = order.astype(np.int64)
    top_scores = np.take_along_axis(scores, order, axis=1).astype(np.float32)
    invalid = ~np.isfinite(top_scores)
    items[invalid] = -1
    top_scores[invalid] = np.nan
    if n_eff < n:
        pad = n - n_eff
        items = np.pad(items, ((0, 0), (0, pad)), constant_values=-1)
        top_scores = np.pad(top_scores, ((0, 0), (0, pad)), constant_values=np.nan)
    return TopN(users=users, items=items, scores=top_scores)
