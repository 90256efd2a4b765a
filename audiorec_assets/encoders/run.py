"""Encode a catalogue incrementally: only new or changed audio (by content hash) is re-encoded.

Pure functions over an :class:`AudioEncoder`; the Dagster asset calls :func:`encode_catalogue`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from audiorec_assets.data.audio import load_audio
from audiorec_assets.encoders.base import AudioEncoder, EncoderError

Progress = Callable[[int, int, float], None]  # done, total, seconds so far


@dataclass(frozen=True)
class PreviousEmbeddings:
    """What an earlier run stored: content hash and vector per track, and the encoder's signature."""

    content_hashes: list[str]
    vectors: np.ndarray
    signature: str
    skipped: list[bool] | None = None  # rows that were mean-filled: never reused


@dataclass
class EncodeReport:
    encoded: int = 0
    reused: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    audio_seconds: float = 0.0

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / self.seconds if self.seconds else float("inf")


def content_hash(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-1 of the file's bytes (a changed file is re-encoded, a renamed one is not)."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def encoder_signature(encoder: AudioEncoder) -> str:
    """Everything that changes an encoder's output; stored vectors with another signature are not reused."""
    return json.dumps(encoder.describe(), sort_keys=True)


def encode_catalogue(
    encoder: AudioEncoder,
    audio_paths: list[Path],
    previous: PreviousEmbeddings | None = None,
    on_error: str = "fail",
    progress: Progress | None = None,
) -> tuple[np.ndarray, list[str], EncodeReport]:
    """Vectors for ``audio_paths`` (row i ↔ path i), reusing ``previous`` rows whose content hash matches.

    ``on_error="fail"`` raises :class:`EncoderError` naming the file; ``"skip"`` lists the track in
    ``report.skipped`` and fills its row with the mean of the encoded rows (never zeros), so that
    every track keeps a row.
    """
    started = time.perf_counter()
    report = EncodeReport()
    hashes = [content_hash(p) for p in audio_paths]
    vectors = np.full((len(audio_paths), encoder.dim), np.nan, dtype=np.float32)
    reusable: dict[str, int] = {}
    if previous is not None and previous.signature == encoder_signature(encoder):
        skipped_before = previous.skipped or [False] * len(previous.content_hashes)
        reusable = {h: i for i, (h, s) in enumerate(zip(previous.content_hashes, skipped_before)) if not s}
    todo = []
    for row, digest in enumerate(hashes):
        if digest in reusable:
            vectors[row] = previous.vectors[reusable[digest]]  # type: ignore[union-attr]
            report.reused += 1
        else:
            todo.append(row)
    if todo:
        encoder.load()
        _encode_rows(encoder, audio_paths, todo, vectors, report, on_error, progress, started)
    if report.skipped:
        good = np.isfinite(vectors).all(axis=1)
        if not good.any():
            raise EncoderError(f"{encoder.name}: every track failed to encode, e.g. {report.skipped[:3]}")
        vectors[~good] = vectors[good].mean(axis=0)
    report.seconds = time.perf_counter() - started
    return vectors, hashes, report


def _encode_rows(encoder: AudioEncoder, paths: list[Path], rows: list[int], vectors: np.ndarray, report: EncodeReport,
                 on_error: str, progress: Progress | None, started: float) -> None:
    batch_size = max(1, encoder.context.batch_size)
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]

    def load(batch: list[int]) -> list[tuple[int, np.ndarray | Exception]]:
        loaded: list[tuple[int, np.ndarray | Exception]] = []
        for row in batch:
            try:
                loaded.append((row, load_audio(paths[row], encoder.sample_rate, encoder.clip_seconds)))
            except Exception as err:  # reported below with the file name
                loaded.append((row, err))
        return loaded

    # decode the next batch on a thread while the model works on this one
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, batches[0])
        for index in range(len(batches)):
            loaded = pending.result()
            if index + 1 < len(batches):
                pending = pool.submit(load, batches[index + 1])
            good = []
            for row, item in loaded:
                if isinstance(item, Exception):
                    _fail_or_skip(paths[row], item, on_error, report)
                else:
                    good.append((row, item))
            if good:
                _embed_batch(encoder, paths, good, vectors, report, on_error)
            if progress:
                progress(sum(len(b) for b in batches[: index + 1]), len(rows), time.perf_counter() - started)


