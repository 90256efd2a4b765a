"""Synthetic listening logs, the generators' side: the marker ``audiorec demo`` and ``audiorec mock-logs`` write
beside the log they generate. The ingest reads it (:mod:`audiorec_assets.data.synthetic`) and flags every table
built from that log."""

from __future__ import annotations

import json
from pathlib import Path


def describe_log(file: str, payload: bytes) -> dict:
    """A marker's ``log`` entry for the log named ``file`` that holds ``payload``."""
    from audiorec_assets.fingerprints import digest

    return {"file": file, "bytes": len(payload), "sha1": digest(payload)}


def write_marker(marker: Path, described: dict, staging: Path | None = None) -> None:
    """Write ``described`` (with a ``log`` entry from :func:`describe_log`) to ``marker`` atomically, temporaries in
    ``staging`` (default: beside ``marker``). It holds no time, so the same log writes the same bytes."""
    from audiorec_assets.lakeio import atomic_path

    with atomic_path(marker, staging=staging) as tmp:
        tmp.write_text(json.dumps(described, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
