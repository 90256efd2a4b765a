"""Popularity baseline: order by total train plays, history excluded, reload identical."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audiorec_assets.recommenders import recommender_class
from audiorec_assets.recommenders.data import InteractionData
from audiorec_assets.recommenders.popularity import PopularityRecommender, popularity_ranking
from audiorec_assets.settings import ExperimentSettings


def data_from_rows(rows: list[tuple[str, int, int, str]], n_items: int) -> InteractionData:
    """rows: (user, item_idx, plays, split); first-listen times follow the row order."""
    base = pd.Timestamp("2019-03-01")
    interactions = pd.DataFrame(
        [(u, f"t{i:04d}", base + pd.Timedelta(minutes=j), p, s) for j, (u, i, p, s) in enumerate(rows)],
        columns=["user_id", "track_id", "first_ts", "plays", "split"],
    )
    tracks = pd.DataFrame({"track_id": [f"t{i:04d}" for i in range(n_items)], "item_idx": np.arange(n_items)})
    return InteractionData.from_frames(interactions, tracks)


@pytest.fixture()
def small() -> InteractionData:
    # total train plays: item0 = 3, item1 = 10+2 = 12, item2 = 5, item3 = 5, item4 = 1; item5 only in test
    rows = [
        ("a", 1, 10, "train"), ("a", 2, 5, "train"),
        ("b", 0, 3, "train"), ("b", 1, 2, "train"), ("b", 5, 1, "test"),
        ("c", 3, 5, "train"), ("c", 4, 1, "train"),
    ]
    return data_from_rows(rows, n_items=6)


def test_ranking_by_plays_ties_by_index(small):
    ranked, plays = popularity_ranking(small)
    # 12 (item1) > 5 (item2, item3: tie → lower index first) > 3 (item0) > 1 (item4); item5 has no train plays
    assert ranked.tolist() == [1, 2, 3, 0, 4]
    np.testing.assert_array_equal(plays, [3, 12, 5, 5, 1, 0])


def test_recommend_excludes_history_and_pads(small):
    model = PopularityRecommender(ExperimentSettings())
    model.fit(small, np.zeros((6, 2), np.float32))
    top = model.recommend(np.array([0, 1, 2]), n=4)  # users a, b, c (sorted ids)
    # a saw {1,2} → [3,0,4] then padding; b saw {0,1} → [2,3,4]; c saw {3,4} → [1,2,0]
    np.testing.assert_array_equal(top.items, [[3, 0, 4, -1], [2, 3, 4, -1], [1, 2, 0, -1]])
    np.testing.assert_array_equal(top.scores[2, :3], [12, 5, 3])
    assert np.isnan(top.scores[:, 3]).all()


def random_data(seed: int = 0, n_users: int = 80, n_items: int = 200) -> InteractionData:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items - 20, size=rng.integers(1, 40), replace=False):
            rows.append((f"u{u:03d}", int(i), int(rng.integers(1, 50)), "train"))
    return data_from_rows(rows, n_items)


def test_equals_per_user_reference_and_reloads_identically(tmp_path):
    data = random_data()
    model = PopularityRecommender(ExperimentSettings(), batch_size=7)
    model.fit(data, np.zeros((data.n_items, 1), np.float32))
    users = np.arange(data.n_users)
    top = model.recommend(users, 25)

    plays = np.zeros(data.n_items)
    np.add.at(plays, data.train.indices, data.train_plays)
    global_order = sorted(set(data.train.indices.tolist()), key=lambda i: (-plays[i], i))
    for r, u in enumerate(users):
        seen = set(data.train.items_of(u).tolist())
        want = [i for i in global_order if i not in seen][:25]
        assert top.items[r].tolist() == want + [-1] * (25 - len(want))
        np.testing.assert_array_equal(top.scores[r, : len(want)], plays[want])

    model.save(tmp_path / "pop")
    loaded = recommender_class("popularity").load(tmp_path / "pop", ExperimentSettings(), data, None)
    again = loaded.recommend(users, 25)
    np.testing.assert_array_equal(again.items, top.items)
    np.testing.assert_array_equal(again.scores, top.scores)


def test_unfitted_and_bad_n_are_errors(small):
    model = PopularityRecommender(ExperimentSettings())
    with pytest.raises(RuntimeError):
        model.recommend(np.array([0]), 3)
    model.fit(small, np.zeros((6, 1), np.float32))
    with pytest.raises(ValueError):
        model.recommend(np.array([0]), 0)
