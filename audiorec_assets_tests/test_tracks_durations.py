"""The tracks table takes durations the tracks check remembered (``LakePaths.audio_verdicts``) and reads the
header only of a new or changed file; the table is the one reading every header gives."""

import os
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from audiorec_assets.data import audio_verdicts, quality, tracks
from audiorec_assets.data.sources import Layout, RawSource
from audiorec_assets.settings import LakePaths
from audiorec_assets_tests.helpers import write_own, write_tone

LISTENS = [("u1", "a", "2019-03-01 10:00:00"), ("u1", "b", "2019-06-01 10:00:00"),
           ("u2", "c", "2019-08-01 00:00:00"), ("u2", "bad", "2019-08-02 00:00:00")]


@pytest.fixture
def small_lake(tmp_path):
    raw = tmp_path / "lake" / "raw"
    log = write_own(raw, LISTENS)
    (raw / "audio" / "bad.flac").write_text("not audio\n" * 30)  # unreadable: NaN duration, remembered as such
    paths = LakePaths(tmp_path / "lake")
    listens = tmp_path / "listens.parquet"
    pd.DataFrame(LISTENS, columns=["user_id", "track_id", "timestamp"]).to_parquet(listens)
    return paths, RawSource(Layout.OWN, log, raw / "audio", raw / "tracks.csv"), listens


@pytest.fixture
def header_reads(monkeypatch):
    read = []

    def counting(path):
        read.append(Path(path).name)
        return quality.duration_or_nan(path)

    monkeypatch.setattr(tracks, "duration_or_nan", counting)
    return read


def _build(paths, source, listens):
    with duckdb.connect() as con:
        table, _ = tracks.build_tracks(con, source, listens, paths)
    return table


def _check(paths, table):
    """What the blocking tracks check does to the cache (defs/checks.py)."""
    catalogue = table.copy()
    catalogue["audio_path"] = [str(paths.resolve(p)) for p in catalogue["audio_path"]]
    quality.tracks_flags(catalogue, verdicts=paths.audio_verdicts)


def test_unchanged_files_take_their_remembered_duration(small_lake, header_reads):
    paths, source, listens = small_lake
    # built before the check ever ran: no cache yet, every header is read
    first = _build(paths, source, listens)
    assert sorted(header_reads) == ["a.flac", "b.flac", "bad.flac", "c.flac"]
    assert not paths.audio_verdicts.exists(), "the tracks table never writes the check's cache"
    assert first["duration_s"].isna().tolist() == [False, False, True, False]
    _check(paths, first)
    header_reads.clear()
    second = _build(paths, source, listens)
    assert header_reads == []
    pd.testing.assert_frame_equal(first, second)

    # a changed file is read again and gets its new duration; the rest stays remembered
    write_tone(paths.raw / "audio" / "c.flac", seconds=2.5, freq=500.0)
    third = _build(paths, source, listens)
    assert header_reads == ["c.flac"]
    assert third.loc[third["track_id"] == "c", "duration_s"].item() == pytest.approx(2.5)
    header_reads.clear()
    paths.audio_verdicts.unlink()
    pd.testing.assert_frame_equal(third, _build(paths, source, listens))  # the same as reading every header
    assert len(header_reads) == 4


def test_a_damaged_or_older_cache_means_reading_the_headers(small_lake, header_reads):
    paths, source, listens = small_lake
    first = _build(paths, source, listens)
    _check(paths, first)
    header_reads.clear()
    cache = pd.read_parquet(paths.audio_verdicts)
    cache.assign(version=audio_verdicts.PROBE_VERSION - 1).to_parquet(paths.audio_verdicts)
    pd.testing.assert_frame_equal(first, _build(paths, source, listens))
    assert len(header_reads) == 4
    header_reads.clear()
    paths.audio_verdicts.write_bytes(b"not parquet")
    pd.testing.assert_frame_equal(first, _build(paths, source, listens))
    assert len(header_reads) == 4


def test_the_keys_are_the_ones_the_check_writes(small_lake):
    paths, source, listens = small_lake
    _check(paths, _build(paths, source, listens))
    table = _build(paths, source, listens)
    keys = {key[0] for key in audio_verdicts.read_verdicts(paths.audio_verdicts)}
    assert keys == {str(paths.resolve(p)) for p in table["audio_path"]}
    assert keys == {os.path.join(str(paths.root), p) for p in table["audio_path"]}
