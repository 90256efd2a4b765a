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
