"""Encode a catalogue incrementally: only new or changed audio (by content hash) is re-encoded (docs/encoders.md).

An encoder may define ``finalize(raw) -> vectors``, a transform of the whole ``(tracks, dim)`` matrix of per-track
("raw") vectors (``mfcc`` z-scores each feature over the catalogue), applied after all tracks are encoded. Reuse is
always of raw vectors: for such an encoder the index keeps them (column ``raw_vector``); an index without them
reuses nothing, since ``<encoder>.npy`` then holds only finalized ones.
"""

from __future__ import annotations

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
from audiorec_assets.fingerprints import array_digest, file_hash

Progress = Callable[[int, int, float], None]  # done, total, seconds so far
Finalize = Callable[[np.ndarray], np.ndarray]
RAW_COLUMN = "raw_vector"


@dataclass(frozen=True)
class PreviousEmbeddings:
    """What an earlier run stored: content hash and vector per track, and the encoder's signature."""

    content_hashes: list[str]
    vectors: np.ndarray  # what ``<encoder>.npy`` holds (after ``finalize``, if the encoder has one)
    signature: str
    skipped: list[bool] | None = None  # rows that were mean-filled: never reused
    raw_vectors: np.ndarray | None = None  # per-track vectors before ``finalize``; None: not stored


@dataclass
class EncodeReport:
    encoded: int = 0
    reused: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    audio_seconds: float = 0.0
    # per-track vectors before the encoder's ``finalize`` (None: it has none); store them with
    # ``index_frame(..., raw_vectors=report.raw_vectors)`` so that the next run can reuse them
    raw_vectors: np.ndarray | None = field(default=None, repr=False)

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / self.seconds if self.seconds else float("inf")


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
    ``report.skipped`` and fills its row with the mean of the encoded rows (never zeros).

    With ``finalize`` (module docstring) the raw vectors come back in ``report.raw_vectors``. The transform sees
    only the encoded tracks; a skipped track gets the finalized row nearest to their mean (the most typical
    track), since the mean itself is the origin after a centring transform (no direction for cosine).
    """
    started = time.perf_counter()
    report = EncodeReport()
    finalize: Finalize | None = getattr(encoder, "finalize", None)
    hashes = [file_hash(p) for p in audio_paths]  # SHA-1 of the bytes: a changed file is re-encoded, a renamed one not
    raw = np.full((len(audio_paths), encoder.dim), np.nan, dtype=np.float32)
    reusable: dict[str, int] = {}
    stored = None
    if previous is not None and previous.signature == encoder_signature(encoder):
        # reuse raw vectors only: without finalize they are what <encoder>.npy holds, with it the index's
        stored = previous.vectors if finalize is None else previous.raw_vectors
    if stored is not None and stored.shape[1:] == (encoder.dim,):
        skipped_before = previous.skipped or [False] * len(previous.content_hashes)
        reusable = {h: i for i, (h, s) in enumerate(zip(previous.content_hashes, skipped_before)) if not s}
    todo = []
    for row, digest in enumerate(hashes):
        if digest in reusable:
            raw[row] = stored[reusable[digest]]  # type: ignore[index]
            report.reused += 1
        else:
            todo.append(row)
    if todo:
        encoder.load()
        _encode_rows(encoder, audio_paths, todo, raw, report, on_error, progress, started)
    good = np.isfinite(raw).all(axis=1)
    if report.skipped and not good.any():
        raise EncoderError(f"{encoder.name}: every track failed to encode, e.g. {report.skipped[:3]}")
    if finalize is None:
        vectors = raw
        _fill_skipped(vectors, good)
    else:
        vectors = np.empty_like(raw)
        if good.any():
            vectors[good] = _finalized(encoder, finalize, raw[good])
        _fill_skipped(vectors, good, nearest_row=True)
        _fill_skipped(raw, good)  # never reused (the index marks the row skipped), but finite
        report.raw_vectors = raw
    report.seconds = time.perf_counter() - started
    return vectors, hashes, report


def _finalized(encoder: AudioEncoder, finalize: Finalize, raw: np.ndarray) -> np.ndarray:
    out = np.asarray(finalize(raw.copy()), dtype=np.float32)
    if out.shape != raw.shape:
        raise EncoderError(f"{encoder.name}.finalize returned shape {out.shape}, expected {raw.shape}")
    if not np.isfinite(out).all():
        raise EncoderError(f"{encoder.name}.finalize returned non-finite values")
    return out


def _fill_skipped(vectors: np.ndarray, good: np.ndarray, nearest_row: bool = False) -> None:
    """Rows not ``good`` get the mean of the good rows (in place); with ``nearest_row``, the good row
    nearest to that mean."""
    if good.all():
        return
    fill = vectors[good].mean(axis=0)
    if nearest_row:
        fill = vectors[good][np.argmin(np.linalg.norm(vectors[good] - fill, axis=1))]
    vectors[~good] = fill


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
    except Exception as err:
        if len(good) == 1:
            # a lone file (often the only new one) is the culprit: named, and skipped under on_error: skip
            _fail_or_skip(paths[good[0][0]], err, on_error, report)
            return
        # find the culprit: embed one by one (each lone item is failed or skipped by name above)
        for item in good:
            _embed_batch(encoder, paths, [item], vectors, report, on_error)
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
        # the tracks check probes headers and ends only: a file whose middle does not decode is named here
        detail = str(err).removeprefix(f"{path}: ")
        raise EncoderError(
            f"{path}: {detail} (track {path.stem!r}). Fix or remove the file, or set encode.on_error: skip to skip "
            "it (it is then reported)."
        ) from err
    report.skipped.append(path.stem)


def index_frame(track_ids: list[str], hashes: list[str], vectors: np.ndarray, skipped_ids: list[str],
                signature: str, raw_vectors: np.ndarray | None = None) -> pd.DataFrame:
    """What :func:`load_previous` needs next time; ``vectors_sha1`` ties the index to its vectors file.
    ``raw_vectors`` (``EncodeReport.raw_vectors``) are kept in the column ``raw_vector``, one float32 list per track.
    """
    skipped = set(skipped_ids)
    frame = pd.DataFrame({"track_id": track_ids, "content_hash": hashes,
                          "skipped": [str(t) in skipped for t in track_ids],
                          "signature": signature, "vectors_sha1": array_digest(vectors)})
    if raw_vectors is not None:
        if raw_vectors.shape != vectors.shape:
            raise ValueError(f"raw_vectors have shape {raw_vectors.shape}, the vectors {vectors.shape}")
        frame[RAW_COLUMN] = list(np.asarray(raw_vectors, dtype=np.float32))
    return frame


def load_previous(vectors_path: Path, index_path: Path) -> PreviousEmbeddings | None:
    """The stored vectors and their hashes, or ``None`` when absent or not written together."""
    if not (vectors_path.exists() and index_path.exists()):
        return None
    index = pd.read_parquet(index_path)
    vectors = np.load(vectors_path)
    # the two files are renamed one after the other: trust them only as a pair
    if len(index) != len(vectors) or "vectors_sha1" not in index or (
            len(index) and index["vectors_sha1"].iloc[0] != array_digest(vectors)):
        return None
    signature = str(index["signature"].iloc[0]) if len(index) else ""
    raw = None
    if RAW_COLUMN in index:
        raw = (np.stack([np.asarray(v, dtype=np.float32) for v in index[RAW_COLUMN]]) if len(index)
               else np.zeros((0,) + vectors.shape[1:], dtype=np.float32))
        if raw.shape != vectors.shape:
            raw = None  # not written by index_frame: reuse nothing rather than wrong rows
    return PreviousEmbeddings(list(index["content_hash"]), vectors, signature, list(index["skipped"]), raw)


def vector_stats(vectors: np.ndarray) -> dict[str, float]:
    """Norm statistics for metadata and checks."""
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    return {"norm_min": float(norms.min()), "norm_mean": float(norms.mean()), "norm_max": float(norms.max()),
            "mean_abs_std_across_tracks": float(vectors.std(axis=0).mean())}


def embedding_problems(vectors: np.ndarray, n_tracks: int, no_audio: bool = False) -> list[str]:
    """The embeddings check (empty list: it passes): float32 and :func:`vector_problems`; for the encoder
    without audio (``no_audio``), a ``(n_tracks, 0)`` float32 array. The embeddings asset and the loader of
    every model step both apply it, so a file that fails it is refused in any run."""
    problems = [] if vectors.dtype == np.float32 else [
        f"dtype {vectors.dtype}, expected float32 (np.save(path, vectors.astype('float32')))"]
    if no_audio:
        if vectors.shape != (n_tracks, 0):
            problems.append(f"shape {vectors.shape}, expected ({n_tracks}, 0): the encoder without audio has no "
                            "features")
        return problems
    if not np.issubdtype(vectors.dtype, np.number):
        return problems
    return problems + vector_problems(vectors, n_tracks)


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
