"""The shared top-N with history exclusion used by the score-everything recommenders."""

import numpy as np
import pandas as pd

from audiorec_assets.recommenders.base import exclude_and_top_n, history_mask_coords
from audiorec_assets.recommenders.data import InteractionData


def tiny_data(n_users=30, n_items=12, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, rng.integers(1, 6), replace=False):
            rows.append((f"u{u:02d}", f"i{i:02d}", pd.Timestamp("2020-01-01") + pd.Timedelta(hours=int(rng.integers(1000))),
                         1, "train"))
    interactions = pd.DataFrame(rows, columns=["user_id", "track_id", "first_ts", "plays", "split"])
    tracks = pd.DataFrame({"track_id": [f"i{i:02d}" for i in range(n_items)], "item_idx": range(n_items)})
    return InteractionData.from_frames(interactions, tracks)


def test_history_coordinates_match_a_loop():
    data = tiny_data()
    users = np.array([3, 0, 7, 7])
    rows, cols = history_mask_coords(users, data)
    expected = {(r, int(i)) for r, u in enumerate(users) for i in data.train.items_of(u)}
    assert set(zip(rows.tolist(), cols.tolist())) == expected and len(rows) == len(expected)


def test_top_n_equals_a_reference_and_orders_ties_by_item():
    data = tiny_data()
    rng = np.random.default_rng(1)
    users = np.arange(data.n_users)
    scores = rng.integers(0, 4, size=(len(users), data.n_items)).astype(np.float32)  # many ties
    top = exclude_and_top_n(scores.copy(), users, data, n=5)
    for r, u in enumerate(users):
        seen = set(data.train.items_of(u).tolist())
        ranked = sorted((i for i in range(data.n_items) if i not in seen), key=lambda i: (-scores[r, i], i))
        # the set of the top 5 may differ only among items tied with the 5th score
        assert list(top.items[r]) == sorted(top.items[r], key=lambda i: (-scores[r, i], i))
        assert [scores[r, i] for i in top.items[r]] == [scores[r, i] for i in ranked[:5]]
        assert not seen & set(top.items[r].tolist())


def test_short_catalogue_pads_with_minus_one_and_nan():
    data = tiny_data(n_items=6)
    users = np.arange(data.n_users)
    top = exclude_and_top_n(np.random.default_rng(2).random((data.n_users, 6)), users, data, n=10)
    assert top.items.shape == (data.n_users, 10)
    for r, u in enumerate(users):
        available = 6 - len(data.train.items_of(u))
        assert (top.items[r, :available] >= 0).all() and (top.items[r, available:] == -1).all()
        assert np.isnan(top.scores[r, available:]).all()


def previous_top_n(scores: np.ndarray, users: np.ndarray, data: InteractionData, n: int,
                   allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The single-threaded numpy top-N that ``exclude_and_top_n`` replaced (argpartition, then a lexsort)."""
    scores = scores.copy()
    if allowed is not None:
        scores[:, ~allowed] = -np.inf
    rows, cols = history_mask_coords(users, data)
    scores[rows, cols] = -np.inf
    candidates = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    order = np.take_along_axis(candidates, np.lexsort((candidates, -candidate_scores), axis=1), axis=1)
    top = np.take_along_axis(scores, order, axis=1).astype(np.float32)
    items = order.astype(np.int64)
    items[~np.isfinite(top)] = -1
    return items, np.where(np.isfinite(top), top, np.nan)


def test_top_n_equals_the_previous_numpy_lists_on_continuous_scores():
    data = tiny_data(n_users=200, n_items=300, seed=3)
    rng = np.random.default_rng(4)
    users = rng.permutation(data.n_users)[:150]
    scores = rng.normal(size=(len(users), data.n_items)).astype(np.float32)
    scores[:, 10:20] = 0.5  # equal scores inside the top lists: ordered by item index
    allowed = rng.random(data.n_items) < 0.8
    top = exclude_and_top_n(scores.copy(), users, data, n=40, allowed=allowed)
    items, top_scores = previous_top_n(scores, users, data, 40, allowed)
    np.testing.assert_array_equal(top.items, items)
    np.testing.assert_array_equal(top.scores, top_scores)


def test_top_n_of_a_torch_block_equals_the_numpy_block():
    import torch

    data = tiny_data(n_users=50, n_items=80, seed=5)
    users = np.arange(data.n_users)
    scores = np.random.default_rng(6).normal(size=(len(users), data.n_items)).astype(np.float32)
    from_numpy = exclude_and_top_n(scores.copy(), users, data, n=15)
    from_torch = exclude_and_top_n(torch.from_numpy(scores.copy()), users, data, n=15)
    np.testing.assert_array_equal(from_numpy.items, from_torch.items)
    np.testing.assert_array_equal(from_numpy.scores, from_torch.scores)


def test_ties_across_the_nth_place_keep_the_lowest_item_indices():
    data = tiny_data(n_users=20, n_items=40, seed=7)
    users = np.arange(data.n_users)
    scores = np.zeros((len(users), data.n_items), dtype=np.float32)
    scores[:, 30:] = 1.0  # ten clear winners, then 30 items tied at 0 across the 12th place
    top = exclude_and_top_n(scores.copy(), users, data, n=12)
    for r, u in enumerate(users):
        seen = set(data.train.items_of(u).tolist())
        ranked = sorted((i for i in range(data.n_items) if i not in seen), key=lambda i: (-scores[r, i], i))
        assert top.items[r].tolist() == ranked[:12]
