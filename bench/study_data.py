"""A Music4All-Onion-size split as arrays, straight in memory (no lake): for benches of the recommenders alone.

Zipf-like track popularity, lognormal user activity (mean distinct train history ≈ 213 at the defaults, as the
synthetic 20 000-user Onion log), val and test items after the train items, a few per cent of the catalogue
never played in train (the cold tracks), Gaussian item vectors.
"""

from __future__ import annotations

import numpy as np

from audiorec_assets.recommenders.data import InteractionData, UserItems


def _user_items(rng: np.random.Generator, n_users: int, n_items: int, lengths: np.ndarray,
                popularity: np.ndarray) -> UserItems:
    """Distinct items per user, drawn by popularity (with replacement, then deduplicated), in random order."""
    draws = rng.choice(n_items, size=int(lengths.sum()), p=popularity)
    users = np.repeat(np.arange(n_users), lengths)
    keys = np.unique(users.astype(np.int64) * n_items + draws)
    users, items = keys // n_items, keys % n_items
    return UserItems.from_pairs(users, items, rng.random(len(items)), n_users)


def study_split(n_users: int = 20_000, n_items: int = 56_512, mean_history: float = 213.0, cold_fraction: float = 0.03,
                seed: int = 0) -> InteractionData:
    rng = np.random.default_rng(seed)
    warm = int(n_items * (1 - cold_fraction))
    popularity = 1.0 / np.arange(1, warm + 1) ** 0.8
    popularity = rng.permutation(popularity / popularity.sum())
    sigma = 1.0
    lengths = np.maximum(1, rng.lognormal(np.log(mean_history) - sigma**2 / 2, sigma, n_users).astype(np.int64))
    train = _user_items(rng, n_users, warm, lengths, popularity)
    # warm evaluation items: only tracks with train plays (the study's vocabulary)
    vocabulary = np.zeros(n_items, dtype=np.float64)
    vocabulary[np.unique(train.indices)] = 1.0
    eval_popularity = popularity * vocabulary[:warm]
    eval_popularity /= eval_popularity.sum()
    val = _user_items(rng, n_users, warm, np.maximum(1, lengths // 20), eval_popularity)
    test = _user_items(rng, n_users, warm, np.maximum(1, lengths // 20), eval_popularity)
    cold_users = rng.choice(n_users, n_users // 10, replace=False)
    cold_pairs = rng.integers(warm, n_items, len(cold_users))
    test_cold = UserItems.from_pairs(cold_users, cold_pairs, np.zeros(len(cold_users)), n_users)
    return InteractionData(
        user_ids=np.array([f"user_{u:06d}" for u in range(n_users)], dtype=object),
        track_ids=np.array([f"track_{i:07d}" for i in range(n_items)], dtype=object),
        train=train, train_plays=np.ones(len(train.indices), dtype=np.int64), val=val, test=test, test_cold=test_cold,
    )


def gaussian_vectors(n_items: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + dim).standard_normal((n_items, dim), dtype=np.float32)
