"""The three raw layouts (docs/lake.md, "Input layouts") → one typed listens Parquet file and a track list. DuckDB's
reader streams the log to Parquet, so memory does not grow with it (the full Music4All-Onion log: 252 M events)."""

from __future__ import annotations

import bz2
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path

from audiorec_assets.data.audio import AUDIO_EXTENSIONS
from audiorec_assets.data.log_errors import SourceError, raise_bad_rows, raise_long_line, raise_on_rejects
from audiorec_assets.data.synthetic import SYNTHETIC_MARKER, log_is_synthetic  # noqa: F401 (importable from here)
from audiorec_assets.lakeio import atomic_path
from audiorec_assets.warehouse import sql_literal

REQUIRED_COLUMNS: tuple[str, ...] = ("user_id", "track_id", "timestamp")
ONION_LOG = "userid_trackid_timestamp.tsv"
OWN_LOGS: tuple[str, ...] = ("listens.csv", "listens.tsv", "listens.parquet")


class Layout(str, Enum):
    ONION = "onion"
    OWN = "own"


@dataclass(frozen=True)
class RawSource:
    """Where a lake's raw inputs are: the listening log, the audio folder, optional track metadata."""

    layout: Layout
    log_path: Path
    audio_dir: Path
    tracks_csv: Path | None = None


def holds_data(raw_dir: Path) -> bool:
    """Whether ``raw_dir`` holds anything but hidden files (``.keep``, ``.DS_Store``); False when it is missing."""
    return raw_dir.is_dir() and any(not p.name.startswith(".") for p in raw_dir.iterdir())


def detect_source(raw_dir: Path) -> RawSource:
    """Find which layout ``raw_dir`` holds; raise :class:`SourceError` when none or several fit (one line, naming
    ``raw_dir``; an empty one says how to fill it: nothing here writes data)."""
    if not holds_data(raw_dir):
        state = ("does not exist" if not raw_dir.is_dir() else
                 "holds only hidden files" if any(raw_dir.iterdir()) else "is empty")
        raise SourceError(
            f"{raw_dir} {state}: run `audiorec demo` to write the demo data set there, or put your data there: a "
            f"Music4All-Onion layout ({ONION_LOG}[.bz2] + audios/) or your own catalogue (listens.csv, .tsv or "
            f".parquet + audio/), see docs/lake.md, 'Input layouts'.")
    tracks = raw_dir / "tracks.csv"
    found = [RawSource(Layout.ONION, raw_dir / name, raw_dir / "audios")
             for name in (ONION_LOG, ONION_LOG + ".bz2") if (raw_dir / name).exists()]
    found += [RawSource(Layout.OWN, raw_dir / name, raw_dir / "audio", tracks if tracks.exists() else None)
              for name in OWN_LOGS if (raw_dir / name).exists()]
    if not found:
        expected = ", ".join([ONION_LOG, ONION_LOG + ".bz2", *OWN_LOGS])
        raise SourceError(f"No listening log in {raw_dir}: expected one of {expected} (a catalogue without a log: "
                          "`audiorec mock-logs` writes a synthetic one).")
    if len(found) > 1:
        names = ", ".join(s.log_path.name for s in found)
        raise SourceError(f"Several listening logs in {raw_dir} ({names}): keep exactly one.")
    return found[0]


def _reader_sql(path: Path) -> str:
    """A DuckDB table function reading ``path`` by its header; text columns stay text (no sniffed types)."""
    if path.suffix == ".parquet":
        return f"read_parquet({sql_literal(path)})"
    delim = "\\t" if path.name.endswith((".tsv", ".tsv.bz2")) else ","
    return f"read_csv({sql_literal(path)}, delim=E'{delim}', header=true, all_varchar=true, store_rejects=true)"


def log_columns(con, path: Path, source_path: Path | None = None) -> list[str]:
    """Column names of the log's header (``source_path``, when given, is the file named in errors:
    the ``.bz2`` that ``path`` was decompressed from)."""
    try:
        return [row[0] for row in con.sql(f"DESCRIBE SELECT * FROM {_reader_sql(path)}").fetchall()]
    except Exception as err:
        message = str(err)
        if "Maximum line size" in message:
            # DuckDB's sniffer says "CSV Error on Line: 1" whatever line it is, and quotes the whole line
            raise_long_line(source_path or path, path, message)
        # DuckDB's first paragraph says what is wrong; the rest is its reader settings
        first = message.strip().split("\n\n", 1)[0].splitlines()
        detail = " / ".join(line if len(line) <= 200 else line[:200] + "…" for line in first)
        raise SourceError(f"{source_path or path}: cannot read the header ({detail})") from None


