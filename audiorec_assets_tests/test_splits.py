"""The split on hand-made logs: boundaries, replays, cold users/tracks, both presets."""

from datetime import datetime

import duckdb
import pandas as pd
import pytest

from audiorec_assets.data.sources import Layout
from audiorec_assets.data.splits import (SplitError, make_split, paper_code_user_split, pandas_user_order,
                                         resolve_windows)
from audiorec_assets.settings import ExperimentSettings


def run_split(tmp_path, events, preset="guide", catalogue=None, layout=Layout.ONION, **split):
    listens = tmp_path / "listens.parquet"
    frame = pd.DataFrame(events, columns=["user_id", "track_id", "ts"])
    frame["ts"] = pd.to_datetime(frame["ts"], format="ISO8601")
    frame.to_parquet(listens)
    settings = ExperimentSettings(preset=preset, split=split)
    con = duckdb.connect()
    windows = resolve_windows(con, listens, layout, settings)
    catalogue = catalogue or sorted(frame["track_id"].unique())
    report = make_split(con, listens, catalogue, windows, settings, tmp_path / "interactions.parquet")
    rows = pd.read_parquet(tmp_path / "interactions.parquet")
    return rows, report, windows


def as_set(rows):
    return {(r.user_id, r.track_id, r.split, r.plays) for r in rows.itertuples()}


def test_boundaries_are_half_open(tmp_path):
    events = [
        ("u1", "early", "2019-02-19 23:59:59"),  # before train_start: dropped
        ("u1", "a", "2019-02-20 00:00:00"),  # first instant of train
        ("u1", "b", "2020-02-19 23:59:59"),  # last instant of train
        ("u2", "a", "2020-01-01 00:00:00"),
        ("u2", "b", "2020-02-20 00:00:00"),  # first instant of the evaluation period
    ]
    rows, report, windows = run_split(tmp_path, events)
    assert windows.train_start == datetime(2019, 2, 20) and windows.test_start == datetime(2020, 2, 20)
    assert as_set(rows) == {("u1", "a", "train", 1), ("u1", "b", "train", 1), ("u2", "a", "train", 1),
                            ("u2", "b", "val", 1)}
    assert report.events_in_window == 4


def test_replays_collapse_to_first_listen_and_count_plays(tmp_path):
    events = [
        ("u1", "a", "2019-05-01 10:00:00"), ("u1", "a", "2019-03-01 10:00:00"), ("u1", "a", "2019-04-01 10:00:00"),
        ("u1", "a", "2020-03-01 10:00:00"),  # replay in the test period: not new to the user, dropped
        ("u2", "a", "2019-06-01 00:00:00"), ("u2", "b", "2019-06-02 00:00:00"),
        ("u1", "b", "2020-03-02 00:00:00"), ("u1", "b", "2020-03-03 00:00:00"),
    ]
    rows, report, _ = run_split(tmp_path, events)
    first = rows[(rows.user_id == "u1") & (rows.track_id == "a")]
    assert len(first) == 1 and first.iloc[0]["plays"] == 3
    assert first.iloc[0]["first_ts"] == pd.Timestamp("2019-03-01 10:00:00")
    eval_b = rows[(rows.user_id == "u1") & (rows.track_id == "b")]
    assert len(eval_b) == 1 and eval_b.iloc[0]["plays"] == 2 and eval_b.iloc[0]["split"] in ("val", "test")
    assert report.dropped_not_new == 1


def test_users_and_tracks_only_in_evaluation_are_removed(tmp_path):
    events = [
        ("u1", "a", "2019-03-01"), ("u1", "b", "2019-03-02"), ("u2", "a", "2019-03-03"),
        ("u3", "a", "2020-03-01"),  # cold user
        ("u2", "new", "2020-03-01"),  # cold track
        ("u2", "b", "2020-03-02"),  # kept
    ]
    rows, report, _ = run_split(tmp_path, events)
    evaluation = rows[rows.split.isin(["val", "test"])]
    assert set(zip(evaluation.user_id, evaluation.track_id)) == {("u2", "b")}
    assert (report.dropped_cold_user, report.dropped_cold_track) == (1, 1)
    # the warm user's pair on the cold track goes to test_cold; the cold user's pair nowhere
    cold = rows[rows.split == "test_cold"]
    assert set(zip(cold.user_id, cold.track_id)) == {("u2", "new")}
    assert "u3" not in set(rows.user_id)
    assert (report.test_cold_pairs, report.test_cold_users, report.cold_tracks) == (1, 1, 1)


def test_guide_halves_the_month_by_time_and_paper_code_by_users(tmp_path):
    users = [f"u{i:02d}" for i in range(20)]
    events = [(u, t, "2019-06-01") for u in users for t in ("a", "b")]
    events += [("u00", "early", "2019-07-01"), ("u00", "late", "2019-07-01")]  # makes both tracks warm
    events += [(u, "early", "2020-02-25") for u in users[1:]]  # first half of the month
    events += [(u, "late", "2020-03-18") for u in users[1:]]  # second half
    events += [("u00", "a", "2020-03-20 00:00:00")]  # sets the data end
    rows, _, windows = run_split(tmp_path, events, preset="guide")
    assert windows.val_end == windows.test_start + (windows.test_end - windows.test_start) / 2
    evaluation = rows[rows.split != "train"]
    assert set(evaluation[evaluation.track_id == "early"].split) == {"val"}
    assert set(evaluation[evaluation.track_id == "late"].split) == {"test"}

    rows_pc, _, windows_pc = run_split(tmp_path, events, preset="paper_code")
    assert windows_pc.val_end is None
    evaluation_pc = rows_pc[rows_pc.split != "train"]
    assert (evaluation_pc.groupby("user_id")["split"].nunique() == 1).all(), "whole users go to val or test"
    n_users = evaluation_pc.user_id.nunique()
    assert n_users == 19
    # train_test_split(test_size=0.5): test gets ceil(n / 2) users, val the rest
    assert evaluation_pc.drop_duplicates("user_id")["split"].eq("val").sum() == n_users // 2
    again, _, _ = run_split(tmp_path, events, preset="paper_code")
    pd.testing.assert_frame_equal(rows_pc, again)


