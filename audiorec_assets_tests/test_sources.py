"""Reading listening logs: columns by name, timestamp formats, id types, time zone, layout detection."""

import time

import pandas as pd
import pytest

from audiorec_assets.data.sources import Layout, RawSource, SourceError, detect_source, ingest_listens
from audiorec_assets.settings import LakePaths
from audiorec_assets.warehouse import scratch_connection


def ingest(tmp_path, name, content):
    raw = tmp_path / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    path = raw / name
    if isinstance(content, pd.DataFrame):
        content.to_parquet(path, index=False)
    else:
        path.write_text(content)
    target = tmp_path / "listens.parquet"
    with scratch_connection(LakePaths(tmp_path)) as con:
        ingest_listens(con, RawSource(Layout.OWN, path, raw / "audio"), target, tmp_path / "tmp")
    return pd.read_parquet(target)


def ingest_bytes(tmp_path, name, content: bytes):
    """:func:`ingest` of exact bytes (line endings kept as written)."""
    raw = tmp_path / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / name).write_bytes(content)
    with scratch_connection(LakePaths(tmp_path)) as con:
        ingest_listens(con, RawSource(Layout.OWN, raw / name, raw / "audio"), tmp_path / "listens.parquet", tmp_path / "tmp")


def test_columns_are_matched_by_name_and_extra_columns_ignored(tmp_path):
    rows = ingest(tmp_path, "listens.csv",
                  "track_id,device,timestamp,user_id\nt1,phone,2019-03-01 12:00:00,u1\nt2,web,2019-03-02 13:00:00,u2\n")
    assert list(rows.columns) == ["user_id", "track_id", "ts"]
    assert rows[["user_id", "track_id"]].values.tolist() == [["u1", "t1"], ["u2", "t2"]]


@pytest.mark.parametrize("stamp, expected", [
    ("2019-03-01 12:00:00", "2019-03-01 12:00:00"),
    ("2019-03-01T12:00:00", "2019-03-01 12:00:00"),
    ("2019-03-01T14:00:00+02:00", "2019-03-01 12:00:00"),  # offsets are converted to UTC
    ("1551441600", "2019-03-01 12:00:00"),  # epoch seconds in a text log
])
def test_text_timestamp_formats(tmp_path, stamp, expected):
    rows = ingest(tmp_path, "listens.csv", f"user_id,track_id,timestamp\nu1,t1,{stamp}\n")
    assert rows["ts"].iloc[0] == pd.Timestamp(expected)


def test_parquet_integer_ids_epoch_and_timezone_aware_timestamps(tmp_path):
    frame = pd.DataFrame({"user_id": [1, 2], "track_id": [10, 20], "timestamp": [1551441600, 1551441601]})
    rows = ingest(tmp_path, "listens.parquet", frame)
    assert rows["user_id"].tolist() == ["1", "2"] and rows["track_id"].tolist() == ["10", "20"]
    assert rows["ts"].iloc[0] == pd.Timestamp("2019-03-01 12:00:00")
    aware = pd.DataFrame({"user_id": ["u"], "track_id": ["t"],
                          "timestamp": [pd.Timestamp("2019-03-01 14:00:00", tz="Europe/Berlin")]})
    assert ingest(tmp_path, "listens.parquet", aware)["ts"].iloc[0] == pd.Timestamp("2019-03-01 13:00:00")


def test_result_does_not_depend_on_the_machine_time_zone(tmp_path, monkeypatch):
    frame = pd.DataFrame({"user_id": ["u"], "track_id": ["t"], "timestamp": [1551441600]})
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert ingest(tmp_path, "listens.parquet", frame)["ts"].iloc[0] == pd.Timestamp("2019-03-01 12:00:00")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_malformed_row_names_the_line(tmp_path):
    with pytest.raises(SourceError, match=r"listens.csv: malformed row\(s\): line 3"):
        ingest(tmp_path, "listens.csv", "user_id,track_id,timestamp\nu1,t1,2019-03-01\nu1,t2,2019-03-02,extra,more\n")


def test_layout_detection_errors(tmp_path):
    with pytest.raises(SourceError, match=r"raw does not exist: run `audiorec demo`"):
        detect_source(tmp_path / "raw")
    (tmp_path / "raw").mkdir()
    with pytest.raises(SourceError, match=r"raw is empty: run `audiorec demo` .*Music4All-Onion .*own catalogue"):
        detect_source(tmp_path / "raw")
    (tmp_path / "raw" / ".keep").write_text("")
    with pytest.raises(SourceError, match=r"raw holds only hidden files: run `audiorec demo`"):
        detect_source(tmp_path / "raw")
    (tmp_path / "raw" / "audio").mkdir()  # a catalogue without a log
    with pytest.raises(SourceError, match=r"No listening log .*`audiorec mock-logs`"):
        detect_source(tmp_path / "raw")
    (tmp_path / "raw" / "listens.csv").write_text("user_id,track_id,timestamp\n")
    (tmp_path / "raw" / "listens.parquet").write_text("")
    with pytest.raises(SourceError, match="Several listening logs"):
        detect_source(tmp_path / "raw")


