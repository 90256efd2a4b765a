"""What a Dask cluster buys for the recommend layer: every encoder × recommender cell of a materialized lake run
(a) one after another in one process, in-process, and (b) as concurrent runs on a two-worker
``distributed.LocalCluster`` (the Dask executor, ``deploy/dask/existing.yaml``-style: one scheduler, runs
submitted from two threads). Both rewrite the same cells; the metrics of (b) are compared with (a)'s.

    DAGSTER_HOME=/path/to/home .venv/bin/python bench/bench_cluster.py --lake /path/to/demo-lake \\
        [--recommenders knn shallow] [--workers 2]

The lake must hold the demo's ingest and embeddings (``audiorec demo`` made them). Output recorded in
bench/RESULTS.md with the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd


def _cells_job():
    from audiorec_assets.definitions import defs

    return defs.resolve_job_def("cells_job")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--recommenders", nargs="+", default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    lake = args.lake.resolve()
    os.environ["AUDIOREC_LAKE"] = str(lake)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    if not os.environ.get("DAGSTER_HOME"):
        raise SystemExit("set DAGSTER_HOME (the Dask executor needs a persistent instance)")

    import dagster as dg

    from audiorec_assets.defs.execute import PlannedRun, execute
    from audiorec_assets.defs.jobs import CELLS
    from audiorec_assets.defs.partitions import lake_members
    from audiorec_assets.settings import LakePaths, load_settings
    from audiorec_assets.study import study_cells

    settings = load_settings(lake)
    offered = lake_members(LakePaths(lake), settings).members["encoder"]
    cells = [f"{e}|{r}" for e, r in study_cells(settings) if e in offered
             and (args.recommenders is None or r in args.recommenders)]
    instance = dg.DagsterInstance.get()
    from audiorec_assets.definitions import build_definitions

    defs = build_definitions(lake)
    keys = tuple(CELLS.selection.resolve(defs.resolve_asset_graph()))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {len(cells)} cells: {cells}")

    def metrics() -> pd.DataFrame:
        files = [lake / "tables" / "metrics" / f"{c.replace('|', '__')}.parquet" for c in cells]
        return pd.concat(pd.read_parquet(f) for f in files).sort_values(
            ["encoder", "recommender", "split", "metric", "k"], ignore_index=True)

    started = time.perf_counter()
    for cell in cells:  # (a) one process
        assert execute(defs, instance, PlannedRun(CELLS.name, keys, cell)).success, cell
    one_process = time.perf_counter() - started
    local = metrics()
    print(f"one process, in-process executor: {one_process:.1f} s")

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, resources={"torch": 1}, host="127.0.0.1") as cluster, \
            Client(cluster):
        config = lake / "tmp" / "bench-dask-existing.yaml"
        config.write_text(f"cluster:\n  existing:\n    address: {cluster.scheduler_address}\n")
        os.environ.update(AUDIOREC_EXECUTOR="dask", AUDIOREC_EXECUTOR_CONFIG=str(config))
        job = dg.reconstructable(_cells_job)

        def run(cell: str) -> bool:
            with dg.execute_job(job, instance, asset_selection=list(keys), tags={"dagster/partition": cell}) as result:
                return result.success

        started = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            ok = list(pool.map(run, cells))
        on_cluster = time.perf_counter() - started
    assert all(ok), dict(zip(cells, ok))
    same = metrics().equals(local)
    print(f"LocalCluster, {args.workers} workers, {args.workers} runs at a time: {on_cluster:.1f} s "
          f"(speed-up {one_process / on_cluster:.2f}x); metrics identical to the one-process run: {same}")


if __name__ == "__main__":
    main()
