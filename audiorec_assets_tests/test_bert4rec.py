"""BERT4Rec (both presets) on a tiny synthetic catalogue whose listening order is learnable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from audiorec_assets.recommenders import bert4rec as b4r
from audiorec_assets.recommenders import bert4rec_model as b4m
from audiorec_assets.recommenders import bert4rec_sequences as b4s
from audiorec_assets.recommenders import bert4rec_validation as b4v
from audiorec_assets.recommenders.data import InteractionData, UserItems
from audiorec_assets.recommenders.persistence import ModelFileError
from audiorec_assets.recommenders.runtime import make_generator
from audiorec_assets.recommenders.training import adam
from audiorec_assets.settings import Bert4RecSettings, ExperimentSettings

N_USERS, N_ITEMS, DIM, N_CLUSTERS = 40, 100, 16, 4
N_TRAIN, N_VAL_LONG, N_VAL_SHORT, N_TEST = 8, 11, 3, 2


def sequential_data(seed: int = 0, long_val: bool = True) -> tuple[InteractionData, np.ndarray]:
    """Items fall in 4 audio clusters; each user walks their cluster's items in one fixed cyclic order
    from a random start: 8 train, then val, then 2 test items. Users ``u % 4 < 2`` have 11 val items
    when ``long_val`` (enough for paper_code's masked-LM validation loss), all others 3. What comes
    next is predictable from the history, and nothing about it is in the audio beyond the cluster."""
    rng = np.random.default_rng(seed)
    cluster_of_item = np.arange(N_ITEMS) % N_CLUSTERS
    vectors = (rng.normal(size=(N_CLUSTERS, DIM))[cluster_of_item] * 2.0 + rng.normal(size=(N_ITEMS, DIM)))
    rows = []
    start = pd.Timestamp("2020-01-01")
    for user in range(N_USERS):
        n_val = N_VAL_LONG if long_val and user % 4 < 2 else N_VAL_SHORT
        own = np.flatnonzero(cluster_of_item == user % N_CLUSTERS)
        walk = np.roll(own, -int(rng.integers(len(own))))[: N_TRAIN + n_val + N_TEST]
        for step, item in enumerate(walk):
            split = "train" if step < N_TRAIN else "val" if step < N_TRAIN + n_val else "test"
            rows.append((f"u{user:03d}", f"t{item:03d}", start + pd.Timedelta(hours=step), 1, split))
    interactions = pd.DataFrame(rows, columns=["user_id", "track_id", "first_ts", "plays", "split"])
    # warm evaluation, as the study's split: val/test tracks all have train plays
    train_tracks = set(interactions.loc[interactions["split"] == "train", "track_id"])
    interactions = interactions[(interactions["split"] == "train") | interactions["track_id"].isin(train_tracks)]
    tracks = pd.DataFrame({"track_id": [f"t{i:03d}" for i in range(N_ITEMS)], "item_idx": np.arange(N_ITEMS)})
    return InteractionData.from_frames(interactions, tracks), vectors.astype(np.float32)


def settings_for(preset: str, **bert: object) -> ExperimentSettings:
    values = {
        "hidden_dim": 16, "ffn_dim": 32, "max_len": 12, "infer_len": 6,
        "batch_size": 8, "max_epochs": 15, "patience": 4, "lr": 3e-3, **bert,
    }
    return ExperimentSettings(preset=preset, seed=11, bert4rec=Bert4RecSettings(**values))


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def dataset() -> tuple[InteractionData, np.ndarray]:
    return sequential_data()


@pytest.fixture(scope="module", params=["guide", "paper_code"])
def fitted(request, dataset):
    data, vectors = dataset
    model = b4r.Bert4RecRecommender(settings_for(request.param))
    report = model.fit(data, vectors.copy())
    return request.param, model, report


def test_training_improves_validation_loss(fitted):
    preset, _, report = fitted
    assert report.best_epoch is not None and report.best_epoch > 0
    assert report.val_loss[report.best_epoch] < report.val_loss[0]
    assert report.params["mask_prob"] == (0.15 if preset == "guide" else 0.2)
    assert report.params["hidden_dim"] == (16 if preset == "guide" else DIM)
    assert report.params["plateau_scheduler"] == (preset == "paper_code")


def test_fit_records_its_validation_loss_definition(fitted, dataset):
    preset, _, report = fitted
    data, _ = dataset
    if preset == "guide":
        assert report.params["val_loss"] == "guide"
        assert report.params["val_loss_users"] == len(data.eval_users("val")) == N_USERS
    else:
        assert report.params["val_loss"] == "paper_code"
        assert report.params["val_loss_users"] == int((data.val.lengths() >= 10).sum()) > 0
    assert isinstance(report.params["val_loss_detail"], str) and report.params["val_loss_detail"]


def test_recommend_excludes_train_items_and_sorts(fitted, dataset):
    _, model, _ = fitted
    data, _ = dataset
    users = np.arange(data.n_users)
    top = model.recommend(users, 10)
    assert top.items.shape == top.scores.shape == (data.n_users, 10)
    for row, user in enumerate(users):
        assert not set(top.items[row]) & set(data.train.items_of(user))
        assert np.all(np.diff(top.scores[row]) <= 0)


def test_save_load_gives_identical_scores(fitted, dataset, tmp_path: Path):
    preset, model, _ = fitted
    data, vectors = dataset
    model.save(tmp_path)
    loaded = b4r.Bert4RecRecommender.load(tmp_path, settings_for(preset), data, vectors)
    users = np.arange(data.n_users)
    before, after = model.recommend(users, 15), loaded.recommend(users, 15)
    assert np.array_equal(before.items, after.items)
    assert np.array_equal(before.scores, after.scores)


def test_load_refuses_another_recommenders_files(fitted, dataset, tmp_path: Path):
    preset, model, _ = fitted
    data, vectors = dataset
    model.save(tmp_path)
    from audiorec_assets.recommenders.shallow import ShallowRecommender

    with pytest.raises(ModelFileError, match="bert4rec"):
        ShallowRecommender.load(tmp_path, settings_for(preset), data, vectors)


def test_same_seed_gives_same_scores(fitted, dataset):
    preset, model, report = fitted
    data, vectors = dataset
    again = b4r.Bert4RecRecommender(settings_for(preset))
    report_again = again.fit(data, vectors.copy())
    assert report_again.val_loss == report.val_loss
    users = np.arange(data.n_users)
    assert np.array_equal(model.recommend(users, 15).scores, again.recommend(users, 15).scores)


def test_guide_freezes_audio_paper_code_trains_it(fitted, dataset):
    preset, model, _ = fitted
    _, vectors = dataset
    net = model.net
    audio = torch.as_tensor(vectors)
    if preset == "guide":
        assert torch.equal(net.item_table, audio)
        assert "item_table" not in net.state_dict()
        assert isinstance(net.in_proj, torch.nn.Linear) and isinstance(net.out_proj, torch.nn.Linear)
    else:
        assert net.item_table.requires_grad and not torch.allclose(net.item_table, audio)
        assert "item_table" in net.state_dict()


def test_masked_only_logits_equal_all_position_logits_gathered(dataset):
    data, vectors = dataset
    for preset in ("guide", "paper_code"):
        config = b4m.Bert4RecConfig.from_settings(settings_for(preset), data.n_items, DIM)
        torch.manual_seed(0)
        net = b4m.Bert4RecNet(config, torch.as_tensor(vectors)).eval()
        sequences = b4s.TrainSequences.from_train(data.train, config)
        tokens = sequences.tokens[:10]
        masked = b4s.sample_mask(sequences.lengths[:10], tokens.shape[1], 0.3, torch.Generator().manual_seed(1))
        with torch.no_grad():
            hidden = net.encode(tokens.masked_fill(masked, config.mask_token))
            fast = b4m.masked_position_logits(net, hidden, masked)
            slow = b4m.all_position_logits(net, hidden, masked)
        # paper_code's softmax also holds the [PAD] and [MASK] rows
        assert fast.shape == (int(masked.sum()), data.n_items + (2 if preset == "paper_code" else 0))
        assert torch.allclose(fast, slow, atol=1e-5, rtol=1e-5)


def test_sample_mask_masks_only_real_positions_and_at_least_one():
    lengths = torch.tensor([1, 3, 10, 10, 0 + 2])
    masked = b4s.sample_mask(lengths, 10, 0.05, torch.Generator().manual_seed(0))
    positions = torch.arange(10).unsqueeze(0)
    assert not (masked & (positions >= lengths.unsqueeze(1))).any()
    assert masked.any(dim=1).all()
    many = b4s.sample_mask(torch.full((400,), 50), 50, 0.2, torch.Generator().manual_seed(0))
    assert abs(many.float().mean().item() - 0.2) < 0.01


def test_sequences_keep_the_latest_items_in_order():
    train = UserItems(indptr=np.array([0, 5, 7]), indices=np.array([10, 11, 12, 13, 14, 20, 21]))
    tokens, lengths = b4s.history_tokens(train, np.array([0, 1]), width=4, pad_token=99)
    assert tokens.tolist() == [[11, 12, 13, 14], [20, 21, 99, 99]]
    assert lengths.tolist() == [4, 2]
    config = b4m.Bert4RecConfig.from_settings(settings_for("guide", infer_len=4), n_items=30, audio_dim=DIM)
    inference, mask_at = b4s.inference_tokens(train, np.array([0, 1]), config)
    assert inference.tolist() == [[12, 13, 14, 31], [20, 21, 31, 30]]  # pad 30, mask 31
    assert mask_at.tolist() == [3, 2]


def test_heads_must_divide_hidden_size():
    with pytest.raises(ValueError, match="bert4rec.heads"):
        b4m.Bert4RecConfig.from_settings(settings_for("paper_code", heads=3), n_items=10, audio_dim=DIM)


def fresh_net(preset: str, data: InteractionData, vectors: np.ndarray, **bert: object) -> b4m.Bert4RecNet:
    config = b4m.Bert4RecConfig.from_settings(settings_for(preset, **bert), data.n_items, DIM)
    torch.manual_seed(0)
    return b4m.Bert4RecNet(config, torch.as_tensor(vectors)).eval()


def without_val_of(data: InteractionData, users: np.ndarray) -> InteractionData:
    """``data`` with the val items of ``users`` removed (user and item indices unchanged)."""
    drop = np.isin(data.val.row_ids(), users)
    lengths = np.where(np.isin(np.arange(data.n_users), users), 0, data.val.lengths())
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    val = UserItems(indptr=indptr, indices=data.val.indices[~drop])
    return InteractionData(data.user_ids, data.track_ids, data.train, data.train_plays, val, data.test)


def test_paper_code_val_loss_uses_only_users_with_ten_val_items(dataset):
    data, vectors = dataset
    net = fresh_net("paper_code", data, vectors)
    long_users = np.flatnonzero(data.val.lengths() >= 10)
    short_users = np.flatnonzero((data.val.lengths() > 0) & (data.val.lengths() < 10))
    assert len(long_users) and len(short_users)
    val = b4v.validation_loss(net, data, seed=11)
    assert val is not None and val.definition == "paper_code"
    assert np.array_equal(val.users, long_users)
    with torch.no_grad():
        loss = val.compute()
        assert val.compute() == loss  # the validation mask is fixed: the same loss every epoch
        # The short users' val items play no part: dropping them leaves the loss unchanged.
        trimmed = b4v.validation_loss(net, without_val_of(data, short_users), seed=11)
        assert trimmed is not None and trimmed.compute() == loss
        # ... while the guide definition does use them.
        guide = b4v.guide_validation_loss(net, data, data.eval_users("val"))
        guide_trimmed = b4v.guide_validation_loss(net, data, long_users)
        assert guide() != guide_trimmed()
    # The sequences are the users' val items alone (no train history), masked without a forced mask.
    batches = b4v.paper_val_batches(
        data.val, long_users, net.config, make_generator(11, b4m.STREAM_VAL_MASK), torch.device("cpu")
    )
    long_val_items = set(np.concatenate([data.val.items_of(u) for u in long_users]).tolist())
    config = net.config
    for batch in batches:
        assert batch.masked.any(dim=1).all()  # rows without a masked position were dropped
        assert set(batch.targets.tolist()) <= long_val_items
        visible = batch.inputs[(batch.inputs != config.mask_token) & (batch.inputs != config.pad_token)]
        assert set(visible.tolist()) <= long_val_items
    n_masked = sum(len(batch.targets) for batch in batches)
    assert 0 < n_masked < len(long_users) * N_VAL_LONG


def test_paper_code_val_loss_falls_back_to_guide_without_ten_val_items():
    data, vectors = sequential_data(long_val=False)
    assert data.val.lengths().max() < 10
    net = fresh_net("paper_code", data, vectors)
    val = b4v.validation_loss(net, data, seed=11)
    assert val is not None and val.definition == "guide_fallback"
    assert np.array_equal(val.users, data.eval_users("val"))
    with torch.no_grad():
        assert val.compute() == b4v.guide_validation_loss(net, data, data.eval_users("val"))()
    report = b4r.Bert4RecRecommender(settings_for("paper_code", max_epochs=1)).fit(data, vectors.copy())
    assert report.params["val_loss"] == "guide_fallback"
    assert "10 val items" in report.params["val_loss_detail"]
    assert len(report.val_loss) == 1


def test_guide_val_loss_is_recorded_as_guide_and_no_val_users_as_none(dataset):
    data, vectors = dataset
    net = fresh_net("guide", data, vectors)
    val = b4v.validation_loss(net, data, seed=11)
    assert val is not None and val.definition == "guide" and len(val.users) == N_USERS
    no_val = without_val_of(data, np.arange(data.n_users))
    assert b4v.validation_loss(net, no_val, seed=11) is None
    report = b4r.Bert4RecRecommender(settings_for("paper_code", max_epochs=1)).fit(no_val, vectors.copy())
    assert report.params["val_loss"] == "none" and report.val_loss == []


def test_paper_code_masking_may_leave_a_row_unmasked_guide_never(dataset):
    data, _ = dataset
    lengths = torch.full((300,), 3)
    for preset in ("guide", "paper_code"):
        config = b4m.Bert4RecConfig.from_settings(settings_for(preset), data.n_items, DIM)
        masked = b4s.sample_mask(
            lengths, 3, config.mask_prob, torch.Generator().manual_seed(0), at_least_one=config.at_least_one_mask
        )
        if preset == "guide":
            assert config.at_least_one_mask and masked.any(dim=1).all()
        else:
            # P(no mask in 3 positions) = 0.8^3 ≈ 0.51
            assert not config.at_least_one_mask and (~masked.any(dim=1)).sum() > 100


def test_paper_code_batch_without_masked_positions_is_skipped(dataset):
    data, vectors = dataset
    net = fresh_net("paper_code", data, vectors, mask_prob=1e-12)
    sequences = b4s.TrainSequences.from_train(data.train, net.config)
    before = {name: value.clone() for name, value in net.state_dict().items()}
    optimizer = adam(net, 1e-2)
    net.train()
    loss = b4s.train_epoch(net, optimizer, sequences, 8, torch.Generator().manual_seed(0))
    assert loss == 0.0
    assert all(torch.equal(before[name], value) for name, value in net.state_dict().items())


def test_training_softmax_is_the_train_vocabulary_plus_special_rows_in_paper_code(fitted, dataset):
    preset, model, _ = fitted
    data, vectors = dataset
    net = model.net
    assert len(data.train_items) < data.n_items  # the fixture has tracks without train plays
    assert torch.equal(net.vocab, torch.as_tensor(data.train_items))
    hidden = torch.zeros(1, net.config.hidden_dim)
    width = net.vocab_logits(hidden).shape[-1]
    if preset == "paper_code":
        assert width == len(data.train_items) + 2
        # at initialisation (a fresh net of the same config) the mask row is N(0, 0.02) and the pad row zero,
        # as in the authors' code (test_paper_code_procedure.py pins both)
        fresh = b4m.Bert4RecNet(net.config, torch.as_tensor(vectors))
        assert 0 < fresh.mask_embedding.std().item() < 0.05
        assert torch.count_nonzero(fresh.pad_embedding) == 0
        # tracks outside the vocabulary never got a gradient: their rows are still the audio vectors
        cold = np.setdiff1d(np.arange(data.n_items), data.train_items)
        assert torch.equal(net.item_table.detach()[cold], torch.as_tensor(vectors[cold]))
    else:
        assert width == len(data.train_items)


def test_warm_lists_only_train_tracks_cold_lists_only_candidates(fitted, dataset):
    _, model, _ = fitted
    data, _ = dataset
    users = np.arange(data.n_users)
    warm = model.recommend(users, 40).items
    assert set(warm[warm >= 0].ravel()) <= set(data.train_items)
    cold = np.setdiff1d(np.arange(data.n_items), data.train_items)
    listed = model.recommend(users, 40, candidates=cold).items
    assert set(listed[listed >= 0].ravel()) == set(cold)
    assert model.scores_unseen_items


@pytest.mark.parametrize("preset", ["guide", "paper_code"])
def test_encoder_none_is_plain_bert4rec_on_learned_ids(preset, dataset, tmp_path: Path):
    data, _ = dataset
    no_audio = np.zeros((data.n_items, 0), dtype=np.float32)
    settings = settings_for(preset, id_dim=16, max_epochs=20, patience=20)
    model = b4r.Bert4RecRecommender(settings)
    report = model.fit(data, no_audio)
    net = model.net
    assert report.params["id_items"] and net.item_table.shape == (data.n_items, 16)
    assert net.item_table.requires_grad and not net.config.project and not model.scores_unseen_items
    # the ids learn (320 train tokens are too few for the val loss to say much on this fixture)
    assert min(report.train_loss) < report.train_loss[0] - 0.3
    model.save(tmp_path)
    loaded = b4r.Bert4RecRecommender.load(tmp_path, settings, data, no_audio)
    users = np.arange(data.n_users)
    assert np.array_equal(model.recommend(users, 10).scores, loaded.recommend(users, 10).scores)
