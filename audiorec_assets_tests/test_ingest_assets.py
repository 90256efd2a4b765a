"""Materialize the ingest on small lakes: three layouts, blocking checks, bad input."""

import dagster as dg
import duckdb
import pandas as pd
import pytest

from audiorec_assets.defs import ingest
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.settings import LakePaths
from audiorec_assets_tests.helpers import materialization, write_onion, write_own

INGEST = [ingest.ingest]  # one op: the four tables and their two blocking checks

LISTENS = [
    ("u1", "a", "2019-03-01 10:00:00"), ("u1", "b", "2019-06-01 10:00:00"), ("u1", "a", "2019-07-01 10:00:00"),
    ("u2", "b", "2019-05-01 00:00:00"), ("u2", "c", "2019-08-01 00:00:00"),
    ("u1", "c", "2020-02-21 10:00:00"), ("u2", "a", "2020-03-16 00:00:00"),
]


def materialize(lake, overrides: str = "", raise_on_error: bool = True):
    """The ingest with run overrides typed as in the launchpad (YAML here for brevity)."""
    import yaml

    from audiorec_assets.defs.resources import SettingsOverrides

    typed = SettingsOverrides(**(yaml.safe_load(overrides) or {}))
    return dg.materialize(INGEST, resources={"lake": LakeResource(root=str(lake), overrides=typed)},
                          raise_on_error=raise_on_error)


def sql(lake, query: str) -> pd.DataFrame:
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(query).df()


@pytest.mark.parametrize("layout", ["onion", "onion_bz2", "csv", "tsv", "parquet"])
def test_every_layout_materializes_tables_and_passes_checks(lake, layout):
    if layout.startswith("onion"):
        write_onion(lake / "raw", LISTENS, bz2=layout.endswith("bz2"))
    else:
        write_own(lake / "raw", LISTENS, fmt=layout)
    result = materialize(lake)
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    per_split = materialization(result, "interactions").metadata["per_split"].value
    header, _, train_row = per_split.splitlines()[:3]
    assert "tracks" in header and "users" in header and train_row.split("|")[1].strip() == "train"
    tracks = sql(lake, "SELECT * FROM audiorec.tracks ORDER BY item_idx")
    assert tracks["track_id"].tolist() == ["a", "b", "c"]
    assert tracks["item_idx"].tolist() == [0, 1, 2]
    assert (tracks["duration_s"] > 0).all()
    rows = sql(lake, "SELECT user_id, track_id, plays, split FROM audiorec.interactions ORDER BY split, user_id, track_id")
    # u1 replays "a" (2 plays); test period = the last 30 days before the last event, halved by time
    assert list(rows.itertuples(index=False, name=None)) == [
        ("u2", "a", 1, "test"),
        ("u1", "a", 2, "train"), ("u1", "b", 1, "train"), ("u2", "b", 1, "train"), ("u2", "c", 1, "train"),
        ("u1", "c", 1, "val"),
    ]
    if layout in ("csv", "tsv", "parquet"):
        assert "artist" in tracks.columns


def test_failed_quality_check_blocks_downstream(lake):
    write_own(lake / "raw", LISTENS)
    # audio files that exist but do not decode: the tracks check must name both and block interactions
    (lake / "raw" / "audio" / "b.flac").write_bytes(b"not audio at all")
    (lake / "raw" / "audio" / "c.flac").write_bytes(b"")
    result = materialize(lake, raise_on_error=False)
    evaluations = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["tracks"].passed
    failures = evaluations["tracks"].metadata["failures"].value
    decodes = next(f for f in failures if f["column"] == "audio_decodes")
    assert [row["track_id"] for row in decodes["detail"]["examples"]] == ["b", "c"]
    assert any(f["column"] == "duration_s" for f in failures)
    assert not result.get_asset_materialization_events(), "a failed blocking check publishes nothing"


def test_missing_audio_fails_by_default_and_drop_reports(lake):
    write_own(lake / "raw", LISTENS + [("u1", "ghost", "2019-09-01 00:00:00")], tracks=["a", "b", "c"])
    with pytest.raises(Exception, match="ghost"):
        materialize(lake)
    result = materialize(lake, overrides="missing_audio: drop")
    assert result.success
    meta = materialization(result, "interactions").metadata
    assert meta["dropped_tracks_without_audio"].value == 1
    assert "ghost" not in set(sql(lake, "SELECT track_id FROM audiorec.interactions")["track_id"])


@pytest.mark.parametrize(
    "content, message",
    [
        ("user,track_id,timestamp\nu1,a,2019-03-01 10:00:00\n", r"missing column\(s\) \['user_id'\]"),
        ("user_id,track_id,timestamp\nu1,a,2019-03-01 10:00:00\nu1,b,yesterday\n", r"listens.csv.*line 3.*'yesterday'"),
        ("user_id,track_id,timestamp\n", "no events"),
        ("user_id,track_id,timestamp\nu1,,2019-03-01 10:00:00\n", "line 2: empty track_id"),
    ],
)
def test_bad_logs_name_file_and_line_and_keep_previous_tables(lake, content, message):
    write_own(lake / "raw", LISTENS)
    assert materialize(lake).success
    before = sql(lake, "SELECT count(*) AS n FROM audiorec.listens")["n"][0]
    (lake / "raw" / "listens.csv").write_text(content)
    with pytest.raises(Exception, match=message):
        materialize(lake)
    # the earlier, good tables are intact
    assert sql(lake, "SELECT count(*) AS n FROM audiorec.listens")["n"][0] == before
    assert [p.name for p in LakePaths(lake).table_dir("listens").iterdir()] == ["all.parquet"]
    assert len(list((lake / "tables" / ".ingest").iterdir())) == 1, "the one published set, nothing beside it"


