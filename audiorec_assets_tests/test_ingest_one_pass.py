"""The ingest's cheap paths (issue 19): one read of the log, checks on DuckDB without the whole table in pandas,
audio probed (not decoded) and probed once per file version, undecodable bodies named by the encoder."""

import os
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audiorec_assets.data import audio_verdicts, quality
from audiorec_assets.data.audio import audio_oddities, probe_audio, probe_audio_and_duration
from audiorec_assets.data.sources import Layout, RawSource, read_listens
from audiorec_assets.data.splits import SplitWindows, make_split
from audiorec_assets.settings import LakePaths
from audiorec_assets.warehouse import scratch_connection
from audiorec_assets_tests.helpers import write_tone


class RecordingConnection:
    """A DuckDB connection that records the SQL it is given."""

    def __init__(self, con):
        self.con, self.statements = con, []

    def sql(self, query, *args, **kwargs):
        self.statements.append(query)
        return self.con.sql(query, *args, **kwargs)

    def execute(self, query, *args, **kwargs):
        self.statements.append(query)
        return self.con.execute(query, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.con, name)


def _log_scans(statements: list[str]) -> list[str]:
    """Statements that read the log itself (directly or through the ``raw_listens`` view)."""
    return [s for s in statements if ("read_csv(" in s or "raw_listens" in s)
            and not s.lstrip().startswith(("DESCRIBE", "SELECT column_name", "CREATE OR REPLACE TEMP VIEW"))]


LOG_ROWS = [  # (user, track, timestamp) with repeats, one differing only by spaces around the ids
    ("u1", "t1", "2019-03-01 12:00:00"), ("u1", "t2", "2019-03-01 12:00:00"), ("u1", "t1", "2019-03-01 12:00:00"),
    ("u2", "t1", "2019-03-01 12:00:00"), (" u1", "t1 ", "2019-03-01 12:00:00"), ("u1", "t1", "2019-03-01 12:00:01"),
    ("u3", "t9", "2019-07-04 08:30:00"), ("u3", "t9", "2019-07-04 08:30:00"), ("u2", "t1", "2019-03-02 12:00:00"),
]


@pytest.mark.parametrize("policy", ["keep", "drop"])
def test_duplicates_are_counted_in_the_one_read_of_the_log(tmp_path, policy):
    raw = tmp_path / "raw"
    raw.mkdir()
    log = raw / "listens.csv"
    log.write_text("user_id,track_id,timestamp\n" + "".join(f"{u},{t},{ts}\n" for u, t, ts in LOG_ROWS))
    # an independent count: pandas on the trimmed rows
    expected = pd.DataFrame(LOG_ROWS, columns=["user_id", "track_id", "timestamp"]).apply(lambda c: c.str.strip())
    repeated = expected.duplicated()
    with scratch_connection(LakePaths(tmp_path)) as con:
        recording = RecordingConnection(con)
        report = read_listens(recording, RawSource(Layout.OWN, log, raw / "audio"), tmp_path / "l.parquet",
                              tmp_path / "tmp", duplicates=policy)
    assert len(_log_scans(recording.statements)) == 1, _log_scans(recording.statements)
    assert report.duplicates == int(repeated.sum()) == 3
    assert report.events == (len(LOG_ROWS) if policy == "keep" else int((~repeated).sum()))
    assert (report.users, report.tracks) == (expected["user_id"].nunique(), expected["track_id"].nunique())
    assert (report.first_ts, report.last_ts) == (datetime(2019, 3, 1, 12), datetime(2019, 7, 4, 8, 30))
    written = pd.read_parquet(tmp_path / "l.parquet")
    kept = expected if policy == "keep" else expected[~repeated]
    assert written[["user_id", "track_id"]].values.tolist() == kept[["user_id", "track_id"]].values.tolist()


