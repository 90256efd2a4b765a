"""ALS recommender: learns planted tastes, ranks only candidates, reloads exactly, deterministic per seed."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from audiorec_assets.recommenders import recommender_class
from audiorec_assets.recommenders.als import AlsRecommender, confidence_matrix
from audiorec_assets.recommenders.data import InteractionData
from audiorec_assets.settings import ExperimentSettings, SettingsError, parse_settings

GROUP_ITEMS = 20  # group A likes items [0, 20), group B items [20, 40)
N_USERS_PER_GROUP = 30
N_COLD = 5  # items [40, 45): in the catalogue, never played in train
N_ITEMS = 2 * GROUP_ITEMS + N_COLD


def planted_data(seed: int = 0) -> InteractionData:
    """Two user groups with disjoint tastes; each user played 8 of their group's 20 items in train."""
    rng = np.random.default_rng(seed)
    base = pd.Timestamp("2019-03-01")
    rows = []
    for group in (0, 1):
        for u in range(N_USERS_PER_GROUP):
            user = f"{'ab'[group]}{u:02d}"
            for j, item in enumerate(rng.choice(GROUP_ITEMS, size=8, replace=False) + group * GROUP_ITEMS):
                rows.append((user, f"t{item:03d}", base + pd.Timedelta(minutes=j), int(rng.integers(1, 6)), "train"))
            rows.append((user, f"t{40 + u % N_COLD:03d}", base + pd.Timedelta(days=400), 1, "test"))
    interactions = pd.DataFrame(rows, columns=["user_id", "track_id", "first_ts", "plays", "split"])
    tracks = pd.DataFrame({"track_id": [f"t{i:03d}" for i in range(N_ITEMS)], "item_idx": np.arange(N_ITEMS)})
    return InteractionData.from_frames(interactions, tracks)


def settings(seed: int = 42, **als) -> ExperimentSettings:
    # as many factors as planted tastes: more would fit each user's own 8 tracks (overfitting the small sample)
    return parse_settings({"seed": seed, "als": {"factors": 2, "iterations": 10, **als}}, source="test")


def group_of(data: InteractionData, users: np.ndarray) -> np.ndarray:
    return np.array([0 if str(data.user_ids[u]).startswith("a") else 1 for u in users])


@pytest.fixture(scope="module")
def data() -> InteractionData:
    return planted_data()


@pytest.fixture(scope="module")
def model(data) -> AlsRecommender:
    model = AlsRecommender(settings())
    model.fit(data, np.zeros((data.n_items, 0), np.float32))
    return model


def test_own_groups_unseen_tracks_rank_above_the_other_groups(data, model):
    users = np.arange(data.n_users)
    groups = group_of(data, users)
    top = model.recommend(users, GROUP_ITEMS - 8)  # exactly the 12 unseen tracks of the own group
    assert (top.items >= 0).all()
    np.testing.assert_array_equal(top.items // GROUP_ITEMS, np.repeat(groups[:, None], GROUP_ITEMS - 8, axis=1))
    # and on the full score rows: the worst unseen own-group track beats the best other-group track
    scores = model.score(users)
    for r, u in enumerate(users):
        own = np.arange(GROUP_ITEMS) + groups[r] * GROUP_ITEMS
        other = np.arange(GROUP_ITEMS) + (1 - groups[r]) * GROUP_ITEMS
        unseen_own = np.setdiff1d(own, data.train.items_of(u))
        assert scores[r, unseen_own].min() > scores[r, other].max()


def test_never_returns_history_and_only_candidates(data, model):
    users = np.arange(data.n_users)
    top = model.recommend(users, 50)  # more than the unseen train items: -1 padding
    assert data.train_items.tolist() == list(range(2 * GROUP_ITEMS))
    for r, u in enumerate(users):
        got = top.items[r][top.items[r] >= 0]
        assert len(got) == 2 * GROUP_ITEMS - 8 and len(set(got)) == len(got)
        assert not set(got) & set(data.train.items_of(u).tolist())
        assert (got < 2 * GROUP_ITEMS).all(), "items without train plays are not default candidates"
        assert np.all(np.diff(top.scores[r, : len(got)]) <= 0)
    assert np.isnan(top.scores[top.items == -1]).all()

    candidates = np.array([3, 7, 25, 31, 41, 44])  # warm ones of both groups plus two cold ones
    custom = model.recommend(users, 10, candidates=candidates)
    for r, u in enumerate(users):
        got = custom.items[r][custom.items[r] >= 0]
        assert set(got) == set(candidates.tolist()) - set(data.train.items_of(u).tolist())
    cold = model.recommend(users, 3, candidates=data.cold_items)
    assert set(cold.items.ravel().tolist()) <= set(data.cold_items.tolist())


def test_blocks_of_users_do_not_change_results(data, model, tmp_path):
    users = np.random.default_rng(3).permutation(data.n_users)[:40]
    model.save(tmp_path / "als")
    small = AlsRecommender.load(tmp_path / "als", settings(), data, None)
    small.max_score_entries = 3 * N_ITEMS  # 3 users per block
    a, b = model.recommend(users, 15), small.recommend(users, 15)
    np.testing.assert_array_equal(a.items, b.items)
    # BLAS may round a matrix product differently for another block shape (last bit of float32)
    np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(a.users, users)


def test_save_load_identical_scores_and_no_pickles(data, model, tmp_path):
    model.save(tmp_path / "als")
    loaded = recommender_class("als").load(tmp_path / "als", settings(), data, np.zeros((data.n_items, 0)))
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    a, b = model.recommend(users, 20), loaded.recommend(users, 20)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.scores, b.scores)
    files = sorted(p.name for p in (tmp_path / "als").iterdir())
    assert files == ["item_factors.npy", "model.json", "user_factors.npy"]
    for name in files:
        if name.endswith(".npy"):
            array = np.load(tmp_path / "als" / name, allow_pickle=False)  # raises on an object array
            assert array.dtype == np.float32
    meta = json.loads((tmp_path / "als" / "model.json").read_text())
    fitted_on = meta["fitted_on"]
    assert (meta["recommender"], fitted_on["n_users"], fitted_on["n_items"]) == ("als", data.n_users, N_ITEMS)
    assert meta["config"]["factors"] == 2


