"""MIDI → a fixed-length, loudness-normalised mono clip, with FluidSynth and a General MIDI soundfont (Debian
packages ``fluidsynth`` and ``fluid-soundfont-gm``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audiorec_assets.datasets.classical.works import ClassicalError
from audiorec_assets.lakeio import atomic_path

SAMPLE_RATE = 22050
TARGET_DBFS = -20.0  # gated RMS of every clip
PEAK_LIMIT = 0.98
FADE_OUT_S = 1.0  # at a cut inside the music
GAIN = 0.5  # FluidSynth's master gain (float output: no clipping; loudness is normalised after)
SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # Debian/Ubuntu fluid-soundfont-gm
    "/usr/share/soundfonts/FluidR3_GM.sf2",  # Fedora/Arch
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
PACKAGES_HINT = ("install the Debian packages fluidsynth fluid-soundfont-gm "
                 "(apt-get install fluidsynth fluid-soundfont-gm)")


class RendererMissing(ClassicalError):
    """FluidSynth or a GM soundfont is not installed (one line, naming the packages)."""


class RenderTimeout(Exception):
    pass


class RenderError(Exception):
    pass


@dataclass(frozen=True)
class Renderer:
    """A FluidSynth program and the soundfont it renders with."""

    fluidsynth: str
    soundfont: Path
    version: str
    sample_rate: int = SAMPLE_RATE

    def identity(self) -> dict:
        """What changes the sound (part of the audio cache key)."""
        stat = self.soundfont.stat()
        return {"fluidsynth": self.version, "soundfont": str(self.soundfont), "soundfont_bytes": stat.st_size,
                "soundfont_mtime": int(stat.st_mtime), "sample_rate": self.sample_rate, "gain": GAIN,
                "target_dbfs": TARGET_DBFS, "fade_out_s": FADE_OUT_S}


def find_renderer(fluidsynth: str | Path | None = None, soundfont: str | Path | None = None,
                  sample_rate: int = SAMPLE_RATE) -> Renderer:
    """The FluidSynth program (``fluidsynth`` on PATH unless given) and soundfont (the first of
    :data:`SOUNDFONTS` unless given); :class:`RendererMissing` when either is absent."""
    program = shutil.which(str(fluidsynth)) if fluidsynth else shutil.which("fluidsynth")
    if program is None:
        where = f" at {fluidsynth}" if fluidsynth else " on PATH"
        raise RendererMissing(f"fluidsynth not found{where}: the classical catalogue renders scores with "
                              f"FluidSynth; {PACKAGES_HINT}.")
    if soundfont is not None:
        font = Path(soundfont)
        if not font.is_file():
            raise RendererMissing(f"soundfont {font} not found: {PACKAGES_HINT}, or pass another .sf2 file.")
    else:
        found = [Path(p) for p in SOUNDFONTS if Path(p).is_file()]
        if not found:
            raise RendererMissing(f"no General MIDI soundfont found (looked for {SOUNDFONTS[0]}): {PACKAGES_HINT}.")
        font = found[0]
    return Renderer(program, font.resolve(), _version(program), sample_rate)


def _version(program: str) -> str:
    try:
        out = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=20,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RendererMissing(f"{program} does not run ({err}): {PACKAGES_HINT}.") from None
    match = re.search(r"version\s+([0-9][\w.\-]*)", out.stdout + out.stderr, re.I)
    return match.group(1) if match else (out.stdout.strip().splitlines() or ["unknown"])[0][:40]


def render_clip(renderer: Renderer, midi_path: Path, out_path: Path, excerpt_s: float, timeout_s: float,
                tmp_dir: Path) -> dict:
    """Render ``midi_path`` to the finished clip at ``out_path`` (16-bit FLAC, written atomically); return
    ``{"rendered_s": seconds FluidSynth produced, "gain_db": the normalisation applied}``."""
    import soundfile as sf

    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, raw_name = tempfile.mkstemp(prefix=".render.", suffix=".wav", dir=tmp_dir)
    os.close(fd)
    raw = Path(raw_name)
    try:
        command = [renderer.fluidsynth, "-n", "-i", "-q", "-g", str(GAIN), "-r", str(renderer.sample_rate),
                   "-O", "float", "-T", "wav", "-F", str(raw), str(renderer.soundfont), str(midi_path)]
        returncode, output = _run_killable(command, timeout_s)
        if returncode is None:
            raise RenderTimeout(f"fluidsynth did not finish within {timeout_s:g} s")
        if returncode != 0:
            detail = " ".join(output.split())[:300]
            raise RenderError(f"fluidsynth failed (exit status {returncode}): {detail or 'no message'}")
        try:
            frames, sr = sf.read(str(raw), dtype="float32", always_2d=True)
        except Exception as err:  # noqa: BLE001 - an empty or truncated file
            raise RenderError(f"fluidsynth wrote no readable audio ({err})") from None
        if sr != renderer.sample_rate:
            raise RenderError(f"fluidsynth wrote {sr} Hz, not {renderer.sample_rate} Hz")
        clip, gain_db = finish_clip(frames, sr, excerpt_s)
        with atomic_path(out_path) as tmp:
            sf.write(str(tmp), clip, sr, format="FLAC", subtype="PCM_16")
        return {"rendered_s": round(len(frames) / sr, 3), "gain_db": round(gain_db, 2)}
    finally:
        raw.unlink(missing_ok=True)


def _run_killable(command: list[str], timeout_s: float) -> tuple[int | None, str]:
    """Run ``command`` in its own process group; (exit status, output), or (None, output) after killing the
    whole group at ``timeout_s`` (a wrapper script's children too, so no orphan keeps the pipes open)."""
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=(os.name == "posix"))
    try:
        output, _ = proc.communicate(timeout=timeout_s)
        return proc.returncode, output or ""
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            if os.name == "posix":
                os.killpg(proc.pid, signal.SIGKILL)  # the group this call started (its id is the child's pid)
            else:
                proc.kill()
        output, _ = proc.communicate()
        return None, output or ""


