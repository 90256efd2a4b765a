"""The demo's synthesiser: numpy waveforms that render a track's audible attributes.

:func:`synthesize` turns a :class:`TrackSound` into a mono float32 waveform in which every continuous attribute
changes what an encoder hears (docs/datasets.md, "The demo data set"). Loudness is normalised, so attributes and
timbres differ in colour, not level.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 22050
_TABLE_SIZE = 4096

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
MAJOR_PENTATONIC = (0, 2, 4, 7, 9)
MINOR_PENTATONIC = (0, 3, 5, 7, 10)


@dataclass(frozen=True)
class TrackSound:
    """Everything the synthesiser needs for one track."""

    seconds: float
    tempo_bpm: float
    root_midi: int
    mode: str  # "major" | "minor"
    brightness: float  # z units: 0 = the catalogue's middle, -2 very dark, +2 very bright
    notes_per_beat: float  # notes (or chords) per beat: with the tempo, the rhythm density
    voice: str  # a key of VOICES: the main timbre
    percussion: str = ""  # "" | "four" | "backbeat" | "hats"
    percussion_level: float = 0.8
    blend_voice: str = ""  # a second timbre mixed in ("" = none)
    blend: float = 0.0  # its share of the mix (0-0.5)
    decay: float = 1.0  # note decay multiplier (the artist's touch)

    @property
    def tilt(self) -> float:
        """Spectral tilt of the harmonic tables: harmonic k is scaled by k**-tilt (brighter = lower)."""
        return 0.6 - 0.45 * self.brightness

    @property
    def cutoff_hz(self) -> float:
        """The global low-pass: 3.2 kHz at brightness 0, an octave per 1.25 z units."""
        return 3200.0 * 2.0 ** (0.8 * self.brightness)


def write_audio_files(rng: np.random.Generator, sounds: list[TrackSound], paths: list[Path]) -> None:
    """Synthesise every track and write it as 16-bit FLAC (``paths[i]`` ↔ ``sounds[i]``)."""
    import soundfile as sf

    if paths:
        Path(paths[0]).parent.mkdir(parents=True, exist_ok=True)
    track_rngs = rng.spawn(len(sounds))  # one stream per track: a track's audio does not depend on the others
    for sound, path, track_rng in zip(sounds, paths, track_rngs):
        y = synthesize(track_rng, sound)
        sf.write(str(path), y, SAMPLE_RATE, format="FLAC", subtype="PCM_16")


def synthesize(rng: np.random.Generator, sound: TrackSound, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A mono float32 waveform of ``sound.seconds`` seconds, peak below 1, fades at both ends.

    The track's material is a phrase of whole bars, at least :data:`PHRASE_SECONDS` long, played on repeat (each
    repeat cross-faded into the next), as a loop-based piece would; a faint noise floor keeps the repeats apart.
    """
    n = int(round(sound.seconds * sr))
    beat = int(round(60.0 / sound.tempo_bpm * sr))
    bar = 4 * beat
    phrase = bar * -(-int(PHRASE_SECONDS * sr) // bar)
    joint = int(0.02 * sr)
    if phrase + joint < n:
        y = _repeat_phrase(_render(rng, sound, phrase + joint, beat, sr), phrase, n)
    else:
        y = _render(rng, sound, n, beat, sr)
    y = _unit_rms(y) * 0.12  # equal loudness: tracks differ by colour, not level
    y = y + _loop((2e-4 * rng.standard_normal(sr)).astype(np.float32), n)  # a faint noise floor: no digital silence
    edge = min(int(0.05 * sr), n // 2)  # 50-ms fades at both ends
    ramp = (np.arange(edge) / (0.05 * sr)).astype(np.float32)
    y[:edge] *= ramp
    y[n - edge :] *= ramp[::-1]
    peak = np.max(np.abs(y))
    if peak > 0.95:
        y = y * (0.95 / peak)
    return y.astype(np.float32)


PHRASE_SECONDS = 6.0


def _render(rng: np.random.Generator, sound: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """``n`` samples of the track: voice (+ blended voice), beat pulse, percussion, brightness filter."""
    y = _unit_rms(VOICES[sound.voice](rng, sound, n, beat, sr))
    if sound.blend_voice and sound.blend > 0:
        y = (1.0 - sound.blend) * y + sound.blend * _unit_rms(VOICES[sound.blend_voice](rng, sound, n, beat, sr))
    pulse = (1.0 + 0.8 * np.exp(-np.arange(beat) / (0.06 * sr))).astype(np.float32)
    y = y * _loop(pulse, n)  # a pulse on every beat: the tempo is audible in every style
    if sound.percussion:
        y = y + 0.5 * sound.percussion_level * _unit_rms(_percussion(rng, sound.percussion, n, beat, sr))
    if sound.cutoff_hz < 0.4 * sr:
        y = _butter(y, sound.cutoff_hz, sr).astype(np.float32)
    return y


def _repeat_phrase(y: np.ndarray, phrase: int, n: int) -> np.ndarray:
    """``n`` samples of ``y[:phrase]`` on repeat; ``y`` runs on past ``phrase``, and that run-on
    fades out while the phrase's start fades in at every repeat (no click at the seam)."""
    joint = len(y) - phrase
    fade_in = (np.arange(joint) / joint).astype(np.float32)
    body = y[:phrase].copy()
    body[:joint] = y[phrase:] * (1.0 - fade_in) + y[:joint] * fade_in
    out = _loop(body, n)
    out[:joint] = y[:joint]  # the first time through starts clean
    return out


def _unit_rms(y: np.ndarray) -> np.ndarray:
    return y / (np.sqrt(np.dot(y, y) / max(len(y), 1)) + 1e-9)


def _note_len(s: TrackSound, beat: int, sr: int) -> int:
    """Samples per note at the track's rhythm density (at least 60 ms)."""
    return max(int(0.06 * sr), int(beat / s.notes_per_beat))


def _scale(sound: TrackSound, pentatonic: bool = False) -> tuple[int, ...]:
    if pentatonic:
        return MAJOR_PENTATONIC if sound.mode == "major" else MINOR_PENTATONIC
    return MAJOR if sound.mode == "major" else MINOR


def _degrees_to_midi(degrees: np.ndarray, scale: tuple[int, ...], root: int) -> np.ndarray:
    steps = np.asarray(scale)
    return root + 12 * (degrees // len(steps)) + steps[degrees % len(steps)]


def _melody(rng: np.random.Generator, n_notes: int, low: int = -2, high: int = 9) -> np.ndarray:
    """Scale degrees of a tune: a random-walk motif of 8 notes, repeated with a few changes."""
    steps = rng.choice([-2, -1, 0, 1, 2, 3], size=8, p=[0.15, 0.3, 0.1, 0.3, 0.1, 0.05])
    motif = np.clip(np.cumsum(steps), low, high)
    reps = -(-n_notes // 8)
    tune = np.tile(motif, reps)[:n_notes] + np.repeat(rng.choice([0, 0, 2, -2, 4], size=reps), 8)[:n_notes]
    mutate = rng.random(n_notes) < 0.2
    tune[mutate] += rng.integers(-2, 3, size=int(mutate.sum()))
    return np.clip(tune, low, high)


def _hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=float) - 69.0) / 12.0)


def _note_index(n: int, note: int) -> np.ndarray:
    """Index of the note every sample belongs to (notes of ``note`` samples, back to back)."""
    return np.repeat(np.arange(-(-n // note)), note)[:n]


def _loop(cycle: np.ndarray, n: int) -> np.ndarray:
    """``cycle`` repeated to ``n`` samples: every note has the same shape, so shapes are computed once."""
    return np.tile(cycle, -(-n // len(cycle)))[:n]


def _phase(freq: np.ndarray, sr: int) -> np.ndarray:
    """Phase in cycles of a sample-wise frequency (continuous across note changes: no clicks)."""
    return np.cumsum(freq / sr)


def _table(amps: np.ndarray, tilt: float) -> np.ndarray:
    """One cycle (float32) of a waveform with harmonic k at amplitude ``amps[k-1] * k**-tilt``."""
    k = np.arange(1, len(amps) + 1)
    x = np.arange(_TABLE_SIZE) / _TABLE_SIZE
    wave = (amps * k**-tilt) @ np.sin(2 * np.pi * np.outer(k, x))
    return (wave / np.max(np.abs(wave))).astype(np.float32)


_SINE = np.sin(2 * np.pi * np.arange(_TABLE_SIZE) / _TABLE_SIZE).astype(np.float32)


def _sine(freq: float, n: int, sr: int) -> np.ndarray:
    """A constant-frequency sine (float32) by table lookup: cheaper than ``np.sin`` over every sample."""
    return _osc(_SINE, np.arange(n) * (freq / sr))


def _osc(table: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Wavetable lookup (phase >= 0 in cycles); the power-of-two table size makes the wrap a bit mask."""
    return table[(phase * _TABLE_SIZE).astype(np.int64) & (_TABLE_SIZE - 1)]


def _env(
    note: int, n: int, sr: int, attack: float, decay: float, release: float = 0.01, hold: float = 1.0
) -> np.ndarray:
    """Per-note attack / exponential decay / release envelope, over ``n`` samples of equal notes; the note sounds
    for ``hold`` of its length (gated notes), ``decay=np.inf`` sustains."""
    tau = np.arange(note)
    t = tau / sr
    rise = np.minimum(1.0, t / attack)
    fall = np.exp(-t / decay) if np.isfinite(decay) else 1.0
    tail = np.clip((hold * note - tau) / (release * sr), 0.0, 1.0)
    return _loop((rise * fall * tail).astype(np.float32), n)


def _butter(y: np.ndarray, cutoff: float | list[float], sr: int, btype: str = "low") -> np.ndarray:
    """``y`` through a 2nd-order Butterworth filter: a low-pass at ``cutoff`` Hz, or a band-pass over
    ``cutoff = [low, high]`` with ``btype="band"``; float64 out."""
    from scipy.signal import butter, sosfilt

    return sosfilt(butter(2, cutoff, btype=btype, fs=sr, output="sos"), y)


def _chord_roots(rng: np.random.Generator, n_bars: int) -> np.ndarray:
    """Scale degrees of chord roots, one per bar, from a few common progressions."""
    progressions = np.array([[0, 5, 3, 4], [0, 3, 4, 3], [0, 4, 5, 3], [5, 3, 0, 4]])
    return np.tile(progressions[rng.integers(len(progressions))], -(-n_bars // 4))[:n_bars]


def _pad(rng: np.random.Generator, s: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """Sine-ish chords, slow swells, a chord every 1/notes_per_beat beats (1-8): smooth, few onsets."""
    bar = int(np.clip(_note_len(s, beat, sr), beat, 8 * beat))
    idx = _note_index(n, bar)
    chords = _chord_roots(rng, idx[-1] + 1)
    table = _table(np.array([1.0, 0.25, 0.08]), s.tilt)
    y = np.zeros(n, dtype=np.float32)
    for offset in (0, 2, 4):  # triad
        midi = _degrees_to_midi(chords + offset, _scale(s), s.root_midi)
        freq = _hz(midi)[idx] * (1.0 + 0.003 * _sine(0.2 + offset * 0.05, n, sr))
        y += _osc(table, _phase(freq, sr))
    env = _env(bar, n, sr, attack=0.6 * s.decay, decay=np.inf, release=0.5)
    return y * env * (0.8 + 0.2 * _sine(0.25, n, sr))


def _saw(rng: np.random.Generator, s: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """Bright sawtooth lead over a sawtooth bass: buzzy, lots of high harmonics."""
    note = _note_len(s, beat, sr)
    idx = _note_index(n, note)
    lead = _degrees_to_midi(_melody(rng, idx[-1] + 1), _scale(s), s.root_midi + 12)
    table = _table(1.0 / np.arange(1, 15), s.tilt)
    y = _osc(table, _phase(_hz(lead)[idx], sr)) * _env(note, n, sr, 0.005, 0.35 * s.decay, 0.02)
    bidx = _note_index(n, 4 * beat)
    bass = _degrees_to_midi(_chord_roots(rng, bidx[-1] + 1), _scale(s), s.root_midi - 12)
    return y + 0.7 * _osc(table, _phase(_hz(bass)[bidx], sr)) * _env(4 * beat, n, sr, 0.01, 1.5, 0.05)


def _square(rng: np.random.Generator, s: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """Fast square-wave arpeggios, gated notes, triangle bass: the 8-bit console sound."""
    note = _note_len(s, beat, sr)
    idx = _note_index(n, note)
    n_notes = idx[-1] + 1
    chords = np.repeat(_chord_roots(rng, n_notes // 16 + 1), 16)[:n_notes]
    arpeggio = chords + _loop(np.array([0, 2, 4, 7]), n_notes)
    midi = _degrees_to_midi(arpeggio, _scale(s), s.root_midi)
    odd = np.array([1.0 / k if k % 2 else 0.0 for k in range(1, 16)])
    y = _osc(_table(odd, s.tilt), _phase(_hz(midi)[idx], sr)) * _env(note, n, sr, 0.001, np.inf, 0.002, hold=0.7)
    bidx = _note_index(n, 2 * beat)
    bass_roots = np.repeat(_chord_roots(rng, bidx[-1] // 2 + 1), 2)[: bidx[-1] + 1]
    bass = _degrees_to_midi(bass_roots, _scale(s), s.root_midi - 24)
    tri = _table(np.array([1.0 / k**2 if k % 2 else 0.0 for k in range(1, 10)]), 0.0)
    return y + 0.6 * _osc(tri, _phase(_hz(bass)[bidx], sr))


def _pluck(rng: np.random.Generator, s: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """Plucked string: bright attack whose upper harmonics die first (two decaying layers)."""
    note = _note_len(s, beat, sr)
    idx = _note_index(n, note)
    midi = _degrees_to_midi(_melody(rng, idx[-1] + 1, low=-3, high=11), _scale(s), s.root_midi)
    phase = _phase(_hz(midi)[idx], sr)
    bright = _table(1.0 / np.arange(1, 13) ** 0.8, s.tilt)
    body = _table(np.array([1.0, 0.4, 0.15]), 0.0)
    y = _osc(bright, phase) * _env(note, n, sr, 0.002, 0.06 * s.decay)
    y += _osc(body, phase) * _env(note, n, sr, 0.002, 0.5 * s.decay)
    bidx = _note_index(n, 2 * beat)
    bass_roots = np.repeat(_chord_roots(rng, bidx[-1] // 2 + 1), 2)[: bidx[-1] + 1]
    bass = _degrees_to_midi(bass_roots, _scale(s), s.root_midi - 12)
    return y + 0.5 * _osc(body, _phase(_hz(bass)[bidx], sr)) * _env(2 * beat, n, sr, 0.002, 0.8 * s.decay)


def _noise(rng: np.random.Generator, s: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """Band-passed noise bursts on sixteenths with accents (a two-beat loop), over a distorted drone."""
    note = _note_len(s, beat, sr)
    cycle = 8 * note
    centre = 1500.0 * 2.0 ** (0.8 * s.brightness)
    hiss = _butter(rng.standard_normal(2 * cycle), [centre * 0.5, min(centre * 3.0, 0.45 * sr)], sr, "band")[cycle:]
    accents = np.repeat(rng.choice([0.2, 0.5, 1.0], size=8, p=[0.3, 0.3, 0.4]), note)
    bursts = hiss / (np.std(hiss) + 1e-9) * accents * _env(note, cycle, sr, 0.001, 0.05 * s.decay)
    drone = np.tanh(3.0 * _sine(float(_hz(s.root_midi)), n, sr) + _sine(float(_hz(s.root_midi + 7)), n, sr))
    return _loop(bursts.astype(np.float32), n) + 0.5 * drone


def _bell(rng: np.random.Generator, s: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """FM bells: inharmonic partials (modulator ratio 3.5) whose brightness fades with the note."""
    note = _note_len(s, beat, sr)
    idx = _note_index(n, note)
    midi = _degrees_to_midi(_melody(rng, idx[-1] + 1, low=0, high=8), _scale(s, pentatonic=True), s.root_midi)
    phase = _phase(_hz(midi)[idx], sr)  # cycles
    index = _loop((3.0 * 2.0 ** (0.6 * s.brightness) / (2 * np.pi) * np.exp(-np.arange(note) / (0.3 * sr))), n)
    carrier = phase + index * _osc(_SINE, 3.5 * phase)  # phase modulation, in cycles
    return _osc(_SINE, carrier) * _env(note, n, sr, 0.002, 0.7 * s.decay, 0.03)


def _organ(rng: np.random.Generator, s: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """Drawbar organ: sustained chords with octave-rich, flat harmonics and a slow melody."""
    drawbars = np.array([1.0, 0.9, 0.6, 0.7, 0.0, 0.5, 0.0, 0.5, 0.0, 0.0, 0.0, 0.3])
    table = _table(drawbars, s.tilt)
    bar = 4 * beat
    cidx = _note_index(n, bar)
    chords = _chord_roots(rng, cidx[-1] + 1)
    vibrato = 1.0 + 0.004 * _sine(6.0, n, sr)
    y = np.zeros(n, dtype=np.float32)
    for offset in (0, 2, 4):
        midi = _degrees_to_midi(chords + offset, _scale(s), s.root_midi - 12)
        y += 0.5 * _osc(table, _phase(_hz(midi)[cidx] * vibrato, sr))
    y *= _env(bar, n, sr, 0.03, np.inf, 0.05)
    note = _note_len(s, beat, sr)
    idx = _note_index(n, note)
    midi = _degrees_to_midi(_melody(rng, idx[-1] + 1), _scale(s), s.root_midi)
    return y + _osc(table, _phase(_hz(midi)[idx] * vibrato, sr)) * _env(note, n, sr, 0.03, np.inf, 0.05)


def _bass(rng: np.random.Generator, s: TrackSound, n: int, beat: int, sr: int) -> np.ndarray:
    """Deep, round sub-bass lines (sine + a little 2nd/3rd harmonic), low-passed, with rests."""
    note = _note_len(s, beat, sr)
    idx = _note_index(n, note)
    midi = _degrees_to_midi(_melody(rng, idx[-1] + 1, low=-2, high=7), _scale(s), s.root_midi)
    table = _table(np.array([1.0, 0.35, 0.12]), s.tilt)
    sounding = rng.random(idx[-1] + 1) >= 0.2  # dub leaves space
    y = _osc(table, _phase(_hz(midi)[idx], sr)) * _env(note, n, sr, 0.01, 0.9 * s.decay, 0.05) * sounding[idx]
    return _butter(y, 400.0 * 2.0 ** (0.5 * s.brightness), sr).astype(np.float32)


VOICES = {"pad": _pad, "saw": _saw, "square": _square, "pluck": _pluck, "noise": _noise, "bell": _bell,
          "organ": _organ, "bass": _bass}


def _percussion(rng: np.random.Generator, pattern: str, n: int, beat: int, sr: int) -> np.ndarray:
    """A drum loop (kick / snare / hats one-shots placed in one pattern cycle), repeated to ``n``."""
    t = np.arange(int(0.3 * sr)) / sr
    kick = np.sin(2 * np.pi * np.cumsum(50.0 + 90.0 * np.exp(-t / 0.03)) / sr) * np.exp(-t / 0.09)
    hat = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t / 0.012) * 0.35  # differencing = crude high-pass
    snare = (0.6 * rng.standard_normal(len(t)) + np.sin(2 * np.pi * 190.0 * t)) * np.exp(-t / 0.06) * 0.6
    half = beat // 2
    hits = {
        "four": [(kick, 0), (hat, half), (kick, beat), (hat, beat + half)],
        "backbeat": [(kick, 0), (snare, beat)],
        "hats": [(hat, 0), (hat, half), (hat, beat), (hat, beat + half), (snare, beat)],
    }[pattern]
    cycle = np.zeros(2 * beat)
    for sound, offset in hits:  # a handful of hits per cycle, not a loop over samples
        part = sound[: len(cycle)]
        cycle[(offset + np.arange(len(part))) % len(cycle)] += part  # tails wrap into the next cycle
    return _loop(cycle, n)