def test_interactions_check_catches_leaks_cold_users_and_wrong_windows(tmp_path):
    from datetime import datetime

    from audiorec_assets.data.quality import check_interactions, interactions_flags
    from audiorec_assets.data.splits import SplitWindows

    rows = pd.DataFrame({
        "user_id": ["u1", "u1", "u1", "u2", "u1"],
        "track_id": ["a", "b", "a", "b", "c"],
        "first_ts": pd.to_datetime(["2019-03-01", "2019-04-01", "2020-02-25", "2020-03-10", "2020-03-15"]),
        "plays": pd.array([1, 1, 1, 1, 1], dtype="int32"),
        "split": ["train", "train", "val", "test", "val"],  # u1/a leaks; u2 is cold; c is cold; c after val_end
    })
    rows.to_parquet(tmp_path / "i.parquet")
    windows = SplitWindows(datetime(2019, 2, 20), datetime(2020, 2, 20), datetime(2020, 3, 20), datetime(2020, 3, 5))
    result = check_interactions(interactions_flags(duckdb.connect(), tmp_path / "i.parquet", windows))
    failed = {f["column"] for f in result.failures}
    assert failed == {"eval_pair_in_train", "user_in_train", "track_in_train", "in_window"}
    window = next(f for f in result.failures if f["column"] == "in_window")
    assert window["detail"]["examples"] == [{"user_id": "u1", "track_id": "c", "split": "val"}]


def test_duplicate_events_are_reported_and_drop_removes_their_plays(lake):
    write_own(lake / "raw", LISTENS + [LISTENS[0], LISTENS[0]])
    kept = materialize(lake)
    meta = materialization(kept, "listens").metadata
    assert (meta["duplicate_events"].value, meta["duplicates"].value, meta["dagster/row_count"].value) == (2, "keep", 9)
    plays = "SELECT plays FROM audiorec.interactions WHERE user_id = 'u1' AND track_id = 'a'"
    assert sql(lake, plays)["plays"].tolist() == [4]
    dropped = materialize(lake, overrides="duplicates: drop")
    meta = materialization(dropped, "listens").metadata
    assert (meta["duplicate_events"].value, meta["duplicates"].value, meta["dagster/row_count"].value) == (2, "drop", 7)
    assert sql(lake, plays)["plays"].tolist() == [2]


def test_audio_oddities_fail_or_warn_by_file_name(lake):
    import numpy as np
    import soundfile as sf

    from audiorec_assets_tests.helpers import write_tone

    tracks = ["a", "b", "c", "d", "e", "f"]
    write_own(lake / "raw", LISTENS, tracks=tracks)
    audio = lake / "raw" / "audio"
    for name in ("b", "c", "d", "e", "f"):
        (audio / f"{name}.flac").unlink()
    full = write_tone(audio / "b.wav", seconds=2.0).read_bytes()
    (audio / "b.wav").write_bytes(full[: len(full) // 2])  # truncated
    samples = np.full(16000, 0.1, dtype=np.float32)
    samples[9000] = np.nan
    sf.write(str(audio / "c.wav"), samples, 8000, subtype="FLOAT")  # a NaN sample
    write_tone(audio / "d.wav", seconds=0.001)  # 1 ms
    sf.write(str(audio / "e.wav"), np.zeros(16000, dtype=np.float32), 8000)  # silent
    (audio / "f.mp3").write_text("not audio, only a renamed text file\n" * 20)
    result = materialize(lake, raise_on_error=False)
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.asset_key.path[-1] == "tracks")
    assert not evaluation.passed
    failures = {f["column"]: f["detail"]["examples"] for f in evaluation.metadata["failures"].value
                if "examples" in f["detail"]}
    assert [e["track_id"] for e in failures["audio_truncated_ok"]] == ["b"]
    assert [e["track_id"] for e in failures["audio_nan_samples_ok"]] == ["c"]
    assert "b.wav: truncated" in failures["audio_truncated_ok"][0]["audio_problem"]
    unreadable = failures["audio_decodes"]
    assert [e["track_id"] for e in unreadable] == ["f"] and "f.mp3: not an audio file" in unreadable[0]["audio_problem"]
    warnings = {w["kind"]: w for w in evaluation.metadata["warnings"].value}
    assert [e["track_id"] for e in warnings["short"]["examples"]] == ["b", "d"]
    assert [e["track_id"] for e in warnings["silent"]["examples"]] == ["e"]
    assert "short" not in failures and "audio_short_ok" not in failures
    # the setting makes a warning a failure, and a failure a warning
    result = materialize(lake, overrides="audio_checks: {short: fail, truncated: warn}", raise_on_error=False)
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.asset_key.path[-1] == "tracks")
    columns = {f["column"] for f in evaluation.metadata["failures"].value}
    assert "audio_short_ok" in columns and "audio_truncated_ok" not in columns


def test_a_lake_whose_path_holds_quotes_ingests(tmp_path):
    """File paths are the one thing audiorec puts into SQL text (DuckDB's CSV sniffer takes no parameters): a
    quote in the lake's path must neither break the SQL nor change what it reads."""
    from audiorec_assets_tests.helpers import ingest_lake

    from audiorec_assets_tests.test_pipeline import small_log

    lake = tmp_path / "o'brien's \"lake\""
    listens = small_log()
    write_own(lake / "raw", listens)
    ingest_lake(lake)
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM audiorec.listens").fetchone()[0] == len(listens)