def check_columns(path: Path, columns: list[str]) -> None:
    """Raise naming the missing columns and what was found (with a hint for near-misses)."""
    lowered = {c.strip().lower(): c for c in columns}
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if not missing:
        return
    hints = []
    for col in missing:
        near = lowered.get(col) or lowered.get(col.replace("_", "")) or lowered.get(col.replace("_id", ""))
        if near:
            hints.append(f"'{near}' looks like '{col}': rename it")
    hint = (" " + "; ".join(hints) + ".") if hints else ""
    raise SourceError(f"{path}: missing column(s) {missing}; found {columns}. "
                      f"Expected header: {', '.join(REQUIRED_COLUMNS)}.{hint}")


def decompress_if_needed(log_path: Path, scratch_dir: Path) -> Path:
    """DuckDB reads plain and gzip/zstd CSV but not bzip2: stream-decompress ``.bz2`` to ``scratch_dir``. The copy is
    reused only while the ``.bz2`` has the size and mtime it had then (a stamp file beside the copy)."""
    if log_path.suffix != ".bz2":
        return log_path
    scratch_dir.mkdir(parents=True, exist_ok=True)
    target = scratch_dir / log_path.stem
    stamp_file = target.with_name(target.name + ".source")
    stat = log_path.stat()
    stamp = f"{log_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if target.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return target
    with atomic_path(target) as partial, bz2.open(log_path, "rb") as src, open(partial, "wb") as dst:
        shutil.copyfileobj(src, dst, length=16 * 1024 * 1024)
    stamp_file.write_text(stamp)
    return target


# zstd at level 1: the log's copy takes about a tenth less CPU than at the default level 3, for a file about
# 3 % larger (bench/RESULTS.md, issue 19)
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1"
INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE"}
# plausible listening times; anything else is most likely epoch milliseconds or a typo
EARLIEST, LATEST = "1990-01-01", "2100-01-01"


_D = "[0-9]"
_USUAL_TIMESTAMP = f"{_D * 4}-{_D * 2}-{_D * 2} {_D * 2}:{_D * 2}:{_D * 2}"


def _timestamp_sql(column_type: str) -> str:
    """SQL turning the log's ``timestamp`` column into a UTC TIMESTAMP (the formats: docs/lake.md, "What the ingest
    accepts"). The connection's time zone is UTC (``warehouse.scratch_connection``): the machine's does not matter."""
    if column_type.startswith("TIMESTAMP") or column_type == "DATE":
        return "CAST(timestamp AS TIMESTAMP)"
    if column_type in INTEGER_TYPES or column_type.startswith("DECIMAL"):
        return "make_timestamp(CAST(CAST(timestamp AS DOUBLE) * 1e6 AS BIGINT))"
    text = "trim(CAST(timestamp AS VARCHAR))"
    # a cast to TIMESTAMP would silently drop an offset: strings ending in Z, ±hh:mm or ±hhmm
    # take the (slower) TIMESTAMPTZ path; cheap string tests keep the common case fast
    has_offset = (f"(length({text}) > 16 AND (right({text}, 1) = 'Z' OR substr({text}, -6, 1) IN ('+', '-') "
                  f"OR substr({text}, -5, 1) IN ('+', '-')))")
    # the usual shape, digits exactly as in 'YYYY-MM-DD HH:MM:SS' (no offset, nothing to trim), first, matched by
    # one GLOB on the text as read: the general CASE below gives the same value for it at about twice the CPU per
    # row (test_ingest_one_pass.py compares the two; bench/RESULTS.md, issue 19, the saving)
    raw = "CAST(timestamp AS VARCHAR)"
    usual = f"{raw} GLOB '{_USUAL_TIMESTAMP}'"
    return (
        f"CASE WHEN {usual} THEN TRY_CAST({raw} AS TIMESTAMP) "
        f"WHEN {has_offset} THEN TRY_CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS TIMESTAMP) "
        f"ELSE COALESCE(TRY_CAST({text} AS TIMESTAMP), "
        f"CASE WHEN regexp_full_match({text}, '[0-9]+([.][0-9]+)?') "
        f"THEN make_timestamp(CAST(CAST({text} AS DOUBLE) * 1e6 AS BIGINT)) END) END"
    )


def _raise_if_blank(source_path: Path, read_path: Path) -> None:
    """Refuse a log with no bytes (or only blank lines) by name, before DuckDB reads it as one unnamed column."""
    with open(read_path, "rb") as handle:
        start = handle.read(1 << 16)
    if not start.strip():
        raise SourceError(f"{source_path}: the listening log is empty ({read_path.stat().st_size} bytes, no header). "
                          f"Put the listening events in it, under the header {', '.join(REQUIRED_COLUMNS)}, "
                          "or remove the file.")


