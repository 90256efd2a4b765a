"""The remembered audio verdicts: what the tracks check's probe found in each file, by (path, size, mtime_ns).

One Parquet file in the lake (``LakePaths.audio_verdicts``), written where the tracks check's probe runs
(:func:`audiorec_assets.data.quality.file_verdicts`: in an ingest, while its tracks table is built, for
``duration_s``; else by the check, :func:`~audiorec_assets.data.quality.tracks_flags`) and read back by both, so
that unchanged audio is not opened again.
Rows of another :data:`PROBE_VERSION` are ignored; the file is only ever replaced whole, in one rename.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# bump when probe_audio's verdicts (or what is remembered with them) change: remembered verdicts of another
# version are not used. 2: with each file's duration_s, which the tracks table takes from here.
PROBE_VERSION = 2
Verdict = tuple[bool, dict[str, str], str, float]  # decodes, oddities (kind -> message), problem, duration_s


def file_fingerprint(path: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of ``path``, or None when it is not a file."""
    import os
    import stat

    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_size, info.st_mtime_ns) if stat.S_ISREG(info.st_mode) else None


def read_verdicts(path: Path | None) -> dict[tuple[str, int, int], Verdict]:
    """The remembered probe verdicts in ``path`` by (file, size, mtime_ns): empty when there is no such file,
    it cannot be read (it is then rewritten) or it was written by another :data:`PROBE_VERSION`."""
    import json

    if path is None or not path.is_file():
        return {}
    try:
        table = pd.read_parquet(path)
        rows = table[table["version"] == PROBE_VERSION]
        # most files have no oddity: no JSON to parse for "{}"
        return {(str(f), int(size), int(mtime)): (bool(decodes), json.loads(odd) if odd != "{}" else {}, str(problem),
                                                   float(duration))
                for f, size, mtime, decodes, odd, problem, duration in zip(
                    rows["path"], rows["size"], rows["mtime_ns"], rows["decodes"], rows["oddities"], rows["problem"],
                    rows["duration_s"])}
    except Exception:  # a damaged or foreign file: probe again and replace it
        return {}


def remembered_durations(path: Path | None) -> dict[tuple[str, int, int], float]:
    """The ``duration_s`` of each file in the verdicts file ``path``, by (file, size, mtime_ns); empty when
    there is none, it cannot be read or it was written by another :data:`PROBE_VERSION` (without oddities
    parsed: the tracks table reads only this)."""
    if path is None or not path.is_file():
        return {}
    try:
        rows = pd.read_parquet(path, columns=["path", "size", "mtime_ns", "version", "duration_s"])
        rows = rows[rows["version"] == PROBE_VERSION]
        return {(str(f), int(size), int(mtime)): float(duration)
                for f, size, mtime, duration in zip(rows["path"], rows["size"], rows["mtime_ns"], rows["duration_s"])}
    except Exception:  # damaged or foreign: the caller reads the headers
        return {}


def write_verdicts(path: Path, verdicts: dict[tuple[str, int, int], Verdict]) -> None:
    """Replace ``path`` with ``verdicts`` in one rename (a reader sees the old file or the new one)."""
    import json

    from audiorec_assets.lakeio import atomic_path

    keys = list(verdicts)
    table = pd.DataFrame({
        "path": [k[0] for k in keys], "size": pd.array([k[1] for k in keys], dtype="int64"),
        "mtime_ns": pd.array([k[2] for k in keys], dtype="int64"), "version": PROBE_VERSION,
        "decodes": [verdicts[k][0] for k in keys], "oddities": [json.dumps(verdicts[k][1]) for k in keys],
        "problem": [verdicts[k][2] for k in keys],
        "duration_s": pd.array([verdicts[k][3] for k in keys], dtype="float64")})
    with atomic_path(path) as partial:
        table.to_parquet(partial, index=False)
