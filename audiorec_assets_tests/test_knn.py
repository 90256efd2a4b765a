"""KNN recommender: equals a brute-force numpy reference, batching-invariant, save/load exact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audiorec_assets.recommenders import recommender_class
from audiorec_assets.recommenders.data import InteractionData, UserItems
from audiorec_assets.recommenders.candidate_lists import history_batches
from audiorec_assets.recommenders.knn import KnnRecommender, l2_normalise, mean_item_vectors
from audiorec_assets.settings import ExperimentSettings

N_USERS, N_ITEMS, N_TRAIN_ITEMS, DIM = 60, 150, 120, 16


def make_data(seed: int = 0) -> InteractionData:
    """Users with 1–25 train items among items [0, N_TRAIN_ITEMS) and 3 test items; items from N_TRAIN_ITEMS on never occur in train."""
    rng = np.random.default_rng(seed)
    rows = []
    base = pd.Timestamp("2019-03-01")
    for u in range(N_USERS):
        train = rng.choice(N_TRAIN_ITEMS, size=rng.integers(1, 26), replace=False)
        test = rng.choice(N_ITEMS, size=3, replace=False)
        for i in train:
            rows.append((f"u{u:03d}", f"t{i:04d}", base + pd.Timedelta(minutes=int(rng.integers(1e5))), int(rng.integers(1, 9)), "train"))
        for i in test:
            rows.append((f"u{u:03d}", f"t{i:04d}", base + pd.Timedelta(days=400), 1, "test"))
    interactions = pd.DataFrame(rows, columns=["user_id", "track_id", "first_ts", "plays", "split"])
    tracks = pd.DataFrame({"track_id": [f"t{i:04d}" for i in range(N_ITEMS)], "item_idx": np.arange(N_ITEMS)})
    return InteractionData.from_frames(interactions, tracks)


def brute_force(data: InteractionData, vectors: np.ndarray, users: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference in float64: normalise(mean of raw train vectors) · normalised items, train items and non-train items masked."""
    x = vectors.astype(np.float64)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    in_train = np.zeros(len(x), dtype=bool)
    in_train[data.train.indices] = True
    items = np.full((len(users), n), -1)
    scores = np.full((len(users), n), np.nan)
    for r, u in enumerate(users):
        hist = np.unique(data.train.items_of(u))
        uv = x[hist].mean(axis=0)
        s = xn @ (uv / np.linalg.norm(uv))
        s[hist] = -np.inf
        s[~in_train] = -np.inf
        order = np.argsort(-s, kind="stable")
        order = order[np.isfinite(s[order])][:n]
        items[r, : len(order)] = order
        scores[r, : len(order)] = s[order]
    return items, scores


@pytest.fixture(scope="module")
def setup():
    data = make_data()
    vectors = np.random.default_rng(1).standard_normal((N_ITEMS, DIM)).astype(np.float32)
    model = KnnRecommender(ExperimentSettings())
    model.fit(data, vectors)
    return data, vectors, model


@pytest.mark.parametrize("n", [10, 100])  # 100 > unseen train items for users with long histories: -1 padding
def test_equals_brute_force(setup, n):
    data, vectors, model = setup
    users = np.arange(data.n_users)
    top = model.recommend(users, n)
    want_items, want_scores = brute_force(data, vectors, users, n)
    np.testing.assert_array_equal(top.items, want_items)
    np.testing.assert_allclose(top.scores, want_scores, rtol=0, atol=1e-5)  # NaN == NaN where padded
    assert top.items.dtype == np.int64 and top.scores.dtype == np.float32
    np.testing.assert_array_equal(top.users, users)
    if n == 100:
        assert (top.items == -1).any()


def test_never_recommends_train_history_or_items_outside_train(setup):
    data, _, model = setup
    top = model.recommend(np.arange(data.n_users), 50)
    for r, u in enumerate(top.users):
        got = top.items[r][top.items[r] >= 0]
        assert not set(got) & set(data.train.items_of(u))
        assert (got < N_TRAIN_ITEMS).all()  # items [N_TRAIN_ITEMS, N_ITEMS) never occur in train
        assert len(set(got)) == len(got)


def test_batching_and_user_order_do_not_change_results(setup):
    data, vectors, _ = setup
    users = np.random.default_rng(2).permutation(data.n_users)[:45]
    big = KnnRecommender(ExperimentSettings(), batch_size=10_000)
    big.fit(data, vectors)
    small = KnnRecommender(ExperimentSettings(), batch_size=4)
    small.fit(data, vectors)
    a, b = big.recommend(users, 20), small.recommend(users, 20)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-6)
    single = np.concatenate([big.recommend(np.array([u]), 20).items for u in users])
    np.testing.assert_array_equal(single, a.items)


def test_history_batches_cover_every_user_once_within_bounds():
    lengths = np.array([5, 0, 300, 2, 2, 50, 7, 1])
    users = np.array([7, 2, 0, 5, 3])
    batches = list(history_batches(users, lengths, n=10, batch_size=2, max_entries=100))
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(users)))
    for pos in batches:
        assert 1 <= len(pos) <= 2
        assert len(pos) == 1 or len(pos) * (10 + lengths[users[pos]].max()) <= 100


def test_save_load_identical(setup, tmp_path):
    data, vectors, model = setup
    model.save(tmp_path / "knn")
    loaded = recommender_class("knn").load(tmp_path / "knn", ExperimentSettings(), data, vectors)
    users = np.arange(data.n_users)
    a, b = model.recommend(users, 30), loaded.recommend(users, 30)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert sorted(p.name for p in (tmp_path / "knn").iterdir()) == [
        "index.faiss", "index_items.npy", "model.json", "user_vectors.npy"]


def test_load_rejects_other_data(setup, tmp_path):
    data, vectors, model = setup
    model.save(tmp_path / "knn")
    other = make_data(seed=5)
    if other.n_users == data.n_users:  # same user count by construction: fake a different catalogue
        other = InteractionData(other.user_ids[:-1], other.track_ids, other.train, other.train_plays, other.val, other.test)
    with pytest.raises(ValueError):
        KnnRecommender.load(tmp_path / "knn", ExperimentSettings(), other, vectors)


def test_zero_vectors_do_not_produce_nan(setup):
    data, vectors, _ = setup
    zeroed = vectors.copy()
    zeroed[data.train.items_of(0)] = 0.0  # user 0's mean is the zero vector; those items have zero norm
    model = KnnRecommender(ExperimentSettings())
    model.fit(data, zeroed)
    top = model.recommend(np.arange(data.n_users), 10)
    assert np.isfinite(top.scores[top.items >= 0]).all()
    assert (top.items[0] >= 0).all()
    np.testing.assert_array_equal(top.scores[0], 0.0)


def test_l2_normalise_guards_zero_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(l2_normalise(x), [[0.6, 0.8], [0.0, 0.0]])


def test_user_vector_is_mean_over_distinct_items():
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [4.0, 4.0]], dtype=np.float32)
    sets = UserItems(indptr=np.array([0, 3, 3]), indices=np.array([0, 1, 0]))  # item 0 listed twice
    np.testing.assert_allclose(mean_item_vectors(sets, vectors), [[0.5, 1.0], [0.0, 0.0]])
