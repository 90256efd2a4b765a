"""``hybrid_<encoder>``: an encoder's vectors beside standardised tracks.csv metadata, from the pure core
(``encoders/hybrid.py``) to a cell that runs end to end."""

from __future__ import annotations

import re

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from audiorec_assets.encoders import hybrid_base_of, is_twin, twin_base_of, twin_chain
from audiorec_assets.encoders.hybrid import OTHER, HybridError, hybrid_vectors, metadata_features
from audiorec_assets.settings import LakePaths, SettingsError, load_settings, parse_settings
from audiorec_assets_tests.helpers import materialization, write_own

RNG = np.random.default_rng(0)
AUDIO = RNG.standard_normal((12, 5)).astype(np.float32) * 7


def catalogue(n: int = 12) -> pd.DataFrame:
    """Metadata as audiorec.tracks holds it: text cells, "" where tracks.csv had none, None where a track
    had no row in tracks.csv."""
    return pd.DataFrame({
        "track_id": [f"t{i:02d}" for i in range(n)],
        "item_idx": range(n),
        "audio_path": [f"raw/audio/t{i:02d}.flac" for i in range(n)],
        "duration_s": np.linspace(10, 20, n),
        "artist": [f"artist {i % 3}" for i in range(n)],
        "tempo_bpm": [str(90 + 5 * i) for i in range(n)],
    })


def block_norms(vectors: np.ndarray, audio_dim: int) -> tuple[float, float]:
    return (float(np.linalg.norm(vectors[:, :audio_dim], axis=1).mean()),
            float(np.linalg.norm(vectors[:, audio_dim:], axis=1).mean()))


# --- the core -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("audio_weight, metadata_weight", [(1.0, 1.0), (2.0, 0.5), (0.0, 1.0)])
def test_dims_add_up_and_each_block_has_the_mean_row_norm_of_its_weight(audio_weight, metadata_weight):
    vectors, report = hybrid_vectors(AUDIO, catalogue(), audio_weight, metadata_weight)
    # artist: 3 one-hot columns; tempo_bpm: one z-score (no value missing, so no indicator)
    assert report.metadata_dim == 4 and [(c.name, c.kind, c.dims) for c in report.columns] == [
        ("artist", "categorical", 3), ("tempo_bpm", "numeric", 1)]
    assert vectors.dtype == np.float32 and vectors.shape == (12, 5 + 4)
    assert block_norms(vectors, 5) == pytest.approx((audio_weight, metadata_weight), abs=1e-6)
    # rows stay in the order given: track 4's audio block is its own audio, scaled
    scale = audio_weight / np.linalg.norm(AUDIO.astype(np.float64), axis=1).mean()
    np.testing.assert_allclose(vectors[4, :5], AUDIO[4] * scale, rtol=1e-5)
    z = (np.arange(12) * 5.0 - 27.5) / np.std(np.arange(12) * 5.0)
    np.testing.assert_allclose(vectors[:, 5 + 3] / vectors[:, 5 + 3].std(), z / z.std(), atol=1e-5)


def test_metadata_weight_zero_is_the_audio_ordering():
    vectors, report = hybrid_vectors(AUDIO, catalogue(), metadata_weight=0.0)
    assert vectors.shape == (12, 5 + report.metadata_dim) and not vectors[:, 5:].any()

    def cosine_order(x: np.ndarray) -> np.ndarray:
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        return np.argsort(-(unit @ unit.T), axis=1, kind="stable")

    np.testing.assert_array_equal(cosine_order(vectors.astype(np.float64)), cosine_order(AUDIO.astype(np.float64)))
    with_metadata, _ = hybrid_vectors(AUDIO, catalogue())
    assert not np.array_equal(cosine_order(with_metadata.astype(np.float64)), cosine_order(AUDIO.astype(np.float64)))


