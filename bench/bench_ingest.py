"""Time ingest + split on synthetic Music4All-Onion logs (issue: 10 M events < 60 s, < 4 GB peak on 2 cores).

Usage:  .venv/bin/python bench/bench_ingest.py [n_events ...]      (default: 1000000 10000000)

Each size runs in a fresh subprocess so that its peak RSS (ru_maxrss, which includes
DuckDB's memory: it runs in-process) is its own. The Great Expectations interactions check
(per-row flags in DuckDB + the suite) is timed too, separately from the goal's total. The log is generated with DuckDB
(20 000 users, 56 512 tracks, 2019-01-01 .. 2020-03-20) into bench/out/.
Audio decoding is not part of this benchmark: the catalogue is the set of logged tracks.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "out"


def generate(path: Path, n_events: int) -> None:
    import duckdb

    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    duckdb.sql(f"""
        COPY (
          SELECT 'user_' || lpad(CAST(hash(i, 1) % 20000 AS VARCHAR), 6, '0') AS user_id,
                 'track_' || lpad(CAST(hash(i, 2) % 56512 AS VARCHAR), 10, '0') AS track_id,
                 strftime(TIMESTAMP '2019-01-01' + to_seconds(CAST(hash(i, 3) % 38361600 AS BIGINT)),
                          '%Y-%m-%d %H:%M:%S') AS timestamp
          FROM range({n_events}) t(i)
        ) TO '{path}' (HEADER, DELIMITER '\t')""")


def run_one(n_events: int) -> dict[str, float]:
    from audiorec_assets.data.quality import check_interactions, interactions_flags
    from audiorec_assets.data.sources import Layout, RawSource, ingest_listens
    from audiorec_assets.data.splits import make_split, resolve_windows
    from audiorec_assets.settings import ExperimentSettings, LakePaths
    from audiorec_assets.warehouse import scratch_connection

    log = OUT / f"onion_{n_events}" / "userid_trackid_timestamp.tsv"
    generate(log, n_events)
    lake = LakePaths(OUT / f"lake_{n_events}")
    source = RawSource(Layout.ONION, log, log.parent / "audios")
    settings = ExperimentSettings()
    timings: dict[str, float] = {"events": n_events}
    with scratch_connection(lake) as con:
        start = time.perf_counter()
        listens = lake.table_dir("listens") / "all.parquet"
        ingest_listens(con, source, listens, lake.tmp)
        timings["ingest_s"] = time.perf_counter() - start
        start = time.perf_counter()
        catalogue = [r[0] for r in con.execute("SELECT DISTINCT track_id FROM read_parquet($p)", {"p": str(listens)}).fetchall()]
        windows = resolve_windows(con, listens, Layout.ONION, settings)
        report = make_split(con, listens, catalogue, windows, settings, lake.table_dir("interactions") / "all.parquet")
        timings["split_s"] = time.perf_counter() - start
        start = time.perf_counter()
        flags = interactions_flags(con, lake.table_dir("interactions") / "all.parquet", windows)
        if not check_interactions(flags).success:
            raise SystemExit("the interactions check failed on the synthetic log")
        timings["check_s"] = time.perf_counter() - start
    timings["total_s"] = timings["ingest_s"] + timings["split_s"]
    timings["interactions"] = report.train_pairs + report.val_pairs + report.test_pairs
    timings["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return timings


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(run_one(int(sys.argv[2]))))
        return
    sizes = [int(a) for a in sys.argv[1:]] or [1_000_000, 10_000_000]
    rows = []
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    import duckdb

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"duckdb {duckdb.__version__}")
    print("| events | ingest s | split s | ingest + split s | interactions | GE check s | peak RSS GB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['events']:,} | {r['ingest_s']:.1f} | {r['split_s']:.1f} | {r['total_s']:.1f} | "
              f"{r['interactions']:,} | {r['check_s']:.1f} | {r['peak_rss_gb']:.2f} |")


if __name__ == "__main__":
    main()