def finish_clip(frames: np.ndarray, sr: int, excerpt_s: float) -> tuple[np.ndarray, float]:
    """Mono, exactly ``round(excerpt_s * sr)`` samples (longer: cut with a :data:`FADE_OUT_S` fade; shorter:
    silence after), gated RMS at :data:`TARGET_DBFS`, peak at most :data:`PEAK_LIMIT`; and the gain (dB).
    :class:`RenderError` for a silent rendering."""
    mono = frames.mean(axis=1) if frames.ndim == 2 else frames
    mono = mono.astype(np.float32)
    n = int(round(excerpt_s * sr))
    if len(mono) >= n:
        mono = mono[:n].copy()
        if len(frames) > n + sr // 10:  # music goes on past the cut: fade out instead of a click
            fade = min(int(FADE_OUT_S * sr), n)
            mono[n - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    else:
        mono = np.concatenate([mono, np.zeros(n - len(mono), np.float32)])
    level = gated_rms(mono, sr)
    if level <= 1e-6:
        raise RenderError("the rendering is silent")
    gain = 10 ** (TARGET_DBFS / 20) / level
    peak = float(np.max(np.abs(mono)))
    gain = min(gain, PEAK_LIMIT / peak)
    return (mono * gain).astype(np.float32), float(20 * np.log10(gain))


def gated_rms(y: np.ndarray, sr: int, block_s: float = 0.4, gate_dbfs: float = -60.0) -> float:
    """RMS over the 400-ms blocks louder than ``gate_dbfs`` (so padded silence and pauses do not count)."""
    block = max(1, int(block_s * sr))
    usable = len(y) - len(y) % block
    if usable == 0:
        return float(np.sqrt(np.mean(np.square(y)))) if len(y) else 0.0
    power = np.mean(np.square(y[:usable].reshape(-1, block).astype(np.float64)), axis=1)
    loud = power[power > 10 ** (gate_dbfs / 10)]
    return float(np.sqrt(loud.mean())) if len(loud) else 0.0