def test_missing_values_are_imputed_flagged_and_counted():
    meta = catalogue()
    meta["tempo_bpm"] = ["", "nan", "120", "130", "inf", "100", "110", "125", "95", "105", " ", "115"]
    meta["artist"] = ["a", "a", "", "b", "b", None, "c", "c", "a", "b", "NULL", "c"]
    meta["label"] = ""  # a column with no value at all
    meta.loc[7, ["artist", "tempo_bpm", "label"]] = None  # a track with no row in tracks.csv
    features, used, excluded = metadata_features(meta, columns=["tempo_bpm", "artist", "label"])
    by_name = {c.name: c for c in used}
    assert by_name["tempo_bpm"].missing == 5 and by_name["artist"].missing == 4
    assert excluded == {"label": "no values (every track's is missing)"}
    assert np.isfinite(features).all()
    tempo_z, tempo_missing = features[:, 0], features[:, 1]  # the z-score, then its missing indicator
    missing_rows = [0, 1, 4, 7, 10]
    assert tempo_missing.tolist() == [float(i in missing_rows) for i in range(12)]
    assert np.all(tempo_z[missing_rows] == 0.0)  # the mean, in z units
    observed = np.delete(tempo_z, missing_rows)
    assert observed.mean() == pytest.approx(0.0, abs=1e-12) and observed.std() == pytest.approx(1.0)
    artist = features[:, 2:]  # a, b, c, (missing): one 1 per row
    assert by_name["artist"].dims == 4 and np.all(artist.sum(axis=1) == 1)
    assert artist[[2, 5, 7, 10], 3].tolist() == [1, 1, 1, 1]
    vectors, report = hybrid_vectors(AUDIO, meta)
    assert report.missing == {"tempo_bpm": 5, "artist": 4} and np.isfinite(vectors).all()
    assert "| label | excluded |" in report.markdown()


def test_ids_paths_urls_and_constants_are_left_out_with_the_reason():
    meta = catalogue()
    meta["title"] = [f"Song {i}" for i in range(12)]
    meta["isrc"] = [f"US-XYZ-{i:05d}" for i in range(12)]
    meta["cover"] = [f"covers/{i}.jpg" for i in range(12)]
    meta["folder"] = [f"C:\\music\\disc {i % 2}" for i in range(12)]
    meta["label"] = "Same Records"
    meta["year"] = "2001"
    meta["track_id_copy"] = meta["track_id"]
    _, used, excluded = metadata_features(meta)
    assert [c.name for c in used] == ["artist", "tempo_bpm"]
    assert excluded["title"].startswith("an identifier or free text (12 distinct values")
    assert excluded["isrc"].startswith("an identifier")
    assert excluded["cover"] == excluded["folder"] == "a path or URL"
    assert excluded["label"] == "constant ('Same Records' for every track)"
    assert excluded["year"] == "constant (2001 for every track)"
    assert excluded["track_id_copy"].startswith("an identifier")
    assert not {"track_id", "item_idx", "audio_path", "duration_s"} & (set(excluded) | {c.name for c in used})


def test_categories_are_capped_and_rare_values_pooled():
    meta = catalogue()
    meta["genre"] = ["rock"] * 4 + ["pop"] * 3 + ["jazz"] * 2 + ["folk", "ska", "punk"]
    _, used, _ = metadata_features(meta, columns=["genre"], max_categories=2)
    (genre,) = used
    assert genre.dims == 3 and f"5 tracks in {OTHER}" in genre.detail  # rock, pop, (other): jazz + 3 singletons
    features, used, _ = metadata_features(meta, columns=["genre"])
    assert used[0].dims == 4  # rock, pop, jazz, (other): a value of one track cannot make two tracks alike
    assert features[9:, 3].tolist() == [1, 1, 1]


def test_id_codes_are_categories_and_dates_are_numbers():
    meta = catalogue()
    meta["artist_id"] = [str(100 + i % 4) for i in range(12)]
    meta["released"] = [f"20{10 + i % 6}-0{1 + i % 9}-15" for i in range(12)]
    _, used, _ = metadata_features(meta, columns=["artist_id", "released"])
    assert [(c.kind, c.dims) for c in used] == [("categorical", 4), ("date", 1)]
    assert used[1].detail.startswith("from 2010-")


