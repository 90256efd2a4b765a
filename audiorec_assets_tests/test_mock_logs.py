"""Mock listening logs (datasets/mock_logs/): reproducible, warm users, cold tracks after the real split,
measurable tastes, a synthetic marker that the ingest carries into split_info, and clear refusals."""

import json
from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest

from audiorec_assets.data import sources
from audiorec_assets.datasets.mock_logs import (
    MockLogConfig,
    mock_listens,
    mock_model,
    read_catalogue,
    write_mock_logs,
)
from audiorec_assets.data.sources import SYNTHETIC_MARKER, Layout, SourceError
from audiorec_assets.data.splits import make_split, resolve_windows
from audiorec_assets.settings import ExperimentSettings, LakePaths
from audiorec_assets_tests.helpers import ingest_lake, materialization, write_demo, write_own, write_tone

COMPOSERS = ["Bach", "Händel", "Fauré", "Dvořák", "Ravel", "Sibelius"]
INSTRUMENTS = ["piano", "orchestra", "string quartet", "cello"]
SMALL = MockLogConfig(users=40, months=13, seed=3)


def classical(n_works: int = 36, seed: int = 0) -> pd.DataFrame:
    """A catalogue of works with 1-5 movements each: composer, work, instrumentation, movement."""
    rng = np.random.default_rng(seed)
    rows = []
    for w in range(n_works):
        composer, instrument = COMPOSERS[w % len(COMPOSERS)], INSTRUMENTS[int(rng.integers(len(INSTRUMENTS)))]
        for m in range(int(rng.integers(1, 6))):
            rows.append({"track_id": f"w{w:02d}-{m + 1}", "composer": composer, "work": f"{composer} work {w}",
                         "instrumentation": instrument, "movement": str(m + 1)})
    return pd.DataFrame(rows)


def real_split(tmp_path, listens: pd.DataFrame, catalogue: list[str], preset: str = "guide"):
    """The study's split code on ``listens`` as the ingest runs it for an own catalogue (default settings)."""
    path = tmp_path / "listens.parquet"
    listens.rename(columns={"timestamp": "ts"}).to_parquet(path)
    settings = ExperimentSettings(preset=preset)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        windows = resolve_windows(con, path, Layout.OWN, settings)
        report = make_split(con, path, catalogue, windows, settings, tmp_path / "interactions.parquet")
    return pd.read_parquet(tmp_path / "interactions.parquet"), report, windows


@pytest.fixture(scope="module")
def catalogue() -> pd.DataFrame:
    return classical()


@pytest.fixture(scope="module")
def model(catalogue):
    return mock_model(catalogue, SMALL)


# ----------------------------------------------------------------------------- the generator


def test_same_seed_same_log_other_seed_another(catalogue, model):
    pd.testing.assert_frame_equal(mock_listens(catalogue, SMALL), model.listens)
    other = mock_listens(catalogue, MockLogConfig(users=40, months=13, seed=4))
    assert len(other) != len(model.listens) or not other.equals(model.listens)
    shared = min(len(other), len(model.listens))
    assert (other["track_id"].to_numpy()[:shared] != model.listens["track_id"].to_numpy()[:shared]).mean() > 0.5


def test_log_has_the_contract_columns_and_only_catalogue_tracks(catalogue, model):
    listens = model.listens
    assert list(listens.columns) == ["user_id", "track_id", "timestamp"]
    assert pd.api.types.is_datetime64_any_dtype(listens["timestamp"])
    assert listens["timestamp"].is_monotonic_increasing
    assert set(listens["track_id"]) <= set(catalogue["track_id"])
    assert listens["user_id"].nunique() == SMALL.users
    assert not listens.duplicated().any()  # no repeated (user, track, timestamp): each row is one play


@pytest.mark.parametrize("months", [2, 13, 18])
def test_time_span_is_the_configured_months(catalogue, months):
    config = MockLogConfig(users=15, months=months, seed=1)
    listens = mock_listens(catalogue, config)
    start, end = pd.Timestamp(config.start), pd.Timestamp(config.start) + pd.DateOffset(months=months)
    assert listens["timestamp"].min() >= start and listens["timestamp"].max() < end
    # the log uses its span: it starts in its first weeks and runs into its last days
    assert listens["timestamp"].min() < start + pd.Timedelta(days=21)
    assert listens["timestamp"].max() >= end - pd.Timedelta(days=4)


