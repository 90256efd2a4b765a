"""How a bad listening log is refused: :class:`SourceError`, each fault named by its 1-based line in the file.
DuckDB counts records, not file lines (newlines inside quotes, blank lines, CRLF), and quotes a bad line whole; the
helpers here, which run only when something is wrong, find the line a person sees in an editor (header = line 1)."""

from __future__ import annotations

from pathlib import Path


class SourceError(ValueError):
    """The raw data cannot be used; the message names the file (and line) at fault and what to do."""


# DuckDB's default max_line_size; the limit its error message states wins
DUCKDB_MAX_LINE_SIZE = 2_000_000
_LINE_NOTE = "line numbers count the header as line 1"


def _short(text: str, keep: int = 60) -> str:
    """``text`` cut to ``keep`` characters (a bad line can be megabytes, and DuckDB quotes it whole)."""
    text = text.lstrip("\r\n")
    return repr(text) if len(text) <= keep else f"{text[:keep]!r}…"


def _reject_line(path: Path, position: int, csv_line: str) -> int:
    """File line of a row DuckDB rejected at byte ``position`` with text ``csv_line``. DuckDB's ``byte_position``
    is where it noticed the error: inside the line, just past its end (a missing column) or on the newline before
    it (CRLF). So the line holding ``position`` and its two neighbours are compared with the start of
    ``csv_line``, scanning in chunks (a line is never read whole)."""
    newlines, read, last_two = 0, 0, [-1, -1]  # offsets of the last two newlines before position
    with open(path, "rb") as handle:
        while read < position:
            chunk = handle.read(min(16 << 20, position - read))
            if not chunk:
                break
            count = chunk.count(b"\n")
            if count:
                last = chunk.rfind(b"\n")
                before = chunk.rfind(b"\n", 0, last) if count > 1 else -1
                last_two = [read + before if before >= 0 else last_two[1], read + last]
            newlines += count
            read += len(chunk)
        line = newlines + 1
        needle = csv_line.lstrip("\r\n").split("\n", 1)[0].rstrip("\r").encode("utf-8", "replace")[:100]
        if not needle:
            return line
        starts = {line: last_two[1] + 1}
        if line > 1:
            starts[line - 1] = last_two[0] + 1
        handle.seek(position)
        offset = position
        while chunk := handle.read(1 << 20):
            found = chunk.find(b"\n")
            if found >= 0:
                starts[line + 1] = offset + found + 1
                break
            offset += len(chunk)
        for candidate in (line, line - 1, line + 1):
            if candidate in starts:
                handle.seek(starts[candidate])
                if handle.read(len(needle)) == needle:
                    return candidate
    return line


def _first_long_line(path: Path, limit: int) -> tuple[int, int] | None:
    """(1-based line, length in bytes without its line ending) of the first line of ``path`` over
    ``limit`` bytes, scanning in chunks (the line itself is never held in memory); None when none is."""
    line, length = 1, 0
    with open(path, "rb") as handle:
        while chunk := handle.read(16 << 20):
            start = 0
            while (end := chunk.find(b"\n", start)) != -1:
                length += end - start
                full = length - (1 if end > 0 and chunk[end - 1:end] == b"\r" else 0)
                if full + 1 > limit:
                    return line, full
                line, length, start = line + 1, 0, end + 1
            length += len(chunk) - start
    return (line, length) if length and length + 1 > limit else None


def raise_long_line(source_path: Path, read_path: Path, message: str) -> None:
    import re

    stated = re.search(r"Maximum line size of (\d+) bytes", message)
    limit = int(stated.group(1)) if stated else DUCKDB_MAX_LINE_SIZE
    found = _first_long_line(read_path, limit)
    if found is None:  # a quoted field spanning several lines adds up to more than the limit
        raise SourceError(f"{source_path}: a row is longer than the maximum line size of {limit:,} bytes, though no "
                          "single line is: a quoted field spanning several lines probably is (a quote never closed?). "
                          "Fix or remove it.") from None
    line, length = found
    raise SourceError(f"{source_path}: line {line} is {length:,} bytes long, over the maximum line size of {limit:,} "
                      f"bytes ({_LINE_NOTE}): a field there is far too long for a listening log (a quote never "
                      "closed, or a file pasted in?). Fix or remove that line.") from None