def test_awkward_names_and_values():
    meta = catalogue()
    meta["Künstler | Name"] = [" Björk ", "Björk", "Sigur Rós", "Sigur Rós ", "múm", "múm"] * 2
    meta["tempo (bpm)"] = [f"{90 + i}.5" for i in range(12)]
    meta["ключ"] = ["до", "ре"] * 6
    vectors, report = hybrid_vectors(AUDIO, meta, columns=["Künstler | Name", "tempo (bpm)", "ключ"])
    assert [(c.name, c.dims) for c in report.columns] == [("Künstler | Name", 3), ("tempo (bpm)", 1), ("ключ", 2)]
    assert vectors.shape == (12, 5 + 6) and np.isfinite(vectors).all()
    # padding does not make a new category; a pipe in a name does not break the table
    table = [line for line in report.markdown().splitlines() if line.startswith("|")]
    assert all(line.replace("\\|", "").count("|") == 6 for line in table)
    assert any("Künstler \\| Name" in line for line in table)


def test_unknown_columns_and_impossible_weights_are_clear_errors():
    with pytest.raises(HybridError, match=r"hybrid\.columns names \['genre'\].*\['artist', 'tempo_bpm'\]"):
        metadata_features(catalogue(), columns=["artist", "genre"])
    with pytest.raises(HybridError, match="no usable metadata column.*title: an identifier"):
        hybrid_vectors(AUDIO, catalogue().assign(title=[f"s{i}" for i in range(12)]), columns=["title"])
    with pytest.raises(HybridError, match="12 audio vectors but metadata for 11 tracks"):
        hybrid_vectors(AUDIO, catalogue(11))
    with pytest.raises(HybridError, match="both 0"):
        hybrid_vectors(AUDIO, catalogue(), 0.0, 0.0)


@pytest.mark.parametrize("raw, setting", [
    ({"hybrid": {"audio_weight": -1}}, "hybrid.audio_weight"),
    ({"hybrid": {"metadata_weight": "inf"}}, "hybrid.metadata_weight"),
    ({"hybrid": {"metadata_weight": True}}, "hybrid.metadata_weight"),
    ({"hybrid": {"audio_weight": 0, "metadata_weight": 0}}, "hybrid.audio_weight and hybrid.metadata_weight"),
    ({"hybrid": {"columns": []}}, "hybrid.columns"),
    ({"hybrid": {"columns": ["artist", "artist"]}}, "hybrid.columns"),
    ({"hybrid": {"columns": ["duration_s"]}}, "hybrid.columns"),
    ({"hybrid": {"max_categories": 0}}, "hybrid.max_categories"),
    ({"hybrid": {"weight": 1}}, "hybrid.weight"),
    ({"encoders": ["mfcc", "hybrid_none"]}, "hybrid_none"),
    ({"encoders": ["mfcc", "hybrid_hybrid_mfcc"]}, "hybrid_hybrid_mfcc"),
    ({"encoders": ["mfcc", "shuffled_hybrid_none"]}, "shuffled_hybrid_none"),
])
def test_bad_hybrid_settings_name_the_setting(raw, setting):
    with pytest.raises(SettingsError, match=setting.replace(".", r"\.")):
        parse_settings(raw, source="experiment.yaml")


def test_hybrid_is_a_twin_of_its_base():
    assert hybrid_base_of("hybrid_musicnn") == "musicnn" and hybrid_base_of("hybrid_") is None
    assert twin_base_of("hybrid_mine", "musicnn") == "mine" and is_twin("hybrid_mfcc") and not is_twin("mfcc")
    assert twin_chain("shuffled_hybrid_mfcc", "musicnn") == ["shuffled_hybrid_mfcc", "hybrid_mfcc", "mfcc"]
    settings = parse_settings({"encoders": ["mfcc", "hybrid_mfcc", "shuffled_hybrid_mfcc"],
                               "hybrid": {"columns": ["artist"], "metadata_weight": 0.5}}, source="test")
    assert settings.hybrid.columns == ["artist"] and settings.hybrid.audio_weight == 1.0


# --- the lake: which partitions are offered -------------------------------------------------------------

HYBRID_SETTINGS = "encoders: [mfcc, hybrid_mfcc, hybrid_mert, shuffled_hybrid_mfcc]\nrecommenders: [knn]\n"


def offered(lake):
    from audiorec_assets.defs.partitions import lake_members

    wanted = lake_members(LakePaths(lake), load_settings(lake))
    return wanted.members["encoder"], wanted.left_out