def test_settings_dates_override_and_bad_order_names_the_settings(tmp_path):
    events = [("u1", "a", "2021-01-01"), ("u1", "b", "2021-06-01"), ("u1", "c", "2021-07-01")]
    rows, _, windows = run_split(tmp_path, events, layout=Layout.OWN, train_start="2020-12-01",
                                 test_start="2021-06-15", test_end="2021-08-01")
    assert windows.test_end == datetime(2021, 8, 1)
    assert set(rows[rows.split == "train"].track_id) == {"a", "b"}
    with pytest.raises(SplitError, match="split.train_start"):
        run_split(tmp_path, events, layout=Layout.OWN, train_start="2021-07-01", test_start="2021-06-15")


def test_own_layout_derives_dates_from_the_data(tmp_path):
    events = [("u1", "a", "2020-01-01"), ("u1", "b", "2021-12-31 12:00:00")]
    _, _, windows = run_split(tmp_path, events, layout=Layout.OWN)
    assert windows.test_start == datetime(2021, 12, 1)
    assert windows.train_start == datetime(2020, 12, 1)


def test_dates_with_an_offset_in_settings_are_read_as_utc(tmp_path):
    events = [("u1", "a", "2021-01-01"), ("u1", "b", "2021-06-01"), ("u1", "c", "2021-07-01")]
    _, _, windows = run_split(tmp_path, events, layout=Layout.OWN, train_start="2020-12-01T00:00:00Z",
                              test_start="2021-06-15T02:00:00+02:00")
    assert windows.train_start == datetime(2020, 12, 1) and windows.test_start == datetime(2021, 6, 15)


def _sklearn_split(users, val_fraction=0.5, seed=42):
    from sklearn.model_selection import train_test_split

    val, test = train_test_split(users, test_size=1 - val_fraction, random_state=seed)
    return list(val), list(test)


@pytest.mark.parametrize("n", [30, 31, 7])
@pytest.mark.parametrize("kind", ["int", "str"])
def test_paper_code_user_split_equals_sklearn_train_test_split(n, kind):
    ids = [str(i * 7 - 40) for i in range(n)] if kind == "int" else [f"user_{i * 13 % 97}" for i in range(n)]
    ordered = pandas_user_order(ids)
    # the authors' users: te.user_id.unique() after groupby, i.e. sorted parsed ids
    expected_order = sorted(int(u) for u in ids) if kind == "int" else sorted(ids)
    assert ordered == [str(u) for u in expected_order]
    for val_fraction, seed in ((0.5, 42), (0.3, 7)):
        val, test = paper_code_user_split(ordered, val_fraction, seed)
        sk_val, sk_test = _sklearn_split(expected_order, val_fraction, seed)
        assert val == [str(u) for u in sk_val] and test == [str(u) for u in sk_test]


def test_paper_code_user_order_numeric_vs_string_matters():
    ids = ["2", "10", "100", "-3", "7"]
    assert pandas_user_order(ids) == ["-3", "2", "7", "10", "100"]
    assert pandas_user_order(ids + ["x"]) == sorted(ids + ["x"])
    users = [str(u) for u in range(1, 200, 3)]  # 1, 4, ..., 199: string order differs from numeric
    numeric, as_strings = paper_code_user_split(pandas_user_order(users), 0.5, 42), paper_code_user_split(
        sorted(users), 0.5, 42)
    assert set(numeric[0]) != set(as_strings[0])
    assert numeric == tuple(list(map(str, half)) for half in _sklearn_split([int(u) for u in users]))


def test_paper_code_split_in_make_split_matches_sklearn(tmp_path):
    """End to end: the val/test users of the split are train_test_split's halves of the warm evaluation users."""
    from sklearn.model_selection import train_test_split

    users = [str(u) for u in (2, 10, 100, 3, 30, 300, 5, 55, 555, 1, 11, 111, 9, 99, 999)]  # odd n
    events = [(u, t, "2019-06-01") for u in users for t in ("a", "b")]
    events += [(u, "c", "2020-03-01") for u in users]
    events += [("2", "c", "2019-07-01"), ("3", "d", "2020-03-02")]  # 2 replays c (not new); d is cold
    rows, report, _ = run_split(tmp_path, events, preset="paper_code")
    evaluation_users = sorted(int(u) for u in users if u != "2")
    sk_val, sk_test = train_test_split(evaluation_users, test_size=0.5, random_state=42)
    by_split = rows.drop_duplicates(["user_id", "split"]).groupby("split")["user_id"].apply(set)
    assert by_split["val"] == {str(u) for u in sk_val}
    assert by_split["test"] == {str(u) for u in sk_test}
    assert (report.val_users, report.test_users) == (7, 7)
    assert by_split["test_cold"] == {"3"}


def test_paper_code_with_too_few_users_names_the_setting(tmp_path):
    events = [("u1", "a", "2019-06-01"), ("u1", "b", "2019-06-01"), ("u2", "a", "2019-06-01"),
              ("u2", "b", "2020-03-01")]
    with pytest.raises(SplitError, match="split.val_fraction"):
        run_split(tmp_path, events, preset="paper_code")
