"""MFCC + spectral statistics: a weight-free, always-offline 104-d baseline, standardised over the catalogue.

Each feature is computed over all frames (one shared STFT) and summarised by mean / std over frames
(:func:`mfcc_features`, the "raw" vector). The stored vectors are **standardised per feature over the
catalogue** (the encoder's ``finalize``), as raw vectors are unfit for cosine: their units differ (MFCC c0 ≈ −440,
tempo ≈ 100, flatness below 1), so one direction (c0 and tempo) held 94 % of their energy (effective rank 1.1).
Layout of the vector (``FEATURE_LAYOUT`` holds the same table):

========== ======================================================================
index      content
========== ======================================================================
0–19       MFCC 0–19 mean (20 MFCCs of a 128-band log-mel, DCT-II ortho)
20–39      MFCC 0–19 std
40–59      ΔMFCC 0–19 mean (``librosa.feature.delta``, width 9)
60–79      ΔMFCC 0–19 std
80–81      spectral centroid mean, std (kHz)
82–83      spectral bandwidth mean, std (kHz)
84–85      spectral roll-off (85 %) mean, std (kHz)
86–87      spectral flatness mean, std (0–1)
88–94      spectral contrast mean, 7 values: 6 octave bands from 200 Hz + the top band (dB)
95–96      zero-crossing rate mean, std (crossings per sample)
97–98      RMS energy mean, std (linear amplitude)
99         low-energy ratio: fraction of frames whose RMS is below the track's mean RMS
100–101    onset strength mean, std (mel spectral flux, librosa units)
102        tempo (BPM), ``librosa.feature.tempo`` on the onset envelope (no beat tracking)
103        pulse clarity: the onset envelope's autocorrelation at the tempo's lag,
           divided by its lag-0 value (0 = no periodicity, 1 = perfectly periodic)
========== ======================================================================

Frames: 22 050 Hz, ``n_fft`` 2048, hop 512 (≈ 23 ms), centred; units are those of the raw vector. Silence, clicks
and very short clips give finite numbers (ratios guarded, ``nan_to_num``); a clip shorter than one frame is
zero-padded to one frame; an empty waveform raises :class:`EncoderError`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from audiorec_assets.encoders.base import AudioEncoder, EncoderError
from audiorec_assets.encoders.standardize import zscore_columns

SAMPLE_RATE = 22050
N_FFT = 2048
HOP = 512
N_MELS = 128
N_MFCC = 20
MAX_BPM = 240.0

FEATURE_LAYOUT: tuple[tuple[str, int, int], ...] = (  # (name, start, stop): the module docstring's table
    ("mfcc_mean", 0, 20), ("mfcc_std", 20, 40), ("delta_mfcc_mean", 40, 60), ("delta_mfcc_std", 60, 80),
    ("centroid_khz_mean_std", 80, 82), ("bandwidth_khz_mean_std", 82, 84), ("rolloff_khz_mean_std", 84, 86),
    ("flatness_mean_std", 86, 88), ("contrast_mean", 88, 95), ("zcr_mean_std", 95, 97), ("rms_mean_std", 97, 99),
    ("low_energy_ratio", 99, 100), ("onset_strength_mean_std", 100, 102), ("tempo_bpm", 102, 103),
    ("pulse_clarity", 103, 104),
)  # fmt: skip
DIM = FEATURE_LAYOUT[-1][2]


standardise_features = zscore_columns  # per feature over the catalogue (encoders/standardize.py)


def _mean_std(x: np.ndarray) -> list[np.ndarray]:
    """Mean and std over the last (frame) axis, each of shape ``x.shape[:-1]``."""
    return [x.mean(axis=-1), x.std(axis=-1)]


def _tempo_and_clarity(onset_env: np.ndarray, sr: int, hop: int) -> tuple[float, float]:
    """Tempo (BPM) from ``librosa.feature.tempo`` and the envelope's normalised autocorrelation there."""
    import librosa

    env = onset_env - onset_env.mean()
    energy = float(np.dot(env, env))
    if energy <= 1e-12 or env.size < 4:
        return 0.0, 0.0
    tempo = float(
        librosa.feature.tempo(onset_envelope=onset_env, sr=sr, hop_length=hop, max_tempo=MAX_BPM, aggregate=np.mean)[0]
    )
    # Autocorrelation via FFT (one call, not per lag).
    n = env.size
    spec = np.fft.rfft(env, n=2 * n)
    acf = np.fft.irfft(spec * np.conj(spec))[:n]
    if not np.isfinite(tempo) or tempo <= 0:
        return 0.0, 0.0
    lag = int(round(60.0 * sr / (hop * tempo)))
    clarity = float(acf[lag] / acf[0]) if 0 < lag < n else 0.0
    return tempo, float(np.clip(clarity, -1.0, 1.0))


