"""KNN / cosine recommender: the user is the mean of their train items' audio vectors.

As in the study's code (docs/recommenders.md); nothing is trained. The train items are kept as a FAISS
``IndexFlatIP`` (the saved model), but recommending scores dense blocks instead (:meth:`KnnRecommender.recommend`):
at Music4All-Onion size the index's search ``n`` + the longest history deep, the id mapping and the dropping of
seen items were 3× the time of the scores themselves.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from audiorec_assets.recommenders.base import FitReport, Recommender, TopN, exclude_and_top_n, top_n_in_blocks
from audiorec_assets.recommenders.data import InteractionData, UserItems
from audiorec_assets.recommenders.persistence import data_fingerprint, read_manifest, write_manifest
from audiorec_assets.recommenders.runtime import dense_scores, resolve_device
from audiorec_assets.settings import ExperimentSettings

INDEX_FILE = "index.faiss"
USERS_FILE = "user_vectors.npy"
ITEMS_FILE = "index_items.npy"

DEFAULT_BATCH_SIZE = 4096  # users per score block
MAX_SCORE_CELLS = 1 << 24  # users × candidates per score block (64 MB of float32)


def l2_normalise(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero (their scores are 0, not NaN)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x) if out is None else out, where=norms > 0)


def mean_item_vectors(sets: UserItems, item_vectors: np.ndarray) -> np.ndarray:
    """(n_users, d) float32: row u = unweighted mean of ``item_vectors`` over u's *distinct* items (0 if none).

    One sparse (users × items) @ dense product, so the (pairs × d) gather never exists.
    """
    import scipy.sparse as sp

    n_users, n_items = sets.n_users, item_vectors.shape[0]
    ones = np.ones(len(sets.indices), dtype=np.float32)
    a = sp.csr_matrix((ones, sets.indices, sets.indptr), shape=(n_users, n_items))
    a.sum_duplicates()  # a track listed twice for a user counts once
    counts = np.diff(a.indptr)
    a.data = np.repeat(1.0 / np.maximum(counts, 1), counts).astype(np.float32)
    return np.asarray(a @ item_vectors, dtype=np.float32)


class KnnRecommender(Recommender):
    """Cosine between the user's mean train vector and every train item, exact (FAISS flat IP)."""

    name = "knn"
    seeded = False  # deterministic: one run whatever the seeds

    def __init__(self, settings: ExperimentSettings, batch_size: int = DEFAULT_BATCH_SIZE,
                 max_cells: int = MAX_SCORE_CELLS):
        super().__init__(settings)
        self.batch_size, self.max_cells = batch_size, max_cells
        self._index = None  # faiss.IndexFlatIP over normalised train items
        self._index_items: np.ndarray | None = None  # index position → item_idx (sorted)
        self._user_vectors: np.ndarray | None = None  # (n_users, d) float32, unit norm
        self._index_vectors: np.ndarray | None = None  # the index's unit vectors, (n_index_items, d)
        self._data: InteractionData | None = None  # the train history to exclude
        self._item_vectors: np.ndarray | None = None  # raw vectors of every item: other candidate sets
        self._fitted_on: dict[str, object] = {}  # persistence.data_fingerprint of the data

    @property
    def scores_unseen_items(self) -> bool:
        """Any track with a vector can be ranked, trained on or not (cold start)."""
        return True

    def fit(self, data: InteractionData, item_vectors: np.ndarray) -> FitReport:
        """Build normalised user vectors and the index of train items; no training, no epochs."""
        import faiss

        start = time.perf_counter()
        vectors = _check_vectors(item_vectors, data.n_items)
        users = mean_item_vectors(data.train, vectors)
        self._user_vectors = np.ascontiguousarray(l2_normalise(users, out=users))
        self._index_items = data.train_items
        items = vectors[self._index_items]  # fancy indexing copies: safe to normalise in place
        l2_normalise(items, out=items)
        self._index = faiss.IndexFlatIP(vectors.shape[1])
        self._index.add(np.ascontiguousarray(items))
        self._index_vectors = items
        self._data = data
        self._item_vectors = vectors
        self._fitted_on = data_fingerprint(data)
        return FitReport(
            seconds=time.perf_counter() - start,
            params={"dim": int(vectors.shape[1]), "n_index_items": int(len(self._index_items))},
        )

    def _require_fitted(self) -> None:
        if self._index is None:
            raise RuntimeError("KnnRecommender is not fitted: call fit() or load()")

    def recommend(self, users: np.ndarray, n: int, candidates: np.ndarray | None = None) -> TopN:
        """Top-``n`` candidates by cosine, the user's train items removed.

        Default candidates: the train items (the index's vectors). Other candidates (the cold tracks) are
        normalised from the raw vectors. Scores come in dense blocks of at most ``max_cells`` (users ×
        candidates, at most ``batch_size`` users) — one matrix product on ``encode.device`` — and the top
        ``n`` after masking the history (:func:`~audiorec_assets.recommenders.base.exclude_and_top_n`):
        exact as FAISS's flat search, without searching ``n`` + the longest history deep to leave room
        for the items that are then dropped.
        """
        import torch

        self._require_fitted()
        users = np.asarray(users, dtype=np.int64)
        columns, item_matrix = self._index_items, self._index_vectors
        if candidates is not None and not np.array_equal(candidates, columns):
            columns = np.asarray(candidates, dtype=np.int64)
            item_matrix = l2_normalise(np.ascontiguousarray(self._item_vectors[columns], dtype=np.float32))
        device = resolve_device(self.settings.encode.device)
        items = torch.as_tensor(item_matrix, device=device)
        block = max(1, min(self.batch_size, self.max_cells // max(1, len(columns))))
        buffer = np.empty((min(block, len(users)), len(columns)), np.float32) if device.type == "cpu" else None

        def rank_block(batch: np.ndarray) -> TopN:
            scores = dense_scores(torch.as_tensor(self._user_vectors[batch], device=device), items, out=buffer)
            return exclude_and_top_n(scores, batch, self._data, n, columns=columns)

        return top_n_in_blocks(users, n, block, rank_block)

    def save(self, directory: Path) -> None:
        """``index.faiss`` (faiss.write_index), ``user_vectors.npy``, ``index_items.npy`` and ``model.json``."""
        import faiss

        self._require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._index, str(directory / INDEX_FILE))
        np.save(directory / USERS_FILE, self._user_vectors, allow_pickle=False)
        np.save(directory / ITEMS_FILE, self._index_items, allow_pickle=False)
        write_manifest(directory, self.name, self._fitted_on,
                       {"dim": int(self._index.d), "n_index_items": int(self._index.ntotal)})

    @classmethod
    def load(
        cls, directory: Path, settings: ExperimentSettings, data: InteractionData, item_vectors: np.ndarray
    ) -> KnnRecommender:
        import faiss

        directory = Path(directory)
        config, fitted_on = read_manifest(directory, cls.name, data)
        model = cls(settings)
        model._fitted_on = fitted_on
        model._index = faiss.read_index(str(directory / INDEX_FILE))
        model._user_vectors = np.load(directory / USERS_FILE, allow_pickle=False)
        model._index_items = np.load(directory / ITEMS_FILE, allow_pickle=False)
        if model._index.ntotal != len(model._index_items) or model._index.d != config["dim"]:
            raise ValueError(f"{directory}: index and index_items.npy disagree")
        model._index_vectors = model._index.reconstruct_n(0, model._index.ntotal)
        model._data = data
        model._item_vectors = _check_vectors(item_vectors, data.n_items)
        return model


def _check_vectors(item_vectors: np.ndarray, n_items: int) -> np.ndarray:
    vectors = np.asarray(item_vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != n_items:
        raise ValueError(f"item_vectors must be ({n_items}, d), got {vectors.shape}")
    if vectors.shape[1] == 0:
        raise ValueError("knn ranks tracks by their audio vectors, and encoder 'none' has none: "
                         "run knn on an audio encoder")
    return vectors
