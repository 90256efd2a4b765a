"""The whole graph on a small own-catalogue lake: embeddings → models → recommendations → metrics → tables."""

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from audiorec_assets.definitions import build_definitions
from audiorec_assets.defs.embeddings import EMBEDDINGS
from audiorec_assets.defs.execute import everything, materialize
from audiorec_assets.defs.models import MODELS
from audiorec_assets.evaluation.seed_intervals import users_seeds_interval
from audiorec_assets.settings import LakePaths
from audiorec_assets_tests.helpers import materialization, materialize_vectors, write_own


def small_log(seed: int = 0, n_users: int = 40, n_tracks: int = 30, n_new: int = 0):
    """Users replay a few favourites for 14 months and discover random tracks in the last month;
    ``n_new`` more tracks (``n00``...) are released in the last month and played only there."""
    rng = np.random.default_rng(seed)
    tracks = [f"t{i:02d}" for i in range(n_tracks)]
    new = [f"n{i:02d}" for i in range(n_new)]
    start = np.datetime64("2019-01-01T10:00:00")
    listens = []
    for u in range(n_users):
        favourites = rng.choice(n_tracks, 8, replace=False)
        for j in range(25):
            late = j >= 20
            day = int(rng.integers(400, 430) if late else rng.integers(0, 400))
            track = tracks[int(rng.integers(n_tracks)) if late else favourites[j % 8]]
            listens.append((f"u{u:02d}", track, str(start + np.timedelta64(day, "D")).replace("T", " ")))
        if new and u % 2 == 0:
            listens.append((f"u{u:02d}", new[(u // 2) % n_new], str(start + np.timedelta64(425, "D")).replace("T", " ")))
    return listens


CELL = dg.AssetSelection.groups("recommenders")  # models, recommendations, metrics, user_metrics of a cell
REFERENCE = dg.AssetSelection.groups("references")
TABLES = dg.AssetSelection.groups("evaluation")


def run(defs, selection, partition_key=None):
    result = materialize(everything(defs), selection=selection, partition_key=partition_key,
                         resources=defs.resources)
    assert result.success
    return result


def encode(defs, encoder):
    """embeddings[encoder], after the audio encoding it reads (if any)."""
    result = materialize_vectors(defs, encoder)
    assert result.success
    return result


def sql(lake, query):
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(query).df()


@pytest.fixture
def ingested(lake):
    write_own(lake / "raw", small_log(n_new=4))
    (lake / "experiment.yaml").write_text("encode: {shuffled_base: mfcc}\nks: [5, 10, 50]\ntop_n: 60\n")
    defs = build_definitions(lake)
    run(defs, dg.AssetSelection.groups("ingest"))
    return defs


def test_graph_end_to_end_knn_and_popularity(lake, ingested):
    defs = ingested
    for encoder in ("mfcc", "shuffled", "random"):
        result = encode(defs, encoder)
        assert all(e.passed for e in result.get_asset_check_evaluations())
    for encoder in ("mfcc", "random"):
        run(defs, CELL, dg.MultiPartitionKey({"encoder": encoder, "recommender": "knn"}))
    run(defs, REFERENCE, "popularity")  # no audio: a reference, not a cell of the encoder grid
    run(defs, TABLES)

    recs = sql(lake, "SELECT * FROM audiorec.recommendations")
    assert set(recs["split"]) == {"val", "test", "test_cold"}
    assert recs.groupby(["encoder", "recommender", "split", "user_id"])["rank"].min().eq(1).all()
    leaked = sql(lake, """SELECT count(*) AS n FROM audiorec.recommendations r JOIN audiorec.interactions i
                          ON i.user_id = r.user_id AND i.track_id = r.track_id AND i.split = 'train'""")
    assert leaked["n"][0] == 0, "train history must be excluded"
    # warm lists hold train tracks only; cold lists the cold tracks only; popularity knows no audio: no cold rows
    train_tracks = set(sql(lake, "SELECT DISTINCT track_id FROM audiorec.interactions WHERE split = 'train'")["track_id"])
    warm = recs[recs["split"] != "test_cold"]
    assert set(warm["track_id"]) <= train_tracks
    cold = recs[recs["split"] == "test_cold"]
    assert set(cold["track_id"]) == {"n00", "n01", "n02", "n03"}
    assert set(cold["recommender"]) == {"knn"}

    metrics = sql(lake, "SELECT * FROM audiorec.metrics")
    # knn: 3 splits, popularity 2 (x metrics x ks)
    assert len(metrics) == (2 * 3 + 1 * 2) * 5 * 3
    assert set(metrics[metrics["split"] == "test_cold"]["recommender"]) == {"knn"}
    assert set(metrics["metric"]) == {"hitrate", "recall", "precision", "ndcg", "mrr"}
    assert ((metrics["ci_low"] <= metrics["value"]) & (metrics["value"] <= metrics["ci_high"])).all()
    test_users = sql(lake, "SELECT count(DISTINCT user_id) AS n FROM audiorec.interactions WHERE split = 'test'")["n"][0]
    assert (metrics[metrics["split"] == "test"]["n_users"] == test_users).all()

    board = sql(lake, "SELECT * FROM audiorec.leaderboard")
    assert len(board) == 3 and board["hitrate"].is_monotonic_decreasing
    cosine = sql(lake, "SELECT * FROM audiorec.comparison_cosine")
    assert {"mfcc", "random"} <= set(cosine["encoder"]) and cosine["best"].sum() == 1

    # the metrics asset agrees with metrics recomputed from the stored recommendations by hand
    interactions = sql(lake, "SELECT * FROM audiorec.interactions WHERE split = 'test'")
    relevant = interactions.groupby("user_id")["track_id"].apply(set)
    mine = recs[(recs.encoder == "mfcc") & (recs.recommender == "knn") & (recs.split == "test") & (recs["rank"] <= 10)]
    hits = [len(set(g["track_id"]) & relevant[u]) for u, g in mine.groupby("user_id")]
    recall = np.mean([h / len(relevant[u]) for h, u in zip(hits, sorted(mine["user_id"].unique()))])
    stored = metrics.query("encoder == 'mfcc' and recommender == 'knn' and split == 'test' and metric == 'recall' and k == 10")
    assert stored["value"].iloc[0] == pytest.approx(recall, abs=1e-12)


def test_embeddings_are_incremental_and_controls_need_their_base(lake, ingested):
    defs = ingested
    with pytest.raises(Exception, match="materialize audiorec/audio_vectors partition 'mfcc' first"):
        run(defs, dg.AssetSelection.assets(EMBEDDINGS).required_multi_asset_neighbors(), partition_key="shuffled")
    first = encode(defs, "mfcc")
    meta = materialization(first, "embeddings").metadata
    assert meta["encoded"].value == 34 and meta["reused"].value == 0
    def raw_features():  # mfcc keeps its raw per-track features for reuse; the .npy is standardised over all
        return np.stack(pd.read_parquet(lake / "embeddings" / "mfcc.index.parquet")["raw_vector"].to_numpy())

    before = raw_features()
    # change one audio file: only that track is encoded again
    from audiorec_assets_tests.helpers import write_tone

    write_tone(lake / "raw" / "audio" / "t03.flac", freq=1234.0)
    second = encode(defs, "mfcc")
    meta = materialization(second, "embeddings").metadata
    assert (meta["encoded"].value, meta["reused"].value) == (1, 33)
    after = raw_features()
    changed = np.flatnonzero(~np.all(before == after, axis=1))
    assert changed.tolist() == [7]  # item_idx of t03 after n00..n03
    row = sql(lake, "SELECT * FROM audiorec.encoders WHERE encoder = 'mfcc'")
    assert row["dim"][0] == 104 and row["tracks"][0] == 34


def test_bring_your_own_vectors_become_an_encoder(lake, ingested):
    vectors = np.random.default_rng(1).standard_normal((34, 7)).astype(np.float32)
    (lake / "embeddings").mkdir(exist_ok=True)
    np.save(lake / "embeddings" / "mine.npy", vectors)
    from audiorec_assets.defs.partitions import lake_members
    from audiorec_assets.settings import LakePaths, load_settings

    defs = ingested  # no reload: encoders are dynamic partitions, and the lake offers the file as one
    assert "mine" in lake_members(LakePaths(lake), load_settings(lake)).members["encoder"]
    encode(defs, "mine")
    assert np.array_equal(np.load(lake / "embeddings" / "mine.npy"), vectors), "a user's file is never rewritten"
    run(defs, CELL, dg.MultiPartitionKey({"encoder": "mine", "recommender": "knn"}))
    assert len(sql(lake, "SELECT * FROM audiorec.metrics WHERE encoder = 'mine'")) == 45  # val, test, test_cold

    np.save(lake / "embeddings" / "short.npy", vectors[:10])
    result = materialize(everything(defs), selection=dg.AssetSelection.assets(EMBEDDINGS).required_multi_asset_neighbors(), partition_key="short",
                         resources=defs.resources, raise_on_error=False)
    check = result.get_asset_check_evaluations()[0]
    assert not check.passed and "10 rows but the catalogue has 34" in str(check.metadata["problems"].value)


@pytest.mark.parametrize("preset", ["guide", "paper_code"])
def test_trained_recommenders_run_in_the_graph_and_same_seed_gives_same_metrics(lake, ingested, preset):
    (lake / "experiment.yaml").write_text(
        f"preset: {preset}\nks: [5, 10, 50]\ntop_n: 60\n"
        "shallow: {max_epochs: 3, batch_size: 512}\nbert4rec: {max_epochs: 3, hidden_dim: 32, ffn_dim: 32}\n")
    defs = build_definitions(lake)
    run(defs, dg.AssetSelection.groups("ingest"))  # the preset changes the split
    encode(defs, "random")
    per_partition = CELL
    first = {}
    for recommender in ("shallow", "bert4rec"):
        key = dg.MultiPartitionKey({"encoder": "random", "recommender": recommender})
        result = run(defs, per_partition, key)
        model_meta = materialization(result, "models").metadata
        assert model_meta["preset"].value == preset and "training_curve" in model_meta
        first[recommender] = sql(lake, f"SELECT * FROM audiorec.metrics WHERE recommender = '{recommender}' "
                                       "ORDER BY split, metric, k")
        run(defs, per_partition, key)
        again = sql(lake, f"SELECT * FROM audiorec.metrics WHERE recommender = '{recommender}' ORDER BY split, metric, k")
        pd.testing.assert_frame_equal(first[recommender], again)
    assert len(first["shallow"]) == 3 * 5 * 3  # val, test, test_cold


def test_impossible_cells_fail_naming_the_partition_and_standardize_is_reported(lake, ingested):
    defs = ingested
    # the lake never offers such a cell (none is no encoder partition); forced, the step refuses it
    result = materialize(everything(defs), selection=dg.AssetSelection.assets(MODELS),
                         partition_key=dg.MultiPartitionKey({"encoder": "none", "recommender": "knn"}),
                         resources=defs.resources, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    while failure.cause is not None:  # the user's error under Dagster's wrapper
        failure = failure.cause
    assert failure.cls_name == "CellError"
    assert "none|knn" in failure.message and "cannot run on encoder 'none'" in failure.message

    encode(defs, "random")
    key = dg.MultiPartitionKey({"encoder": "random", "recommender": "knn"})
    raw = materialization(run(defs, dg.AssetSelection.assets(MODELS), key), "models")
    (lake / "experiment.yaml").write_text("encode: {shuffled_base: mfcc, standardize: true}\nks: [5, 10, 50]\ntop_n: 60\n")
    scaled = materialization(run(defs, dg.AssetSelection.assets(MODELS), key), "models")
    assert raw.metadata["audio"].value == "raw vectors"
    assert scaled.metadata["audio"].value.startswith("standardized")
    assert raw.tags["dagster/data_version"] != scaled.tags["dagster/data_version"]  # another model


def test_demo_settings_are_written_for_the_demo_only(lake):
    from audiorec_assets.datasets.demo_settings import write_demo_settings
    from audiorec_assets.settings import LakePaths, load_settings

    paths = LakePaths(lake)
    assert write_demo_settings(paths)
    settings = load_settings(lake)
    assert settings.headline_k == 10 and settings.shallow.batch_size < 10_000
    (lake / "experiment.yaml").write_text("seed: 7\n")
    assert not write_demo_settings(paths) and (lake / "experiment.yaml").read_text() == "seed: 7\n"
    (lake / "experiment.yaml").unlink()
    write_own(lake / "raw", small_log())  # a user's own data: their defaults, not the demo's
    assert not write_demo_settings(paths) and not (lake / "experiment.yaml").exists()


def test_shuffled_twin_of_any_encoder_is_a_partition_and_a_permutation(lake, ingested):
    (lake / "experiment.yaml").write_text("encoders: [mfcc, shuffled_mfcc, random, shuffled_random]\n"
                                          "encode: {shuffled_base: mfcc}\nks: [5, 10, 50]\ntop_n: 60\n")
    from audiorec_assets.defs.partitions import lake_members
    from audiorec_assets.settings import LakePaths, load_settings

    defs = build_definitions(lake)
    keys = lake_members(LakePaths(lake), load_settings(lake)).members["encoder"]
    assert {"shuffled_mfcc", "shuffled_random"} <= set(keys)
    for encoder in ("shuffled_random", "random"):  # a twin of a control computes its base itself
        encode(defs, encoder)
    base, twin = (np.load(lake / "embeddings" / f"{e}.npy") for e in ("random", "shuffled_random"))
    assert not np.array_equal(base, twin)
    assert np.array_equal(np.sort(base, axis=0), np.sort(twin, axis=0))  # the same rows, other tracks
    assert not np.any(np.all(base == twin, axis=1))  # no track keeps its own vector


def test_seeds_run_each_trained_cell_once_per_seed_and_report_the_spread(lake, ingested):
    (lake / "experiment.yaml").write_text(
        "seeds: [1, 2]\nencode: {shuffled_base: mfcc}\nks: [5, 10, 50]\ntop_n: 60\n"
        "shallow: {max_epochs: 3, batch_size: 256}\n")
    defs = build_definitions(lake)
    encode(defs, "random")
    per_partition = CELL
    for recommender in ("shallow", "knn"):
        run(defs, per_partition, dg.MultiPartitionKey({"encoder": "random", "recommender": recommender}))
    assert sorted(p.name for p in (lake / "models" / "random" / "shallow").glob("seed-*")) == ["seed-1", "seed-2"]
    assert [p.name for p in (lake / "models" / "random" / "knn").glob("seed-*")] == ["seed-1"]  # deterministic
    recs = sql(lake, "SELECT recommender, seed, count(*) AS n FROM audiorec.recommendations GROUP BY ALL")
    assert set(recs[recs.recommender == "shallow"]["seed"]) == {1, 2}
    metrics = sql(lake, "SELECT * FROM audiorec.metrics WHERE encoder = 'random' AND split = 'test' AND k = 10")
    shallow, knn = (metrics[metrics.recommender == r].set_index("metric") for r in ("shallow", "knn"))
    assert (shallow["n_seeds"] == 2).all() and (knn["n_seeds"] == 1).all() and knn["seed_sd"].isna().all()
    # value = mean over users of the seed-averaged per-user values = mean of the two seeds' means
    per_seed = []
    interactions = sql(lake, "SELECT user_id, track_id FROM audiorec.interactions WHERE split = 'test'")
    relevant = interactions.groupby("user_id")["track_id"].apply(set)
    for seed in (1, 2):
        top = sql(lake, f"SELECT user_id, track_id FROM audiorec.recommendations WHERE recommender = 'shallow' "
                        f"AND split = 'test' AND seed = {seed} AND rank <= 10")
        hits = top.groupby("user_id")["track_id"].apply(lambda s: bool(set(s) & relevant[s.name]))
        per_seed.append(hits.reindex(relevant.index, fill_value=False).to_numpy(dtype=float))
    assert shallow.loc["hitrate", "value"] == pytest.approx(np.mean(per_seed), abs=1e-12)
    assert shallow.loc["hitrate", "seed_sd"] == pytest.approx(np.std(np.mean(per_seed, axis=1), ddof=1), abs=1e-12)
    # the interval is over users and seeds (evaluation/seed_intervals.py) of the users × seeds values
    _, low, high = users_seeds_interval(np.stack(per_seed, axis=1), "wilson")
    assert (shallow.loc["hitrate", "ci_low"], shallow.loc["hitrate", "ci_high"]) == (pytest.approx(low, abs=1e-12),
                                                                                   pytest.approx(high, abs=1e-12))


def test_a_copied_lake_reads_its_own_audio(lake, ingested, tmp_path, monkeypatch):
    import shutil

    tracks = pd.read_parquet(LakePaths(lake).table_dir("tracks") / "all.parquet")
    assert tracks["audio_path"].str.startswith("raw/audio/").all()  # relative to the lake, not absolute
    copy = tmp_path / "copy"
    shutil.copytree(lake, copy)
    shutil.rmtree(lake / "raw" / "audio")  # the original's audio is gone: the copy must not need it
    monkeypatch.setenv("AUDIOREC_LAKE", str(copy))
    defs = build_definitions(copy)
    result = encode(defs, "mfcc")
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert np.load(copy / "embeddings" / "mfcc.npy").shape == (34, 104)
    # and the copy's tracks check reads the copy's files
    check = dg.materialize(everything(defs), resources=defs.resources, selection=dg.AssetSelection.groups("ingest"))
    assert check.success and all(e.passed for e in check.get_asset_check_evaluations())
