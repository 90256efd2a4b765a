"""End-to-end check of the automation in a real ``dagster dev``: nothing is switched on by hand.

1. A small own-catalogue lake (mfcc, its shuffled twin shuffled_mfcc, random × knn, popularity) and an empty instance with the repo's
   ``dagster.yaml``; ``dagster dev`` is started as README says. The script waits until the runs settle and
   prints them: the study must fill itself.
2. One audio file is replaced by other sound of the same length; the runs that follow are printed: that
   encoder's chain and its twin's (and the tables) must rerun, the ``random`` cell must not (its vectors are
   checked again, unchanged).
3. One more observation and automation round: nothing more may run.
4. The UI's own stale status (the webserver's GraphQL ``staleStatus`` / ``staleStatusByPartition``) of every
   asset partition: nothing may be STALE.

    .venv/bin/python bench/check_dagster_dev.py [--workdir /tmp/audiorec-dev-check] [--port 3377]
    .venv/bin/python bench/check_dagster_dev.py --stale-only PORT    # step 4 alone, against a running dagster dev

Takes 5-10 minutes on 2 cores (sensor intervals of 30-60 s). Output recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETTINGS = ("encoders: [mfcc, shuffled_mfcc, random]\nrecommenders: [knn, popularity]\nencode: {shuffled_base: mfcc}\n"
            "ks: [5, 10]\ntop_n: 30\n")
NODES_QUERY = "{ assetNodes { assetKey { path } isPartitioned isMaterializable staleStatus } }"
PARTITIONS_QUERY = "query($path: [String!]!) { assetNodes(assetKeys: [{path: $path}]) { staleStatusByPartition } }"


def runs(instance) -> list[tuple[str, str, str | None, str]]:
    return [(r.run_id[:8], r.status.value, r.tags.get("dagster/partition"),
             ",".join(sorted(k.path[-1] for k in (r.asset_selection or [])))) for r in instance.get_runs()[::-1]]


def settle(instance, ready, quiet_s: float = 100, limit_s: float = 900):
    """Poll until no run is queued or going, ``ready(runs)`` holds and nothing changed for ``quiet_s``."""
    started, changed, seen = time.time(), time.time(), None
    while time.time() - started < limit_s:
        time.sleep(5)
        now = runs(instance)
        if now != seen:
            seen, changed = now, time.time()
        busy = any(status in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED") for _, status, _, _ in now)
        if not busy and ready(now) and time.time() - changed > quiet_s:
            return now
    raise SystemExit(f"runs did not settle in {limit_s:.0f} s: {seen}")


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    answer = json.load(urllib.request.urlopen(request, timeout=120))
    if answer.get("errors"):
        raise SystemExit(f"GraphQL: {answer['errors'][0]['message']}")
    return answer["data"]


def stale_statuses(port: int) -> Counter:
    """What the UI shows: the webserver's stale status of every materializable asset (partition)."""
    statuses: Counter = Counter()
    for node in graphql(port, NODES_QUERY)["assetNodes"]:
        if not node["isMaterializable"]:
            continue
        values = [node["staleStatus"]]
        if node["isPartitioned"]:
            values = graphql(port, PARTITIONS_QUERY, {"path": node["assetKey"]["path"]})["assetNodes"][0][
                "staleStatusByPartition"]
        for value in values:
            statuses[value] += 1
            if value != "FRESH":
                print(f"  {'/'.join(node['assetKey']['path'])}: {value}")
    return statuses


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--stale-only":  # against a running dagster dev on this port
        print(dict(stale_statuses(int(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/audiorec-dev-check"))
    parser.add_argument("--port", type=int, default=3377)
    args = parser.parse_args()
    home, lake = args.workdir / "home", args.workdir / "lake"
    shutil.rmtree(args.workdir, ignore_errors=True)
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    sys.path.insert(0, str(REPO))
    from audiorec_assets_tests.helpers import write_own
    from audiorec_assets_tests.test_pipeline import small_log

    write_own(lake / "raw", small_log(n_users=24, n_tracks=16))
    (lake / "experiment.yaml").write_text(SETTINGS)
    os.environ.update(DAGSTER_HOME=str(home), AUDIOREC_LAKE=str(lake))
    os.chdir(home)  # dagster.yaml's storage paths are relative to where dagster runs
    import dagster as dg
    import soundfile as sf

    dev = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(REPO / "workspace.yaml"),
                            "-h", "127.0.0.1", "-p", str(args.port)], cwd=home, start_new_session=True,
                           stdout=open(args.workdir / "dev.log", "w"), stderr=subprocess.STDOUT)
    started = time.time()
    try:
        instance = dg.DagsterInstance.get()
        filled = settle(instance, lambda rs: sum("models" in a for *_, a in rs) >= 3
                        and any("leaderboard" in a for *_, a in rs))
        print(f"1. filled by itself in {time.time() - started:.0f} s, {len(filled)} runs:")
        for run in filled:
            print("  ", run)
        audio = sorted((lake / "raw" / "audio").iterdir())[0]
        wave, rate = sf.read(audio)
        sf.write(audio, wave[::-1] * 0.5, rate)
        replaced = time.time()
        after = settle(instance, lambda rs: len(rs) > len(filled) and any("leaderboard" in a for *_, a in rs[len(filled):]))
        print(f"2. {audio.name} replaced: {len(after) - len(filled)} runs in {time.time() - replaced:.0f} s:")
        for run in after[len(filled):]:
            print("  ", run)
        time.sleep(70)
        later = runs(instance)[len(after):]
        print(f"3. one more minute: {len(later)} runs {later}")
        print(f"4. the UI's stale status of every asset partition: {dict(stale_statuses(args.port))}")
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        try:
            dev.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
