"""Builders for small raw lakes used across tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf

Listen = tuple[str, str, str]  # user_id, track_id, timestamp


def write_tone(path: Path, seconds: float = 1.0, sr: int = 8000, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(path), (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path


def write_onion(raw: Path, listens: Iterable[Listen], tracks: Iterable[str] | None = None, bz2: bool = False) -> Path:
    """A Music4All-Onion raw folder: ``userid_trackid_timestamp.tsv`` (+ ``audios/``)."""
    listens = list(listens)
    raw.mkdir(parents=True, exist_ok=True)
    text = "user_id\ttrack_id\ttimestamp\n" + "".join(f"{u}\t{t}\t{ts}\n" for u, t, ts in listens)
    track_ids = sorted(set(tracks) if tracks is not None else {t for _, t, _ in listens})
    for i, track in enumerate(track_ids):
        write_tone(raw / "audios" / f"{track}.wav", freq=200.0 + 20 * i)
    if bz2:
        import bz2 as bz2_module

        path = raw / "userid_trackid_timestamp.tsv.bz2"
        path.write_bytes(bz2_module.compress(text.encode()))
        return path
    path = raw / "userid_trackid_timestamp.tsv"
    path.write_text(text)
    return path


def write_own(raw: Path, listens: Iterable[Listen], fmt: str = "csv", tracks: Iterable[str] | None = None,
              metadata: bool = True) -> Path:
    """An own-catalogue raw folder: ``listens.<fmt>`` + ``audio/`` (+ ``tracks.csv``)."""
    import pandas as pd

    listens = list(listens)
    raw.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(listens, columns=["user_id", "track_id", "timestamp"])
    track_ids = sorted(set(tracks) if tracks is not None else set(frame["track_id"]))
    for i, track in enumerate(track_ids):
        write_tone(raw / "audio" / f"{track}.flac", freq=300.0 + 15 * i)
    if metadata:
        pd.DataFrame({"track_id": track_ids, "artist": [f"artist {i % 3}" for i in range(len(track_ids))]}).to_csv(
            raw / "tracks.csv", index=False
        )
    path = raw / f"listens.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    else:
        frame.assign(timestamp=pd.to_datetime(frame["timestamp"])).to_parquet(path, index=False)
    return path


# a demo that ingests in seconds and still has warm and cold evaluation pairs
SMALL_DEMO = {"n_tracks": 40, "n_users": 30, "start": date(2019, 1, 1), "end": date(2019, 7, 20)}


def write_demo(lake: Path, seed: int = 1, **shape):
    """Write the demo data set into the lake's ``raw/`` the way ``audiorec demo`` does (``write_demo_if_empty``;
    no asset writes it), :data:`SMALL_DEMO`-sized unless ``shape`` says otherwise; its :class:`DemoSummary`."""
    from audiorec_assets.datasets.demo import write_demo_if_empty
    from audiorec_assets.settings import LakePaths

    paths = LakePaths(lake)
    summary = write_demo_if_empty(paths.raw, paths.staging, seed=seed, **{**SMALL_DEMO, **shape})
    assert summary is not None, f"{paths.raw} already holds data: the demo was not written"
    return summary


def materialization(result, name: str):
    """The materialization of asset ``audiorec/<name>`` in an in-process ``result`` (whichever op wrote it)."""
    import dagster as dg

    key = dg.AssetKey(["audiorec", name])
    found = [m for m in result.get_asset_materialization_events() if m.asset_key == key]
    assert found, f"{key.to_user_string()} was not materialized"
    return found[-1].materialization


def ingest_lake(lake: Path):
    """Materialize the ingest group (and its checks) of the lake at ``lake``; the run must succeed."""
    import dagster as dg

    from audiorec_assets.definitions import build_definitions
    from audiorec_assets.defs.execute import everything

    defs = build_definitions(lake)
    result = dg.materialize(everything(defs), selection=dg.AssetSelection.groups("ingest"), resources=defs.resources)
    assert result.success
    return result


def write_cell_tables(paths, metrics, user_metrics, cells: Iterable[tuple[str, str]]) -> None:
    """Each cell's rows of ``metrics`` and ``user_metrics`` frames as its files in the lake's tables (what the cells'
    evaluation writes), for the table assets to read."""
    from audiorec_assets.warehouse import write_table_file

    for encoder, recommender in cells:
        part = f"{encoder}__{recommender}"
        pick = (metrics["encoder"] == encoder) & (metrics["recommender"] == recommender)
        write_table_file(paths, "metrics", metrics[pick], part=part)
        mine = (user_metrics["encoder"] == encoder) & (user_metrics["recommender"] == recommender)
        write_table_file(paths, "user_metrics", user_metrics[mine], part=part)


def materialize_vectors(defs, encoder: str, instance=None, **kwargs):
    """``audiorec/embeddings[encoder]`` as the automation orders it: first ``audiorec/audio_vectors`` of the audio
    encoder it is, or is computed from (if any). Returns the last run's result (the first failed one, if any)."""
    import dagster as dg

    from audiorec_assets.defs.audio_vectors import AUDIO_VECTORS
    from audiorec_assets.defs.embeddings import EMBEDDINGS
    from audiorec_assets.defs.execute import everything, materialize
    from audiorec_assets.defs.partitions import audio_roots

    instance = instance or dg.DagsterInstance.ephemeral()
    kwargs.setdefault("resources", defs.resources)
    for root in audio_roots([encoder], defs.resources["lake"].settings()):
        result = materialize(everything(defs), selection=[AUDIO_VECTORS], partition_key=root, instance=instance,
                             **kwargs)
        if not result.success:
            return result
    return materialize(everything(defs), selection=dg.AssetSelection.assets(EMBEDDINGS).required_multi_asset_neighbors(),
                       partition_key=encoder, instance=instance, **kwargs)
