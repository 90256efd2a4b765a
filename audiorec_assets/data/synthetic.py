"""Synthetic listening logs, the ingest's side: reading the :data:`SYNTHETIC_MARKER` that ``audiorec demo`` and
``audiorec mock-logs`` write beside their log (:mod:`audiorec_assets.datasets.marker`), so that the ingest flags
every table built from it (``audiorec.split_info.synthetic``) and no result passes for real behaviour."""

from __future__ import annotations

import json
from pathlib import Path

from audiorec_assets.data.log_errors import SourceError

SYNTHETIC_MARKER = "listens.synthetic.json"
DEFAULT_GENERATOR = "audiorec mock-logs"  # markers written before the demo wrote one say no other


def read_synthetic_marker(marker: Path) -> dict:
    """The JSON of a synthetic-log marker; :class:`SourceError` naming it when it cannot be read."""
    try:
        described = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SourceError(f"{marker} cannot be read ({err}): if the listening log beside it is real, delete "
                          "the marker; if it is synthetic, write it again (`audiorec mock-logs`, or `audiorec demo` "
                          "into an empty raw/).") from None
    if not isinstance(described, dict):
        raise SourceError(f"{marker} is not a synthetic-log marker (a JSON object): delete it if the log is real, "
                          "or write the log again (`audiorec mock-logs`, or `audiorec demo` into an empty raw/).")
    return described


def marker_describes(described: dict, log_path: Path) -> bool:
    """Whether ``log_path`` is the log a marker names (file name, size and SHA-1; the marker's
    ``previous_log`` too, which covers a rewrite cut off between writing the marker and the log)."""
    from audiorec_assets.fingerprints import file_hash

    if not log_path.is_file():
        return False
    size = log_path.stat().st_size
    return any(isinstance(entry, dict) and entry.get("file") == log_path.name and entry.get("bytes") == size
               and entry.get("sha1") == file_hash(log_path)
               for entry in (described.get("log"), described.get("previous_log")))


def log_is_synthetic(log_path: Path) -> bool:
    """Whether the listening log at ``log_path`` was written by ``audiorec demo`` or ``audiorec mock-logs`` (a
    :data:`SYNTHETIC_MARKER` beside it names it). A marker that names another log (the log was replaced or edited
    since) raises :class:`SourceError`: the tables would otherwise be labelled wrongly one way or the other."""
    marker = log_path.parent / SYNTHETIC_MARKER
    if not marker.exists():
        return False
    described = read_synthetic_marker(marker)
    if marker_describes(described, log_path):
        return True
    command = str(described.get("generator", DEFAULT_GENERATOR)).split(" (")[0]  # "audiorec demo (module)"
    raise SourceError(
        f"{marker} marks a synthetic listening log, but {log_path.name} is not the log it describes "
        f"(replaced or edited since `{command}` wrote it). If {log_path.name} is real behaviour, "
        f"delete {marker.name}; if it should be synthetic, write it again with `{command}`.")
