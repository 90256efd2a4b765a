"""Tracks/s and × real time per encoder on the demo audio (issue goals on 2 CPU cores: mfcc ≥ 200×, musicnn ≥ 20×).

Usage:  .venv/bin/python bench/bench_encoders.py [encoder ...]     (default: mfcc musicnn)
        BENCH_TRACKS=60 BENCH_DEVICE=cuda .venv/bin/python bench/bench_encoders.py musicnn

Times the whole path an embeddings partition takes (decode + resample + model + pooling,
`encoders.run.encode_catalogue`), after one warm-up track so that weight loading and the
one-time MusiCNN weight fetch are not counted. Audio: the demo catalogue (22.05 kHz FLAC,
10-20 s), generated into bench/out/demo_raw/ on first use.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "out"


def main() -> None:
    import torch

    from audiorec_assets.data.audio import audio_duration
    from audiorec_assets.datasets.demo import generate_demo
    from audiorec_assets.encoders import make_audio_encoder
    from audiorec_assets.encoders.base import EncoderContext
    from audiorec_assets.encoders.run import encode_catalogue

    raw = OUT / "demo_raw"
    if not (raw / "DEMO.md").exists():
        generate_demo(raw, seed=0)
    n_tracks = int(os.environ.get("BENCH_TRACKS", "120"))
    device = os.environ.get("BENCH_DEVICE", "cpu")
    batch_size = int(os.environ.get("BENCH_BATCH", "8"))
    paths = sorted((raw / "audio").glob("*.flac"))[:n_tracks]
    rows = []
    for name in sys.argv[1:] or ["mfcc", "musicnn"]:
        encoder = make_audio_encoder(name, EncoderContext(device=device, batch_size=batch_size))
        encode_catalogue(encoder, paths[:1])  # warm-up: weights, caches
        audio_s = sum(min(audio_duration(p), encoder.clip_seconds or 1e9) for p in paths)
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        vectors, _, report = encode_catalogue(encoder, paths)
        seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
        user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
        rows.append((name, len(paths), audio_s, seconds, user, system, vectors.shape[1]))
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), device {device}, batch {batch_size}")
    print("| encoder | tracks | audio s | wall s | user CPU s | system CPU s | tracks/s | × real time | dim |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, audio_s, seconds, user, system, dim in rows:
        print(f"| {name} | {n} | {audio_s:.0f} | {seconds:.1f} | {user:.1f} | {system:.1f} | {n / seconds:.1f} "
              f"| {audio_s / seconds:.0f} | {dim} |")


if __name__ == "__main__":
    main()