def test_error_lines_are_physical_lines_and_parquet_rows_are_rows(tmp_path):
    text = 'user_id,track_id,timestamp\nu1,"a\nb",2019-03-01\n\nu2,t2,2019-03-02\nu3,t3,soon\n'
    with pytest.raises(SourceError, match=r"line 6: unparsable timestamp \('soon'\)"):
        ingest(tmp_path, "listens.csv", text)
    frame = pd.DataFrame({"user_id": ["u1", "u2"], "track_id": ["t1", ""], "timestamp": ["2019-03-01", "2019-03-02"]})
    with pytest.raises(SourceError, match=r"row 2: empty track_id"):
        ingest(tmp_path / "p", "listens.parquet", frame)


def test_epoch_milliseconds_are_named_not_silently_read_as_seconds(tmp_path):
    with pytest.raises(SourceError, match=r"line 2: timestamp .* outside 1990-2100 \(epoch milliseconds\?"):
        ingest(tmp_path, "listens.csv", "user_id,track_id,timestamp\nu1,t1,1551441600000\n")


def test_parquet_date_and_small_integer_timestamps(tmp_path):
    dates = pd.DataFrame({"user_id": ["u"], "track_id": ["t"], "timestamp": [pd.Timestamp("2019-03-01").date()]})
    assert ingest(tmp_path, "listens.parquet", dates)["ts"].iloc[0] == pd.Timestamp("2019-03-01")
    small = pd.DataFrame({"user_id": ["u"], "track_id": ["t"], "timestamp": pd.array([5], dtype="int16")})
    with pytest.raises(SourceError, match="outside 1990-2100"):
        ingest(tmp_path / "s", "listens.parquet", small)


def test_a_replaced_bz2_log_is_decompressed_again(tmp_path):
    import bz2
    import os

    from audiorec_assets.data.sources import decompress_if_needed

    log = tmp_path / "userid_trackid_timestamp.tsv.bz2"
    log.write_bytes(bz2.compress(b"user_id\ttrack_id\ttimestamp\nu1\tt1\t2019-03-01 00:00:00\n"))
    first = decompress_if_needed(log, tmp_path / "tmp")
    log.write_bytes(bz2.compress(b"user_id\ttrack_id\ttimestamp\nu2\tt2\t2019-03-02 00:00:00\n"))
    os.utime(log, ns=(1, 1))  # older than the copy, as `cp -p` or rsync can leave it
    second = decompress_if_needed(log, tmp_path / "tmp")
    assert first == second and "u2" in second.read_text()


@pytest.mark.parametrize("stamp, expected", [
    ("2019-03-01T14:00:00-02:00", "2019-03-01 16:00:00"),
    ("2019-03-01T14:00:00+0200", "2019-03-01 12:00:00"),
    ("2019-03-01T12:00:00Z", "2019-03-01 12:00:00"),
    ("2019-03-01 12:00:00.250", "2019-03-01 12:00:00.250"),
    ("2019-03-01", "2019-03-01 00:00:00"),
])
def test_more_text_timestamp_forms(tmp_path, stamp, expected):
    rows = ingest(tmp_path, "listens.csv", f"user_id,track_id,timestamp\nu1,t1,{stamp}\n")
    assert rows["ts"].iloc[0] == pd.Timestamp(expected)


@pytest.mark.parametrize("content", ["", "\n\n", "user_id,track_id,timestamp\n"])
def test_an_empty_log_is_called_empty_and_named(tmp_path, content):
    with pytest.raises(SourceError, match=r"listens\.csv: the listening log is empty"):
        ingest(tmp_path, "listens.csv", content)


@pytest.mark.parametrize("name, sep", [("listens.csv", ","), ("listens.tsv", "\t")])
def test_an_unclosed_quote_is_refused_with_its_line_not_read_into_an_id(tmp_path, name, sep):
    rows = ["user_id,track_id,timestamp", "u000,t0,2019-03-01 12:00:00", "", '"u001,t1,2019-03-01 12:00:00',
            "u002,t2,2019-03-01 12:00:00"]
    content = "\n".join(r.replace(",", sep) for r in rows) + "\n"
    with pytest.raises(SourceError, match=rf'{name}: 1 bad row\(s\), e\.g\. line 4: a double quote in user_id "u001'):
        ingest(tmp_path, name, content)


def test_properly_quoted_fields_are_still_read(tmp_path):
    rows = ingest(tmp_path, "listens.csv", 'user_id,track_id,timestamp\n"u,1",t1,2019-03-01 12:00:00\n')
    assert rows["user_id"].tolist() == ["u,1"]


