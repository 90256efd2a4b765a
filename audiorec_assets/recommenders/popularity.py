"""Popularity baseline: the same list for everyone, most-played train items first.

Score of an item = its total train plays; ties broken by item index ascending; only items that occur in train are
ranked (like KNN, whose index holds the train items); each user's train items removed.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from audiorec_assets.recommenders.base import FitReport, Recommender, TopN
from audiorec_assets.recommenders.data import InteractionData, UserItems
from audiorec_assets.recommenders.candidate_lists import DEFAULT_BATCH_SIZE, recommend_from_candidates
from audiorec_assets.recommenders.persistence import data_fingerprint, read_manifest, write_manifest
from audiorec_assets.settings import ExperimentSettings

RANKED_FILE = "ranked_items.npy"
PLAYS_FILE = "item_plays.npy"


def popularity_ranking(data: InteractionData) -> tuple[np.ndarray, np.ndarray]:
    """(ranked train items, total plays per item_idx): plays descending, then item index ascending."""
    plays = np.bincount(data.train.indices, weights=data.train_plays.astype(np.float64), minlength=data.n_items)
    in_train = data.train_items
    order = np.lexsort((in_train, -plays[in_train]))  # last key is primary
    return in_train[order].astype(np.int64), plays


class PopularityRecommender(Recommender):
    """Most total train plays first, train history excluded."""

    name = "popularity"
    seeded = False  # deterministic: one run whatever the seeds

    def __init__(self, settings: ExperimentSettings, batch_size: int = DEFAULT_BATCH_SIZE):
        super().__init__(settings)
        self.batch_size = batch_size
        self._ranked: np.ndarray | None = None
        self._plays: np.ndarray | None = None
        self._train: UserItems | None = None
        self._fitted_on: dict[str, object] = {}  # persistence.data_fingerprint of the data

    def fit(self, data: InteractionData, item_vectors: np.ndarray) -> FitReport:
        """Count plays; ``item_vectors`` are ignored (the baseline knows no audio)."""
        start = time.perf_counter()
        self._ranked, self._plays = popularity_ranking(data)
        self._train = data.train
        self._fitted_on = data_fingerprint(data)
        return FitReport(seconds=time.perf_counter() - start, params={"n_ranked_items": int(len(self._ranked))})

    def recommend(self, users: np.ndarray, n: int, candidates: np.ndarray | None = None) -> TopN:
        """Per batch, the top ``n + longest history`` of the global ranking (restricted to ``candidates``;
        default: every train item) minus each user's train items."""
        if self._ranked is None:
            raise RuntimeError("PopularityRecommender is not fitted: call fit() or load()")
        ranked = self._ranked if candidates is None else self._ranked[np.isin(self._ranked, candidates)]

        def head_of_ranking(batch: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
            head = ranked[:depth]
            shape = (len(batch), len(head))
            return np.broadcast_to(head, shape), np.broadcast_to(self._plays[head], shape)

        return recommend_from_candidates(users, n, self._train, head_of_ranking, self.batch_size)

    def save(self, directory: Path) -> None:
        """``ranked_items.npy``, ``item_plays.npy`` and ``model.json``."""
        if self._ranked is None:
            raise RuntimeError("PopularityRecommender is not fitted")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / RANKED_FILE, self._ranked, allow_pickle=False)
        np.save(directory / PLAYS_FILE, self._plays, allow_pickle=False)
        write_manifest(directory, self.name, self._fitted_on, {"n_ranked_items": int(len(self._ranked))})

    @classmethod
    def load(
        cls, directory: Path, settings: ExperimentSettings, data: InteractionData, item_vectors: np.ndarray
    ) -> PopularityRecommender:
        directory = Path(directory)
        _, fitted_on = read_manifest(directory, cls.name, data)
        model = cls(settings)
        model._fitted_on = fitted_on
        model._ranked = np.load(directory / RANKED_FILE, allow_pickle=False)
        model._plays = np.load(directory / PLAYS_FILE, allow_pickle=False)
        model._train = data.train
        return model