def mfcc_features(waveform: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The 104-d float32 vector of one mono waveform at ``sr`` Hz (layout in the module docstring)."""
    import librosa

    y = np.ascontiguousarray(waveform, dtype=np.float32).reshape(-1)
    if y.size == 0:
        raise EncoderError("mfcc: cannot embed an empty waveform")
    if not np.all(np.isfinite(y)):
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    if y.size < N_FFT:  # shorter than one frame: pad with silence (avoids librosa's n_fft warning)
        y = np.pad(y, (0, N_FFT - y.size))

    mag = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP, center=True))  # (1 + n_fft/2, frames)
    power = mag**2
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=N_MELS)
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=N_MFCC)
    # delta needs at least `width` frames; use a smaller odd width for very short clips.
    frames = mfcc.shape[-1]
    width = min(9, frames if frames % 2 else frames - 1)
    width = width if width >= 3 else 0
    delta = librosa.feature.delta(mfcc, width=width, mode="interp") if width else np.zeros_like(mfcc)

    centroid_hz = librosa.feature.spectral_centroid(S=mag, sr=sr)
    bandwidth = librosa.feature.spectral_bandwidth(S=mag, sr=sr, centroid=centroid_hz)[0] / 1000.0
    centroid = centroid_hz[0] / 1000.0
    rolloff = librosa.feature.spectral_rolloff(S=mag, sr=sr, roll_percent=0.85)[0] / 1000.0
    flatness = librosa.feature.spectral_flatness(S=mag, amin=1e-10)[0]
    contrast = librosa.feature.spectral_contrast(S=mag, sr=sr, n_bands=6, fmin=200.0)  # (7, frames)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP, center=True)[0]
    rms = librosa.feature.rms(S=mag, frame_length=N_FFT, hop_length=HOP)[0]
    low_energy = float(np.mean(rms < rms.mean())) if rms.mean() > 0 else 0.0
    onset_env = librosa.onset.onset_strength(S=log_mel, sr=sr, hop_length=HOP)
    tempo, clarity = _tempo_and_clarity(onset_env, sr, HOP)

    parts = [*_mean_std(mfcc), *_mean_std(delta), *_mean_std(centroid), *_mean_std(bandwidth), *_mean_std(rolloff),
             *_mean_std(flatness), contrast.mean(axis=-1), *_mean_std(zcr), *_mean_std(rms), low_energy,
             *_mean_std(onset_env), tempo, clarity]  # in FEATURE_LAYOUT order
    vec = np.concatenate([np.atleast_1d(np.asarray(p, dtype=np.float64)) for p in parts])
    if vec.shape != (DIM,):  # pragma: no cover - layout bug guard
        raise AssertionError(f"mfcc layout produced {vec.shape}, expected ({DIM},)")
    return np.nan_to_num(vec, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


class MfccEncoder(AudioEncoder):
    """Hand-crafted baseline (module docstring): ``embed`` returns the raw per-track features, ``finalize``
    standardises the whole catalogue's matrix. Needs no weights and no network; ≥ 200× real time on two CPU cores.
    """

    name: ClassVar[str] = "mfcc"
    dim: ClassVar[int] = DIM
    sample_rate: ClassVar[int] = SAMPLE_RATE
    clip_seconds: ClassVar[float | None] = 30.0
    pooling: ClassVar[str] = "mean/std over frames (MFCC, ΔMFCC, spectral, ZCR, RMS, onset) + tempo"
    # "-zscore": vectors standardised over the catalogue (stored vectors of older versions are not reused)
    model_id: ClassVar[str] = "librosa-mfcc20-spectral-104-zscore"

    def embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(waveforms), DIM), dtype=np.float32)
        for i, w in enumerate(waveforms):
            try:
                out[i] = mfcc_features(w, self.sample_rate)
            except EncoderError as err:
                raise EncoderError(f"waveform #{i} of the batch: {err}") from err
        return out

    def finalize(self, raw: np.ndarray) -> np.ndarray:
        """The catalogue's raw ``(tracks, 104)`` matrix, standardised per feature."""
        return standardise_features(raw)