def test_a_bad_row_is_still_named_by_line_after_the_one_read(tmp_path):
    from audiorec_assets.data.sources import SourceError

    raw = tmp_path / "raw"
    raw.mkdir()
    log = raw / "listens.csv"
    log.write_text("user_id,track_id,timestamp\nu1,t1,2019-03-01 12:00:00\nu1,t2,2019-03-01 12:00:00\"\n"
                   "u2, ,2019-03-01 12:00:00\n")
    with scratch_connection(LakePaths(tmp_path)) as con, pytest.raises(SourceError) as raised:
        read_listens(con, RawSource(Layout.OWN, log, raw / "audio"), tmp_path / "l.parquet", tmp_path / "tmp")
    message = str(raised.value)
    assert "2 bad row(s)" in message and "line 3: a double quote in timestamp" in message
    assert "line 4: empty track_id" in message
    assert not (tmp_path / "l.parquet").exists()


def test_the_split_finds_listens_without_audio_in_its_one_pass(tmp_path):
    from audiorec_assets.settings import ExperimentSettings

    events = pd.DataFrame({
        "user_id": ["u1", "u1", "u2", "u2", "u3", "u3", "u1", "u2"],
        "track_id": ["a", "ghost", "ghost", "b", "phantom", "phantom", "b", "a"],
        "ts": pd.to_datetime(["2019-03-01", "2019-03-02", "2019-04-01", "2019-05-01", "2019-01-01", "2019-06-01",
                              "2019-06-20", "2019-06-21"]),
    })
    events.to_parquet(tmp_path / "l.parquet")
    windows = SplitWindows(datetime(2019, 2, 1), datetime(2019, 6, 15), datetime(2019, 7, 1), datetime(2019, 6, 20))
    in_window = events[(events.ts >= windows.train_start) & (events.ts < windows.test_end)]
    without = in_window[~in_window.track_id.isin(["a", "b"])]  # an independent count
    reported = []
    report = make_split(duckdb.connect(), tmp_path / "l.parquet", ["a", "b"], windows, ExperimentSettings(),
                        tmp_path / "i.parquet", missing_audio=lambda tracks, n: reported.append((tracks, n)))
    assert reported == [(sorted(without.track_id.unique()), len(without))] == [(["ghost", "phantom"], 3)]
    rows = pd.read_parquet(tmp_path / "i.parquet")
    assert set(rows.track_id) == {"a", "b"} and report.events_in_window == len(in_window) - len(without)

    def refuse(tracks, n):
        raise RuntimeError(f"no audio for {tracks}")

    with pytest.raises(RuntimeError, match="ghost"):
        make_split(duckdb.connect(), tmp_path / "l.parquet", ["a", "b"], windows, ExperimentSettings(),
                   tmp_path / "refused.parquet", missing_audio=refuse)
    assert not (tmp_path / "refused.parquet").exists()


WINDOWS = SplitWindows(datetime(2019, 2, 20), datetime(2020, 2, 20), datetime(2020, 3, 20), datetime(2020, 3, 5))


def _good_interactions(n_users: int = 40) -> pd.DataFrame:
    rows = []
    for u in range(n_users):
        rows += [(f"u{u}", f"t{u % 7}", "2019-06-01", 2, "train"), (f"u{u}", f"t{(u + 1) % 7}", "2019-07-01", 1, "train")]
        rows.append((f"u{u}", f"t{(u + 3) % 7}", "2020-03-01" if u % 2 else "2020-03-10", 1, "val" if u % 2 else "test"))
    rows.append(("u1", "cold1", "2020-03-12", 1, "test_cold"))
    frame = pd.DataFrame(rows, columns=["user_id", "track_id", "first_ts", "plays", "split"])
    frame["first_ts"] = pd.to_datetime(frame["first_ts"])
    frame["plays"] = frame["plays"].astype("int32")
    return frame


def test_a_good_table_reaches_great_expectations_as_one_row_per_split(tmp_path):
    rows = _good_interactions()
    rows.to_parquet(tmp_path / "i.parquet")
    flags = quality.interactions_flags(duckdb.connect(), tmp_path / "i.parquet", WINDOWS)
    assert flags.attrs["rows_checked"] == len(rows)
    assert sorted(flags["split"]) == ["test", "test_cold", "train", "val"]
    assert quality.check_interactions(flags).success


