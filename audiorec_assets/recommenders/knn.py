"""KNN / cosine recommender: the user is the mean of their train items' audio vectors.

As in the study's code (README.md, *Recommenders and presets*): user vector = unweighted mean of
the raw vectors of the user's distinct train items; users and items L2-normalised; exact
inner-product search (FAISS ``IndexFlatIP``) over the items that occur in train; the
user's train items removed. Nothing is trained.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from audiorec_assets.evaluation.metrics import membership
from audiorec_assets.recommenders.base import FitReport, Recommender, TopN
from audiorec_assets.recommenders.data import InteractionData, UserItems
from audiorec_assets.recommenders.persistence import data_fingerprint, read_manifest, write_manifest
from audiorec_assets.settings import ExperimentSettings

INDEX_FILE = "index.faiss"
USERS_FILE = "user_vectors.npy"
ITEMS_FILE = "index_items.npy"

# Bounds per search call: users per batch, and batch × candidates (D float32 + I int64 +
# masks ≈ 25 bytes per entry → 16M entries ≈ 400 MB at most).
DEFAULT_BATCH_SIZE = 4096
MAX_CANDIDATE_ENTRIES = 16_000_000


# ---------------------------------------------------------------- shared helpers
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


def history_batches(
    users: np.ndarray, history_lengths: np.ndarray, n: int, batch_size: int = DEFAULT_BATCH_SIZE,
    max_entries: int = MAX_CANDIDATE_ENTRIES,
) -> Iterator[np.ndarray]:
    """Positions into ``users``, in batches of users with similar history length.

    A batch must fetch ``n + longest history`` candidates per user, so users are sorted
    by history length: one heavy user then costs only its own batch. A batch holds at most
    ``batch_size`` users and ``max_entries`` candidates (at least one user).
    """
    lengths = history_lengths[users]
    order = np.argsort(lengths, kind="stable")
    sorted_len = lengths[order]
    start = 0
    while start < len(order):
        stop = min(start + batch_size, len(order))
        # cost of the batch [start, e) is (e - start) * (n + sorted_len[e - 1]): non-decreasing in e
        cost = np.arange(1, stop - start + 1) * (n + sorted_len[start:stop])
        stop = start + max(1, int(np.searchsorted(cost, max_entries, side="right")))
        yield order[start:stop]
        start = stop


def drop_seen_top_n(
    candidates: np.ndarray, scores: np.ndarray, users: np.ndarray, train: UserItems, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """First ``n`` candidates of each row that are not in that user's train items.

    ``candidates`` (b, L): item ids, best first, -1 for none; ``scores`` aligned. Returns
    items (b, n) int64 with -1 padding and scores (b, n) float32 with NaN padding. Vectorised:
    a stable argsort of the "drop" mask moves the kept candidates to the front in order.
    """
    seen, _ = membership(candidates, train, users)
    drop = seen | (candidates < 0)
    b, width = candidates.shape
    take = np.argsort(drop, axis=1, kind="stable")[:, :n]
    items = np.take_along_axis(candidates, take, axis=1).astype(np.int64)
    top = np.take_along_axis(scores, take, axis=1).astype(np.float32)
    dropped = np.take_along_axis(drop, take, axis=1)
    items[dropped] = -1
    top[dropped] = np.nan
    if width < n:
        items = np.pad(items, ((0, 0), (0, n - width)), constant_values=-1)
        top = np.pad(top, ((0, 0), (0, n - width)), constant_values=np.nan)
    return items, top


Candidates = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]  # (users, depth) -> (items, scores)


def recommend_from_candidates(users: np.ndarray, n: int, train: UserItems, candidates: Candidates,
                              batch_size: int = DEFAULT_BATCH_SIZE) -> TopN:
    """Top-``n`` unseen items per user from a candidate generator, in batches of similar history length.

    ``candidates(batch, depth)`` returns each user's best ``depth`` items (best first, -1 for
    none) and their scores; ``depth`` = ``n`` + the batch's longest train history, so ``n``
    unseen items remain whenever the generator has that many.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    users = np.asarray(users, dtype=np.int64)
    items_out = np.full((len(users), n), -1, dtype=np.int64)
    scores_out = np.full((len(users), n), np.nan, dtype=np.float32)
    lengths = train.lengths()
    for pos in history_batches(users, lengths, n, batch_size):
        batch = users[pos]
        items, scores = candidates(batch, n + int(lengths[batch].max()))
        if items.shape[1]:
            items_out[pos], scores_out[pos] = drop_seen_top_n(items, scores, batch, train, n)
    return TopN(users=users, items=items_out, scores=scores_out)


# ---------------------------------------------------------------- the model
class KnnRecommender(Recommender):
    """Cosine between the user's mean train vector and every train item, exact (FAISS flat IP)."""

    name = "knn"
    seeded = False  # deterministic: one run whatever the seeds

    def __init__(self, settings: ExperimentSettings, batch_size: int = DEFAULT_BATCH_SIZE):
        super().__init__(settings)
        self.batch_size = batch_size
        self._index = None  # faiss.IndexFlatIP over normalised train items
        self._index_items: np.ndarray | None = None  # index position → item_idx (sorted)
        self._user_vectors: np.ndarray | None = None  # (n_users, d) float32, unit norm
        self._train: UserItems | None = None
        self._n_items = 0
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
        self._index_items = np.unique(data.train.indices).astype(np.int64)
        items = vectors[self._index_items]  # fancy indexing copies: safe to normalise in place
        l2_normalise(items, out=items)
        self._index = faiss.IndexFlatIP(vectors.shape[1])
        self._index.add(np.ascontiguousarray(items))
        self._train = data.train
        self._n_items = data.n_items
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
        """Top-``n`` candidates by cosine, the user's train items removed; one FAISS search per batch.

        Default candidates: the train items (the stored index). Other candidates (the cold
        tracks) get an exact index of their own vectors. Each batch asks FAISS for ``n +
        longest train history in the batch`` items, which always leaves ``n`` unseen ones when
        the index has that many.
        """
        import faiss

        self._require_fitted()
        index, index_items = self._index, self._index_items
        if candidates is not None and not np.array_equal(candidates, index_items):
            index_items = np.asarray(candidates, dtype=np.int64)
            items = np.ascontiguousarray(self._item_vectors[index_items], dtype=np.float32)
            l2_normalise(items, out=items)
            index = faiss.IndexFlatIP(items.shape[1])
            index.add(items)

        def search(batch: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
            if index.ntotal == 0:
                return np.full((len(batch), 0), -1, dtype=np.int64), np.zeros((len(batch), 0), dtype=np.float32)
            scores, labels = index.search(self._user_vectors[batch], min(depth, index.ntotal))
            return np.where(labels >= 0, index_items[np.maximum(labels, 0)], -1), scores

        return recommend_from_candidates(users, n, self._train, search, self.batch_size)

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
        """Restore a model written by :meth:`save`; ``data`` supplies the train history to exclude."""
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
        model._train = data.train
        model._n_items = data.n_items
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