@pytest.mark.parametrize("preset", ["guide", "paper_code"])
def test_real_split_every_user_warm_and_test_cold_not_empty(tmp_path, catalogue, model, preset):
    rows, report, windows = real_split(tmp_path, model.listens, list(catalogue["track_id"]), preset)
    assert set(rows.loc[rows["split"] == "train", "user_id"]) == set(model.listens["user_id"])
    assert report.dropped_cold_user == 0
    assert report.test_cold_pairs > 0 and report.test_cold_users > 0
    assert report.val_pairs > 0 and report.test_pairs > 0
    # the cold tracks are the late releases: out inside the evaluation window, never played before
    late = set(model.tracks.loc[model.tracks["late"], "track_id"])
    assert late and not late & set(rows.loc[rows["split"] == "train", "track_id"])
    assert set(rows.loc[rows["split"] == "test_cold", "track_id"]) & late
    released = model.tracks.dropna(subset=["release"]).set_index("track_id")["release"]
    assert (released[model.tracks.loc[model.tracks["late"], "track_id"]] >= windows.test_start).all()


def test_no_track_is_played_before_its_release(model):
    plays = model.listens.merge(model.tracks[["track_id", "release"]], on="track_id")
    dated = plays.dropna(subset=["release"])
    assert len(dated) and (dated["timestamp"] >= dated["release"]).all()
    share_late = model.tracks["late"].mean()
    assert 0.05 <= share_late <= 0.25  # late_share 0.12, in whole works


