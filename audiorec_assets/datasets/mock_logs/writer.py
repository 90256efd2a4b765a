"""Writing a mock log into a lake's ``raw/`` folder: ``listens.csv``, its synthetic marker, and a
:class:`MockLogReport` that previews the split the ingest will derive from it."""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from audiorec_assets.data.sources import ONION_LOG, OWN_LOGS
from audiorec_assets.data.splits import EVAL_DAYS, TRAIN_DAYS
from audiorec_assets.data.synthetic import SYNTHETIC_MARKER, marker_describes, read_synthetic_marker
from audiorec_assets.datasets.marker import describe_log, write_marker
from audiorec_assets.datasets.mock_logs.catalogue import read_catalogue
from audiorec_assets.datasets.mock_logs.config import MockLogConfig
from audiorec_assets.datasets.mock_logs.simulation import mock_model
from audiorec_assets.fingerprints import array_digest
from audiorec_assets.lakeio import atomic_path, process_staging

MOCK_LOG_VERSION = 1  # bump when the same config and catalogue give another log
MOCK_LOG_FILE = "listens.csv"


@dataclass(frozen=True)
class MockLogReport:
    """What :func:`write_mock_logs` wrote, with the windows the default split derives from this log:
    ``cold_tracks`` = catalogue tracks without a play in its train window (the ``test_cold`` candidates),
    ``cold_tracks_played`` = those of them played in its evaluation window;
    ``warm_eval_pairs`` = evaluation-window pairs new to their user on tracks with train plays (what val and
    test will hold: 0 means the ingest's interactions check fails; use more tracks or fewer sessions)."""

    log_path: Path
    marker_path: Path
    rows: int
    users: int
    catalogue_tracks: int
    tracks_played: int
    first_listen: datetime
    last_listen: datetime
    cold_tracks: int
    cold_tracks_played: int
    warm_eval_pairs: int
    taste_columns: tuple[str, ...]
    sequence_column: str | None
    metadata_rows_without_audio: int
    seconds: float