@dataclass(frozen=True)
class ListensReport:
    """What :func:`read_listens` wrote: ``events`` rows, of which ``duplicates`` repeated an earlier (user_id,
    track_id, ts) (kept or dropped by setting ``duplicates``); the rest None where not computed."""

    events: int
    duplicates: int
    users: int | None = None
    tracks: int | None = None
    first_ts: datetime | None = None
    last_ts: datetime | None = None


def ingest_listens(con, source: RawSource, target: Path, scratch_dir: Path, duplicates: str = "keep") -> int:
    """:func:`read_listens`, returning only the number of events written."""
    return read_listens(con, source, target, scratch_dir, duplicates).events


def _problem_sql(csv: bool) -> str:
    """SQL naming what is wrong with a row of the ``raw_listens`` view (NULL: nothing)."""
    problem_sql = f"""CASE WHEN user_id IS NULL OR trim(user_id) = '' THEN 'empty user_id'
                           WHEN track_id IS NULL OR trim(track_id) = '' THEN 'empty track_id'
                           WHEN ts IS NULL THEN 'unparsable timestamp'
                           WHEN ts < TIMESTAMP '{EARLIEST}' OR ts >= TIMESTAMP '{LATEST}'
                             THEN 'timestamp ' || CAST(ts AS VARCHAR) || ' outside {EARLIEST[:4]}-{LATEST[:4]} '
                                  || '(epoch milliseconds? audiorec reads epoch seconds)'
                      END"""
    if csv:
        # DuckDB's sniffer turns quoting off when a quote is never closed, so the quote ends up in
        # an id ('"u001') and every later row is read unquoted: refuse any field holding a quote
        quote_sql = " ".join(
            f"WHEN contains({column}, '\"') THEN 'a double quote in {name} ' || {column} || ' (a quote never closed? "
            f"quote the whole field, or remove the quote)'"
            for column, name in (("user_id", "user_id"), ("track_id", "track_id"), ("raw_timestamp", "timestamp")))
        problem_sql = problem_sql.replace("CASE ", f"CASE {quote_sql} ", 1)
    return problem_sql


def _written_bad_sql(csv: bool) -> str:
    """A row of the written Parquet (trimmed ids, parsed ts) that :func:`_problem_sql` refuses. A quote in the
    timestamp text never parses, so it shows as a NULL ``ts`` here."""
    quotes = " OR contains(user_id, '\"') OR contains(track_id, '\"')" if csv else ""
    return (f"(user_id IS NULL OR user_id = '' OR track_id IS NULL OR track_id = '' OR ts IS NULL "
            f"OR ts < TIMESTAMP '{EARLIEST}' OR ts >= TIMESTAMP '{LATEST}'{quotes})")


def _trimmed(column: str) -> str:
    """SQL for ``trim(column)`` that builds a new string only for the rare id with a space at either end."""
    return f"CASE WHEN starts_with({column}, ' ') OR ends_with({column}, ' ') THEN trim({column}) ELSE {column} END"