def preference_shares(model, catalogue: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Per user: the share of their plays on their preferred values of ``column``, and the base rate (the
    share of everybody's plays on those values)."""
    value = catalogue.set_index("track_id")[column]
    plays = model.listens.assign(value=model.listens["track_id"].map(value))
    preferred = model.preferences[model.preferences["taste"] == column].groupby("user_id")["value"].apply(set)
    own = [group["value"].isin(preferred[user]).mean() for user, group in plays.groupby("user_id")]
    base = [plays["value"].isin(preferred[user]).mean() for user, _ in plays.groupby("user_id")]
    return np.array(own), np.array(base)


def test_taste_users_prefer_their_composers_far_above_the_base_rate(catalogue):
    model = mock_model(catalogue, MockLogConfig(users=40, seed=3, taste_columns=("composer",)))
    own, base = preference_shares(model, catalogue, "composer")
    assert own.mean() > 2.5 * base.mean()
    assert (own > base).mean() > 0.9
    untasted = mock_model(catalogue, MockLogConfig(users=40, seed=3, taste_columns=("composer",), taste_strength=0))
    own_none, base_none = preference_shares(untasted, catalogue, "composer")
    assert own_none.mean() < 1.3 * base_none.mean()  # the preference comes from the tastes, not from popularity


def test_default_tastes_are_found_by_name_and_each_one_shows(catalogue, model):
    assert set(model.taste_columns) == {"composer", "instrumentation"}  # AUTO_TASTE_COLUMNS in the catalogue
    for column in model.taste_columns:
        own, base = preference_shares(model, catalogue, column)
        assert own.mean() > 1.5 * base.mean(), column


def test_audio_cluster_tastes_from_vectors():
    rng = np.random.default_rng(0)
    n, centres = 120, rng.normal(size=(4, 16)) * 5
    cluster = np.arange(n) % 4
    vectors = centres[cluster] + rng.normal(size=(n, 16))
    tracks = pd.DataFrame({"track_id": [f"t{i:03d}" for i in range(n)]})
    model = mock_model(tracks, MockLogConfig(users=30, audio_clusters=4, seed=2), vectors=vectors)
    assert model.taste_columns == ("audio_cluster",)
    labels = model.tracks.set_index("track_id")["taste:audio_cluster"]
    # the k-means clusters are the true ones
    assert pd.crosstab(labels, cluster).gt(0).sum(axis=1).eq(1).all()
    plays = model.listens.assign(cluster=model.listens["track_id"].map(labels))
    preferred = model.preferences.groupby("user_id")["value"].apply(set)
    own = [g["cluster"].isin(preferred[u]).mean() for u, g in plays.groupby("user_id")]
    base = [plays["cluster"].isin(preferred[u]).mean() for u, _ in plays.groupby("user_id")]
    assert np.mean(own) > 1.5 * np.mean(base)


def test_sessions_follow_works_in_movement_order_and_users_replay(catalogue, model):
    work = catalogue.set_index("track_id")["work"]
    movement = catalogue.set_index("track_id")["movement"].astype(int)
    log = model.listens.sort_values(["user_id", "timestamp"], kind="stable")
    same_user = log["user_id"].to_numpy()[1:] == log["user_id"].to_numpy()[:-1]
    works = log["track_id"].map(work).to_numpy()
    moves = log["track_id"].map(movement).to_numpy()
    same_work = same_user & (works[1:] == works[:-1])
    assert model.sequence_column == "work"
    assert same_work.mean() > 0.4
    assert (moves[1:][same_work] == moves[:-1][same_work] + 1).mean() > 0.9  # in order, movement by movement
    pairs = model.listens.groupby(["user_id", "track_id"]).size()
    replays = (pairs > 1).mean()
    assert replays > 0.2
    no_repeats = mock_listens(catalogue, MockLogConfig(users=40, seed=3, repeat_prob=0.0))
    assert (no_repeats.groupby(["user_id", "track_id"]).size() > 1).mean() < replays


def test_popularity_is_skewed(catalogue, model):
    counts = model.listens["track_id"].value_counts()
    top = counts.iloc[: max(1, len(catalogue) // 10)].sum() / counts.sum()
    assert top > 0.2  # the top tenth of the tracks draws well over a tenth of the plays
    flat = mock_listens(catalogue, MockLogConfig(users=40, seed=3, popularity_skew=0.0))
    flat_counts = flat["track_id"].value_counts()
    assert flat_counts.iloc[: max(1, len(catalogue) // 10)].sum() / flat_counts.sum() < top


def test_without_metadata_tastes_come_from_random_clusters():
    tracks = pd.DataFrame({"track_id": [f"t{i}" for i in range(30)]})
    model = mock_model(tracks, MockLogConfig(users=10, seed=1))
    assert model.taste_columns == ("random_cluster",) and model.sequence_column is None
    assert set(model.preferences["taste"]) == {"random_cluster"}


@pytest.mark.parametrize("settings, message", [
    ({"users": 0}, "users=0"),
    ({"months": 1}, "months=1"),
    ({"late_share": 1.5}, "late_share"),
    ({"late_share": 0.6, "release_share": 0.5}, "late_share + release_share"),
    ({"session_length": 0.5}, "session_length"),
    ({"sessions_per_month": 0}, "sessions_per_month"),
    ({"popularity_skew": -1}, "popularity_skew"),
    ({"start": "01/02/2023"}, "start="),
    ({"users": 2.5}, "users="),
])
def test_bad_settings_name_the_setting(settings, message):
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        MockLogConfig(**settings)


@pytest.mark.parametrize("tracks, config, vectors, message", [
    (pd.DataFrame({"track_id": [], "composer": []}), MockLogConfig(), None, "catalogue is empty"),
    (pd.DataFrame({"id": ["a"]}), MockLogConfig(), None, "needs a track_id column"),
    (pd.DataFrame({"track_id": ["a", "a"]}), MockLogConfig(), None, "'a' appears more than once"),
    (classical(4), MockLogConfig(taste_columns=("composer", "mood")), None, "no column 'mood'.*available"),
    (classical(4), MockLogConfig(taste_columns=("track_id",)), None, "track_id names every track"),
    (classical(4), MockLogConfig(sequence_column="disc"), None, "sequence_column: no column 'disc'"),
    (classical(4).assign(mood=""), MockLogConfig(taste_columns=("mood",)), None, "'mood' has no values"),
    (pd.DataFrame({"track_id": ['say "hi"']}), MockLogConfig(), None, "double quote"),
    (classical(4), MockLogConfig(), np.zeros((3, 2)), r"vectors: expected shape \(\d+, d\)"),
])
def test_bad_catalogue_or_vectors_name_the_column(tracks, config, vectors, message):
    with pytest.raises(ValueError, match=message):
        mock_model(tracks, config, vectors)


def test_config_accepts_cli_style_values():
    config = MockLogConfig(taste_columns="composer, instrumentation", start="2021-05-01")
    assert config.taste_columns == ("composer", "instrumentation") and config.start == date(2021, 5, 1)
    assert config.end == date(2022, 6, 1)
    assert json.loads(json.dumps(config.as_dict()))["taste_columns"] == ["composer", "instrumentation"]


# ----------------------------------------------------------------------------- the lake

AWKWARD = ["Prélude (BWV 1007) I", "月の光", "a b, c", "Bach's Air", "ünïcödé   spaced", "plain"]


def awkward_lake(root, with_metadata: bool = True, works: int = 8, movements: int = 3):
    """A raw folder with audio named by awkward ids (spaces, unicode, a comma, an apostrophe) and tracks.csv."""
    raw = root / "raw"
    rows = []
    for w in range(works):
        for m in range(movements):
            track = f"{AWKWARD[w % len(AWKWARD)]} {w}-{m}"
            write_tone(raw / "audio" / f"{track}.wav", seconds=0.5, freq=200.0 + 10 * w + 3 * m)
            rows.append({"track_id": track, "composer": COMPOSERS[w % 3], "work": f"opus {w}",
                         "instrumentation": INSTRUMENTS[w % 2]})
    if with_metadata:
        pd.DataFrame(rows + [{"track_id": "no audio", "composer": "Bach", "work": "x", "instrumentation": "piano"}]
                     ).to_csv(raw / "tracks.csv", index=False)
    return raw, [r["track_id"] for r in rows]


def test_write_mock_logs_writes_log_marker_and_report(tmp_path):
    raw, ids = awkward_lake(tmp_path / "lake")
    config = MockLogConfig(users=12, seed=5)
    report = write_mock_logs(raw, config)
    written = pd.read_csv(raw / "listens.csv", dtype=str, keep_default_na=False)
    assert list(written.columns) == ["user_id", "track_id", "timestamp"]
    assert set(written["track_id"]) == set(ids)  # every track played, ids read back exactly
    assert any("月の光" in t for t in written["track_id"]) and any("," in t for t in written["track_id"])
    assert report.rows == len(written) and report.users == 12 and report.catalogue_tracks == len(ids)
    assert report.metadata_rows_without_audio == 1 and report.cold_tracks >= 1 and report.cold_tracks_played >= 1
    assert report.taste_columns == ("composer", "instrumentation") and report.sequence_column == "work"
    marker = json.loads((raw / SYNTHETIC_MARKER).read_text())
    assert marker["synthetic"] is True and marker["version"] >= 1 and marker["config"]["seed"] == 5
    assert marker["log"]["file"] == "listens.csv" and "previous_log" not in marker
    assert sources.log_is_synthetic(sources.detect_source(raw).log_path)
    assert not list((tmp_path / "lake" / "raw").glob(".*"))  # no temporaries beside the targets
    # the same config writes the same bytes; another one replaces the mock log (it is marked synthetic)
    before = (raw / "listens.csv").read_bytes(), (raw / SYNTHETIC_MARKER).read_bytes()
    write_mock_logs(raw, config)
    assert ((raw / "listens.csv").read_bytes(), (raw / SYNTHETIC_MARKER).read_bytes()) == before
    write_mock_logs(raw, MockLogConfig(users=12, seed=6))
    assert (raw / "listens.csv").read_bytes() != before[0]
    assert "previous_log" not in json.loads((raw / SYNTHETIC_MARKER).read_text())


def test_write_mock_logs_without_tracks_csv_and_with_vectors(tmp_path):
    raw, ids = awkward_lake(tmp_path / "lake", with_metadata=False)
    assert read_catalogue(raw)[0]["track_id"].tolist() == sorted(ids)
    report = write_mock_logs(raw, MockLogConfig(users=6, seed=1))
    assert report.taste_columns == ("random_cluster",)
    (raw / "listens.csv").unlink()
    (raw / SYNTHETIC_MARKER).unlink()
    vectors = np.repeat(np.eye(4), 6, axis=0)  # item_idx order: sorted ids
    report = write_mock_logs(raw, MockLogConfig(users=6, seed=1, audio_clusters=4), vectors=vectors)
    assert report.taste_columns == ("audio_cluster",)
    with pytest.raises(ValueError, match=r"vectors: expected shape \(24, d\)"):
        write_mock_logs(raw, MockLogConfig(users=6), vectors=np.zeros((5, 3)))


def test_write_mock_logs_never_overwrites_a_real_log(tmp_path):
    raw = tmp_path / "lake" / "raw"
    real = write_own(raw, [("u1", "a", "2020-01-01 10:00:00"), ("u2", "b", "2020-02-01 10:00:00")])
    content = real.read_bytes()
    with pytest.raises(FileExistsError, match=r"listens.csv is a real listening log .*never overwrites"):
        write_mock_logs(raw, MockLogConfig(users=3))
    assert real.read_bytes() == content and not (raw / SYNTHETIC_MARKER).exists()
    # a marker that does not describe the log beside it (the mock log was replaced) protects nothing
    (raw / SYNTHETIC_MARKER).write_text(json.dumps({"log": {"file": "listens.csv", "bytes": 1, "sha1": "0"}}))
    with pytest.raises(FileExistsError, match="describes another log"):
        write_mock_logs(raw, MockLogConfig(users=3))
    assert real.read_bytes() == content
    # another layout's log is refused as well
    other = tmp_path / "other" / "raw"
    write_own(other, [("u1", "a", "2020-01-01 10:00:00")], fmt="parquet")
    with pytest.raises(FileExistsError, match="listens.parquet"):
        write_mock_logs(other, MockLogConfig(users=3))


def test_write_mock_logs_needs_audio(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    pd.DataFrame({"track_id": ["a"], "composer": ["Bach"]}).to_csv(raw / "tracks.csv", index=False)
    with pytest.raises(ValueError, match="no audio files"):
        write_mock_logs(raw, MockLogConfig(users=3))


def test_a_stale_marker_stops_the_ingest_by_name(tmp_path):
    raw, _ = awkward_lake(tmp_path / "lake")
    write_mock_logs(raw, MockLogConfig(users=5, seed=2))
    with open(raw / "listens.csv", "a") as log:  # edited by hand: no longer the log the marker describes
        log.write("u9999,plain 5-0,2023-06-01 10:00:00\n")
    with pytest.raises(SourceError, match=r"listens.synthetic.json marks a synthetic .* delete"):
        sources.log_is_synthetic(sources.detect_source(raw).log_path)
    (raw / SYNTHETIC_MARKER).write_text("{not json")
    with pytest.raises(SourceError, match="cannot be read"):
        sources.log_is_synthetic(sources.detect_source(raw).log_path)


def test_marker_is_part_of_the_raw_log_fingerprint(tmp_path):
    from audiorec_assets.defs.sources import _hashes, log_version

    raw, _ = awkward_lake(tmp_path / "lake")
    paths = LakePaths(tmp_path / "lake")
    write_mock_logs(raw, MockLogConfig(users=5, seed=2))
    first = log_version(paths, _hashes(paths))
    marker = json.loads((raw / SYNTHETIC_MARKER).read_text())
    (raw / SYNTHETIC_MARKER).write_text(json.dumps({**marker, "note": "changed"}))
    assert log_version(paths, _hashes(paths)) != first


def test_ingest_marks_a_mock_log_synthetic_in_split_info(lake):
    raw, _ = awkward_lake(lake, works=20, movements=4)
    report = write_mock_logs(raw, MockLogConfig(users=30, seed=7))
    assert report.warm_eval_pairs > 0 and report.cold_tracks_played > 0
    result = ingest_lake(lake)
    info = pd.read_parquet(LakePaths(lake).table_dir("split_info") / "all.parquet")
    assert info["synthetic"].dtype == bool and info["synthetic"].tolist() == [True]
    for asset in ("listens", "interactions", "split_info"):
        assert materialization(result, asset).metadata["synthetic_log"].value is True
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("SELECT synthetic FROM audiorec.split_info").fetchall() == [(True,)]
        splits = dict(con.sql("SELECT split, count(DISTINCT user_id) FROM audiorec.interactions GROUP BY split")
                      .fetchall())
    assert splits["train"] == 30 and splits.get("test_cold", 0) > 0
    # the same events without the marker: real now, and a new listens version makes split_info stale
    (raw / SYNTHETIC_MARKER).unlink()
    again = ingest_lake(lake)
    assert pd.read_parquet(LakePaths(lake).table_dir("split_info") / "all.parquet")["synthetic"].tolist() == [False]
    version = "dagster/data_version"
    assert materialization(again, "listens").tags[version] != materialization(result, "listens").tags[version]
    assert materialization(again, "interactions").tags[version] == materialization(result, "interactions").tags[version]


def test_mock_logs_never_replace_the_demo_log(lake):
    """The demo's log is synthetic too (its marker describes it), but it is the demo's: mock-logs refuses it."""
    write_demo(lake)
    raw = lake / "raw"
    log, marker = (raw / "listens.csv").read_bytes(), (raw / SYNTHETIC_MARKER).read_bytes()
    with pytest.raises(FileExistsError, match=r"listens.csv is the demo's listening log .*never overwrites"):
        write_mock_logs(raw, MockLogConfig(users=3))
    assert (raw / "listens.csv").read_bytes() == log and (raw / SYNTHETIC_MARKER).read_bytes() == marker
