"""Write a synthetic lake in the Music4All-Onion layout, at a chosen size (default: the study's).

Usage:
    .venv/bin/python bench/onion_lake.py LAKE [--users 20000] [--tracks 56512] [--events 9500000] [--seed 0]
                                              [--scale 0.25] [--dims musicnn,mert,music2vec,encodecmae,jukemir,musicfm]

What it writes (docs/lake.md, "Input layouts" and "Layout"):

* ``raw/userid_trackid_timestamp.tsv``: header ``user_id track_id timestamp``, tab-separated, timestamps like
  ``2019-03-01 12:00:00``, sorted by user then time. User ids are integers (as in Onion), track ids 16 random
  characters of ``[0-9A-Za-z]`` (as in Onion). The log is made of user × track *pairs*: each pair has a discovery
  time and 1 + Geometric plays (replays: the same user re-listening the track over the following weeks), so
  there are new-to-user pairs in the evaluation window as the warm splits need. Track popularity is Zipf-like
  (``--zipf``), user activity lognormal (``--activity-sigma``); a fifth of the users join later than the log's start.
  ``--cold-fraction`` of the tracks (3 %) are new releases, released inside the evaluation window and never played
  before it, so ``test_cold`` is not empty; a track draws listeners in proportion to its popularity times the time
  it has been out, so a new release is no month's hit by construction. Events span ``--start`` (2019-01-20: a month before the study's
  ``train_start``, so some events fall outside the window as in the real log) to ``--end`` (2020-03-20); the
  split's default Onion dates (``data/splits.py``: train 2019-02-20, test 2020-02-20, no upper bound) then give a
  ≈ 29-day evaluation window, halved by time into val and test (``guide``).
* ``raw/audios/<track_id>.wav``: one tiny WAV per track (see "Audio" below).
* ``embeddings/gauss_<encoder>.npy``: float32 standard-normal vectors at the dimension of each encoder of
  ``--dims`` (read from the encoder registry, e.g. musicnn 200, mert 1024, music2vec 768, encodecmae 768, jukemir
  4800, musicfm 750), one row per track in ``item_idx`` order = the sorted track ids (``data/tracks.py``: item_idx
  is the rank of the sorted track id among the tracks with audio; every track here has audio). No sidecar: a
  dropped-in ``.npy`` is matched to tracks by row order only (``defs/embeddings.py: _dropped_in``). The names carry
  the ``gauss_`` prefix because a file named like a built-in encoder (``mert.npy``) is not taken as a drop-in
  (``defs/partitions.py: dropped_in_encoders``): ``mert`` would be encoded from audio with MERT's weights.
* ``experiment.yaml`` (only when the lake has none): encoders = the ``gauss_*`` drop-ins, recommenders knn,
  shallow, bert4rec; everything else at its default (guide preset, the study's dates).

Audio. The ingest needs one audio file per track: the catalogue (``audiorec.tracks``) is the set of tracks with a
file in ``raw/audios/`` (``data/tracks.py`` stops without any; a listened track without audio is refused by
``missing_audio: fail`` or its listens dropped by ``drop``, which would shrink the catalogue), and the blocking
tracks check (``data/quality.py``) decodes every file in full and fails on files that do not decode, are
truncated, hold NaN, or last 0 s. Under 1 s (``short``) and a peak under −80 dBFS (``silent``) only warn by
default. The cheapest files that pass *without a warning* are therefore 1.0 s of low-level noise at a low sample
rate: the default is 1 000 samples of 16-bit PCM at 1 kHz (2 044 bytes; every file takes one 4 KiB filesystem
block anyway, so a shorter file would save no disk). ``--audio-seconds 0.001`` gives 1-sample files (the
shortest the check allows; it then warns ``short`` for every file). The encoders never read these files: the
vectors are dropped in. The real decode cost of Onion's 56 512 MP3s (≈ 33 CPU-min) is measured separately in
``bench/bench_tracks_check.py``.

Everything is seeded (``--seed``): the same arguments give the same bytes. Full size takes about a minute,
most of it the vectors (1.9 GB for the six encoders) and the TSV.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

STUDY_ENCODERS = ("musicnn", "mert", "music2vec", "encodecmae", "jukemir", "musicfm")
DROP_IN_PREFIX = "gauss_"
FULL_USERS, FULL_TRACKS, FULL_EVENTS = 20_000, 56_512, 9_500_000
LOG_NAME = "userid_trackid_timestamp.tsv"
ALPHABET = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
DAY = 86_400


def onion_dates() -> tuple[datetime, datetime]:
    """The split's default dates for the Onion layout, from the code itself."""
    from audiorec_assets.data.splits import ONION_TEST_START, ONION_TRAIN_START

    return ONION_TRAIN_START, ONION_TEST_START