def read_listens(con, source: RawSource, target: Path, scratch_dir: Path, duplicates: str = "keep") -> ListensReport:
    """Validate and copy the listening log to ``target`` (Parquet: user_id, track_id, ts), written only when all rows
    are good; :class:`SourceError` names file and line of malformed rows, unparsable timestamps, empty ids or an
    empty log. Rows repeating an earlier (user_id, track_id, ts) are counted; ``duplicates="drop"`` writes only the
    first of each, ``"keep"`` writes them all. The log is read once (again only to name bad rows by line)."""
    if duplicates not in ("keep", "drop"):
        raise ValueError(f"duplicates must be 'keep' or 'drop', got {duplicates!r}")
    log_path = decompress_if_needed(source.log_path, scratch_dir)
    _raise_if_blank(source.log_path, log_path)
    columns = log_columns(con, log_path, source.log_path)
    check_columns(source.log_path, columns)
    reader = _reader_sql(log_path)
    types = dict(con.sql(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {reader})").fetchall())
    ts_sql = _timestamp_sql(types["timestamp"])
    # columns by name (extra columns are ignored); ids as text whatever their type in Parquet
    con.sql(
        f"""CREATE OR REPLACE TEMP VIEW raw_listens AS
            SELECT CAST(user_id AS VARCHAR) AS user_id, CAST(track_id AS VARCHAR) AS track_id,
                   CAST(timestamp AS VARCHAR) AS raw_timestamp, {ts_sql} AS ts
            FROM {reader}"""
    )
    csv = log_path.suffix != ".parquet"
    with atomic_path(target, suffix=".parquet") as partial:
        con.sql(
            f"COPY (SELECT {_trimmed('user_id')} AS user_id, {_trimmed('track_id')} AS track_id, ts FROM raw_listens) "
            f"TO {sql_literal(partial)} ({PARQUET_OPTIONS})"
        )
        # malformed CSV rows are known once a scan has read every column (DuckDB's reject tables)
        raise_on_rejects(con, source.log_path, log_path)
        written = f"read_parquet({sql_literal(partial)})"
        # one aggregate of the written file: validation and the summary; then the duplicates
        n_events, n_bad, users, tracks, first, last = con.sql(
            f"""SELECT count(*), count(*) FILTER ({_written_bad_sql(csv)}), count(DISTINCT user_id),
                       count(DISTINCT track_id), min(ts), max(ts)
                FROM {written}"""
        ).fetchone()
        if n_bad:  # only now read the log again: to count and name the bad rows by their own rules and lines
            problem_sql = _problem_sql(csv)
            n_bad = con.sql(f"SELECT count(*) FROM raw_listens WHERE ({problem_sql}) IS NOT NULL").fetchone()[0]
            if n_bad:
                raise_bad_rows(con, source.log_path, log_path, problem_sql, n_bad)
        if n_events == 0:
            raise SourceError(f"{source.log_path}: the listening log is empty: it has a header but no events. "
                              "Add the listening events (one per line) or remove the file.")
        n_duplicates = _count_duplicates(con, written)
        n_distinct = n_events - n_duplicates
        if duplicates == "drop" and n_duplicates:
            # the first of each repeated event, in log order (the Parquet file keeps it: file_row_number)
            deduplicated = partial.with_name(partial.name + ".dedup.parquet")
            con.sql(
                f"""COPY (SELECT user_id, track_id, ts FROM read_parquet({sql_literal(partial)}, file_row_number = true)
                          QUALIFY row_number() OVER (PARTITION BY user_id, track_id, ts ORDER BY file_row_number) = 1
                          ORDER BY file_row_number)
                    TO {sql_literal(deduplicated)} ({PARQUET_OPTIONS})"""
            )
            deduplicated.replace(partial)
            n_events = n_distinct
    return ListensReport(int(n_events), n_duplicates, int(users), int(tracks), first, last)


def _count_duplicates(con, events: str) -> int:
    """How many rows of ``events`` (a table function: user_id, track_id, ts) repeat an earlier row's three values.
    Grouped first by a 64-bit hash of the three (about two thirds of the CPU of grouping the strings and a time),
    then exactly, over only the rows whose hash repeats: a hash collision is no duplicate."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE repeated_event_hashes AS
                    SELECT hash(user_id, track_id, ts) AS h FROM {events} GROUP BY h HAVING count(*) > 1""")
    if not con.sql("SELECT count(*) FROM repeated_event_hashes").fetchone()[0]:
        return 0
    return int(con.sql(
        f"""SELECT coalesce(sum(n - 1), 0) FROM (
              SELECT count(*) AS n FROM {events} AS e
              SEMI JOIN repeated_event_hashes AS r ON hash(e.user_id, e.track_id, e.ts) = r.h
              GROUP BY e.user_id, e.track_id, e.ts)""").fetchone()[0])


def find_audio(audio_dir: Path) -> dict[str, Path]:
    """Map track id (file stem) → audio file for every supported file in ``audio_dir``."""
    return {stem: audio_dir / name for stem, name in find_audio_names(audio_dir).items()}


def find_audio_names(audio_dir: Path) -> dict[str, str]:
    """:func:`find_audio` as file names: one scan of the folder, no ``Path`` per file (stem and suffix as
    ``pathlib`` has them, :func:`_suffix`)."""
    if not audio_dir.is_dir():
        return {}
    with os.scandir(audio_dir) as entries:  # DirEntry.is_file follows a symlink, as Path.is_file does
        names = sorted(e.name for e in entries if _suffix(e.name).lower() in AUDIO_EXTENSIONS and e.is_file())
    found: dict[str, str] = {}
    for name in names:
        stem = name[: len(name) - len(_suffix(name))]
        if stem in found:
            raise SourceError(f"Two audio files for track {stem!r}: {found[stem]} and {name}; keep one.")
        found[stem] = name
    return found


def _suffix(name: str) -> str:
    """``PurePath(name).suffix`` for a plain file name."""
    i = name.rfind(".")
    return name[i:] if 0 < i < len(name) - 1 else ""