@pytest.mark.parametrize("tracks_csv, reason", [
    (None, "tracks.csv does not exist"),
    ("track_id\nt00\nt01\n", "has no metadata columns besides track_id"),
    ("track_id,title\nt00,a\nt01,b\n", "no metadata column of .* is usable \\(title: an identifier"),
])
def test_hybrid_is_left_out_without_usable_metadata(lake, tracks_csv, reason):
    write_own(lake / "raw", [("u1", "t00", "2019-01-01 10:00:00"), ("u1", "t01", "2019-01-02 10:00:00")],
              metadata=False)
    (lake / "experiment.yaml").write_text(HYBRID_SETTINGS)
    if tracks_csv is not None:
        (lake / "raw" / "tracks.csv").write_text(tracks_csv)
    encoders, left_out = offered(lake)
    assert encoders == ["mfcc"]
    assert re.search(reason, left_out["hybrid_mfcc"]), left_out["hybrid_mfcc"]
    assert left_out["shuffled_hybrid_mfcc"].startswith("permutes the vectors of 'hybrid_mfcc', which cannot run")


def test_the_onion_layout_has_no_track_metadata(lake):
    from audiorec_assets_tests.helpers import write_onion

    write_onion(lake / "raw", [("u1", "t00", "2019-01-01 10:00:00")])
    (lake / "raw" / "tracks.csv").write_text("track_id,artist\nt00,a\n")  # the Onion ingest does not read it
    (lake / "experiment.yaml").write_text(HYBRID_SETTINGS)
    encoders, left_out = offered(lake)
    assert encoders == ["mfcc"] and "the Music4All-Onion layout has no tracks.csv" in left_out["hybrid_mfcc"]


def test_hybrid_is_offered_where_its_base_is_and_the_metadata_is_usable(lake):
    write_own(lake / "raw", [("u1", f"t{i:02d}", f"2019-01-{i + 1:02d} 10:00:00") for i in range(6)])
    (lake / "experiment.yaml").write_text(HYBRID_SETTINGS)
    encoders, left_out = offered(lake)
    assert encoders == ["mfcc", "hybrid_mfcc", "shuffled_hybrid_mfcc"]
    assert "hybrid_mert" in left_out and left_out["hybrid_mert"].startswith("puts track metadata beside the "
                                                                            "vectors of 'mert'")
    (lake / "experiment.yaml").write_text(HYBRID_SETTINGS + "hybrid: {columns: [genre]}\n")
    encoders, left_out = offered(lake)
    assert encoders == ["mfcc"] and "hybrid.columns names ['genre']" in left_out["hybrid_mfcc"]


def test_a_twin_of_an_encoder_that_cannot_run_here_reads_its_file_and_no_encoding_is_offered(lake, tmp_path):
    """mert without weights: its shuffled twin is offered only where mert's vectors lie in the lake, and then it is
    computed from that file (no audio_vectors partition that could not run)."""
    from audiorec_assets.defs.partitions import lake_members
    from audiorec_assets.settings import load_settings

    write_own(lake / "raw", [("u1", f"t{i:02d}", f"2019-01-{i + 1:02d} 10:00:00") for i in range(6)])
    (lake / "experiment.yaml").write_text(f"encoders: [mfcc, shuffled_mert]\n"
                                          f"encode: {{models_dir: {tmp_path / 'no-weights'}}}\n")
    members = lake_members(LakePaths(lake), load_settings(lake))
    assert "shuffled_mert" in members.left_out and members.members["audio_encoder"] == ["mfcc"]
    (lake / "embeddings").mkdir()
    np.save(lake / "embeddings" / "mert.npy", np.ones((6, 3), dtype=np.float32))
    members = lake_members(LakePaths(lake), load_settings(lake))
    assert members.members["encoder"] == ["mfcc", "shuffled_mert"] and members.members["audio_encoder"] == ["mfcc"]


# --- end to end: a hybrid_mfcc|knn cell, warm and cold -------------------------------------------------

