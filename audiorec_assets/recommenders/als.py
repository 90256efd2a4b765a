"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) from the ``implicit`` library: the collaborative reference.

It knows no audio (encoder ``none``); the model and its settings: docs/recommenders.md. ALS minimises
``Σ_ui c_ui (p_ui − x_uᵀ y_i)² + regularization · (Σ_u |x_u|² + Σ_i |y_i|²)``, starting from ``U[0, 0.01)``
factors drawn with ``settings.seed``.

Confidence convention of ``implicit`` (checked in its source, module ``implicit.cpu.als``: the solver adds
``(c − 1) y yᵀ`` to ``YᵀY`` and ``c y`` to the right-hand side): the stored value *is* ``c_ui``, and only the
unobserved entries get the implicit confidence 1. The library does **not** add the 1 to observed entries, so this
module stores ``1 + alpha * plays`` and leaves the library's own ``alpha`` at 1.0 (which would multiply the whole
stored value, the 1 included).

Fitting is deterministic for a seed: every user's (item's) factor is solved independently from the other side's
factors, so the number of threads does not change the result (the training loss is a multi-threaded sum and may
differ in its last digits).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from audiorec_assets.recommenders.base import (FitReport, Recommender, TopN, candidate_mask, exclude_and_top_n,
                                               top_n_in_blocks)
from audiorec_assets.recommenders.data import InteractionData
from audiorec_assets.recommenders.persistence import data_fingerprint, read_manifest, write_manifest
from audiorec_assets.settings import ExperimentSettings

USER_FACTORS_FILE = "user_factors.npy"
ITEM_FACTORS_FILE = "item_factors.npy"

# Bound on one dense score block (users × n_items float32, plus argpartition's int64 copy):
# 8M entries ≈ 100 MB.
MAX_SCORE_ENTRIES = 8_000_000


def confidence_matrix(data: InteractionData, alpha: float):
    """users × items ``scipy.sparse.csr_matrix`` (float32) of ``c_ui = 1 + alpha * plays`` on the train pairs.

    A pair listed twice (not produced by the split, but possible in hand-made data) has its plays summed.
    """
    import scipy.sparse as sp

    train = data.train
    plays = sp.csr_matrix(
        (data.train_plays.astype(np.float64), train.indices, train.indptr), shape=(data.n_users, data.n_items)
    )
    plays.sum_duplicates()
    plays.sort_indices()
    plays.data = 1.0 + alpha * plays.data
    return plays.astype(np.float32)


class AlsRecommender(Recommender):
    """Matrix factorisation of train plays (``implicit.cpu.als.AlternatingLeastSquares``); no audio."""

    name = "als"

    def __init__(self, settings: ExperimentSettings, max_score_entries: int = MAX_SCORE_ENTRIES):
        super().__init__(settings)
        self.max_score_entries = max_score_entries
        self._user_factors: np.ndarray | None = None  # (n_users, factors) float32
        self._item_factors: np.ndarray | None = None  # (n_items, factors) float32
        self._data: InteractionData | None = None
        self._fitted_on: dict[str, object] = {}  # persistence.data_fingerprint of the data

    def fit(self, data: InteractionData, item_vectors: np.ndarray) -> FitReport:
        """Factorise the confidence matrix (module docstring); ``item_vectors`` are ignored, any shape."""
        from implicit.cpu.als import AlternatingLeastSquares  # the CPU class: a GPU build never changes results
        from threadpoolctl import threadpool_limits

        als = self.settings.als
        start = time.perf_counter()
        losses: list[float] = []
        # implicit parallelises over users itself; a multi-threaded BLAS underneath oversubscribes the
        # cores (implicit warns at construction, hence the limit around both)
        with threadpool_limits(limits=1, user_api="blas"):
            model = AlternatingLeastSquares(
                factors=als.factors, regularization=als.regularization, alpha=1.0, iterations=als.iterations,
                calculate_training_loss=True, random_state=self.settings.seed, dtype=np.float32,
            )
            model.fit(confidence_matrix(data, als.alpha), show_progress=False,
                      callback=lambda _iteration, _seconds, loss: losses.append(float(loss)))
        self._user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self._item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._data = data
        self._fitted_on = data_fingerprint(data)
        return FitReport(
            train_loss=losses, best_epoch=als.iterations, seconds=time.perf_counter() - start,
            params={"factors": als.factors, "regularization": als.regularization, "iterations": als.iterations,
                    "alpha": als.alpha, "confidence": "1 + alpha * plays", "seed": self.settings.seed,
                    "training_loss": losses[-1] if losses else None},
        )

    def _require_fitted(self) -> None:
        if self._user_factors is None:
            raise RuntimeError("AlsRecommender is not fitted: call fit() or load()")

    def score(self, users: np.ndarray) -> np.ndarray:
        """Dense ``(len(users), n_items)`` float32 scores ``x_u · y_i`` (no masking)."""
        self._require_fitted()
        return self._user_factors[np.asarray(users, dtype=np.int64)] @ self._item_factors.T

    def recommend(self, users: np.ndarray, n: int, candidates: np.ndarray | None = None) -> TopN:
        """Top-``n`` of ``candidates`` (default: the train items) by ``x_u · y_i``, train history excluded.

        Scores are computed in blocks of users so that one block stays under ``max_score_entries``.
        Ties are ordered by item index.
        """
        self._require_fitted()
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        data = self._data
        allowed = candidate_mask(data, candidates)
        return top_n_in_blocks(users, n, max(1, self.max_score_entries // max(1, data.n_items)),
                               lambda batch: exclude_and_top_n(self.score(batch), batch, data, n, allowed))

    def save(self, directory: Path) -> None:
        """``user_factors.npy``, ``item_factors.npy`` (no pickles) and ``model.json``."""
        self._require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / USER_FACTORS_FILE, self._user_factors, allow_pickle=False)
        np.save(directory / ITEM_FACTORS_FILE, self._item_factors, allow_pickle=False)
        als = self.settings.als
        write_manifest(directory, self.name, self._fitted_on, {
            "factors": int(self._user_factors.shape[1]), "regularization": als.regularization,
            "iterations": als.iterations, "alpha": als.alpha, "seed": self.settings.seed,
        })

    @classmethod
    def load(
        cls, directory: Path, settings: ExperimentSettings, data: InteractionData, item_vectors: np.ndarray
    ) -> AlsRecommender:
        directory = Path(directory)
        config, fitted_on = read_manifest(directory, cls.name, data)
        model = cls(settings)
        model._fitted_on = fitted_on
        model._user_factors = np.load(directory / USER_FACTORS_FILE, allow_pickle=False)
        model._item_factors = np.load(directory / ITEM_FACTORS_FILE, allow_pickle=False)
        want_users, want_items = (data.n_users, config["factors"]), (data.n_items, config["factors"])
        if model._user_factors.shape != want_users or model._item_factors.shape != want_items:
            raise ValueError(
                f"{directory}: factor files have shapes {model._user_factors.shape} and {model._item_factors.shape}, "
                f"model.json says {want_users} and {want_items}"
            )
        model._data = data
        return model