def test_load_rejects_other_data(model, tmp_path):
    model.save(tmp_path / "als")
    other = planted_data(seed=1)
    other = InteractionData(other.user_ids[:-1], other.track_ids, other.train, other.train_plays, other.val, other.test)
    with pytest.raises(ValueError, match="fitted on"):
        AlsRecommender.load(tmp_path / "als", settings(), other, None)


def test_same_seed_same_factors_other_seed_different(data):
    def factors(seed: int, item_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        model = AlsRecommender(settings(seed=seed))
        model.fit(data, item_vectors)
        return model._user_factors, model._item_factors

    none = np.zeros((data.n_items, 0), np.float32)
    first, again = factors(7, none), factors(7, np.random.default_rng(0).standard_normal((data.n_items, 5)))
    np.testing.assert_array_equal(first[0], again[0])  # same seed (and audio is ignored): bit-identical
    np.testing.assert_array_equal(first[1], again[1])
    other = factors(8, none)
    assert not np.allclose(first[0], other[0]) and not np.allclose(first[1], other[1])


def test_fit_report_and_no_blas_oversubscription_warning(data):
    import implicit.utils

    implicit.utils._checked_blas_config = False  # the library warns once per process: make it look again
    model = AlsRecommender(settings(iterations=6, alpha=2.0, regularization=0.1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        report = model.fit(data, np.zeros((data.n_items, 0), np.float32))
    assert len(report.train_loss) == 6 and all(np.isfinite(report.train_loss))
    assert report.train_loss[-1] <= report.train_loss[0]
    assert report.params["training_loss"] == report.train_loss[-1]
    assert {k: report.params[k] for k in ("factors", "regularization", "iterations", "alpha")} == {
        "factors": 2, "regularization": 0.1, "iterations": 6, "alpha": 2.0}
    assert report.seconds > 0 and not model.scores_unseen_items


def test_confidence_is_one_plus_alpha_plays_as_implicit_reads_it(data):
    """The matrix holds 1 + alpha * plays, and implicit takes the stored value as the confidence c_ui.

    With the exact (non-CG) solver, each item factor after a sweep must solve Hu et al.'s normal
    equations (XᵀX + Xᵀ(Cᵢ − I)X + λI) yᵢ = Xᵀ Cᵢ pᵢ with Cᵢ = the stored values — not 1 + them.
    """
    from implicit.cpu.als import AlternatingLeastSquares

    conf = confidence_matrix(data, alpha=3.0)
    np.testing.assert_allclose(conf.data, 1 + 3.0 * data.train_plays[np.lexsort((data.train.indices, data.train.row_ids()))])
    assert conf.shape == (data.n_users, data.n_items) and conf.dtype == np.float32

    reg = 0.05
    als = AlternatingLeastSquares(factors=4, regularization=reg, iterations=3, use_cg=False, random_state=0, num_threads=1)
    als.fit(conf, show_progress=False)
    x, y = als.user_factors.astype(np.float64), als.item_factors.astype(np.float64)
    by_item = conf.T.tocsr()
    for i in range(2 * GROUP_ITEMS):
        users = by_item.indices[by_item.indptr[i] : by_item.indptr[i + 1]]
        c = by_item.data[by_item.indptr[i] : by_item.indptr[i + 1]].astype(np.float64)
        a = x.T @ x + (x[users].T * (c - 1)) @ x[users] + reg * np.eye(4)
        np.testing.assert_allclose(np.linalg.solve(a, x[users].T @ c), y[i], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("key, value", [("factors", 0), ("iterations", 0), ("regularization", -0.1), ("alpha", 0)])
def test_settings_errors_name_the_setting(key, value):
    with pytest.raises(SettingsError, match=rf"als\.{key}:"):
        parse_settings({"als": {key: value}}, source="experiment.yaml")


def test_unfitted_and_bad_n_are_errors(data, model):
    with pytest.raises(RuntimeError, match="not fitted"):
        AlsRecommender(ExperimentSettings()).recommend(np.array([0]), 3)
    with pytest.raises(ValueError):
        model.recommend(np.array([0]), 0)
