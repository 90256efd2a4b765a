"""Synthetic listening logs, the generators' side: the log frame, and the marker ``audiorec demo`` and ``audiorec
mock-logs`` write beside the log they generate. The ingest reads it (:mod:`audiorec_assets.data.synthetic`) and
flags every table built from that log."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from audiorec_assets.fingerprints import digest
from audiorec_assets.lakeio import atomic_path


def user_ids(n: int) -> list[str]:
    """``u0001``, ``u0002``, …: the ids of ``n`` synthetic users (at least four digits)."""
    width = max(4, len(str(n)))
    return [f"u{u + 1:0{width}d}" for u in range(n)]


def sorted_log(users: list[str], track_ids: np.ndarray, user_idx: list[np.ndarray], item_idx: list[np.ndarray],
               stamps: list[np.ndarray], start: date) -> pd.DataFrame:
    """The log ``user_id, track_id, timestamp`` of each user's plays (indices into ``users`` and ``track_ids``,
    whole seconds since ``start``), sorted by time; ties keep a user's own order."""
    user, item, stamp = (np.concatenate(parts) for parts in (user_idx, item_idx, stamps))
    order = np.lexsort((np.arange(len(user)), user, stamp))
    return pd.DataFrame({
        "user_id": np.array(users, dtype=object)[user[order]],
        "track_id": track_ids[item[order]],
        "timestamp": pd.Timestamp(start) + pd.to_timedelta(stamp[order], unit="s"),
    })


def describe_log(file: str, payload: bytes) -> dict:
    """A marker's ``log`` entry for the log named ``file`` that holds ``payload``."""
    return {"file": file, "bytes": len(payload), "sha1": digest(payload)}


def write_marker(marker: Path, described: dict, staging: Path | None = None) -> None:
    """Write ``described`` (with a ``log`` entry from :func:`describe_log`) to ``marker`` atomically, temporaries in
    ``staging`` (default: beside ``marker``). It holds no time, so the same log writes the same bytes."""
    with atomic_path(marker, staging=staging) as tmp:
        tmp.write_text(json.dumps(described, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
