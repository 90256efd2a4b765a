"""What every recommender promises: fit on the train split, top-N for any users, save and reload."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from audiorec_assets.recommenders.data import InteractionData
from audiorec_assets.settings import ExperimentSettings

if TYPE_CHECKING:
    import torch


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
        """Rebuild a fitted model written by :meth:`save`; ``data`` supplies the train history to exclude."""


def top_n_in_blocks(users: np.ndarray, n: int, block_size: int, rank_block: Callable[[np.ndarray], TopN]) -> TopN:
    """``rank_block`` of consecutive blocks of at most ``block_size`` of ``users``, stacked into one :class:`TopN`
    (scores are computed a block at a time to bound memory)."""
    users = np.asarray(users, dtype=np.int64)
    parts = [rank_block(users[start : start + block_size]) for start in range(0, len(users), block_size)]
    if not parts:
        return TopN(users=users, items=np.zeros((0, n), np.int64), scores=np.zeros((0, n), np.float32))
    return TopN(users=users, items=np.concatenate([p.items for p in parts]),
                scores=np.concatenate([p.scores for p in parts]))


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


def exclude_and_top_n(scores: np.ndarray | torch.Tensor, users: np.ndarray, data: InteractionData, n: int,
                      allowed: np.ndarray | None = None, columns: np.ndarray | None = None) -> TopN:
    """Mask each user's train items (and every item not ``allowed``) in a dense ``(len(users), n_items)``
    score block and take top-``n``.

    ``columns`` (sorted item_idx): the block holds only those items, column ``j`` being item ``columns[j]``
    (a model that scores just its candidates); ``None``: every item, column ``i`` being item ``i``.

    Shared by score-everything models (shallow, bert4rec, als). ``scores`` (a numpy array or a torch tensor
    on any device) is modified in place. The selection is ``torch.topk`` on the block's device (multi-threaded
    on CPU); order: score descending, equal scores by item index ascending, also where ties straddle the
    ``n``-th place (those rows are re-ranked with a stable sort).
    """
    import torch

    block = torch.from_numpy(scores) if isinstance(scores, np.ndarray) else scores
    if allowed is not None and not allowed.all():
        block.index_fill_(1, torch.as_tensor(np.flatnonzero(~allowed), device=block.device), -np.inf)
    rows, cols = history_mask_coords(users, data)
    if columns is not None:  # history items → their column, where the block has one
        position = np.full(data.n_items, -1, dtype=np.int64)
        position[columns] = np.arange(len(columns))
        mapped = position[cols]
        present = mapped >= 0
        rows, cols = rows[present], mapped[present]
    block[torch.as_tensor(rows, device=block.device), torch.as_tensor(cols, device=block.device)] = -np.inf
    n_eff = min(n, block.shape[1])
    if n_eff == 0 or len(users) == 0:
        empty = np.full((len(users), n), -1, dtype=np.int64)
        return TopN(users=users, items=empty, scores=np.full((len(users), n), np.nan, dtype=np.float32))
    # one more than asked: an item left out with the n-th score means a tie across the n-th place
    top_scores, order = torch.topk(block, min(n_eff + 1, block.shape[1]), dim=1, largest=True, sorted=True)
    straddle = torch.zeros(len(users), dtype=torch.bool, device=block.device)
    if top_scores.shape[1] > n_eff:
        last = top_scores[:, n_eff - 1]
        straddle = torch.isfinite(last) & (top_scores[:, n_eff] == last)
    top_scores, order = top_scores[:, :n_eff], order[:, :n_eff]
    if bool(straddle.any()):  # those rows: the tied items with the lowest index
        fix = straddle.nonzero().squeeze(1)
        ranked = torch.sort(block[fix], dim=1, descending=True, stable=True).indices[:, :n_eff]
        order[fix], top_scores[fix] = ranked, torch.gather(block[fix], 1, ranked)
    items = order.to("cpu", torch.int64).numpy()
    if columns is not None:
        items = np.asarray(columns, dtype=np.int64)[items]  # sorted columns: column order is item order
    top = top_scores.to("cpu", torch.float32).numpy()
    # within the top n: score descending, then item index ascending (topk's order of equal scores is unspecified)
    resort = np.lexsort((items, -top), axis=1)
    items, top = np.take_along_axis(items, resort, axis=1), np.take_along_axis(top, resort, axis=1)
    items, top = padded_top(items, top, ~np.isfinite(top), n)
    return TopN(users=users, items=items, scores=top)


def padded_top(items: np.ndarray, scores: np.ndarray, invalid: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``items`` and ``scores`` with the ``invalid`` entries, and the columns added up to ``n``, as -1 and NaN (the
    invalid entries are overwritten in place: pass arrays of your own)."""
    items[invalid] = -1
    scores[invalid] = np.nan
    pad = ((0, 0), (0, n - items.shape[1]))
    return np.pad(items, pad, constant_values=-1), np.pad(scores, pad, constant_values=np.nan)