def test_failing_rows_are_counted_as_on_the_whole_table(tmp_path):
    rows = _good_interactions()
    leaks = [2, 8]  # eval rows whose pair is also a train row
    for i in leaks:
        rows.loc[i, "track_id"] = rows.loc[i - 2, "track_id"]
    outside = [11, 14, 17]  # val/test rows outside their half of the window
    for i in outside:
        rows.loc[i, "first_ts"] = pd.Timestamp("2020-01-01")
    rows = pd.concat([rows, rows.iloc[[20, 21]]], ignore_index=True)  # two repeated train rows
    rows.to_parquet(tmp_path / "i.parquet")
    result = quality.check_interactions(quality.interactions_flags(duckdb.connect(), tmp_path / "i.parquet", WINDOWS))
    failed = {f["column"] if isinstance(f["column"], str) else tuple(f["column"]): f["detail"] for f in result.failures}
    assert failed["eval_pair_in_train"]["unexpected_count"] == len(leaks)
    assert failed["in_window"]["unexpected_count"] == len(outside)
    assert failed[("user_id", "track_id", "split")]["unexpected_count"] == 4  # both copies of each repeated row
    assert failed["in_window"]["examples"][0] == {"user_id": "u3", "track_id": rows.loc[11, "track_id"], "split": "val"}


def _catalogue(paths: list[Path]) -> pd.DataFrame:
    return pd.DataFrame({"track_id": [p.stem for p in paths], "item_idx": range(len(paths)),
                         "audio_path": [str(p) for p in paths], "duration_s": 1.0})


def test_a_broken_header_fails_the_tracks_check_naming_the_file_also_when_remembered(tmp_path):
    audio = tmp_path / "audio"
    paths = [write_tone(audio / "a.wav", seconds=2.0), write_tone(audio / "b.flac", seconds=2.0)]
    data = bytearray(paths[1].read_bytes())
    data[:4] = b"XXXX"  # no fLaC marker: libsndfile cannot read the header
    paths[1].write_bytes(bytes(data))
    verdicts = tmp_path / "lake" / "tmp" / "audio_verdicts.parquet"
    for _ in range(2):  # probed, then remembered
        result = quality.check_tracks(quality.tracks_flags(_catalogue(paths), verdicts=verdicts))
        assert not result.success
        decodes = next(f for f in result.failures if f["column"] == "audio_decodes")
        assert [e["track_id"] for e in decodes["detail"]["examples"]] == ["b"]
        assert "b.flac" in decodes["detail"]["examples"][0]["audio_problem"]
    assert verdicts.exists()


