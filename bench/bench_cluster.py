"""What a Dask cluster buys for the recommend layer: the demo's knn and shallow cells (every encoder of the demo
× those recommenders) (a) one after another in one process, in-process executor, and (b) as runs on a
two-worker ``distributed.LocalCluster`` (the Dask executor, ``deploy/dask/existing.yaml``-style: one scheduler).
The runs of (b) are launched as processes, as ``test_cluster.py``'s two-cells test does: one
``dagster asset materialize --select group:recommenders --partition <cell>`` per cell, with
``AUDIOREC_EXECUTOR=dask`` and ``AUDIOREC_EXECUTOR_CONFIG`` naming the LocalCluster's scheduler, ``--workers``
of them at a time. (Launching them with ``dg.execute_job`` from two threads of this process hung: RESULTS.md.)
Both rewrite the same cells; (b) must write metrics equal to (a)'s, and every step of (b) must have run in a
Dask worker process.

One command (makes the demo lake first when it is not there: ``audiorec demo``, ≈ 3–5 min):

    .venv/bin/python bench/bench_cluster.py

Options: ``--lake`` (default /tmp/audiorec-bench-cluster/lake), ``--home`` (the Dagster instance, default
$DAGSTER_HOME, else /tmp/audiorec-bench-cluster/home), ``--recommenders`` (default knn shallow), ``--workers``
(default 2), ``--run-timeout`` (s per cell process, default 600), ``--timeout`` (s for the whole script,
default 3600). Every wait has a limit: the demo, each phase, each process, the cluster's start and close; past
``--timeout`` the script prints every thread's stack and exits. Everything runs from a copy of
``audiorec_assets`` taken at the start (/tmp/audiorec-bench-cluster/src), so edits to the checkout during the
bench reach neither phase. The Dask workers print their steps' Dagster log lines among the bench's own
(``| grep -v ' - dagster - '`` leaves the bench's); the run processes' output goes to
/tmp/audiorec-bench-cluster/logs/. Output recorded in bench/RESULTS.md with the machine and its load.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_model  # noqa: E402

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
BASE = Path("/tmp/audiorec-bench-cluster")


class PhaseTimeout(Exception):
    pass


@contextmanager
def deadline(seconds: float, what: str):
    """Raise :class:`PhaseTimeout` in the main thread after ``seconds`` (SIGALRM)."""
    def expired(_signum, _frame):
        raise PhaseTimeout(f"{what}: not done after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no output)"


def _package_dir() -> str:
    """Where audiorec_assets is imported from (run on the Dask workers)."""
    import audiorec_assets

    return str(Path(audiorec_assets.__file__).parent)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def ensure_demo(lake: Path, timeout_s: float) -> None:
    """Run ``audiorec demo`` on ``lake`` unless every encoder the lake offers already has its vectors."""
    from audiorec_assets.defs.partitions import lake_members
    from audiorec_assets.settings import LakePaths, load_settings

    paths = LakePaths(lake)
    if (lake / "experiment.yaml").exists() and (lake / "raw").exists():
        offered = lake_members(paths, load_settings(lake)).members["encoder"]
        if offered and all(paths.embedding_file(e).exists() for e in offered):
            print(f"lake {lake}: the demo's vectors are there ({offered})", flush=True)
            return
    print(f"lake {lake}: running `audiorec demo` first (limit {timeout_s:.0f} s) ...", flush=True)
    log = BASE / "demo.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("w") as out:
        try:
            done = subprocess.run([str(Path(sys.executable).with_name("audiorec")), "--lake", str(lake), "demo"],
                                  cwd=lake, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise SystemExit(f"`audiorec demo` not done after {timeout_s:.0f} s; its log: {log}\n{tail(log)}")
    offered = lake_members(paths, load_settings(lake)).members["encoder"]
    ready = bool(offered) and all(paths.embedding_file(e).exists() for e in offered)
    if done.returncode != 0 and not ready:
        raise SystemExit(f"`audiorec demo` failed ({done.returncode}); its log: {log}\n{tail(log)}")
    if done.returncode != 0:  # the bench rewrites the cells anyway: what it needs is the ingest and the vectors
        print(f"`audiorec demo` exit {done.returncode} (failed runs: see {log}), but every encoder's vectors are "
              "there: going on", flush=True)
    print(f"demo done in {time.perf_counter() - started:.0f} s (log: {log})", flush=True)


def run_processes(cells: list[str], at_once: int, cwd: Path, env: dict, logs: Path, run_timeout_s: float,
                  phase_deadline: float) -> dict[str, tuple[int | None, float]]:
    """Launch one ``dagster asset materialize`` process per cell, ``at_once`` at a time; each is killed after
    ``run_timeout_s`` or at ``phase_deadline`` (time.monotonic). Returns cell → (exit code or None, wall s)."""
    logs.mkdir(parents=True, exist_ok=True)
    waiting, running, finished = list(cells), {}, {}
    try:
        while waiting or running:
            while waiting and len(running) < at_once:
                cell = waiting.pop(0)
                log = (logs / f"{cell.replace('|', '__')}.log").open("w")
                proc = subprocess.Popen([sys.executable, "-m", "dagster", "asset", "materialize", "-m",
                                         "audiorec_assets.definitions", "--select", "group:recommenders",
                                         "--partition", cell],
                                        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
                running[cell] = (proc, time.monotonic(), log)
                print(f"  started {cell} (pid {proc.pid})", flush=True)
            time.sleep(0.2)
            now = time.monotonic()
            for cell, (proc, started, log) in list(running.items()):
                code = proc.poll()
                late = now - started > run_timeout_s or now > phase_deadline
                if code is None and not late:
                    continue
                if code is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
                    print(f"  KILLED {cell}: not done after {now - started:.0f} s", flush=True)
                else:
                    print(f"  {cell}: exit {code} after {now - started:.1f} s", flush=True)
                log.close()
                finished[cell] = (code if code is not None else None, now - started)
                del running[cell]
            if now > phase_deadline:
                for cell in waiting:
                    finished[cell] = (None, 0.0)
                waiting = []
    finally:
        for cell, (proc, _started, log) in running.items():  # an exception above: leave no process behind
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            log.close()
    return finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", type=Path, default=BASE / "lake")
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--recommenders", nargs="+", default=["knn", "shallow"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--run-timeout", type=float, default=600.0)
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args()
    started_all = time.monotonic()
    faulthandler.dump_traceback_later(args.timeout + 120, exit=True)  # the last resort: stacks, then exit

    # a snapshot of the package, imported by this process, the runs and the Dask workers alike: the checkout may
    # change while the bench runs (others edit it), and (a) and (b) must run the same code
    src = BASE / "src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(REPO / "audiorec_assets", src / "audiorec_assets", ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(src))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH")) if p)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          timeout=30).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--short", "--", "audiorec_assets"],
                           capture_output=True, text=True, timeout=30).stdout.split("\n")
    print(f"code: snapshot of audiorec_assets at {head} + {len([d for d in dirty if d])} uncommitted file(s) "
          f"-> {src}", flush=True)

    lake = args.lake.resolve()
    lake.mkdir(parents=True, exist_ok=True)
    home = (args.home or Path(os.environ.get("DAGSTER_HOME") or BASE / "home")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ.update(AUDIOREC_LAKE=str(lake), DAGSTER_HOME=str(home))  # the workers and the runs inherit these
    for key, value in (("GX_ANALYTICS_ENABLED", "false"), ("HF_HUB_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(key, value)
    for key in ("AUDIOREC_EXECUTOR", "AUDIOREC_EXECUTOR_CONFIG"):  # (a) runs in-process whatever the shell says
        os.environ.pop(key, None)

    ensure_demo(lake, timeout_s=max(60.0, args.timeout - (time.monotonic() - started_all) - 600))

    import dagster as dg

    from audiorec_assets.definitions import build_definitions
    from audiorec_assets.defs.execute import PlannedRun, execute
    from audiorec_assets.defs.jobs import CELLS
    from audiorec_assets.defs.partitions import lake_members
    from audiorec_assets.settings import LakePaths, load_settings
    from audiorec_assets.study import study_cells

    import audiorec_assets

    assert Path(audiorec_assets.__file__).is_relative_to(src), audiorec_assets.__file__
    settings = load_settings(lake)
    offered = lake_members(LakePaths(lake), settings).members["encoder"]
    cells = [f"{e}|{r}" for e, r in study_cells(settings) if e in offered and r in args.recommenders]
    if not cells:
        raise SystemExit(f"no cells of {args.recommenders} on this lake (encoders {offered})")
    instance = dg.DagsterInstance.get()
    defs = build_definitions(lake)
    keys = tuple(CELLS.selection.resolve(defs.resolve_asset_graph()))
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}", flush=True)
    print(f"{len(cells)} cells: {cells}", flush=True)
    load_before = load()
    print(f"load average (1/5/15 min) before: {load_before}", flush=True)

    def metric_file(cell: str) -> Path:
        return lake / "tables" / "metrics" / f"{cell.replace('|', '__')}.parquet"

    def metrics() -> pd.DataFrame:
        return pd.concat(pd.read_parquet(metric_file(c)) for c in cells).sort_values(
            ["encoder", "recommender", "split", "metric", "k"], ignore_index=True)

    def left_s() -> float:
        return args.timeout - (time.monotonic() - started_all)

    # (a) one process, in-process executor, one cell after another
    per_cell = {}
    with deadline(max(30.0, left_s() - 300), "(a) the one-process runs"):
        started = time.perf_counter()
        for cell in cells:
            t = time.perf_counter()
            assert execute(defs, instance, PlannedRun(CELLS.name, keys, cell)).success, cell
            per_cell[cell] = time.perf_counter() - t
        one_process = time.perf_counter() - started
    local = metrics()
    print(f"(a) one process, in-process executor, {len(cells)} cells one after another: {one_process:.1f} s "
          f"({', '.join(f'{c} {s:.1f}' for c, s in per_cell.items())})", flush=True)
    load_between = load()
    print(f"load average after (a): {load_between}", flush=True)
    for cell in cells:  # what (b) must write again
        metric_file(cell).unlink()

    # (b) the same cells as `dagster asset materialize` processes on a LocalCluster
    from distributed import Client, LocalCluster

    logs = BASE / "logs"
    config = BASE / "dask-existing.yaml"
    env = {**os.environ, "AUDIOREC_EXECUTOR": "dask", "AUDIOREC_EXECUTOR_CONFIG": str(config)}
    since = time.time()
    t = time.perf_counter()
    with deadline(120, "starting the LocalCluster"):
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, resources={"torch": 1},
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster, timeout=60)
        workers = set(client.run(os.getpid).values())
        where = set(client.run(_package_dir).values())
        threads = sorted(client.run(_torch_threads).values())
    if where != {str(src / "audiorec_assets")}:
        raise SystemExit(f"the Dask workers import audiorec_assets from {where}, not the snapshot {src}")
    cluster_start = time.perf_counter() - t
    print(f"LocalCluster up in {cluster_start:.1f} s: {cluster.scheduler_address}, worker pids {sorted(workers)}, "
          f"torch threads per worker {threads} (this process: {_torch_threads()})", flush=True)
    try:
        config.write_text(f"cluster:\n  existing:\n    address: {cluster.scheduler_address}\n")
        started = time.perf_counter()
        finished = run_processes(cells, args.workers, src, env, logs, args.run_timeout,
                                 phase_deadline=time.monotonic() + max(30.0, left_s() - 120))
        on_cluster = time.perf_counter() - started
    finally:
        with deadline(60, "closing the LocalCluster"):
            client.close(timeout=30)
            cluster.close(timeout=30)
    load_after = load()
    print(f"load average (1/5/15 min) after: {load_after}", flush=True)

    failed = {c: code for c, (code, _s) in finished.items() if code != 0}
    runs = [r for r in instance.get_runs(dg.RunsFilter(created_after=datetime.fromtimestamp(since, tz=timezone.utc)))
            if r.tags.get("dagster/partition") in cells and r.job_name == "__ASSET_JOB"]
    off_cluster = {}
    for r in runs:
        pids = {e.dagster_event.pid for e in instance.all_logs(r.run_id)
                if e.dagster_event and e.dagster_event.is_step_start}
        if not pids or not pids <= workers:
            off_cluster[r.tags["dagster/partition"]] = sorted(pids)
    ok = [r.tags["dagster/partition"] for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]
    print(f"(b) LocalCluster, {args.workers} workers, {args.workers} runs (processes) at a time: "
          f"{on_cluster:.1f} s for {len(ok)} of {len(cells)} cells succeeded (+ {cluster_start:.1f} s to start the "
          f"cluster); per process: {', '.join(f'{c} {s:.1f}' for c, (_code, s) in finished.items())}", flush=True)
    if failed:
        for cell in failed:
            print(f"--- {cell}: exit {failed[cell]}; last lines of {logs / (cell.replace('|', '__') + '.log')}:\n"
                  f"{tail(logs / (cell.replace('|', '__') + '.log'))}", flush=True)
        raise SystemExit(f"(b) failed for {len(failed)} of {len(cells)} cells: {failed}")
    if off_cluster:
        raise SystemExit(f"(b) steps ran outside the Dask workers {sorted(workers)}: {off_cluster}")
    same = metrics().equals(local)
    print(f"every step of (b) ran in a Dask worker; metrics identical to (a): {same}", flush=True)
    print(f"SUMMARY: {len(cells)} cells; (a) {one_process:.1f} s; (b) {on_cluster:.1f} s "
          f"(speed-up {one_process / on_cluster:.2f}x; cluster start {cluster_start:.1f} s more); "
          f"load {load_before} before, {load_between} between, {load_after} after", flush=True)
    if not same:
        raise SystemExit("(b)'s metrics differ from (a)'s")


if __name__ == "__main__":
    main()
