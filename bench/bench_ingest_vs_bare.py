"""CPU seconds of audiorec's ingest + split + blocking checks next to a bare DuckDB split of the same log (issue 19).

Usage:  .venv/bin/python bench/bench_ingest_vs_bare.py [n_events ...]   (default: 1000000)
            [--tracks 56512] [--no-audio-check] [--code DIR] [--runs 2]

The log is bench_ingest.py's synthetic Music4All-Onion log (20 000 users, 56 512 tracks, plain TSV); the audio
is one 1-s MP3 (44.1 kHz stereo) per track, byte copies of 16 clips, in bench/out/audio_1s_mp3/.

- **bare**: one DuckDB statement: read the TSV, keep the study's windows, collapse to the first listen per
  (user, track) and period with the play count, cut train / val / test by time, write Parquet (zstd).
- **audiorec**: the real Dagster ingest in one process: the one op writing ``listens``, ``tracks``, ``interactions``
  and ``split_info`` with both blocking checks (``dg.materialize``, in-process executor), on a lake whose ``raw/`` links to the log
  and the audio. ``--runs 2`` (default) materializes twice on the same lake: the first run probes every audio
  file, the second finds the verdicts remembered (unchanged audio, e.g. a new log).

``--lake DIR`` measures instead what ``bench/bench_study.py``'s ingest layer measures, on a lake made by
``bench/onion_lake.py`` (only its ``raw/`` is used; tables, ``tmp/`` and the warehouse are removed first): the real
command ``audiorec materialize --plain --select group:ingest`` (fresh ``DAGSTER_HOME``; CPU of the process and its
children, ``os.wait4``), run twice (first look at the audio, then verdicts remembered), and bench_study's bare
ingest; ``--code`` may then be given several times, and ``--repeat N`` alternates the checkouts N times, so that
before / after share the machine's load. Copy a shared lake first (``cp -a``): its derived folders are removed.

Each side runs in a fresh subprocess; CPU seconds are the process's user + system time (DuckDB's threads
included) around the work, imports excluded. ``--code DIR`` imports ``audiorec_assets`` from another checkout
(e.g. ``git archive HEAD | tar -x -C /tmp/old``) to compare before / after. The per-step lines are CPU seconds
of the data functions the assets call (the rest of a run is Dagster and the assets' own bookkeeping).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "out"
AUDIO = OUT / "audio_1s_mp3"
ONION_TRACKS = 56_512


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def generate_audio(folder: Path, n_tracks: int) -> None:
    """One 1-s MP3 per synthetic track id (``track_`` + 10 digits, as bench_ingest.py's log names them)."""
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    if (folder / f"track_{n_tracks - 1:010d}.mp3").exists():
        return
    sr, clips = 44_100, []
    for i in range(16):
        t = np.arange(sr) / sr
        wave = 0.3 * np.sin(2 * np.pi * (200 + 20 * i) * t) + 0.02 * np.random.default_rng(i).standard_normal(sr)
        partial = folder / f".clip{i}.mp3"
        sf.write(str(partial), np.stack([wave, np.roll(wave, 30)], axis=1).astype("float32"), sr,
                 format="MP3", subtype="MPEG_LAYER_III")
        clips.append(partial.read_bytes())
        partial.unlink()
    for k in range(n_tracks):
        path = folder / f"track_{k:010d}.mp3"
        if not path.exists():
            path.write_bytes(clips[k % len(clips)])


def run_bare(log: Path, work: Path) -> dict[str, float]:
    import duckdb

    work.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET memory_limit = '3GB'")
    con.execute("SET TimeZone = 'UTC'")
    start = cpu_s()
    con.execute(f"""
        COPY (
          WITH events AS (
                 SELECT user_id, track_id, CAST(timestamp AS TIMESTAMP) AS ts
                 FROM read_csv('{log}', delim = '\\t', header = true, all_varchar = true)),
               pairs AS (
                 SELECT user_id, track_id, ts < TIMESTAMP '2020-02-20' AS in_train, min(ts) AS first_ts,
                        count(*) AS plays
                 FROM events WHERE ts >= TIMESTAMP '2019-02-20' AND ts < TIMESTAMP '2020-03-21'
                 GROUP BY ALL)
          SELECT user_id, track_id, first_ts, plays,
                 CASE WHEN in_train THEN 'train' WHEN first_ts < TIMESTAMP '2020-03-06' THEN 'val' ELSE 'test' END
                   AS split
          FROM pairs
        ) TO '{work / "bare.parquet"}' (FORMAT parquet, COMPRESSION zstd)""")
    return {"cpu_s": cpu_s() - start}


STEPS = {  # module (as the assets reach it) -> the data functions timed per step
    "audiorec_assets.data.sources": ["read_listens"],
    "audiorec_assets.data.ingest": ["build_tracks"],
    "audiorec_assets.data.quality": ["tracks_flags", "check_tracks", "interactions_flags", "check_interactions"],
    "audiorec_assets.data.splits": ["make_split"],
}


def _time_steps(totals: dict[str, float]) -> None:
    import importlib

    for module_name, names in STEPS.items():
        module = importlib.import_module(module_name)
        for name in names:
            function = getattr(module, name, None)
            if function is None:  # an older checkout
                continue

            def timed(*args, _function=function, _name=name, **kwargs):
                start = cpu_s()
                try:
                    return _function(*args, **kwargs)
                finally:
                    totals[_name] = totals.get(_name, 0.0) + cpu_s() - start

            setattr(module, name, timed)


def run_audiorec(log: Path, lake: Path, runs: int, audio_check: bool) -> dict:
    import shutil

    import dagster as dg

    from audiorec_assets.defs import ingest
    from audiorec_assets.defs.resources import LakeResource

    if lake.exists():
        shutil.rmtree(lake)
    (lake / "raw").mkdir(parents=True)
    (lake / "raw" / log.name).symlink_to(log)
    (lake / "raw" / "audios").symlink_to(AUDIO)
    if not audio_check:  # every file passes without being opened (the bench's other half then measures the rest)
        import pandas as pd

        from audiorec_assets.data import quality

        def no_probe(tracks, *args, **kwargs):
            flagged = tracks.copy()
            for column in ["audio_exists", "audio_decodes"] + [f"audio_{k}_ok" for k in quality.AUDIO_ODDITIES]:
                flagged[column] = True
            flagged["audio_problem"] = ""
            flagged["item_idx_expected"] = range(len(tracks))
            flagged["track_id_sorted"] = sorted(tracks["track_id"].astype(str))
            return pd.DataFrame(flagged)

        quality.tracks_flags = no_probe
        # the tracks table's probe (where the ingest now opens each file, once): a healthy 1-s verdict, unopened
        quality.file_verdicts = lambda files, *args, **kwargs: [(True, {}, "", 1.0) for _ in files]
    steps = [ingest.ingest]  # one op: the four tables and both blocking checks
    results = []
    totals: dict[str, float] = {}
    _time_steps(totals)
    for _ in range(runs):
        totals.clear()
        start, wall = cpu_s(), time.perf_counter()
        outcome = dg.materialize(steps, resources={"lake": LakeResource(root=str(lake))})
        results.append({"cpu_s": cpu_s() - start, "wall_s": time.perf_counter() - wall, "steps": dict(totals),
                        "success": outcome.success})
    return {"runs": results}


def child(args: list[str], code: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{code}{os.pathsep}{ROOT / 'bench'}", "GX_ANALYTICS_ENABLED": "false"}
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True, env=env,
                         cwd=code)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_lake(lake: Path, codes: list[Path], repeat: int) -> None:
    """``--lake``: the ingest layer of bench_study (the real CLI) per checkout, alternating, with the bare."""
    import shutil
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    import bench_study

    base_env = {k: v for k, v in os.environ.items() if k not in ("AUDIOREC_LAKE", "DAGSTER_HOME", "PYTHONPATH")}
    logs = Path(tempfile.mkdtemp(prefix="bench_ingest_lake_"))
    cli = [str(Path(sys.executable).parent / "audiorec"), "materialize", "--plain", "--select", "group:ingest"]
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; lake {lake}; "
          f"logs {logs}")
    print()
    print("| round | code | run | CPU s | wall s | load (1 / 5 / 15 min) at start | bare CPU s | ratio |")
    print("|---:|---|---|---:|---:|---|---:|---:|")
    for round_ in range(1, repeat + 1):
        for code in codes:
            for path in ("tables", "models", "tmp", "warehouse.duckdb", "warehouse.duckdb.wal"):
                target = lake / path
                shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
            home = logs / f"home_{round_}_{code.name}"
            bench_study.fresh_dagster_home(home)
            env = {**base_env, "AUDIOREC_LAKE": str(lake), "DAGSTER_HOME": str(home), "PYTHONPATH": str(code),
                   "GX_ANALYTICS_ENABLED": "false"}
            runs = []
            for label in ("first (audio probed)", "again (verdicts remembered)"):
                load = os.getloadavg()
                run = bench_study.measure(cli, env, logs / f"{round_}_{code.name}_{len(runs)}.log")
                if run["rc"] != 0:
                    raise SystemExit(f"audiorec materialize failed: see {run['log']}")
                runs.append((label, run, load))
            bare = bench_study.measure([sys.executable, str(Path(bench_study.__file__)), "--lake", str(lake), "--out",
                                        str(logs / "bare"), "--bare", "ingest"], base_env, logs / "bare.log")
            for label, run, load in runs:
                print(f"| {round_} | {code} | {label} | {run['cpu_s']:.1f} | {run['wall_s']:.1f} | "
                      f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} | {bare['cpu_s']:.1f} | "
                      f"{run['cpu_s'] / bare['cpu_s']:.1f}× |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", nargs="*", type=int, default=[1_000_000])
    parser.add_argument("--tracks", type=int, default=ONION_TRACKS)
    parser.add_argument("--runs", type=int, default=2, help="audiorec runs on the same lake (default 2)")
    parser.add_argument("--no-audio-check", action="store_true", help="every audio file passes the check unopened")
    parser.add_argument("--code", type=Path, action="append", help="the checkout whose audiorec_assets runs "
                        "(default: this one; with --lake: may be given several times)")
    parser.add_argument("--lake", type=Path, help="measure the real CLI's ingest on this bench/onion_lake.py lake")
    parser.add_argument("--repeat", type=int, default=1, help="with --lake: rounds over the checkouts")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = json.loads(args.child)
        if job["kind"] == "bare":
            result = run_bare(Path(job["log"]), Path(job["work"]))
        else:
            result = run_audiorec(Path(job["log"]), Path(job["lake"]), job["runs"], job["audio_check"])
        print(json.dumps(result, default=str))
        return

    codes = args.code or [ROOT]
    if args.lake:
        run_lake(args.lake.resolve(), [c.resolve() for c in codes], args.repeat)
        return
    args.code = codes[0]
    from bench_ingest import generate

    generate_audio(AUDIO, args.tracks)
    load_before = os.getloadavg()
    rows = []
    for n in args.events:
        log = OUT / f"onion_{n}" / "userid_trackid_timestamp.tsv"
        generate(log, n)
        bare = child(["--child", json.dumps({"kind": "bare", "log": str(log), "work": str(OUT / f"bare_{n}")})],
                     args.code)
        ours = child(["--child", json.dumps({"kind": "audiorec", "log": str(log), "lake": str(OUT / f"lake_vs_{n}"),
                                             "runs": args.runs, "audio_check": not args.no_audio_check})], args.code)
        rows.append((n, bare, ours, os.getloadavg()))
    import duckdb

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"duckdb {duckdb.__version__}; code: {args.code}; audio check: {not args.no_audio_check}")
    print(f"load average before: {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f} (1 / 5 / 15 min)")
    print()
    print("| events | bare CPU s | audiorec run | audiorec CPU s | ratio | wall s | load (1 min) after |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for n, bare, ours, load in rows:
        for i, run in enumerate(ours["runs"]):
            label = ("audio check stubbed" if args.no_audio_check else
                     "first (audio probed)" if i == 0 else "again (verdicts remembered)")
            print(f"| {n:,} | {bare['cpu_s']:.1f} | {label} | {run['cpu_s']:.1f} | {run['cpu_s'] / bare['cpu_s']:.1f}× "
                  f"| {run['wall_s']:.1f} | {load[0]:.2f} |")
    print()
    for n, _, ours, _ in rows:
        for i, run in enumerate(ours["runs"]):
            parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(run["steps"].items(), key=lambda kv: -kv[1]))
            print(f"{n:,} events, run {i + 1}: {parts}")


if __name__ == "__main__":
    main()