def hybrid_lake(lake):
    from audiorec_assets_tests.test_pipeline import small_log

    write_own(lake / "raw", small_log(n_users=30, n_tracks=20, n_new=3))
    track_ids = sorted(p.stem for p in (lake / "raw" / "audio").iterdir())
    n = len(track_ids)
    pd.DataFrame({
        "track_id": track_ids[:-1],  # the last track has no row: all its metadata is missing
        "artist": [f"artist {i % 4}" for i in range(n - 1)],
        "tempo bpm": ["" if i % 5 == 0 else str(80 + 3 * i) for i in range(n - 1)],
        "title": [f"Song {i}" for i in range(n - 1)],
        "genre": ["" if i % 7 == 0 else ("rock", "pop", "jazz")[i % 3] for i in range(n - 1)],
        "cover_path": [f"art/{i}.png" for i in range(n - 1)],
    }).to_csv(lake / "raw" / "tracks.csv", index=False)
    (lake / "experiment.yaml").write_text("encoders: [mfcc, hybrid_mfcc]\nrecommenders: [knn]\nks: [5, 10]\n"
                                          "top_n: 20\nhybrid: {metadata_weight: 0.5}\n")
    return n


def test_a_hybrid_mfcc_knn_cell_runs_end_to_end(lake):
    from audiorec_assets.definitions import build_definitions
    from audiorec_assets.defs.audio_vectors import AUDIO_VECTORS
    from audiorec_assets.defs.embeddings import EMBEDDINGS
    from audiorec_assets.defs.execute import everything, materialize
    from audiorec_assets_tests.test_pipeline import CELL, sql

    n_tracks = hybrid_lake(lake)
    defs = build_definitions(lake)
    instance = dg.DagsterInstance.ephemeral()

    def run(selection, partition_key):
        return materialize(everything(defs), selection=selection, partition_key=partition_key,
                           resources=defs.resources, instance=instance, raise_on_error=False)

    assert run(dg.AssetSelection.groups("ingest"), None).success
    tracks = sql(lake, "SELECT * FROM audiorec.tracks")
    assert {"artist", "tempo bpm", "genre"} <= set(tracks.columns)  # the ingest keeps tracks.csv's columns
    embeddings = dg.AssetSelection.assets(EMBEDDINGS).required_multi_asset_neighbors()
    early = run(embeddings, "hybrid_mfcc")  # before its base's encoding: says what to materialize first
    assert not early.success
    assert "materialize audiorec/audio_vectors partition 'mfcc' first" in str(early.all_node_events)
    assert run(dg.AssetSelection.assets(AUDIO_VECTORS), "mfcc").success
    result = run(embeddings, "hybrid_mfcc")  # its base's own embeddings partition is not needed
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    meta = materialization(result, "embeddings").metadata
    # artist 4 + (missing): 5; tempo bpm z + indicator: 2; genre rock/pop/jazz + (missing): 4; title and cover_path
    # left out; mfcc: 104
    assert (meta["audio_dim"].value, meta["metadata_dim"].value, meta["dim"].value) == (104, 11, 115)
    assert meta["excluded_columns"].value.keys() == {"title", "cover_path"}
    # the track without a row in tracks.csv counts as missing in every column
    assert meta["missing_values"].value == {"artist": 1, "tempo bpm": 6, "genre": 5}
    report = meta["metadata_report"].value
    assert "| tempo bpm | numeric | 2 | 6 |" in report and "| (audio: mfcc) | audio | 104 | 0 |" in report
    vectors = np.load(lake / "embeddings" / "hybrid_mfcc.npy")
    assert vectors.shape == (n_tracks, 115) and vectors.dtype == np.float32
    assert block_norms(vectors, 104) == pytest.approx((1.0, 0.5), abs=1e-5)
    row = sql(lake, "SELECT * FROM audiorec.encoders WHERE encoder = 'hybrid_mfcc'")
    assert row["base_encoder"][0] == "mfcc" and row["metadata_columns"][0] == "artist, tempo bpm, genre"

    assert run(CELL, dg.MultiPartitionKey({"encoder": "hybrid_mfcc", "recommender": "knn"})).success
    recs = sql(lake, "SELECT * FROM audiorec.recommendations WHERE encoder = 'hybrid_mfcc'")
    assert set(recs["split"]) == {"val", "test", "test_cold"}  # warm and cold
    assert set(recs.loc[recs["split"] == "test_cold", "track_id"]) <= {"n00", "n01", "n02"}
    metrics = sql(lake, "SELECT * FROM audiorec.metrics WHERE encoder = 'hybrid_mfcc'")
    assert set(metrics["split"]) == {"val", "test", "test_cold"} and metrics["value"].notna().all()


