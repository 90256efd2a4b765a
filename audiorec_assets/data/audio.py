"""Audio file helpers shared by ingest (duration, decode check) and encoders (load + resample)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".mp3", ".ogg")


class AudioReadError(RuntimeError):
    """An audio file could not be read; the message names the file."""


def audio_duration(path: Path) -> float:
    """Duration in seconds, read from the header (soundfile), falling back to a full decode."""
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except Exception:  # mp3 on an old libsndfile, odd headers: decode instead
        waveform, sr = _decode(path, sr=None, offset=0.0, duration=None)
        return len(waveform) / sr


def duration_or_nan(path: Path) -> float:
    """:func:`audio_duration`, or NaN for a file that cannot be read (the tracks check names every such file)."""
    try:
        return audio_duration(path)
    except AudioReadError:
        return float("nan")


def check_decodes(path: Path, seconds: float = 1.0) -> None:
    """Decode the first ``seconds`` of ``path``; raise :class:`AudioReadError` if that fails or is empty."""
    waveform, _ = _decode(path, sr=None, offset=0.0, duration=seconds)
    if waveform.size == 0:
        raise AudioReadError(f"{path}: decodes to zero samples")


def load_audio(path: Path, sr: int, duration: float | None = None, offset: float = 0.0) -> np.ndarray:
    """Mono float32 waveform of ``path`` at ``sr`` Hz, the first ``duration`` seconds after ``offset``."""
    return _decode(path, sr=sr, offset=offset, duration=duration)[0]


def _downmix(frames: np.ndarray) -> np.ndarray:
    """Mono as the mean of the channels, summed column by column (the same values as ``mean(axis=1)`` for
    stereo, several times faster on interleaved frames: bench/bench_tracks_check.py)."""
    mono = frames[:, 0].copy()
    for channel in range(1, frames.shape[1]):
        mono += frames[:, channel]
    if frames.shape[1] > 1:
        mono /= np.float32(frames.shape[1])
    return mono


def _decode(path: Path, sr: int | None, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            native_sr = f.samplerate
            f.seek(int(offset * native_sr))
            frames = -1 if duration is None else int(round(duration * native_sr))
            data = f.read(frames=frames, dtype="float32", always_2d=True)
        waveform = _downmix(data)
    except Exception as sf_err:
        try:
            import librosa

            waveform, native_sr = librosa.load(str(path), sr=None, mono=True, offset=offset, duration=duration)
        except Exception as err:
            if Path(path).is_file() and not looks_like_audio(Path(path)):
                raise AudioReadError(
                    f"{path}: not an audio file (no WAV, FLAC, MP3 or Ogg header; it starts with "
                    f"{Path(path).read_bytes()[:16]!r}). Replace it with the track's audio or remove it.") from err
            raise AudioReadError(f"{path}: cannot decode audio ({sf_err}; {err})") from err
    if sr is not None and sr != native_sr:
        import soxr

        waveform = soxr.resample(waveform, native_sr, sr, quality="HQ")
        native_sr = sr
    return np.ascontiguousarray(waveform, dtype=np.float32), native_sr


# first bytes of the supported containers (MP3: an ID3 tag or an MPEG frame sync)
_MAGIC = (b"RIFF", b"RF64", b"fLaC", b"OggS", b"ID3")


def looks_like_audio(path: Path) -> bool:
    """Whether ``path`` starts like a WAV, FLAC, Ogg or MP3 file (a renamed text file does not)."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    return head.startswith(_MAGIC) or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


AUDIO_ODDITIES = ("truncated", "nan_samples", "short", "silent")
SHORT_SECONDS = 1.0
SILENT_PEAK = 1e-4  # about -80 dBFS: nothing audible


def audio_oddities(path: Path) -> dict[str, str]:
    """What is odd about a readable audio file, by kind (:data:`AUDIO_ODDITIES`) → message naming it, decoding the
    whole file: ``truncated`` (fewer samples than its header promises, or a WAV data chunk longer than the file),
    ``nan_samples``, ``short``, ``silent``. Raises :class:`AudioReadError` when it does not decode."""
    import soundfile as sf

    declared = None
    try:
        declared = int(sf.info(str(path)).frames)
    except Exception:
        pass
    waveform, sr = _decode(path, sr=None, offset=0.0, duration=None)
    return _judge(path, waveform, sr, declared)