def test_duplicate_events_are_counted_and_kept_or_dropped(tmp_path):
    from audiorec_assets.data.sources import read_listens

    raw = tmp_path / "raw"
    raw.mkdir()
    path = raw / "listens.csv"
    path.write_text("user_id,track_id,timestamp\nu1,t1,2019-03-01 12:00:00\nu1,t2,2019-03-01 12:00:00\n"
                    "u1,t1,2019-03-01 12:00:00\nu2,t1,2019-03-01 12:00:00\nu1,t1,2019-03-01 12:00:00\n")
    source = RawSource(Layout.OWN, path, raw / "audio")
    with scratch_connection(LakePaths(tmp_path)) as con:
        kept = read_listens(con, source, tmp_path / "kept.parquet", tmp_path / "tmp")
        dropped = read_listens(con, source, tmp_path / "dropped.parquet", tmp_path / "tmp", duplicates="drop")
    assert (kept.events, kept.duplicates) == (5, 2) and (dropped.events, dropped.duplicates) == (3, 2)
    assert len(pd.read_parquet(tmp_path / "kept.parquet")) == 5
    rows = pd.read_parquet(tmp_path / "dropped.parquet")
    assert rows[["user_id", "track_id"]].values.tolist() == [["u1", "t1"], ["u1", "t2"], ["u2", "t1"]]
    assert not list(tmp_path.glob("*.dedup*")) and not list(tmp_path.glob(".*"))


BIG_FIELD = "x" * (5 * 1024 * 1024)  # over DuckDB's 2 MB max_line_size


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("row", [0, 2, 4], ids=["first", "middle", "last"])
def test_a_line_over_the_maximum_size_is_named_by_its_file_line(tmp_path, row, newline):
    rows = [f"u{i},t{i},2019-03-01 12:00:00" for i in range(5)]
    rows[row] = f"u{row},{BIG_FIELD},2019-03-01 12:00:00"
    content = newline.join(["user_id,track_id,timestamp", *rows]) + newline
    with pytest.raises(SourceError) as raised:
        ingest_bytes(tmp_path, "listens.csv", content.encode())
    message = str(raised.value)
    assert f"listens.csv: line {row + 2} is 5,242,9" in message  # the header is line 1
    assert "count the header as line 1" in message and "maximum line size of 2,000,000 bytes" in message
    assert "cannot read the header" not in message and len(message) < 1000  # not the 5 MB line quoted back


def test_a_long_line_past_the_sniffed_sample_counts_blank_lines_and_quoted_newlines(tmp_path):
    # past DuckDB's 20 480-row sniffing sample the reader rejects the row instead; its own `line`
    # counts records, so a newline inside quotes earlier in the file must not shift the number
    rows = [f"u{i}\tt{i}\t2019-03-01 12:00:00" for i in range(30_000)]
    rows[10] = ""
    rows[20] = 'u20\t"a\nb"\t2019-03-01 12:00:00'
    rows[25_000] = f"u\t{BIG_FIELD}\t2019-03-01 12:00:00"
    content = "\r\n".join(["user_id\ttrack_id\ttimestamp", *rows]) + "\r\n"
    with pytest.raises(SourceError) as raised:
        ingest_bytes(tmp_path, "listens.tsv", content.encode())
    message = str(raised.value)
    assert "listens.tsv: malformed row(s): line 25003: Maximum line size" in message, message[:300]
    assert "count the header as line 1" in message and len(message) < 1000


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_a_row_missing_a_column_is_named_by_its_own_line(tmp_path, newline):
    # DuckDB places this error just past the line's end, on the next line
    content = newline.join(["user_id,track_id,timestamp", "u0,t0,2019-03-01", "u1,t1", "u2,t2,2019-03-01"]) + newline
    with pytest.raises(SourceError, match=r"listens\.csv: malformed row\(s\): line 3: .* in 'u1,t1'"):
        ingest_bytes(tmp_path, "listens.csv", content.encode())


def test_a_long_but_allowed_field_does_not_stop_the_bad_row_numbering(tmp_path):
    # Python's csv module refuses fields over 128 KiB unless told otherwise
    content = f"user_id,track_id,timestamp\nu0,{'x' * 500_000},2019-03-01\nu1,t1,soon\n"
    with pytest.raises(SourceError, match=r"line 3: unparsable timestamp \('soon'\) \(line numbers count the header"):
        ingest_bytes(tmp_path, "listens.csv", content.encode())


def test_downmix_is_the_channel_mean():
    import numpy as np

    from audiorec_assets.data.audio import _downmix

    rng = np.random.default_rng(0)
    stereo = rng.standard_normal((4410, 2)).astype(np.float32)
    assert np.array_equal(_downmix(stereo), stereo.mean(axis=1))  # bit for bit: what the encoders saw before
    mono = stereo[:, :1]
    assert np.array_equal(_downmix(mono), mono[:, 0])
    surround = rng.standard_normal((4410, 6)).astype(np.float32)
    np.testing.assert_allclose(_downmix(surround), surround.mean(axis=1), rtol=1e-6, atol=1e-6)