def _embed_batch(encoder: AudioEncoder, paths: list[Path], good: list[tuple[int, np.ndarray]], vectors: np.ndarray,
                 report: EncodeReport, on_error: str) -> None:
    try:
        out = encoder.embed([waveform for _, waveform in good])
    except Exception:
        if len(good) == 1:
            raise
        # find the culprit: embed one by one
        for item in good:
            try:
                _embed_batch(encoder, paths, [item], vectors, report, on_error)
            except Exception as err:
                _fail_or_skip(paths[item[0]], err, on_error, report)
        return
    if out.shape != (len(good), encoder.dim):
        raise EncoderError(f"{encoder.name} returned shape {out.shape}, expected {(len(good), encoder.dim)}")
    for (row, waveform), vector in zip(good, out):
        if not np.isfinite(vector).all():
            _fail_or_skip(paths[row], EncoderError("non-finite embedding"), on_error, report)
            continue
        vectors[row] = vector
        report.encoded += 1
        report.audio_seconds += len(waveform) / encoder.sample_rate


def _fail_or_skip(path: Path, err: Exception, on_error: str, report: EncodeReport) -> None:
    if on_error == "fail":
        raise EncoderError(
            f"{path}: {err}. Fix or remove the file, or set encode.on_error: skip to skip it (it is then reported)."
        ) from err
    report.skipped.append(path.stem)


def vectors_digest(vectors: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(vectors).tobytes()).hexdigest()


def index_frame(track_ids: list[str], hashes: list[str], vectors: np.ndarray, skipped_ids: list[str],
                signature: str) -> pd.DataFrame:
    """What :func:`load_previous` needs next time; ``vectors_sha1`` ties the index to its vectors file."""
    skipped = set(skipped_ids)
    return pd.DataFrame({"track_id": track_ids, "content_hash": hashes,
                         "skipped": [str(t) in skipped for t in track_ids],
                         "signature": signature, "vectors_sha1": vectors_digest(vectors)})


def load_previous(vectors_path: Path, index_path: Path) -> PreviousEmbeddings | None:
    """The stored vectors and their hashes, or ``None`` when absent or not written together."""
    if not (vectors_path.exists() and index_path.exists()):
        return None
    index = pd.read_parquet(index_path)
    vectors = np.load(vectors_path)
    # the two files are renamed one after the other: trust them only as a pair
    if len(index) != len(vectors) or "vectors_sha1" not in index or (
            len(index) and index["vectors_sha1"].iloc[0] != vectors_digest(vectors)):
        return None
    signature = str(index["signature"].iloc[0]) if len(index) else ""
    return PreviousEmbeddings(list(index["content_hash"]), vectors, signature, list(index["skipped"]))


def vector_stats(vectors: np.ndarray) -> dict[str, float]:
    """Norm statistics for metadata and checks."""
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    return {
        "norm_min": float(norms.min()),
        "norm_mean": float(norms.mean()),
        "norm_max": float(norms.max()),
        "mean_abs_std_across_tracks": float(vectors.std(axis=0).mean()),
    }


def vector_problems(vectors: np.ndarray, n_tracks: int) -> list[str]:
    """What is wrong with an embedding matrix for a catalogue of ``n_tracks`` (empty list: nothing)."""
    if vectors.ndim != 2:
        return [f"expected a 2-D (tracks, dim) array, got shape {vectors.shape}"]
    problems = []
    if vectors.shape[0] != n_tracks:
        problems.append(f"{vectors.shape[0]} rows but the catalogue has {n_tracks} tracks (audiorec.tracks)")
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        problems.append(f"{int((~finite).sum())} row(s) with NaN/inf, first at item_idx {int(np.argmin(finite))}")
    zero = ~np.any(vectors != 0, axis=1)
    if zero.any():
        problems.append(f"{int(zero.sum())} all-zero row(s), first at item_idx {int(np.argmax(zero))}")
    if len(vectors) > 1 and finite.all() and np.all(vectors == vectors[0]):
        problems.append("every track has the same vector")
    return problems