def _judge(path: Path, waveform: np.ndarray, sr: int, declared: int | None) -> dict[str, str]:
    """:func:`audio_oddities` of the whole mono ``waveform`` of ``path`` (``declared``: the frames its header
    promises, None when libsndfile cannot read the header)."""
    found: dict[str, str] = {}
    missing_bytes = _wav_missing_bytes(path)
    if missing_bytes:
        found["truncated"] = f"{path}: truncated (its WAV header promises {missing_bytes} bytes more than the file has)"
    elif declared is not None and 0 < declared and len(waveform) < declared:
        found["truncated"] = f"{path}: truncated ({len(waveform)} of the {declared} samples its header promises)"
    finite = np.isfinite(waveform)
    if not finite.all():
        found["nan_samples"] = f"{path}: {int((~finite).sum())} NaN/inf sample(s), first at {np.argmin(finite) / sr:.3f} s"
    seconds = len(waveform) / sr
    if seconds < SHORT_SECONDS:
        found["short"] = f"{path}: only {seconds:.3f} s of audio (under {SHORT_SECONDS:g} s)"
    if not finite.any():
        peak = 0.0
    else:  # nanmax only where it has a NaN to skip (it costs several times max)
        peak = float(np.nanmax(np.abs(waveform)) if "nan_samples" in found else np.abs(waveform).max())
    if waveform.size and peak < SILENT_PEAK:
        found["silent"] = f"{path}: silent (peak {peak:.1e})"
    return found


# what probe_audio reads of a healthy file: the first frames (≈ 0.1 s at 44.1 kHz) and the last ones
PROBE_HEAD_FRAMES = 4096
PROBE_TAIL_FRAMES = 1024
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}


def probe_audio(path: Path) -> dict[str, str]:
    """:func:`probe_audio_and_duration` without the duration."""
    return probe_audio_and_duration(path)[0]


def probe_audio_and_duration(path: Path) -> tuple[dict[str, str], float | None]:
    """What :func:`audio_oddities` would find in ``path`` (same verdict, same messages), without decoding a healthy
    file in full, and the duration its header gives (``frames / samplerate``; None where libsndfile cannot read it).

    One open of the file: the header, the first :data:`PROBE_HEAD_FRAMES` and last :data:`PROBE_TAIL_FRAMES` frames
    (a truncated file cannot deliver them), and a WAV's chunk scan. A small file, a float one (NaN samples can be
    anywhere) or one under :data:`SHORT_SECONDS` is read whole through that handle; an unreadable header, a start
    without a sample at or over :data:`SILENT_PEAK`, a short or failing read or a WAV data chunk past the end go to
    :func:`audio_oddities` itself. Raises :class:`AudioReadError` naming the file when it does not decode; a file
    whose middle alone does not decode passes here (the encoder that decodes it names it)."""
    import soundfile as sf

    duration = None
    try:
        with sf.SoundFile(str(path)) as f:
            frames, rate = f.frames, f.samplerate
            if rate <= 0:
                return audio_oddities(path), None
            duration = float(frames) / rate
            if (f.subtype in _FLOAT_SUBTYPES or frames < SHORT_SECONDS * rate
                    or frames <= PROBE_HEAD_FRAMES + PROBE_TAIL_FRAMES):
                return _judge(path, _downmix(f.read(dtype="float32", always_2d=True)), rate, frames), duration
            head = f.read(frames=PROBE_HEAD_FRAMES, dtype="float32", always_2d=True)
            vouched = (len(head) == PROBE_HEAD_FRAMES and np.isfinite(head).all()
                       and float(np.abs(head).max()) >= SILENT_PEAK)
            if vouched:
                f.seek(frames - PROBE_TAIL_FRAMES)
                tail = f.read(frames=PROBE_TAIL_FRAMES, dtype="float32", always_2d=True)
                vouched = len(tail) == PROBE_TAIL_FRAMES and bool(np.isfinite(tail).all())
    except Exception:  # libsndfile cannot read it: the full decode (with its fallbacks) decides and names it
        vouched = False
    if not vouched or _wav_missing_bytes(path):
        return audio_oddities(path), duration
    return {}, duration


def _wav_missing_bytes(path: Path) -> int:
    """For a RIFF/WAVE file, how many bytes its ``data`` chunk claims beyond the end of the file (0: none).
    (Unbuffered reads at offsets: this runs once per file of a catalogue, where a file object costs more.)"""
    import os

    fd = os.open(path, os.O_RDONLY)
    try:
        if os.pread(fd, 12, 0)[8:12] != b"WAVE":
            return 0
        size, position = os.fstat(fd).st_size, 12
        while True:
            header = os.pread(fd, 8, position)
            if len(header) < 8:
                return 0
            chunk, length = header[:4], int.from_bytes(header[4:], "little")
            position += 8
            if chunk == b"data":
                return max(0, position + length - size) if length != 0xFFFFFFFF else 0
            position += length + (length & 1)
    finally:
        os.close(fd)
