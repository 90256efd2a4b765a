"""The ingest in one pass: raw files → the four tables ``listens``, ``tracks``, ``interactions`` and ``split_info``
under a fresh folder (publishing it is the Dagster layer's business)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from audiorec_assets.data import sources, splits
from audiorec_assets.data.tracks import CatalogueReport, build_tracks
from audiorec_assets.fingerprints import combine, table_fingerprint
from audiorec_assets.settings import INGEST_TABLES, ExperimentSettings, LakePaths
from audiorec_assets.warehouse import scratch_connection

Warn = Callable[[str], None]  # where the ingest's warnings go (a run's log)


def table_file(folder: Path, table: str) -> Path:
    """Where an ingest's ``table`` lies under ``folder`` (a fresh one, or a published set)."""
    return folder / table / "all.parquet"


@dataclass(frozen=True)
class IngestReport:
    """What one ingest wrote and found: the metadata of its four tables."""

    folder: Path  # the four tables, each as table_file(folder, table)
    source: sources.RawSource
    synthetic: bool  # the log was generated (audiorec demo, audiorec mock-logs): not real behaviour
    listens: sources.ListensReport
    listens_seconds: float
    catalogue: pd.DataFrame
    tracks: CatalogueReport
    windows: splits.SplitWindows
    split: splits.SplitReport
    per_split: pd.DataFrame  # one row per split, an empty one (e.g. no test_cold pairs) with zeros
    dropped: dict[str, int]  # listens dropped for lack of audio (missing_audio: drop), else empty
    fingerprints: dict[str, str]  # table → content fingerprint

    @property
    def version(self) -> str:
        """One id of the four tables' content: equal content, equal id."""
        return combine(*(self.fingerprints[t] for t in INGEST_TABLES))


def run_ingest(paths: LakePaths, settings: ExperimentSettings, folder: Path, warn: Warn) -> IngestReport:
    """Read ``paths.raw`` (what it holds, never written here: an empty ``raw/`` fails naming it), build the
    catalogue and the split with ``settings``, and write the four tables under ``folder``."""
    files = {table: table_file(folder, table) for table in INGEST_TABLES}
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    source = sources.detect_source(paths.raw)
    synthetic = sources.log_is_synthetic(source.log_path)  # the demo's or a mock log (its marker says so)
    started = time.perf_counter()
    with scratch_connection(paths) as con:
        read = sources.read_listens(con, source, files["listens"], paths.tmp, duplicates=settings.duplicates)
        listens_seconds = time.perf_counter() - started
        if read.duplicates:
            warn(f"{source.log_path}: {read.duplicates} event(s) repeat an earlier (user_id, track_id, timestamp): "
                 + ("dropped (duplicates: drop)." if settings.duplicates == "drop" else
                    "kept, each counted as a play (duplicates: keep); set duplicates: drop to drop them."))
        # each new or changed audio file probed here, once, for its duration and the tracks check's verdict
        catalogue, tracks = build_tracks(con, source, files["listens"], paths, probe=True)
        catalogue.to_parquet(files["tracks"], index=False)
        unreadable = catalogue.loc[catalogue["duration_s"].isna(), "track_id"].tolist()
        if unreadable:
            warn(f"{len(unreadable)} audio file(s) cannot be read, e.g. {unreadable[:5]}: "
                 "the tracks check will fail until they are fixed or removed.")
        if tracks.listened_without_audio:
            warn(f"{tracks.listened_without_audio} listened track(s) have no audio in {source.audio_dir}, e.g. "
                 f"{tracks.examples_without_audio}; setting missing_audio decides what the split does.")
        windows = splits.resolve_windows(con, files["listens"], source.layout, settings)
        dropped: dict[str, int] = {}
        policy = missing_audio_policy(settings.missing_audio, warn, dropped)
        split = splits.make_split(con, files["listens"], catalogue["track_id"].tolist(), windows, settings,
                                  files["interactions"], missing_audio=policy)
        per_split = splits.split_summary(con)
    pd.DataFrame([{
        "preset": settings.preset, "seed": settings.seed, "layout": source.layout.value,
        "train_start": windows.train_start, "test_start": windows.test_start,
        "val_end": windows.val_end, "test_end": windows.test_end,
        "val_fraction": settings.split.val_fraction, "synthetic": synthetic,
    }]).to_parquet(files["split_info"], index=False)
    fingerprints = {table: table_fingerprint(path) for table, path in files.items()}
    return IngestReport(folder, source, synthetic, read, listens_seconds, catalogue, tracks, windows, split,
                        per_split, dropped, fingerprints)


def missing_audio_policy(policy: str, warn: Warn, dropped: dict[str, int]) -> splits.MissingAudio:
    """For :func:`splits.make_split`: fail (``missing_audio: fail``) or report the drop, into ``dropped``, when
    listens inside the split's windows name tracks without audio."""
    def apply(missing: list[str], n_events: int) -> None:
        message = f"{len(missing)} listened track(s) ({n_events} events) have no audio file, e.g. {missing[:5]}"
        if policy == "fail":
            raise sources.SourceError(
                f"{message}. Add the audio files, or set missing_audio: drop in experiment.yaml to drop those listens."
            )
        warn(f"{message}: dropped (missing_audio: drop)")
        dropped.update(dropped_tracks_without_audio=len(missing), dropped_events_without_audio=n_events)
    return apply


def read_windows(split_info_file: Path) -> splits.SplitWindows:
    """The windows an ingest's split used, from its ``split_info`` table."""
    info = pd.read_parquet(split_info_file).iloc[0]
    train_start, test_start, test_end = (info[c].to_pydatetime() for c in ("train_start", "test_start", "test_end"))
    val_end = None if pd.isna(info["val_end"]) else pd.Timestamp(info["val_end"]).to_pydatetime()
    return splits.SplitWindows(train_start, test_start, test_end, val_end)
