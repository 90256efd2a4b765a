"""Shallow net (both presets) on a tiny synthetic catalogue with planted taste clusters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from audiorec_assets.recommenders import torch_utils as tu
from audiorec_assets.recommenders.data import InteractionData
from audiorec_assets.recommenders.shallow import ShallowRecommender
from audiorec_assets.settings import ExperimentSettings, ShallowSettings

N_USERS, N_ITEMS, DIM, N_CLUSTERS = 40, 60, 16, 4


def synthetic_data(seed: int = 0) -> tuple[InteractionData, np.ndarray]:
    """Items fall in 4 taste clusters; each user walks their cluster's items in a fixed cyclic order
    from a random start: 8 train, then 3 val, then 2 test items (first-listen hours 0..12).

    The audio vector of an item is its cluster centre plus noise, except that a quarter of the items
    sound like another cluster: the listens (not the audio) say where those belong, so training has
    something to learn beyond the mean-of-items start.
    """
    rng = np.random.default_rng(seed)
    cluster_of_item = np.arange(N_ITEMS) % N_CLUSTERS
    misleading = rng.random(N_ITEMS) < 0.25
    other_cluster = (cluster_of_item + rng.integers(1, N_CLUSTERS, N_ITEMS)) % N_CLUSTERS
    audio_cluster = np.where(misleading, other_cluster, cluster_of_item)
    centers = rng.normal(size=(N_CLUSTERS, DIM)) * 2.0
    vectors = (centers[audio_cluster] + rng.normal(size=(N_ITEMS, DIM))).astype(np.float32)
    rows = []
    start = pd.Timestamp("2020-01-01")
    for user in range(N_USERS):
        own = np.flatnonzero(cluster_of_item == user % N_CLUSTERS)
        walk = np.roll(own, -int(rng.integers(len(own))))[:13]
        for step, item in enumerate(walk):
            split = "train" if step < 8 else "val" if step < 11 else "test"
            rows.append((f"u{user:03d}", f"t{item:03d}", start + pd.Timedelta(hours=step), 1 + step % 3, split))
    interactions = pd.DataFrame(rows, columns=["user_id", "track_id", "first_ts", "plays", "split"])
    tracks = pd.DataFrame({"track_id": [f"t{i:03d}" for i in range(N_ITEMS)], "item_idx": np.arange(N_ITEMS)})
    return InteractionData.from_frames(interactions, tracks), vectors


def settings_for(preset: str, **shallow: object) -> ExperimentSettings:
    values = {"batch_size": 64, "max_epochs": 12, "patience": 4, "lr": 1e-2, **shallow}
    return ExperimentSettings(preset=preset, seed=7, shallow=ShallowSettings(**values))


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def dataset() -> tuple[InteractionData, np.ndarray]:
    return synthetic_data()


@pytest.fixture(scope="module", params=["guide", "paper_code"])
def fitted(request, dataset):
    data, vectors = dataset
    model = ShallowRecommender(settings_for(request.param))
    report = model.fit(data, vectors.copy())
    return request.param, model, report


def test_training_improves_validation_loss(fitted):
    preset, _, report = fitted
    assert report.best_epoch is not None and report.best_epoch > 0
    assert report.val_loss[report.best_epoch] < report.val_loss[0]
    assert len(report.train_loss) == len(report.val_loss) == report.params["epochs_run"]
    assert report.params["preset"] == preset
    assert report.params["margin"] == (1.0 if preset == "guide" else 0.2)


def test_recommend_excludes_train_items_and_sorts(fitted, dataset):
    _, model, _ = fitted
    data, _ = dataset
    users = np.arange(data.n_users)
    top = model.recommend(users, 10)
    assert top.items.shape == top.scores.shape == (data.n_users, 10)
    for row, user in enumerate(users):
        assert not set(top.items[row]) & set(data.train.items_of(user))
        assert np.all(np.diff(top.scores[row]) <= 0)
    # the planted clusters are learnable: most top-10 lists hit a val item
    hits = [bool(set(top.items[r]) & set(data.val.items_of(u))) for r, u in enumerate(users)]
    assert np.mean(hits) > 0.8


def test_save_load_gives_identical_scores(fitted, dataset, tmp_path: Path):
    preset, model, _ = fitted
    data, vectors = dataset
    model.save(tmp_path)
    assert (tmp_path / tu.WEIGHTS_FILE).exists() and (tmp_path / tu.CONFIG_FILE).exists()
    loaded = ShallowRecommender.load(tmp_path, settings_for(preset), data, vectors)
    users = np.arange(data.n_users)
    before, after = model.recommend(users, 15), loaded.recommend(users, 15)
    assert np.array_equal(before.items, after.items)
    assert np.array_equal(before.scores, after.scores)


def test_load_refuses_other_item_vectors(fitted, dataset, tmp_path: Path):
    preset, model, _ = fitted
    data, vectors = dataset
    model.save(tmp_path)
    with pytest.raises(tu.ModelFileError, match="item_vectors"):
        ShallowRecommender.load(tmp_path, settings_for(preset), data, vectors + 1.0)


def test_same_seed_gives_same_scores(fitted, dataset):
    preset, model, _ = fitted
    data, vectors = dataset
    again = ShallowRecommender(settings_for(preset))
    again.fit(data, vectors.copy())
    users = np.arange(data.n_users)
    assert np.array_equal(model.recommend(users, 15).scores, again.recommend(users, 15).scores)


def test_what_trains_and_what_stays_frozen(fitted, dataset):
    preset, model, _ = fitted
    data, vectors = dataset
    net = model.net
    audio = torch.as_tensor(vectors)
    initial_users = tu.mean_item_vectors(data.train, audio)
    trainable = {name for name, p in net.named_parameters() if p.requires_grad}
    if preset == "guide":
        assert trainable == {"user_table"}
        assert torch.equal(net.item_table, audio)  # the audio vectors are a frozen buffer
        assert "item_table" not in net.state_dict()  # ... taken from the lake again at load
        assert not torch.allclose(net.user_table, initial_users)
    else:
        assert trainable == {"item_table"}
        assert not torch.allclose(net.item_table, audio)
        assert torch.equal(net.user_table, initial_users)  # users frozen at the mean of their items


def test_guide_projection_users_live_in_hidden_space(dataset):
    data, vectors = dataset
    model = ShallowRecommender(settings_for("guide", hidden_dim=8, max_epochs=2))
    report = model.fit(data, vectors)
    assert model.net.user_table.shape == (data.n_users, 8)
    assert report.params["projection"] == "item_linear"
    assert torch.equal(model.net.item_table, torch.as_tensor(vectors))
    assert model.recommend(np.arange(3), 5).items.shape == (3, 5)


def test_micro_batches_match_one_big_batch(dataset):
    """Gradient accumulation over memory-bounded chunks equals the full-batch gradient."""
    from audiorec_assets.recommenders import shallow

    data, vectors = dataset
    config = shallow.ShallowConfig.from_settings(settings_for("guide"), data.n_users, data.n_items, DIM)
    net = shallow.ShallowNet(config, torch.as_tensor(vectors))
    net.init_users(tu.mean_item_vectors(data.train, torch.as_tensor(vectors)))
    users, items = torch.arange(30) % data.n_users, torch.arange(30) % data.n_items
    negatives = torch.randint(data.n_items, (30, 20), generator=torch.Generator().manual_seed(0))
    net.hinge_losses(users, items, negatives).mean().backward()
    expected = net.user_table.grad.clone()
    net.user_table.grad = None
    limit = shallow.MAX_CHUNK_FLOATS
    shallow.MAX_CHUNK_FLOATS = 7 * 20 * DIM  # chunks of 7 rows
    try:
        shallow._hinge_sum(net, users, items, negatives, backward_scale=1.0 / negatives.numel())
    finally:
        shallow.MAX_CHUNK_FLOATS = limit
    assert torch.allclose(net.user_table.grad, expected, atol=1e-7)


def test_cuda_requested_but_absent_names_the_setting():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="encode.device"):
        tu.resolve_device("cuda")
