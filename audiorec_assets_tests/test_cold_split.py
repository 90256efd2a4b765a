"""The ``test_cold`` split on a small lake with cold tracks: who, which pairs, warm splits untouched, the check."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from audiorec_assets.data import quality
from audiorec_assets.definitions import build_definitions
from audiorec_assets.settings import INGEST_TABLES, LakePaths
from audiorec_assets_tests.helpers import ingest_lake, materialization, write_onion, write_own

WARM_TRACKS = ["w1", "w2", "w3", "w4"]
COLD_LISTENED = ["c1", "c2", "c3"]  # plays only in the evaluation window (c3 also before train_start)
NEVER_PLAYED = ["z1", "z2"]  # catalogue tracks (audio) without any play

LISTENS = [
    # train (2019)
    ("u1", "w1", "2019-03-01 10:00:00"), ("u1", "w2", "2019-04-01 10:00:00"), ("u1", "w2", "2019-05-01 10:00:00"),
    ("u2", "w1", "2019-03-02 10:00:00"), ("u2", "w3", "2019-06-01 10:00:00"),
    ("u3", "w2", "2019-03-03 10:00:00"), ("u3", "w4", "2019-07-01 10:00:00"),
    ("u4", "w3", "2019-03-04 10:00:00"), ("u4", "w4", "2019-08-01 10:00:00"),
    ("u5", "w1", "2019-03-05 10:00:00"), ("u5", "w4", "2019-09-01 10:00:00"),
    ("u6", "w2", "2019-03-06 10:00:00"), ("u6", "w3", "2019-10-01 10:00:00"),
    ("u7", "w1", "2019-11-01 10:00:00"),
    ("u1", "c3", "2019-01-10 10:00:00"),  # before train_start: no train play for c3
    # evaluation window: warm pairs (new to the user), a replay (not new)
    ("u1", "w3", "2020-02-25 10:00:00"), ("u2", "w2", "2020-03-15 10:00:00"), ("u3", "w1", "2020-02-22 10:00:00"),
    ("u4", "w1", "2020-03-18 10:00:00"), ("u5", "w2", "2020-02-26 10:00:00"), ("u6", "w4", "2020-03-10 10:00:00"),
    ("u1", "w1", "2020-03-01 10:00:00"),
    # evaluation window: cold tracks (u7's only evaluation play is cold), before and after mid-window
    ("u1", "c1", "2020-03-05 10:00:00"), ("u1", "c1", "2020-02-21 10:00:00"), ("u2", "c1", "2020-03-17 10:00:00"),
    ("u3", "c2", "2020-02-23 10:00:00"), ("u7", "c2", "2020-03-16 10:00:00"), ("u4", "c3", "2020-03-12 10:00:00"),
    ("u3", "c3", "2020-02-24 10:00:00"),
    # a cold user (no train play): nowhere
    ("u9", "c1", "2020-03-01 10:00:00"), ("u9", "w1", "2020-03-02 10:00:00"),
    # the last event (sets test_end), a replay on a warm track
    ("u5", "w1", "2020-03-20 00:00:00"),
]
COLD = set(COLD_LISTENED) | set(NEVER_PLAYED)
CASES = [("onion", "guide"), ("own", "paper_code")]


def build_lake(root: Path, layout: str, preset: str, with_cold: bool = True) -> Path:
    # without cold tracks, an event on a warm track keeps the data's first day (own layouts derive
    # train_start from it), and it lies before train_start like the c3 event it replaces
    listens = LISTENS if with_cold else [e for e in LISTENS if e[1] not in COLD] + [("u1", "w3", "2019-01-10 10:00:00")]
    tracks = WARM_TRACKS + (COLD_LISTENED + NEVER_PLAYED if with_cold else [])
    root.mkdir(parents=True, exist_ok=True)
    if layout == "onion":
        write_onion(root / "raw", listens, tracks=tracks)
    else:
        write_own(root / "raw", listens, tracks=tracks)
    (root / "experiment.yaml").write_text(f"preset: {preset}\n")
    return root


def ingest(root: Path) -> dg.ExecuteInProcessResult:
    return ingest_lake(root)


def interactions(root: Path) -> pd.DataFrame:
    return pd.read_parquet(LakePaths(root).table_dir("interactions") / "all.parquet")


def split_info(root: Path) -> pd.Series:
    return pd.read_parquet(LakePaths(root).table_dir("split_info") / "all.parquet").iloc[0]


def expected_pairs(events: list[tuple[str, str, str]], info: pd.Series) -> dict[str, set[tuple]]:
    """The split computed independently in pandas: {split: {(user, track, first_ts, plays)}}."""
    frame = pd.DataFrame(events, columns=["user_id", "track_id", "ts"])
    frame["ts"] = pd.to_datetime(frame["ts"])
    frame = frame[(frame.ts >= info.train_start) & (frame.ts < info.test_end)]
    frame["period"] = (frame.ts >= info.test_start).map({False: "train", True: "eval"})
    pairs = frame.groupby(["user_id", "track_id", "period"]).agg(first_ts=("ts", "min"), plays=("ts", "size"))
    pairs = pairs.reset_index()
    train = pairs[pairs.period == "train"]
    evaluation = pairs[pairs.period == "eval"]
    train_pairs = set(zip(train.user_id, train.track_id))
    warm_user = evaluation.user_id.isin(set(train.user_id))
    warm_track = evaluation.track_id.isin(set(train.track_id))
    new = [(u, t) not in train_pairs for u, t in zip(evaluation.user_id, evaluation.track_id)]
    warm = evaluation[warm_user & warm_track & pd.Series(new, index=evaluation.index)]
    cold = evaluation[warm_user & ~warm_track]
    if pd.isna(info.val_end):  # paper_code: sklearn's halves of the sorted warm evaluation users
        from sklearn.model_selection import train_test_split

        val_users, _ = train_test_split(sorted(warm.user_id.unique()), test_size=0.5, random_state=42)
        is_val = warm.user_id.isin(set(val_users))
    else:
        is_val = warm.first_ts < info.val_end

    def rows(part: pd.DataFrame) -> set[tuple]:
        return {(r.user_id, r.track_id, r.first_ts, r.plays) for r in part.itertuples()}

    return {"train": rows(train), "val": rows(warm[is_val]), "test": rows(warm[~is_val]), "test_cold": rows(cold)}


def actual_pairs(rows: pd.DataFrame) -> dict[str, set[tuple]]:
    return {split: {(r.user_id, r.track_id, r.first_ts, r.plays) for r in part.itertuples()}
            for split, part in rows.groupby("split", observed=True)}


@pytest.fixture(scope="module", params=CASES, ids=["-".join(c) for c in CASES])
def cold_lake(request, tmp_path_factory) -> tuple[Path, dg.ExecuteInProcessResult, str]:
    layout, preset = request.param
    root = build_lake(tmp_path_factory.mktemp("cold") / "lake", layout, preset)
    return root, ingest(root), preset


def test_test_cold_pairs_are_the_expected_set(cold_lake):
    root, result, _ = cold_lake
    rows = interactions(root)
    expected = expected_pairs(LISTENS, split_info(root))
    assert actual_pairs(rows) == expected
    # the hand count: u1/c1 (2 plays, first 02-21), u2/c1, u3/c2, u7/c2, u4/c3, u3/c3; never u9
    cold = rows[rows.split == "test_cold"]
    assert sorted(zip(cold.user_id, cold.track_id)) == [("u1", "c1"), ("u2", "c1"), ("u3", "c2"), ("u3", "c3"),
                                                         ("u4", "c3"), ("u7", "c2")]
    u1_c1 = cold[(cold.user_id == "u1") & (cold.track_id == "c1")].iloc[0]
    assert u1_c1.plays == 2 and u1_c1.first_ts == pd.Timestamp("2020-02-21 10:00:00")
    # sort order: train, val, test, test_cold
    order = rows.split.drop_duplicates().tolist()
    assert order == ["train", "val", "test", "test_cold"]


def test_test_cold_tracks_are_cold_and_users_warm(cold_lake):
    root, _, _ = cold_lake
    rows = interactions(root)
    train = rows[rows.split == "train"]
    cold = rows[rows.split == "test_cold"]
    assert not set(cold.track_id) & set(train.track_id), "no test_cold track has train plays"
    assert set(cold.user_id) <= set(train.user_id), "every test_cold user has train plays"
    assert set(cold.track_id) <= COLD
    info = split_info(root)
    assert ((cold.first_ts >= info.test_start) & (cold.first_ts < info.test_end)).all()
    if not pd.isna(info.val_end):  # guide: test_cold spans the whole window, both sides of val_end
        assert (cold.first_ts < info.val_end).any() and (cold.first_ts >= info.val_end).any()
    # the warm splits hold no cold track
    assert not set(rows[rows.split.isin(["val", "test"])].track_id) & COLD


def test_metadata_reports_test_cold_counts(cold_lake):
    _, result, _ = cold_lake
    meta = materialization(result, "interactions").metadata
    assert (meta["test_cold_pairs"].value, meta["test_cold_users"].value, meta["cold_tracks"].value) == (6, 5, 5)
    filters = meta["filters"].value
    assert (filters["test_cold_pairs"], filters["test_cold_users"], filters["cold_tracks"]) == (6, 5, 5)
    per_split = meta["per_split"].value.splitlines()
    assert [line.split("|")[1].strip() for line in per_split[2:]] == ["train", "val", "test", "test_cold"]
    assert per_split[-1].split("|")[2].strip() == "6"
    n_rows = len(interactions(cold_lake[0]))
    assert meta["dagster/row_count"].value == n_rows


def test_warm_splits_do_not_depend_on_cold_tracks(cold_lake, tmp_path):
    root, _, preset = cold_lake
    layout = "onion" if (root / "raw" / "userid_trackid_timestamp.tsv").exists() else "own"
    plain = build_lake(tmp_path / "plain", layout, preset, with_cold=False)
    ingest(plain)
    with_cold, without = interactions(root), interactions(plain)
    assert set(without.split) == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        pd.testing.assert_frame_equal(with_cold[with_cold.split == split].reset_index(drop=True),
                                      without[without.split == split].reset_index(drop=True))
    windows = ["train_start", "test_start", "test_end", "val_end"]
    pd.testing.assert_series_equal(split_info(root)[windows], split_info(plain)[windows])


def test_check_passes_on_the_output(cold_lake):
    _, result, _ = cold_lake
    evaluations = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}
    assert evaluations["interactions"].passed


def _tampered(root: Path, tmp_path: Path, change) -> quality.QualityResult:
    from audiorec_assets.data.ingest import read_windows

    rows = interactions(root)
    change(rows)
    path = tmp_path / "tampered.parquet"
    rows.to_parquet(path)
    windows = read_windows(LakePaths(root).table_dir("split_info") / "all.parquet")
    return quality.check_interactions(quality.interactions_flags(duckdb.connect(), path, windows))


def _first_cold(rows: pd.DataFrame) -> int:
    return int(rows.index[(rows.split == "test_cold") & (rows.user_id == "u7")][0])


def test_check_fails_on_a_test_cold_track_with_train_plays(cold_lake, tmp_path):
    root, _, _ = cold_lake

    def warm_track(rows):  # u7 played only w1 in train: w2 is warm but new to u7
        rows.loc[_first_cold(rows), "track_id"] = "w2"

    result = _tampered(root, tmp_path, warm_track)
    assert not result.success
    assert {f["column"] for f in result.failures} == {"cold_track_in_train"}
    failure = result.failures[0]
    assert failure["detail"]["examples"] == [{"user_id": "u7", "track_id": "w2", "split": "test_cold"}]


def test_check_fails_on_a_cold_user_or_a_date_outside_the_window(cold_lake, tmp_path):
    root, _, _ = cold_lake

    def cold_user(rows):
        rows.loc[_first_cold(rows), "user_id"] = "u9"

    def outside(rows):
        rows.loc[_first_cold(rows), "first_ts"] = pd.Timestamp("2020-01-15 10:00:00")

    def unknown_split(rows):
        rows.loc[_first_cold(rows), "split"] = "val_cold_typo"

    assert {f["column"] for f in _tampered(root, tmp_path, cold_user).failures} == {"user_in_train"}
    assert {f["column"] for f in _tampered(root, tmp_path, outside).failures} == {"in_window"}
    assert "split" in {f["column"] for f in _tampered(root, tmp_path, unknown_split).failures}


def test_check_fails_in_dagster_on_a_tampered_split_and_nothing_is_published(lake, monkeypatch):
    from audiorec_assets.data import splits

    build_lake(lake, "onion", "guide")
    ingest(lake)
    files = {t: LakePaths(lake).table_dir(t) / "all.parquet" for t in INGEST_TABLES}
    before = {t: f.read_bytes() for t, f in files.items()}
    real_split = splits.make_split

    def tampered_split(con, listens, catalogue, windows, settings, target, **kwargs):
        report = real_split(con, listens, catalogue, windows, settings, target, **kwargs)
        rows = pd.read_parquet(target)
        rows.loc[_first_cold(rows), "track_id"] = "w2"  # a test_cold pair on a track with train plays
        rows.to_parquet(target)
        return report

    monkeypatch.setattr(splits, "make_split", tampered_split)
    defs = build_definitions(lake)
    result = dg.materialize(list(defs.assets), selection=dg.AssetSelection.groups("ingest"),
                            resources=defs.resources, raise_on_error=False)
    assert not result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.asset_key.path[-1] == "interactions" and not evaluation.passed
    assert [f["column"] for f in evaluation.metadata["failures"].value] == ["cold_track_in_train"]
    assert {t: f.read_bytes() for t, f in files.items()} == before, "the previous tables stay, byte for byte"
