"""Time the tracks data-quality check's full decode of every audio file, extrapolated to Music4All-Onion.

Usage:  .venv/bin/python bench/bench_tracks_check.py [--files 1000] [--workers 1,2,4] [--format mp3]

The check (``data/quality.py: tracks_flags``, run by the ``tracks`` asset check) used to call
``data/audio.py: audio_oddities`` on every file: ``sf.info`` for the declared length, a decode
of the whole file (truncated / NaN / short / silent), and the WAV chunk scan. It now calls ``probe_audio``
(header and both ends; ``audio_oddities`` only when in doubt) once per file version, and remembers the verdict;
the breakdown's last two columns are that probe and the lookup of a remembered verdict. The thread-count rows
still time ``tracks_flags`` without remembered verdicts, i.e. the probe of every file. This script
writes synthetic 30-s clips like Music4All-Onion's (MP3, 44.1 kHz, stereo; ``--format`` flac
or wav for comparison) into bench/out/tracks_check/, then times ``tracks_flags`` itself on
them, once per thread count, each in a fresh subprocess so its peak RSS (ru_maxrss) is its
own. Files/s is extrapolated to the 56 512 Onion tracks. A serial per-file breakdown of
``audio_oddities`` (header, full decode, the rest) and, for comparison, what ingest's cheap
probe (header + first second, ``audio_duration`` + ``check_decodes``) costs, follow.

The files are written just before they are read, so they are in the page cache: disk reads
are not included (Onion's audio is tens of GB; add its read time at your disk's speed).
Only ``--distinct`` clips are encoded (MP3 encoding is slow); the others are byte copies,
which a decoder does not notice.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_model  # noqa: E402

OUT = Path(__file__).parent / "out" / "tracks_check"
ONION_TRACKS = 56_512
ROOT = Path(__file__).resolve().parents[1]


def synth_clip(seed: int, seconds: float, sr: int, channels: int):
    """Music-like noise for the encoder: a chord progression of harmonic tones, a noise hi-hat, a left/right offset."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = np.zeros(n, dtype=np.float64)
    beat = 60.0 / rng.uniform(80, 150)
    for start in np.arange(0.0, seconds, 4 * beat):
        i0, i1 = int(start * sr), min(n, int((start + 4 * beat) * sr))
        root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
        for ratio in (1.0, 1.25, 1.5, 2.0):
            for k in range(1, 6):
                y[i0:i1] += 0.05 / k * np.sin(2 * np.pi * root * ratio * k * t[i0:i1] + rng.uniform(0, 6.28))
    hat = rng.standard_normal(n) * 0.03 * (np.mod(t, beat / 2) < 0.03)
    y += hat
    y /= np.abs(y).max() * 1.25
    if channels == 1:
        return y.astype("float32")
    return np.stack([y, np.roll(y, int(0.0007 * sr))], axis=1).astype("float32")


def generate(n_files: int, n_distinct: int, seconds: float, sr: int, channels: int, fmt: str) -> list[Path]:
    import soundfile as sf

    folder = OUT / f"{fmt}_{sr}_{channels}ch_{seconds:g}s"
    folder.mkdir(parents=True, exist_ok=True)
    distinct = []
    for i in range(min(n_distinct, n_files)):
        path = folder / f"clip_{i:06d}.{fmt}"
        if not path.exists():
            partial = path.with_name("." + path.name + ".partial")
            kwargs = {"format": "MP3", "subtype": "MPEG_LAYER_III"} if fmt == "mp3" else {"format": fmt.upper()}
            sf.write(str(partial), synth_clip(i, seconds, sr, channels), sr, **kwargs)
            partial.replace(path)
        distinct.append(path)
    paths = list(distinct)
    for i in range(len(distinct), n_files):
        path = folder / f"clip_{i:06d}.{fmt}"
        if not path.exists():
            shutil.copyfile(distinct[i % len(distinct)], path)
        paths.append(path)
    return paths