def encoder_dims(spec: str) -> dict[str, int]:
    """``musicnn,mert`` (dimensions from the encoder registry) or ``name=dim`` entries → {encoder: dim}."""
    from audiorec_assets.encoders import audio_encoder_class

    dims: dict[str, int] = {}
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        name, _, dim = entry.partition("=")
        dims[name] = int(dim) if dim else int(audio_encoder_class(name).dim)
    return dims


def _epoch(ts: datetime) -> int:
    return int((ts - datetime(1970, 1, 1)).total_seconds())


def track_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct 16-character ids of [0-9A-Za-z] (Onion's shape), as a numpy array of str."""
    while True:
        codes = ALPHABET[rng.integers(0, len(ALPHABET), size=(n, 16))]
        ids = codes.view("S16").ravel().astype("U16")
        if len(np.unique(ids)) == n:
            return ids


def make_events(users: int, tracks: int, events: int, seed: int, start: datetime, test_start: datetime,
                end: datetime, zipf: float, activity_sigma: float, mean_plays: float, cold_fraction: float,
                replay_days: float) -> dict[str, np.ndarray]:
    """The log as arrays: ``user`` (0-based), ``track`` (index into the track ids), ``ts`` (epoch seconds),
    plus ``cold`` (bool per track: a new release inside the evaluation window)."""
    rng = np.random.default_rng(seed)
    t0, t_test, t_end = _epoch(start), _epoch(test_start), _epoch(end)
    # popularity: Zipf over a random ranking of the tracks
    rank = rng.permutation(tracks)
    popularity = 1.0 / (rank + 1.0) ** zipf
    cold = np.zeros(tracks, dtype=bool)
    cold[rng.choice(tracks, size=int(round(cold_fraction * tracks)), replace=False)] = True
    release = np.full(tracks, t0, dtype=np.int64)  # new releases come out inside the evaluation window
    release[cold] = rng.integers(t_test, t_end - 3 * DAY, size=int(cold.sum()))
    # a track draws listeners in proportion to its popularity and to the time it has been out
    popularity = popularity * (t_end - release) / (t_end - t0)
    track_cdf = np.cumsum(popularity / popularity.sum())
    # user activity: lognormal weights; a fifth of the users join later (before the evaluation window)
    activity = rng.lognormal(0.0, activity_sigma, size=users)
    user_cdf = np.cumsum(activity / activity.sum())
    joins = np.where(rng.random(users) < 0.2, rng.integers(t0, t_test - 30 * DAY, size=users), t0)
    # pairs: every user gets one, the rest by activity; oversample, then cut at exactly `events` plays
    p_geometric = 1.0 / mean_plays
    n_pairs = int(events / mean_plays * 1.1) + users
    pair_user = np.concatenate([np.arange(users), np.minimum(np.searchsorted(user_cdf, rng.random(n_pairs - users)),
                                                             users - 1)])
    plays = rng.geometric(p_geometric, size=n_pairs)  # ≥ 1
    cum = np.cumsum(plays)
    keep = int(np.searchsorted(cum, events)) + 1
    if keep > n_pairs:
        raise SystemExit("internal: not enough pairs sampled")
    pair_user, plays = pair_user[:keep], plays[:keep].copy()
    plays[-1] -= int(cum[keep - 1] - events)  # exactly `events` plays in all
    pair_track = np.minimum(np.searchsorted(track_cdf, rng.random(keep)), tracks - 1)
    # discovery: uniform over the user's active span, or after the release of a new track
    begin = np.maximum(joins[pair_user], release[pair_track])
    discovery = begin + (rng.random(keep) * (t_end - begin)).astype(np.int64)
    # plays: the first at discovery, replays an exponential time later (wrapped into the span when past its end)
    event_pair = np.repeat(np.arange(keep), plays)
    first = np.zeros(len(event_pair), dtype=bool)
    first[np.cumsum(plays) - plays] = True
    d = discovery[event_pair]
    offset = rng.exponential(replay_days * DAY, size=len(event_pair)).astype(np.int64)
    later = d + offset
    wrapped = d + (rng.random(len(event_pair)) * (t_end - d)).astype(np.int64)
    ts = np.where(first, d, np.where(later < t_end, later, wrapped))
    return {"user": pair_user[event_pair].astype(np.int32), "track": pair_track[event_pair].astype(np.int32),
            "ts": ts.astype(np.int64), "cold": cold}


def write_log(path: Path, ids: np.ndarray, log: dict[str, np.ndarray]) -> None:
    """The TSV through DuckDB (sorted by user, then time)."""
    import duckdb
    import pyarrow as pa

    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    events = pa.table({"u": log["user"], "t": log["track"], "ts": log["ts"]})
    catalogue = pa.table({"t": np.arange(len(ids), dtype=np.int32), "track_id": ids})
    con.register("events", events)
    con.register("catalogue", catalogue)
    partial = path.with_name("." + path.name + ".partial")
    quoted = str(partial).replace("'", "''")
    con.execute(f"""COPY (
        SELECT CAST(e.u + 1 AS VARCHAR) AS user_id, c.track_id,
               strftime(make_timestamp(e.ts * 1000000), '%Y-%m-%d %H:%M:%S') AS timestamp
        FROM events e JOIN catalogue c USING (t)
        ORDER BY e.u, e.ts, c.track_id
      ) TO '{quoted}' (HEADER, DELIMITER '\t', QUOTE '')""")
    con.close()
    partial.replace(path)


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """A mono 16-bit PCM RIFF/WAVE file."""
    data = samples.astype("<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return header + fmt + b"data" + struct.pack("<I", len(data)) + data


def write_audio(folder: Path, ids: np.ndarray, seed: int, seconds: float, rate: int) -> None:
    """One WAV of ``seconds`` of quiet noise (peak ≈ −20 dBFS, so not ``silent``) per track."""
    folder.mkdir(parents=True, exist_ok=True)
    n = max(1, int(round(seconds * rate)))
    rng = np.random.default_rng([seed, 7])
    chunk = 4096
    for lo in range(0, len(ids), chunk):
        noise = rng.integers(-3000, 3001, size=(min(chunk, len(ids) - lo), n), dtype=np.int16)
        for track_id, samples in zip(ids[lo:lo + chunk], noise):
            (folder / f"{track_id}.wav").write_bytes(wav_bytes(samples, rate))


def write_vectors(path: Path, rows: int, dim: int, seed: int) -> None:
    """Standard-normal float32 ``(rows, dim)`` written in chunks (no full copy in memory), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name("." + path.name + ".partial.npy")
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(rows, dim))
    rng = np.random.default_rng([seed, dim, 11])
    step = max(1, (1 << 24) // dim)
    for lo in range(0, rows, step):
        out[lo:lo + step] = rng.standard_normal((min(step, rows - lo), dim), dtype=np.float32)
    out.flush()
    del out
    os.replace(partial, path)


def write_settings(lake: Path, names: list[str]) -> bool:
    target = lake / "experiment.yaml"
    if target.exists():
        return False
    target.write_text(
        "# written by bench/onion_lake.py: the dropped-in Gaussian vectors, the audio recommenders;\n"
        "# everything else at its default (guide preset, the study's Onion dates)\n"
        f"encoders: [{', '.join(names)}]\n"
        "recommenders: [knn, shallow, bert4rec]\n")
    return True


def generate(lake: Path, users: int, tracks: int, events: int, seed: int, dims: dict[str, int],
             start: datetime, end: datetime, zipf: float = 0.9, activity_sigma: float = 1.0,
             mean_plays: float = 2.5, cold_fraction: float = 0.03, replay_days: float = 20.0,
             audio_seconds: float = 1.0, audio_rate: int = 1000, quiet: bool = False) -> dict[str, object]:
    """Write the lake; returns what was written (counts, seconds per part)."""
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    lake = Path(lake)
    raw = lake / "raw"
    if (raw / LOG_NAME).exists() or (raw / "audios").exists():
        raise SystemExit(f"{raw} already holds a log or audio: give an empty or new lake folder")
    _, test_start = onion_dates()
    if not start < test_start < end:
        raise SystemExit(f"--start {start} and --end {end} must lie either side of the Onion test start {test_start}")
    timings: dict[str, float] = {}
    t = time.perf_counter()
    ids = np.sort(track_ids(np.random.default_rng([seed, 3]), tracks))  # sorted: index = item_idx
    log = make_events(users, tracks, events, seed, start, test_start, end, zipf, activity_sigma, mean_plays,
                      cold_fraction, replay_days)
    timings["events_s"] = time.perf_counter() - t
    say(f"[onion_lake] {len(log['ts']):,} events, {users:,} users, {tracks:,} tracks "
        f"({int(log['cold'].sum()):,} new releases in the evaluation window): {timings['events_s']:.1f} s")
    t = time.perf_counter()
    write_log(raw / LOG_NAME, ids, log)
    timings["log_s"] = time.perf_counter() - t
    say(f"[onion_lake] {raw / LOG_NAME}: {(raw / LOG_NAME).stat().st_size / 1e6:.0f} MB in {timings['log_s']:.1f} s")
    t = time.perf_counter()
    write_audio(raw / "audios", ids, seed, audio_seconds, audio_rate)
    timings["audio_s"] = time.perf_counter() - t
    say(f"[onion_lake] {tracks:,} WAV files ({audio_seconds:g} s at {audio_rate} Hz) in {timings['audio_s']:.1f} s")
    t = time.perf_counter()
    names = []
    for i, (encoder, dim) in enumerate(dims.items()):
        name = encoder if encoder.startswith(DROP_IN_PREFIX) else DROP_IN_PREFIX + encoder
        write_vectors(lake / "embeddings" / f"{name}.npy", tracks, dim, seed + i)
        names.append(name)
    timings["vectors_s"] = time.perf_counter() - t
    say(f"[onion_lake] vectors {', '.join(f'{n} ({d})' for n, d in zip(names, dims.values()))} "
        f"in {timings['vectors_s']:.1f} s")
    wrote = write_settings(lake, names)
    in_eval = int((log["ts"] >= _epoch(test_start)).sum())
    return {"lake": str(lake), "users": users, "tracks": tracks, "events": int(len(log["ts"])),
            "events_in_eval_window": in_eval, "new_release_tracks": int(log["cold"].sum()),
            "encoders": dict(zip(names, dims.values())), "wrote_settings": wrote, **timings,
            "total_s": sum(timings.values())}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lake", type=Path)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies the default users, tracks and events (0.25: a quarter of the study)")
    parser.add_argument("--users", type=int, help=f"default {FULL_USERS} × scale")
    parser.add_argument("--tracks", type=int, help=f"default {FULL_TRACKS} × scale")
    parser.add_argument("--events", type=int, help=f"default {FULL_EVENTS} × scale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dims", default=",".join(STUDY_ENCODERS),
                        help="encoders whose dimension the vectors take (registry), or name=dim entries; '' for none")
    parser.add_argument("--start", type=datetime.fromisoformat, default=datetime(2019, 1, 20))
    parser.add_argument("--end", type=datetime.fromisoformat, default=datetime(2020, 3, 20))
    parser.add_argument("--zipf", type=float, default=0.9, help="popularity exponent")
    parser.add_argument("--activity-sigma", type=float, default=1.0, help="sigma of the lognormal user activity")
    parser.add_argument("--mean-plays", type=float, default=2.5, help="mean plays per user × track pair (≥ 1)")
    parser.add_argument("--cold-fraction", type=float, default=0.03, help="tracks released in the evaluation window")
    parser.add_argument("--replay-days", type=float, default=20.0, help="mean delay of a replay after discovery")
    parser.add_argument("--audio-seconds", type=float, default=1.0)
    parser.add_argument("--audio-rate", type=int, default=1000)
    args = parser.parse_args(argv)
    args.users = args.users or max(10, int(round(FULL_USERS * args.scale)))
    args.tracks = args.tracks or max(50, int(round(FULL_TRACKS * args.scale)))
    args.events = args.events or max(1000, int(round(FULL_EVENTS * args.scale)))
    if args.mean_plays < 1:
        parser.error("--mean-plays must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = generate(args.lake, args.users, args.tracks, args.events, args.seed, encoder_dims(args.dims),
                      args.start, args.end, args.zipf, args.activity_sigma, args.mean_plays, args.cold_fraction,
                      args.replay_days, args.audio_seconds, args.audio_rate)
    import json

    print(json.dumps(result))


if __name__ == "__main__":
    main()
