"""MusiCNN's input: log-compressed mel spectrogram cut into 3-s patches (upstream ``batch_data``)."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
FFT_SIZE = 512
FFT_HOP = 256
N_MELS = 96
PATCH_FRAMES = 187  # librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
# Samples needed for PATCH_FRAMES centred STFT frames (1 + len // hop >= 187).
MIN_SAMPLES = (PATCH_FRAMES - 1) * FFT_HOP


def log_mel(waveform: np.ndarray) -> np.ndarray:
    """(frames, 96) float32 ``log10(10000 * mel + 1)`` of a 16 kHz mono waveform.

    Same STFT/mel parameters as upstream, but kept in float32: upstream casts the mel
    spectrogram to float16 first, which overflows to inf on loud bins.
    """
    import librosa

    mel = librosa.feature.melspectrogram(
        y=np.asarray(waveform, dtype=np.float32), sr=SAMPLE_RATE, n_fft=FFT_SIZE, hop_length=FFT_HOP, n_mels=N_MELS
    )
    return np.log10(np.float32(10000) * mel.T.astype(np.float32) + np.float32(1)).astype(np.float32)


def patches(log_mel_frames: np.ndarray, patch_frames: int = PATCH_FRAMES) -> np.ndarray:
    """Non-overlapping ``(n, patch_frames, 96)`` patches; like upstream, the incomplete tail is dropped.

    Upstream fails when there is no complete patch; here a shorter input is zero-padded (a
    log-mel of 0 is silence) to exactly one patch, so every track gets at least one.
    """
    frames = log_mel_frames.shape[0]
    if frames < patch_frames:
        pad = np.zeros((patch_frames - frames, log_mel_frames.shape[1]), dtype=log_mel_frames.dtype)
        return np.concatenate([log_mel_frames, pad])[None]
    n = frames // patch_frames
    return log_mel_frames[: n * patch_frames].reshape(n, patch_frames, log_mel_frames.shape[1])


def waveform_patches(waveform: np.ndarray) -> np.ndarray:
    """Log-mel patches ``(n >= 1, 187, 96)`` of a 16 kHz waveform; tracks under 3 s are padded with silence."""
    waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if waveform.size < MIN_SAMPLES:
        # Pad the audio (not the spectrogram) so the STFT frames near the end see real silence.
        waveform = np.pad(waveform, (0, MIN_SAMPLES - waveform.size))
    return patches(log_mel(waveform))