def _corrupt_middle(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    n = len(data)
    data[n // 3: n // 2] = np.random.default_rng(0).integers(0, 256, n // 2 - n // 3, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def test_a_body_that_does_not_decode_is_named_with_its_track_by_the_encoder(tmp_path):
    from audiorec_assets.encoders.base import EncoderError
    from audiorec_assets.encoders.run import encode_catalogue
    from audiorec_assets_tests.test_encode_run import LoudnessEncoder

    good = write_tone(tmp_path / "fine.flac", seconds=3.0, sr=22050)
    bad = _corrupt_middle(write_tone(tmp_path / "mangled.flac", seconds=3.0, sr=22050))
    # header and both ends decode: the check passes it (no full decode) ...
    flags = quality.tracks_flags(_catalogue([good, bad]))
    assert flags["audio_decodes"].all() and quality.check_tracks(flags).success
    # ... and the encoder, which decodes it anyway, names the file and the track
    with pytest.raises(EncoderError, match=r"mangled\.flac: .*\(track 'mangled'\).*encode.on_error: skip"):
        encode_catalogue(LoudnessEncoder(), [good, bad], on_error="fail")


def test_an_unchanged_file_is_probed_once_and_a_changed_one_again(tmp_path, monkeypatch):
    audio = tmp_path / "audio"
    paths = [write_tone(audio / f"t{i}.wav", seconds=1.5, freq=200 + 40 * i) for i in range(3)]
    probed = []

    def counting_probe(path):
        probed.append(Path(path).name)
        return probe_audio_and_duration(path)

    monkeypatch.setattr(quality, "probe_audio_and_duration", counting_probe)
    verdicts = tmp_path / "lake" / "tmp" / "audio_verdicts.parquet"
    first = quality.tracks_flags(_catalogue(paths), verdicts=verdicts)
    assert sorted(probed) == ["t0.wav", "t1.wav", "t2.wav"]
    probed.clear()
    second = quality.tracks_flags(_catalogue(paths), verdicts=verdicts)
    assert probed == []
    pd.testing.assert_frame_equal(first, second)
    stamp = verdicts.stat().st_mtime_ns
    quality.tracks_flags(_catalogue(paths), verdicts=verdicts)
    assert verdicts.stat().st_mtime_ns == stamp, "nothing new: the verdicts file is not rewritten"
    # a new modification time (same size), and new content of another size: both probed again
    info = paths[0].stat()
    os.utime(paths[0], ns=(info.st_atime_ns, info.st_mtime_ns + 5_000_000_000))
    sf.write(str(paths[1]), np.zeros(8000, dtype=np.float32), 8000)  # now silent, and 1 s
    flags = quality.tracks_flags(_catalogue(paths), verdicts=verdicts)
    assert sorted(probed) == ["t0.wav", "t1.wav"]
    assert not flags.loc[1, "audio_silent_ok"] and flags.loc[0, "audio_silent_ok"]
    # a damaged verdicts file is not an error: everything is probed again and the file replaced
    probed.clear()
    verdicts.write_bytes(b"not parquet")
    quality.tracks_flags(_catalogue(paths), verdicts=verdicts)
    assert sorted(probed) == ["t0.wav", "t1.wav", "t2.wav"]
    assert len(audio_verdicts.read_verdicts(verdicts)) == 3


def _audio_cases(folder: Path) -> list[Path]:
    """Healthy and odd files of each container: what the probe must judge exactly as the full decode does."""
    sr = 22050
    tone = (0.2 * np.sin(2 * np.pi * 330 * np.arange(3 * sr) / sr)).astype(np.float32)
    late = tone.copy()
    late[:sr] = 0.0  # a silent first second, then sound: not silent
    nan = tone.copy()
    nan[2 * sr] = np.nan
    cases = []
    for ext, subtype in (("wav", "PCM_16"), ("flac", "PCM_16"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III"),
                         ("wav", "FLOAT")):
        for name, samples in (("ok", tone), ("late", late), ("silent", np.zeros_like(tone)), ("short", tone[:900])):
            path = folder / f"{name}_{subtype}.{ext}"
            sf.write(str(path), samples, sr, subtype=subtype)
            cases.append(path)
        whole = cases[-4].read_bytes()
        cases.append(folder / f"truncated_{subtype}.{ext}")
        cases[-1].write_bytes(whole[: len(whole) // 2])
    sf.write(str(folder / "nan.wav"), nan, sr, subtype="FLOAT")
    (folder / "text.mp3").write_text("not audio\n" * 30)
    return cases + [folder / "nan.wav", folder / "text.mp3"]


def test_the_probe_judges_as_the_full_decode_does(tmp_path):
    def verdict(function, path):
        try:
            return function(path)
        except Exception as err:
            return f"error: {err}"

    for path in _audio_cases(tmp_path):
        assert verdict(probe_audio, path) == verdict(audio_oddities, path), path.name


def test_the_fast_path_for_usual_timestamps_gives_what_the_general_rules_give():
    from audiorec_assets.data.sources import _timestamp_sql

    full = _timestamp_sql("VARCHAR")
    general = "CASE " + full.split(" AS TIMESTAMP) ", 1)[1]  # the same CASE without its first branch
    stamps = ["2019-03-01 12:00:00", "2019-03-01T12:00:00", " 2019-03-01 12:00:00 ", "2019-03-01T12+01:00",
              "2019-03-01 12:00+01", "2019-03-01 12:0+:00", "2019-03-01 12:00:0Z", "1551441600.123456789",
              "2019-13-01 12:00:00", "2019-03-01 25:00:00", "2019-03-01T12:00:00Z",
              "2019-03-01 12:00:00+01:00", "2019-03-01 12:00:00-0500", "2019-03-01", "1551441600", "", "x" * 19,
              "2019-02-30 12:00:00", "0000-00-00 00:00:00", "2019-03-01 12:00:0 ", "2019-03-01 12:00:00.5"]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for stamp in stamps:
        fast, slow = con.execute(f"SELECT {full}, {general} FROM (SELECT $s AS timestamp)", {"s": stamp}).fetchone()
        assert fast == slow, stamp


def test_the_tracks_check_remembers_verdicts_in_the_lake_across_runs(lake, monkeypatch):
    from audiorec_assets_tests.helpers import write_own
    from audiorec_assets_tests.test_ingest_assets import LISTENS, materialize

    write_own(lake / "raw", LISTENS)
    probed = []

    def counting_probe(path):
        probed.append(Path(path).name)
        return probe_audio_and_duration(path)

    monkeypatch.setattr(quality, "probe_audio_and_duration", counting_probe)
    assert materialize(lake).success
    assert sorted(probed) == ["a.flac", "b.flac", "c.flac"]
    assert LakePaths(lake).audio_verdicts.is_file()
    probed.clear()
    write_tone(lake / "raw" / "audio" / "c.flac", seconds=1.5, freq=500.0)  # changed: probed again
    result = materialize(lake)
    assert result.success and probed == ["c.flac"]


def _small_cases(folder: Path) -> list[Path]:
    """Files of no more frames than the probe reads anyway (1 s at 1 kHz, as bench/onion_lake.py writes them) and
    short ones at a higher rate: the probe judges them from its own read of all their samples."""
    rng = np.random.default_rng(1)
    quiet = (0.01 * rng.standard_normal(1000)).astype(np.float32)
    cases = []
    for name, samples, sr, subtype, ext in (
            ("ok", quiet, 1000, "PCM_16", "wav"), ("ok", quiet, 1000, "PCM_16", "flac"),
            ("silent", np.zeros(1000, np.float32), 1000, "PCM_16", "wav"),
            ("stereo", np.stack([quiet, -quiet], axis=1), 1000, "PCM_16", "wav"),
            ("float", quiet, 1000, "FLOAT", "wav"), ("short", quiet[:700], 1000, "PCM_16", "wav"),
            ("short8k", np.tile(quiet, 6), 8000, "VORBIS", "ogg")):
        path = folder / f"{name}_{sr}.{ext}"
        sf.write(str(path), samples, sr, subtype=subtype)
        cases.append(path)
    whole = cases[0].read_bytes()
    cases.append(folder / "truncated_1000.wav")
    cases[-1].write_bytes(whole[: len(whole) // 2])
    return cases


def test_the_probe_judges_small_files_as_the_full_decode_does_and_reads_the_header_duration(tmp_path):
    from audiorec_assets.data.audio import duration_or_nan, probe_audio_and_duration

    (tmp_path / "more").mkdir()
    for path in _small_cases(tmp_path) + _audio_cases(tmp_path / "more"):
        try:
            expected = audio_oddities(path)
        except Exception as err:
            with pytest.raises(type(err)):
                probe_audio_and_duration(path)
            continue
        odd, duration = probe_audio_and_duration(path)
        assert odd == expected, path.name
        assert duration is None or duration == duration_or_nan(path), path.name
        assert quality.probe_verdict(str(path))[3] == pytest.approx(duration_or_nan(path), nan_ok=True), path.name
    assert "silent" in probe_audio(tmp_path / "silent_1000.wav")
    assert "truncated" in probe_audio(tmp_path / "truncated_1000.wav")


def test_an_ingest_opens_each_audio_file_once(lake, monkeypatch):
    """The tracks table's durations and the blocking tracks check's verdicts come from one probe of each file
    (libsndfile opens counted); a second ingest over unchanged audio opens none."""
    from audiorec_assets_tests.helpers import write_own
    from audiorec_assets_tests.test_ingest_assets import LISTENS, materialize

    write_own(lake / "raw", LISTENS)
    opened = []
    real = sf.SoundFile

    class Counting(real):
        def __init__(self, file, *args, **kwargs):
            opened.append(Path(str(file)).name)
            super().__init__(file, *args, **kwargs)

    monkeypatch.setattr(sf, "SoundFile", Counting)
    assert materialize(lake).success
    assert sorted(opened) == ["a.flac", "b.flac", "c.flac"]
    opened.clear()
    assert materialize(lake).success
    assert opened == []