def _sniffed_quoting(con, path: Path) -> bool:
    """Whether DuckDB's sniffer reads ``path`` with quoting (it turns quoting off for a file without
    quotes, or with a quote never closed)."""
    delim = "\\t" if path.name.endswith(".tsv") else ","
    path_sql = str(path).replace("'", "''")
    try:
        quote = con.sql(f"SELECT Quote FROM sniff_csv('{path_sql}', delim=E'{delim}', header=true)").fetchone()[0]
    except Exception:
        return True
    return quote not in ("(empty)", "", "\0", None)


def _physical_lines(path: Path, records: list[int], quoted: bool = True) -> dict[int, int]:
    """File line of each 1-based data record of a CSV/TSV (blank lines counted, and with ``quoted``
    newlines inside quotes; without it a quote is an ordinary character, as DuckDB read it)."""
    import csv

    wanted, found = set(records), {}
    delimiter = "\t" if path.name.endswith(".tsv") else ","
    # Python's csv refuses fields over 128 KiB (csv.field_size_limit); DuckDB accepts lines up to its
    # max_line_size, so a long but valid field before a bad row must not stop the numbering
    previous_limit = csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
            next(reader, None)  # header
            record = 0
            for row in reader:
                if not row:  # a blank line: DuckDB skips it too
                    continue
                record += 1
                if record in wanted:
                    found[record] = reader.line_num
                    if len(found) == len(wanted):
                        break
    finally:
        csv.field_size_limit(previous_limit)
    return found


def raise_bad_rows(con, source_path: Path, read_path: Path, problem_sql: str, n_bad: int) -> None:
    """Name the first bad rows by line (CSV/TSV) or row (Parquet). Numbering rows needs a window
    over the whole log, so it runs only when something is wrong."""
    bad = con.sql(
        f"""SELECT record, raw_timestamp, problem FROM (
              SELECT *, {problem_sql} AS problem FROM (SELECT *, row_number() OVER () AS record FROM raw_listens))
            WHERE problem IS NOT NULL ORDER BY record LIMIT 5"""
    ).fetchall()
    if read_path.suffix == ".parquet":
        where = {record: f"row {record}" for record, _, _ in bad}
    else:
        lines = _physical_lines(read_path, [record for record, _, _ in bad], quoted=_sniffed_quoting(con, read_path))
        where = {record: f"line {lines.get(record, record + 1)}" for record, _, _ in bad}
    examples = "; ".join(f"{where[record]}: {problem} ({raw!r})" for record, raw, problem in bad)
    note = "" if read_path.suffix == ".parquet" else f" ({_LINE_NOTE})"
    raise SourceError(f"{source_path}: {n_bad} bad row(s), e.g. {examples}{note}. Fix or remove them.")


def raise_on_rejects(con, path: Path, read_path: Path | None = None) -> None:
    """Raise on the rows DuckDB rejected, by file line of ``read_path`` (the file DuckDB read; ``path`` is the one
    named), taken from the reject's ``byte_position`` where it has one (DuckDB's ``line`` counts records)."""
    try:
        rows = con.sql("SELECT DISTINCT line, byte_position, error_message, csv_line FROM reject_errors "
                       "ORDER BY coalesce(byte_position, 0), line LIMIT 3").fetchall()
    except Exception:  # no reject table: Parquet input
        return
    if rows:
        read_path = read_path or path
        details = []
        for line, position, msg, csv_line in rows:
            if position is not None:
                line = _reject_line(read_path, int(position), csv_line or "")
            details.append(f"line {line}: {msg.splitlines()[0]} in {_short(csv_line or '')}")
        raise SourceError(f"{path}: malformed row(s): {'; '.join(details)} ({_LINE_NOTE}). Fix or remove them.")
