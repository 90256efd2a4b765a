"""Control "encoders" computed from other vectors, not from audio (pure numpy): ``shuffled`` and ``random``
(what they control for: docs/encoders.md, "Controls, your own vectors, and no audio")."""

from __future__ import annotations

import numpy as np

# Rejection sampling of a uniform derangement succeeds with probability ≈ 1/e per try;
# after this many failures (probability < 1e-19) fall back to a random single cycle.
_MAX_DERANGEMENT_TRIES = 100


def derangement(n: int, seed: int) -> np.ndarray:
    """A permutation ``p`` of ``range(n)`` with ``p[i] != i`` for every ``i`` (when ``n > 1``).

    Uniform over all derangements (rejection sampling of ``rng.permutation``), deterministic
    per ``seed``. ``n`` of 0 or 1 has no derangement: the identity is returned.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    if n <= 1:
        return np.arange(n)
    idx = np.arange(n)
    for _ in range(_MAX_DERANGEMENT_TRIES):
        perm = rng.permutation(n)
        if not np.any(perm == idx):
            return perm
    order = rng.permutation(n)  # pragma: no cover - astronomically unlikely
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.roll(order, -1)  # one n-cycle through a random order: no fixed point
    return perm


def shuffled_vectors(base: np.ndarray, seed: int) -> np.ndarray:
    """``base`` with its rows permuted across tracks: row ``i`` of the result is ``base[p[i]]``.

    ``p`` is :func:`derangement` ``(len(base), seed)``, so for more than one track no track
    keeps its own vector (tracks whose vectors are exact duplicates may of course still get an
    identical one). Same multiset of rows, same dtype, deterministic per ``seed``.
    """
    base = np.asarray(base)
    if base.ndim != 2:
        raise ValueError(f"base must be a 2-D (n_tracks, dim) array, got shape {base.shape}")
    return base[derangement(base.shape[0], seed)].copy()


def random_vectors(n_tracks: int, dim: int, seed: int) -> np.ndarray:
    """``(n_tracks, dim)`` float32 i.i.d. standard-normal vectors, deterministic per ``seed``."""
    if n_tracks < 0 or dim < 1:
        raise ValueError(f"need n_tracks >= 0 and dim >= 1, got {n_tracks}, {dim}")
    return np.random.default_rng(seed).standard_normal((n_tracks, dim), dtype=np.float32)
