"""SASRec on a tiny catalogue whose next item is a fixed function of the last one (item i is followed by i + 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from audiorec_assets.recommenders import RECOMMENDERS, recommender_class
from audiorec_assets.recommenders import sasrec as sas
from audiorec_assets.recommenders.data import InteractionData
from audiorec_assets.recommenders.popularity import PopularityRecommender
from audiorec_assets import settings as settings_module
from audiorec_assets.settings import ExperimentSettings, SettingsError, parse_settings
from audiorec_assets.study import check_cell, is_valid_cell, study_cells

N_USERS, N_ITEMS, DIM, N_TRAIN, N_VAL, N_TEST = 60, 24, 8, 8, 2, 2

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def successor_data(shuffle_order: bool = False, seed: int = 0) -> tuple[InteractionData, np.ndarray]:
    """Each user walks 0 → 1 → … → 23 → 0 from a random start: 8 train, 2 val, 2 test items, so the first val
    item is always the last train item + 1. ``shuffle_order`` permutes the train timestamps of each user (same
    items, order lost): the control in which the pattern cannot be learned."""
    rng = np.random.default_rng(seed)
    start, rows = pd.Timestamp("2020-01-01"), []
    for user in range(N_USERS):
        walk = (int(rng.integers(N_ITEMS)) + np.arange(N_TRAIN + N_VAL + N_TEST)) % N_ITEMS
        hours = np.arange(len(walk))
        if shuffle_order:
            hours[:N_TRAIN] = rng.permutation(N_TRAIN)
        for step, (hour, item) in enumerate(zip(hours, walk)):
            split = "train" if step < N_TRAIN else "val" if step < N_TRAIN + N_VAL else "test"
            rows.append((f"u{user:03d}", f"t{item:03d}", start + pd.Timedelta(hours=int(hour)), 1, split))
    interactions = pd.DataFrame(rows, columns=["user_id", "track_id", "first_ts", "plays", "split"])
    tracks = pd.DataFrame({"track_id": [f"t{i:03d}" for i in range(N_ITEMS)], "item_idx": np.arange(N_ITEMS)})
    return InteractionData.from_frames(interactions, tracks), rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)


def settings_for(preset: str = "guide", **values: object) -> ExperimentSettings:
    sasrec = {"hidden_dim": 16, "id_dim": 16, "ffn_dim": 32, "max_len": 10, "batch_size": 16, "max_epochs": 40,
              "patience": 40, "lr": 5e-3, "dropout": 0.0, **values}
    return ExperimentSettings(preset=preset, seed=5, sasrec=sasrec)


def no_audio(data: InteractionData) -> np.ndarray:
    return np.zeros((data.n_items, 0), dtype=np.float32)


def next_item_hit_rate(model, data: InteractionData) -> float:
    """Share of users whose top-1 is their first val item (= last train item + 1)."""
    users = np.arange(data.n_users)
    top = model.recommend(users, n=1).items[:, 0]
    first_val = np.array([data.val.items_of(u)[0] for u in users])  # val items in first-listen order
    return float((top == first_val).mean())


@pytest.fixture(scope="module")
def ordered():
    return successor_data()


@pytest.fixture(scope="module")
def fitted_ids(ordered):
    data, _ = ordered
    model = sas.SasRecRecommender(settings_for())
    return model, model.fit(data, no_audio(data))


@pytest.fixture(scope="module")
def fitted_audio(ordered):
    data, vectors = ordered
    model = sas.SasRecRecommender(settings_for(max_epochs=3))
    return model, model.fit(data, vectors)


def test_causal_masking_later_items_never_change_earlier_outputs(ordered):
    data, vectors = ordered
    config = sas.sasrec_config(settings_for(), data.n_items, DIM, data.n_items)
    torch.manual_seed(0)
    net = sas.SasRecNet(config, torch.as_tensor(vectors)).eval()
    tokens = torch.randint(N_ITEMS, (3, 9))
    changed = tokens.clone()
    changed[:, 5] = (tokens[:, 5] + 7) % N_ITEMS
    with torch.no_grad():
        before, after = net.encode(tokens), net.encode(changed)
    torch.testing.assert_close(before[:, :5], after[:, :5], rtol=0, atol=1e-6)
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_learns_the_next_item_where_popularity_and_shuffled_order_cannot(ordered, fitted_ids):
    data, _ = ordered
    model, report = fitted_ids
    assert report.train_loss[-1] < 0.5 * report.train_loss[0]
    assert min(report.val_loss) < report.val_loss[0]
    assert report.params["loss"] == "softmax" and report.params["val_loss"] == "guide"
    assert report.params["n_sequences"] == N_USERS and report.params["id_items"]
    learned = next_item_hit_rate(model, data)
    popularity = PopularityRecommender(settings_for())
    popularity.fit(data, no_audio(data))
    shuffled_data, _ = successor_data(shuffle_order=True)
    control = sas.SasRecRecommender(settings_for())
    control.fit(shuffled_data, no_audio(shuffled_data))
    assert learned >= 0.8
    assert next_item_hit_rate(popularity, data) < 0.2
    assert next_item_hit_rate(control, shuffled_data) < 0.5 * learned


def test_recommend_excludes_history_and_returns_n(ordered, fitted_audio):
    data, _ = ordered
    model, _ = fitted_audio
    users = np.arange(data.n_users)
    top = model.recommend(users, n=10)
    assert top.items.shape == (len(users), 10) and (top.items >= 0).all()
    for row, user in enumerate(users):
        assert not set(top.items[row]) & set(data.train.items_of(user).tolist())
        assert len(set(top.items[row])) == 10
    assert model.scores_unseen_items


@pytest.mark.parametrize("cell", ["audio", "ids"])
def test_save_load_gives_identical_scores(ordered, fitted_audio, fitted_ids, cell, tmp_path):
    data, vectors = ordered
    model, _ = fitted_audio if cell == "audio" else fitted_ids
    item_vectors = vectors if cell == "audio" else no_audio(data)
    model.save(tmp_path / "sasrec")
    loaded = recommender_class("sasrec").load(tmp_path / "sasrec", settings_for(), data, item_vectors)
    users = np.arange(data.n_users)
    before, after = model.recommend(users, n=12), loaded.recommend(users, n=12)
    np.testing.assert_array_equal(before.items, after.items)
    np.testing.assert_array_equal(before.scores, after.scores)


def test_gbce_option_trains(ordered):
    data, _ = ordered
    model = sas.SasRecRecommender(settings_for(loss="gbce", negatives=8))
    report = model.fit(data, no_audio(data))
    assert report.params["loss"] == "gbce" and report.params["negatives"] == 8
    assert report.train_loss[-1] < 0.5 * report.train_loss[0]
    assert next_item_hit_rate(model, data) >= 0.5
    with pytest.raises(ValueError, match="sasrec.negatives=30"):
        sas.SasRecRecommender(settings_for(loss="gbce", negatives=30)).fit(data, no_audio(data))


def test_paper_code_runs_the_guide_sasrec(ordered):
    data, vectors = ordered
    report = sas.SasRecRecommender(settings_for("paper_code", max_epochs=2)).fit(data, vectors)
    assert report.params["sasrec_preset"] == sas.PAPER_CODE_NOTE
    assert report.params["plateau_scheduler"] is False and report.params["project"]


def test_sasrec_is_a_registered_recommender_with_audio_and_id_cells():
    assert RECOMMENDERS["sasrec"].audio == "optional"
    assert recommender_class("sasrec") is sas.SasRecRecommender
    settings = parse_settings({"recommenders": ["sasrec"], "encoders": ["musicnn", "none"]}, source="test")
    assert study_cells(settings) == [("musicnn", "sasrec"), ("none", "sasrec")]
    assert is_valid_cell("musicnn", "sasrec") and is_valid_cell("none", "sasrec")
    check_cell("none", "sasrec")
    with pytest.raises(SettingsError, match="sasrec.loss"):
        parse_settings({"sasrec": {"loss": "bpr"}}, source="test")
    with pytest.raises(ValueError, match="sasrec.heads=3"):
        sas.sasrec_config(settings_for(heads=3), N_ITEMS, DIM, N_ITEMS)


@pytest.mark.slow  # ≈ 4.7 min on 2 quiet cores: demo data, ingest, mfcc and musicnn vectors, five SASRec cells, tables
def test_on_the_demo_sasrec_learns_from_audio_and_fills_the_tables(lake, dagster_home, capsys):
    """SASRec on the demo under mfcc, musicnn and none, one seed, as a user adds it: ``sasrec`` in the settings'
    recommenders, then ``audiorec materialize``. Its cells appear in the warm and cold leaderboards and in the
    comparison tables, and on cold tracks, which it ranks from the audio alone, each real encoder lies above its
    shuffled twin (paired bootstrap of NDCG@10: the interval of the difference above 0)."""
    import duckdb

    from audiorec_assets.cli import main
    from audiorec_assets.datasets.demo import generate_demo

    generate_demo(lake / "raw", seed=0)
    demo = (Path(settings_module.__file__).parent / "datasets" / "demo_experiment.yaml").read_text()
    assert "encoders: [mfcc, musicnn, shuffled, shuffled_mfcc, random, none]" in demo and "sasrec:" in demo
    demo = demo.replace("encoders: [mfcc, musicnn, shuffled, shuffled_mfcc, random, none]",
                        "encoders: [mfcc, musicnn, shuffled, shuffled_mfcc, none]\nrecommenders: [sasrec]")
    (lake / "experiment.yaml").write_text(demo.replace("seeds: [42, 43, 44]", "seeds: [42]"))
    main(["--lake", str(lake), "materialize", "--plain"])
    capsys.readouterr()
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        warm = con.sql("SELECT encoder FROM audiorec.leaderboard WHERE recommender = 'sasrec'").df()
        cold = con.sql("SELECT encoder FROM audiorec.leaderboard_cold WHERE recommender = 'sasrec'").df()
        twins = con.sql("""SELECT encoder, twin, vs_twin_ci_low FROM audiorec.comparison_cold
                           WHERE recommender = 'sasrec' AND twin IS NOT NULL""").df().set_index("encoder")
        warm_twins = con.sql("""SELECT encoder, twin FROM audiorec.comparison_sasrec
                                WHERE twin IS NOT NULL""").df().set_index("encoder")
    assert {"mfcc", "musicnn", "none"} <= set(warm["encoder"])
    assert {"mfcc", "musicnn"} <= set(cold["encoder"]) and "none" not in set(cold["encoder"])
    assert warm_twins.loc["mfcc", "twin"] == "shuffled_mfcc" and warm_twins.loc["musicnn", "twin"] == "shuffled"
    assert (twins.loc[["mfcc", "musicnn"], "vs_twin_ci_low"] > 0).all(), twins
