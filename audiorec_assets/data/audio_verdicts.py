"""The remembered audio verdicts: what the tracks check's probe found in each file, by (path, size, mtime_ns), in
``LakePaths.audio_verdicts``: written where the probe runs (:func:`audiorec_assets.data.quality.file_verdicts`: in
an ingest, else in the tracks check), only ever whole, in one rename, and read back by both."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

# bump when probe_audio's verdicts (or what is remembered with them) change: remembered verdicts of another
# version are not used. 2: with each file's duration_s, which the tracks table takes from here.
PROBE_VERSION = 2
Verdict = tuple[bool, dict[str, str], str, float]  # decodes, oddities (kind -> message), problem, duration_s


def file_fingerprint(path: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of ``path``, or None when it is not a file."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_size, info.st_mtime_ns) if stat.S_ISREG(info.st_mode) else None


def _by_file(path: Path | None, columns: list[str], row: Callable[..., Any]) -> dict[tuple[str, int, int], Any]:
    """``row(*columns)`` of each row of :data:`PROBE_VERSION` in ``path``, by (file, size, mtime_ns); empty when there
    is no such file or it cannot be read."""
    if path is None or not path.is_file():
        return {}
    try:
        rows = pd.read_parquet(path, columns=["path", "size", "mtime_ns", "version", *columns])
        rows = rows[rows["version"] == PROBE_VERSION]
        return {(str(f), int(size), int(mtime)): row(*values) for f, size, mtime, *values
                in zip(rows["path"], rows["size"], rows["mtime_ns"], *(rows[c] for c in columns))}
    except Exception:  # a damaged or foreign file: probe again and replace it
        return {}


def read_verdicts(path: Path | None) -> dict[tuple[str, int, int], Verdict]:
    """The remembered probe verdicts in ``path`` by (file, size, mtime_ns); empty when there is no such file, it
    cannot be read (it is then rewritten) or it was written by another :data:`PROBE_VERSION`."""
    # most files have no oddity: no JSON to parse for "{}"
    return _by_file(path, ["decodes", "oddities", "problem", "duration_s"], lambda decodes, odd, problem, duration: (
        bool(decodes), json.loads(odd) if odd != "{}" else {}, str(problem), float(duration)))


def remembered_durations(path: Path | None) -> dict[tuple[str, int, int], float]:
    """:func:`read_verdicts`' ``duration_s`` alone (the tracks table reads only this: no oddities parsed)."""
    return _by_file(path, ["duration_s"], float)


def write_verdicts(path: Path, verdicts: dict[tuple[str, int, int], Verdict]) -> None:
    """Replace ``path`` with ``verdicts`` in one rename (a reader sees the old file or the new one)."""
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