def run_check(paths: list[str], workers: int) -> dict[str, float]:
    """``tracks_flags`` over ``paths`` with ``workers`` threads (in this process: its peak RSS is the check's)."""
    import pandas as pd

    from audiorec_assets.data.quality import tracks_flags

    tracks = pd.DataFrame({"track_id": [Path(p).stem for p in paths], "audio_path": paths})
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    flags = tracks_flags(tracks, workers=workers)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    ok_columns = ["audio_exists", "audio_decodes"] + [c for c in flags.columns if c.startswith("audio_") and c.endswith("_ok")]
    problems = int((~flags[ok_columns].all(axis=1)).sum())
    return {"workers": workers, "files": len(paths), "seconds": seconds, "cpu_s": cpu_s, "problems": problems,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def breakdown(paths: list[str]) -> dict[str, float]:
    """Serial seconds per file: what ``audio_oddities`` does, step by step (as ``data/audio.py`` does it),
    the whole call, and ingest's cheap probe."""
    import numpy as np
    import soundfile as sf

    from audiorec_assets.data.audio import _wav_missing_bytes, audio_duration, audio_oddities, check_decodes
    from audiorec_assets.data.audio import probe_audio
    from audiorec_assets.data.audio_verdicts import file_fingerprint

    steps = {"info": 0.0, "read": 0.0, "downmix": 0.0, "wav_scan": 0.0, "array_checks": 0.0,
             "audio_oddities": 0.0, "ingest_probe": 0.0, "downmix_columns": 0.0, "probe_audio": 0.0,
             "fingerprint": 0.0}
    for p in paths:
        path = Path(p)
        t0 = time.perf_counter()
        sf.info(p)
        t1 = time.perf_counter()
        with sf.SoundFile(p) as f:  # _decode: the libsndfile part
            f.seek(0)
            data = f.read(frames=-1, dtype="float32", always_2d=True)
        t2 = time.perf_counter()
        waveform = np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)  # _decode: the mono downmix
        t3 = time.perf_counter()
        _wav_missing_bytes(path)
        t4 = time.perf_counter()
        finite = np.isfinite(waveform)
        float(np.nanmax(np.abs(waveform))) if finite.all() else 0.0
        t5 = time.perf_counter()
        audio_oddities(path)
        t6 = time.perf_counter()
        audio_duration(path)
        check_decodes(path, 1.0)
        t7 = time.perf_counter()
        mono = data[:, 0].copy()  # the same mean, a column at a time (numpy reduces a 2-wide axis slowly)
        for channel in range(1, data.shape[1]):
            mono += data[:, channel]
        mono *= np.float32(1.0 / data.shape[1])
        t8 = time.perf_counter()
        probe_audio(path)  # what the check does now: header and both ends, a full decode only when in doubt
        t9 = time.perf_counter()
        for key, seconds in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6, t8 - t7,
                                        t9 - t8)):
            steps[key] += seconds
    start = time.perf_counter()
    for p in paths:  # what the check does for a file whose verdict it remembers (a loop of its own: µs each)
        file_fingerprint(p)
    steps["fingerprint"] = time.perf_counter() - start
    return {key: total / len(paths) for key, total in steps.items()}


def child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="clips to check (default 1000)")
    parser.add_argument("--distinct", type=int, default=16, help="clips actually encoded; the rest are copies")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--sr", type=int, default=44_100)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--format", choices=["mp3", "flac", "wav"], default="mp3")
    parser.add_argument("--workers", default="1,2,4", help="thread counts for tracks_flags (default 1,2,4; 4 = the check's)")
    parser.add_argument("--breakdown-files", type=int, default=50)
    parser.add_argument("--target", type=int, default=ONION_TRACKS, help="tracks to extrapolate to (Onion: 56 512)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        job = json.loads(args.child)
        result = run_check(job["paths"], job["workers"]) if job["kind"] == "check" else breakdown(job["paths"])
        print(json.dumps(result))
        return

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    paths = [str(p) for p in generate(args.files, args.distinct, args.seconds, args.sr, args.channels, args.format)]
    generated_s = time.perf_counter() - start
    size_mb = sum(Path(p).stat().st_size for p in paths) / len(paths) / 1e6
    rows = [child(["--child", json.dumps({"kind": "check", "paths": paths, "workers": int(w)})])
            for w in args.workers.split(",")]
    steps = child(["--child", json.dumps({"kind": "breakdown", "paths": paths[:args.breakdown_files]})])

    import numpy
    import soundfile as sf

    print(f"machine: {platform.platform()}, {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"numpy {numpy.__version__}, soundfile {sf.__version__} (libsndfile {sf.__libsndfile_version__})")
    print(f"clips: {args.files} × {args.seconds:g} s {args.format} {args.sr} Hz {args.channels} ch, "
          f"{size_mb:.2f} MB each ({size_mb * 8 / args.seconds * 1000:.0f} kbit/s), {args.distinct} distinct; "
          f"written in {generated_s:.1f} s (cached after the first run); page cache warm")
    print()
    cores = os.cpu_count() or 1
    print(f"| threads | files | wall s | files/s | × real time | {args.target:,} tracks (wall) | CPU ms/file "
          f"| {args.target:,} tracks if the cores were free | flagged | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        rate = r["files"] / r["seconds"]
        cpu_per_file = r["cpu_s"] / r["files"]
        # CPU-bound: with the machine to itself the check needs its CPU time spread over min(threads, cores)
        idle = args.target * cpu_per_file / min(r["workers"], cores)
        print(f"| {r['workers']} | {r['files']:,} | {r['seconds']:.1f} | {rate:.1f} | {rate * args.seconds:.0f} | "
              f"{fmt_duration(args.target / rate)} | {cpu_per_file * 1000:.1f} | {fmt_duration(idle)} | "
              f"{r['problems']} | {r['peak_rss_mb']:.0f} |")
    print()
    print(f"Serial breakdown, ms per file (mean of {min(args.breakdown_files, len(paths))} files):")
    print()
    print("| sf.info | libsndfile read | mono downmix (`mean(axis=1)`) | WAV scan | NaN/peak | audio_oddities (all) "
          "| ingest probe (header + 1 s) | downmix by columns (alternative) | probe_audio (the check now) "
          "| remembered verdict (stat) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ms = {k: v * 1000 for k, v in steps.items()}
    print(f"| {ms['info']:.1f} | {ms['read']:.1f} | {ms['downmix']:.1f} | {ms['wav_scan']:.2f} | "
          f"{ms['array_checks']:.1f} | {ms['audio_oddities']:.1f} | {ms['ingest_probe']:.1f} | "
          f"{ms['downmix_columns']:.1f} | {ms['probe_audio']:.2f} | {ms['fingerprint']:.3f} |")
    print()
    print(f"load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f} "
          "(other processes on the machine share the cores)")

if __name__ == "__main__":
    main()
