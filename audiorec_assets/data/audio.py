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


def check_decodes(path: Path, seconds: float = 1.0) -> None:
    """Decode the first ``seconds`` of ``path``; raise :class:`AudioReadError` if that fails or is empty."""
    waveform, _ = _decode(path, sr=None, offset=0.0, duration=seconds)
    if waveform.size == 0:
        raise AudioReadError(f"{path}: decodes to zero samples")


def load_audio(path: Path, sr: int, duration: float | None = None, offset: float = 0.0) -> np.ndarray:
    """Mono float32 waveform of ``path`` at ``sr`` Hz, the first ``duration`` seconds after ``offset``."""
    waveform, _ = _decode(path, sr=sr, offset=offset, duration=duration)
    return waveform


def _decode(path: Path, sr: int | None, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            native_sr = f.samplerate
            f.seek(int(offset * native_sr))
            frames = -1 if duration is None else int(round(duration * native_sr))
            data = f.read(frames=frames, dtype="float32", always_2d=True)
        waveform = data.mean(axis=1)
    except Exception as sf_err:
        try:
            import librosa

            waveform, native_sr = librosa.load(str(path), sr=None, mono=True, offset=offset, duration=duration)
        except Exception as err:
            raise AudioReadError(f"{path}: cannot decode audio ({sf_err}; {err})") from err
    if sr is not None and sr != native_sr:
        import soxr

        waveform = soxr.resample(waveform, native_sr, sr, quality="HQ")
        native_sr = sr
    return np.ascontiguousarray(waveform, dtype=np.float32), native_sr