def write_mock_logs(raw_dir: Path, config: MockLogConfig | None = None, vectors: np.ndarray | None = None,
                    staging: Path | None = None) -> MockLogReport:
    """Draw a mock log for the catalogue in ``raw_dir`` and write ``raw_dir/listens.csv`` with its marker.

    The catalogue: the audio files in ``raw_dir/audio`` with the ``tracks.csv`` columns when there is one (none:
    tastes come from ``vectors`` or random clusters). ``vectors``: optional item vectors in ``item_idx`` order (track
    ids sorted, as ``<lake>/embeddings/<encoder>.npy``). Refuses (:class:`FileExistsError`) a listening log that is
    not the mock log its :data:`SYNTHETIC_MARKER` describes; replaces an earlier mock log. Both files are written
    atomically (temporaries in ``staging``, by default the lake's ``tmp/staging/``); the marker holds no time, so
    the same config writes the same bytes.
    """
    started = time.perf_counter()
    config = config or MockLogConfig()
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise ValueError(f"{raw_dir}: no such folder; put the catalogue's audio in {raw_dir / 'audio'} first")
    marker = raw_dir / SYNTHETIC_MARKER
    previous = _refuse_real_logs(raw_dir, marker)
    catalogue, rows_without_audio = read_catalogue(raw_dir)
    in_catalogue_order = None
    if vectors is not None:
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(catalogue):
            raise ValueError(f"vectors: expected shape ({len(catalogue)}, d), one row per track with audio in "
                             f"item_idx order (sorted track ids), got {vectors.shape}")
        item_idx = {t: i for i, t in enumerate(sorted(catalogue["track_id"]))}
        in_catalogue_order = vectors[[item_idx[t] for t in catalogue["track_id"]]]
    model = mock_model(catalogue, config, in_catalogue_order)
    listens = model.listens
    text = listens.assign(timestamp=listens["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_csv(
        index=False, lineterminator="\n")
    payload = text.encode("utf-8")
    described = {
        "synthetic": True,
        # the module's path when first written (now datasets/): the marker's bytes are part of raw/'s version
        "generator": "audiorec mock-logs (audiorec_assets.data.mock_logs)",
        "version": MOCK_LOG_VERSION,
        "config": config.as_dict(),
        "vectors": None if vectors is None else {"shape": list(vectors.shape), "sha1": array_digest(vectors)},
        "taste_columns": list(model.taste_columns),
        "sequence_column": model.sequence_column,
        "log": describe_log(MOCK_LOG_FILE, payload),
        "note": "A synthetic listening log: not real behaviour. Delete this file and listens.csv to remove it.",
    }
    staging = process_staging(staging if staging is not None else raw_dir.parent / "tmp" / "staging")
    # until the new log is in place, the marker also names the old one
    write_marker(marker, described if previous is None else {**described, "previous_log": previous}, staging)
    with atomic_path(raw_dir / MOCK_LOG_FILE, staging=staging) as tmp:
        tmp.write_bytes(payload)
    if previous is not None:
        write_marker(marker, described, staging)

    cold, cold_played, warm_eval = _split_preview(listens, catalogue["track_id"])
    return MockLogReport(
        log_path=raw_dir / MOCK_LOG_FILE, marker_path=marker, rows=len(listens),
        users=int(listens["user_id"].nunique()), catalogue_tracks=len(catalogue),
        tracks_played=int(listens["track_id"].nunique()), first_listen=listens["timestamp"].iloc[0].to_pydatetime(),
        last_listen=listens["timestamp"].iloc[-1].to_pydatetime(), cold_tracks=cold, cold_tracks_played=cold_played,
        warm_eval_pairs=warm_eval, taste_columns=model.taste_columns, sequence_column=model.sequence_column,
        metadata_rows_without_audio=rows_without_audio, seconds=round(time.perf_counter() - started, 2),
    )


def _refuse_real_logs(raw_dir: Path, marker: Path) -> dict | None:
    """Raise :class:`FileExistsError` for a log in ``raw_dir`` that the marker does not describe; return
    the marker's ``log`` entry when ``raw_dir`` holds the mock log it describes (None: no log)."""
    logs = [raw_dir / name for name in (*OWN_LOGS, ONION_LOG, ONION_LOG + ".bz2") if (raw_dir / name).exists()]
    if not logs:
        return None
    described = None
    if marker.exists():
        with suppress(ValueError):  # unreadable: it describes no log
            described = read_synthetic_marker(marker)
    demo = (raw_dir / "DEMO.md").exists()  # the demo's log is synthetic too (its marker says so), not a mock log
    for log in logs:
        if demo or log.name != MOCK_LOG_FILE or described is None or not marker_describes(described, log):
            what = ("the demo's listening log (a mock log is for your own catalogue)" if demo
                    else f"a real listening log (no readable {SYNTHETIC_MARKER} describes it)" if described is None
                    else f"a real listening log ({SYNTHETIC_MARKER} describes another log: it was replaced or edited)")
            raise FileExistsError(
                f"{log} is {what}: mock-logs never overwrites one. Move it out of {raw_dir} "
                "(or use another lake) to write a mock log.")
    return described["log"] if described is not None else None


def _split_preview(listens: pd.DataFrame, catalogue: pd.Series) -> tuple[int, int, int]:
    """(catalogue tracks without a train play, those of them played in the evaluation window, new-to-user
    evaluation pairs of warm users on warm tracks) under the windows ``splits.resolve_windows`` derives
    for an own catalogue with default settings."""
    first, last = listens["timestamp"].min(), listens["timestamp"].max()
    test_start = (last - pd.Timedelta(days=EVAL_DAYS)).normalize()
    train_start = max(first.normalize(), test_start - pd.Timedelta(days=TRAIN_DAYS))
    ts = listens["timestamp"]
    train = listens.loc[(ts >= train_start) & (ts < test_start), ["user_id", "track_id"]].drop_duplicates()
    evaluation = listens.loc[ts >= test_start, ["user_id", "track_id"]].drop_duplicates()
    cold = set(catalogue) - set(train["track_id"])
    new = evaluation.merge(train, how="left", indicator=True).query("_merge == 'left_only'")
    warm = new[new["user_id"].isin(set(train["user_id"])) & new["track_id"].isin(set(train["track_id"]))]
    return len(cold), len(cold & set(evaluation["track_id"])), len(warm)