def test_unknown_column_in_settings_fails_the_partition_naming_the_setting(lake):
    from audiorec_assets.definitions import build_definitions
    from audiorec_assets.defs.embeddings import EMBEDDINGS
    from audiorec_assets.defs.execute import everything, materialize

    hybrid_lake(lake)
    (lake / "experiment.yaml").write_text("encoders: [mfcc, hybrid_mfcc]\nhybrid: {columns: [artist, mood]}\n")
    defs = build_definitions(lake)
    instance = dg.DagsterInstance.ephemeral()
    assert materialize(everything(defs), selection=dg.AssetSelection.groups("ingest"), resources=defs.resources,
                       instance=instance).success
    (lake / "embeddings").mkdir()
    np.save(lake / "embeddings" / "mfcc.npy", RNG.standard_normal((23, 4)).astype(np.float32))
    result = materialize(everything(defs), selection=dg.AssetSelection.assets(EMBEDDINGS)
                         .required_multi_asset_neighbors(), partition_key="hybrid_mfcc", resources=defs.resources,
                         instance=instance, raise_on_error=False)
    assert not result.success
    assert "hybrid.columns names ['mood']" in str(result.all_node_events)


# --- staleness and the graph: a twin's base is its upstream ------------------------------------------------

def test_the_input_version_follows_the_hybrid_settings_and_a_user_files_content(lake):
    from audiorec_assets.defs.sources import _hashes, embedding_input_version

    paths = LakePaths(lake)
    (lake / "embeddings").mkdir()

    def version(name: str, settings: dict) -> str:
        return embedding_input_version(name, paths, parse_settings(settings, source="test"), _hashes(paths))

    before = version("hybrid_mfcc", {})
    assert version("hybrid_mfcc", {"hybrid": {"metadata_weight": 2}}) != before
    assert version("hybrid_mfcc", {"hybrid": {"columns": ["artist"]}}) != before
    assert version("hybrid_mfcc", {"seed": 7, "bert4rec": {"layers": 3}}) == before  # what it does not read
    assert version("shuffled_hybrid_mfcc", {"seed": 7}) != version("shuffled_hybrid_mfcc", {})  # its shuffle does
    # mfcc's vectors reach it through the graph (audiorec/audio_vectors), not through this version
    np.save(lake / "embeddings" / "mfcc.npy", np.ones((3, 2), dtype=np.float32))
    assert version("hybrid_mfcc", {}) == before
    # a user's file is read from the lake: its content is in the version of its twins
    np.save(lake / "embeddings" / "mine.npy", np.ones((3, 2), dtype=np.float32))
    mine = version("hybrid_mine", {})
    np.save(lake / "embeddings" / "mine.npy", np.full((3, 2), 2, dtype=np.float32))
    assert version("hybrid_mine", {}) != mine


def test_a_twins_base_encoding_is_its_upstream_in_the_asset_graph(lake):
    from audiorec_assets.definitions import build_definitions
    from audiorec_assets.defs.audio_vectors import AUDIO_VECTORS
    from audiorec_assets.defs.embeddings import EMBEDDINGS
    from audiorec_assets.defs.partitions import lake_members, sync_partitions
    from audiorec_assets.settings import load_settings

    hybrid_lake(lake)
    (lake / "experiment.yaml").write_text("encoders: [hybrid_mfcc, shuffled_hybrid_mfcc, shuffled, random]\n"
                                          "encode: {shuffled_base: mfcc}\n")
    instance = dg.DagsterInstance.ephemeral()
    members = lake_members(LakePaths(lake), load_settings(lake))
    assert members.members["audio_encoder"] == ["mfcc"]  # the twins' base is encoded though not listed itself
    sync_partitions(instance, members)
    graph = build_definitions(lake).resolve_asset_graph()
    assert AUDIO_VECTORS in graph.get(EMBEDDINGS).parent_keys
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        for twin in ("hybrid_mfcc", "shuffled_hybrid_mfcc", "shuffled"):
            parents = graph.get_parents_partitions(EMBEDDINGS, twin).parent_partitions
            assert (AUDIO_VECTORS, "mfcc") in {(p.asset_key, p.partition_key) for p in parents}, twin
