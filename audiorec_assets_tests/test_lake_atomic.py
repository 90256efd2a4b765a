"""A user's bad day with the lake: killed ingests, leftovers of earlier versions, a read-only session left open.

The ingest publishes listens, tracks, interactions and split_info together or not at all (one switch of the symlink
tables/ingest); temporaries live in <lake>/tmp/staging/, where no view can see them; writing rows never opens the
warehouse for writing once the view exists.
"""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from audiorec_assets.defs.execute import materialize
from audiorec_assets import lakeio, warehouse
from audiorec_assets.definitions import build_definitions
from audiorec_assets.defs.embeddings import EMBEDDINGS
from audiorec_assets.defs.models import METRICS, MODELS, RECOMMENDATIONS
from audiorec_assets.settings import LakePaths
from audiorec_assets_tests.helpers import ingest_lake, write_own
from audiorec_assets_tests.test_pipeline import small_log

REPO = Path(__file__).resolve().parents[1]
INGEST_TABLES = ("listens", "tracks", "interactions", "split_info")

# materializes the ingest group of the lake in argv[1]; with DIE_AFTER_RENAMES=n it kills itself right after
# the n-th rename into tables/ (inside the publish: 1 = the new set moved into tables/.ingest/, 2 = the link switched)
INGEST_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import dagster as dg
    from audiorec_assets import lakeio
    from audiorec_assets.definitions import build_definitions

    die_after = int(os.environ.get("DIE_AFTER_RENAMES", "0"))
    if die_after:
        real_replace, renamed = lakeio._replace, []
        def replace(src, dst):
            real_replace(src, dst)
            if Path(dst).parent.name in ("tables", ".ingest"):
                renamed.append(dst)
                if len(renamed) == die_after:
                    os.kill(os.getpid(), signal.SIGKILL)
        lakeio._replace = replace
    defs = build_definitions(sys.argv[1])
    print("ready", flush=True)
    result = dg.materialize(list(defs.assets) + list(defs.asset_checks), selection=dg.AssetSelection.groups("ingest"),
                            resources=defs.resources, raise_on_error=False)
    sys.exit(0 if result.success else 1)
""")


def shifted(listens, days: int):
    """The same log ``days`` later (so that the split's windows, and split_info, differ)."""
    fmt = "%Y-%m-%d %H:%M:%S"
    return [(u, t, (datetime.strptime(ts, fmt) + timedelta(days=days)).strftime(fmt)) for u, t, ts in listens]


def leftovers(lake: Path) -> list[Path]:
    """What a killed ingest may leave that no reader sees, once the next run's first step swept: anything in the
    published tables' folders but their file, staging folders of processes that are gone."""
    paths = LakePaths(lake)
    stray = [p for t in INGEST_TABLES for p in paths.table_dir(t).iterdir() if p.name != "all.parquet"]
    dead = [p for p in paths.staging.glob("proc-*") if not lakeio.owner_alive(p.name.removeprefix("proc-"))]
    return stray + dead


def snapshot(lake: Path) -> dict[str, tuple]:
    """Every row of the four ingest tables, as the warehouse returns them (order-free)."""
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        frames = {t: con.sql(f"SELECT * FROM audiorec.{t}").df() for t in INGEST_TABLES}
    return {t: tuple(sorted(map(repr, f.astype(str).itertuples(index=False, name=None)))) for t, f in frames.items()}


class IngestProcess:
    """``INGEST_SCRIPT`` in its own process; ``started`` once its imports are done."""

    def __init__(self, lake: Path, log: Path, **env: str):
        environment = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"} | env
        self.log = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-c", INGEST_SCRIPT, str(lake)], cwd=REPO, env=environment,
                                     stdout=subprocess.PIPE, stderr=self.log)
        assert self.proc.stdout.readline().strip() == b"ready", f"the ingest script did not start; see {log}"
        self.started = time.monotonic()

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.close()


@pytest.mark.slow  # ≈ 45 s: eight real processes killed mid-ingest
def test_killed_ingests_leave_a_complete_set_and_a_rerun_succeeds(tmp_path):
    lake = tmp_path / "lake"
    raws = {1: tmp_path / "raw_v1", 2: tmp_path / "raw_v2"}
    write_own(raws[1], small_log(seed=0))
    write_own(raws[2], shifted(small_log(seed=1, n_new=2), days=3))

    def use_raw(version: int) -> None:
        shutil.rmtree(lake / "raw", ignore_errors=True)
        shutil.copytree(raws[version], lake / "raw")

    use_raw(1)
    ingest_lake(lake)  # a clean run on v1
    clean = {1: snapshot(lake)}
    use_raw(2)
    run = IngestProcess(lake, tmp_path / "ingest.log")
    assert run.wait() == 0
    seconds = time.monotonic() - run.started
    clean[2] = snapshot(lake)  # a clean run on v2, in a process of its own
    assert all(clean[1][t] != clean[2][t] for t in INGEST_TABLES), "the two versions must differ in every table"

    state, outcomes = 2, []
    delays = np.random.default_rng(7).uniform(0.0, seconds, size=8)
    for i, delay in enumerate(delays):
        version = 1 if i % 2 == 0 else 2  # ingest the other version, and kill it
        use_raw(version)
        run = IngestProcess(lake, tmp_path / "ingest.log")
        time.sleep(max(0.0, run.started + delay - time.monotonic()))
        os.kill(run.proc.pid, signal.SIGKILL)
        run.wait()
        now = snapshot(lake)  # every table answers, whatever the moment of the kill: nothing to complete
        assert now in (clean[state], clean[version]), f"kill after {delay:.2f} s left a mixed set of tables"
        state = version if now == clean[version] else state
        outcomes.append(state == version)
        warehouse.sweep_lake(LakePaths(lake))  # what the next run does first
        assert snapshot(lake) == now and leftovers(lake) == []

    use_raw(2)
    ingest_lake(lake)
    assert snapshot(lake) == clean[2]
    versions = sorted(p.name for p in (lake / "tables" / ".ingest").iterdir())
    assert len(versions) <= 2 and not [v for v in versions if v.startswith(".")], versions  # now and the one before
    print(f"kills after {np.round(delays, 2).tolist()} s of a {seconds:.1f} s ingest; published: {outcomes}")


@pytest.mark.parametrize("renames, published", [(1, False), (2, True)])
def test_a_kill_inside_the_publish_leaves_one_whole_set(tmp_path, renames, published):
    lake = tmp_path / "lake"
    write_own(lake / "raw", small_log(seed=0))
    ingest_lake(lake)
    before = snapshot(lake)
    shutil.rmtree(lake / "raw")
    write_own(lake / "raw", shifted(small_log(seed=1, n_new=2), days=3))
    run = IngestProcess(lake, tmp_path / "ingest.log", DIE_AFTER_RENAMES=str(renames))
    assert run.wait() == -signal.SIGKILL
    after_kill = snapshot(lake)  # no window to close: the old set (new set moved in, not switched) or the new one
    assert all((after_kill[t] != before[t]) == published for t in INGEST_TABLES), "one whole set, never a mix"
    warehouse.sweep_lake(LakePaths(lake))
    assert snapshot(lake) == after_kill and leftovers(lake) == []
    ingest_lake(lake)
    clean = snapshot(lake)
    assert all(clean[t] != before[t] for t in INGEST_TABLES)
    if published:
        assert clean == after_kill, "the set published before the kill is what a clean run of the new data returns"
    assert len(list((lake / "tables" / ".ingest").iterdir())) <= 2, "an unpublished set left by the kill is gone"


def test_hidden_and_empty_leftovers_change_nothing(lake):
    write_own(lake / "raw", small_log(seed=0))
    ingest_lake(lake)
    before = snapshot(lake)
    listens_dir = LakePaths(lake).table_dir("listens")  # the published set's folder, through tables/ingest
    hour_ago = time.time() - 2 * 3600
    # what a kill -9 of earlier versions left: an empty temporary, and a complete one (would double the rows)
    (listens_dir / ".all.parquet.x.parquet").write_bytes(b"")
    legacy = listens_dir / ".all.parquet.k3j_x9aa.parquet"
    shutil.copy(listens_dir / "all.parquet", legacy)
    os.utime(legacy, (hour_ago, hour_ago))
    legacy_model = lake / "models" / "mfcc" / ".knn.abcd1234"
    (legacy_model / "seed-42").mkdir(parents=True)
    os.utime(legacy_model, (hour_ago, hour_ago))
    # staging folders of a process that is gone (a killed ingest's half-written set in it) and of a process that runs
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    staging = lake / "tmp" / "staging"
    gone = staging / f"proc-{dead.stdout.strip()}-1"
    alive = staging / f"proc-{lakeio.owner_id(os.getppid())}"
    for folder in (gone / ".ingest.0123abcd" / "listens", alive):
        folder.mkdir(parents=True)
    (gone / ".all.parquet.abcdefgh.parquet").write_bytes(b"")
    (gone / ".ingest.0123abcd" / "listens" / "all.parquet").write_bytes(b"")

    assert snapshot(lake) == before, "the views cannot see hidden files"
    assert len(warehouse.read_table(LakePaths(lake), "listens")) == len(pd.read_parquet(listens_dir / "all.parquet"))
    ingest_lake(lake)  # a later ingest neither fails on them nor reads them
    assert snapshot(lake) == before
    # what every command does first and lake_health_sensor every minute (no step does it): the leftovers go
    from audiorec_assets.defs.health import tidy

    with dg.DagsterInstance.ephemeral() as instance:
        tidy(instance, LakePaths(lake))
    assert snapshot(lake) == before
    assert not legacy.exists() and not legacy_model.exists() and not gone.exists()
    assert alive.exists(), "a live process's temporaries are never swept"
    assert (listens_dir / ".all.parquet.x.parquet").exists(), "not a name audiorec writes: left alone, unseen"


def test_model_folders_are_swapped_whole_and_leave_no_staging(tmp_path):
    target = tmp_path / "models" / "mfcc" / "knn"
    staging = lakeio.process_staging(tmp_path / "tmp" / "staging")
    with lakeio.atomic_dir(target, staging=staging) as tmp:
        (tmp / "model.json").write_text("0")
    torn, stop = [], threading.Event()

    def reader() -> None:  # for microseconds between the two renames the folder may be missing, never half-written
        while not stop.is_set():
            try:
                text = (target / "model.json").read_text()
            except FileNotFoundError:
                continue
            if not text.isdigit():
                torn.append(text)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in range(1, 60):
            with lakeio.atomic_dir(target, staging=staging) as tmp:
                (tmp / "model.json").write_text(str(version))
    finally:
        stop.set()
        thread.join()
    assert not torn, f"a reader saw a model file being written: {torn[:3]}"
    assert (target / "model.json").read_text() == "59"
    with pytest.raises(RuntimeError), lakeio.atomic_dir(target, staging=staging) as tmp:
        (tmp / "model.json").write_text("broken")
        raise RuntimeError("training failed")
    assert (target / "model.json").read_text() == "59"
    assert sorted(p.name for p in target.parent.iterdir()) == ["knn"], "nothing hidden beside the model"
    assert not list(staging.iterdir()), "the staging area is emptied"

    # a process killed while it trains: its temporary folder sits in its own staging folder, swept later
    killed = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from pathlib import Path
        from audiorec_assets import lakeio
        staging = lakeio.process_staging(Path({str(tmp_path / 'tmp' / 'staging')!r}))
        with lakeio.atomic_dir(Path({str(target)!r}), staging=staging) as tmp:
            (tmp / "model.json").write_text("half")
            print("writing", flush=True)
            time.sleep(60)
    """)], cwd=REPO, stdout=subprocess.PIPE)
    assert killed.stdout.readline().strip() == b"writing"
    killed.kill()
    killed.wait()
    assert (target / "model.json").read_text() == "59"
    assert sorted(p.name for p in target.parent.iterdir()) == ["knn"]
    removed = lakeio.sweep_processes(tmp_path / "tmp" / "staging")
    assert [p.name.split("-")[1] for p in removed] == [str(killed.pid)]


@pytest.fixture
def read_only_session():
    """Another process holding the warehouse open read-only (``duckdb.connect(..., read_only=True)``)."""
    procs = []

    def open_session(path: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import sys, time, duckdb
            con = duckdb.connect({str(path)!r}, read_only={True})
            print(con.sql("SELECT count(*) FROM audiorec.tracks").fetchone()[0], flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip().isdigit()
        procs.append(proc)
        return proc

    yield open_session
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_run_succeeds_while_a_read_only_session_is_open(lake, read_only_session, monkeypatch):
    write_own(lake / "raw", small_log(n_new=4))
    (lake / "experiment.yaml").write_text("ks: [5, 10, 50]\ntop_n: 60\n")
    defs = build_definitions(lake)
    ingest_lake(lake)
    key = dg.MultiPartitionKey({"encoder": "random", "recommender": "knn"})
    cell = dg.AssetSelection.assets(MODELS, RECOMMENDATIONS, METRICS)
    everything = list(defs.assets) + list(defs.asset_checks)

    def run(selection, partition_key=None):
        return materialize(everything, selection=selection, partition_key=partition_key, resources=defs.resources)

    assert run(dg.AssetSelection.assets(EMBEDDINGS).required_multi_asset_neighbors(), "random").success
    assert run(cell, key).success  # the first write of each table creates its view
    session = read_only_session(lake / "warehouse.duckdb")
    warehouse._current_views.clear()  # as a fresh process would: ask the warehouse whether the views exist
    started = time.monotonic()
    assert run(cell, key).success
    ingest_lake(lake)
    assert time.monotonic() - started < 60

    # a genuinely new view has to wait for the session: it fails soon, naming the table and the session
    monkeypatch.setattr(warehouse, "VIEW_TIMEOUT_S", 1.0)
    with pytest.raises(warehouse.WarehouseBusyError, match=rf"audiorec\.brand_new .*PID {session.pid}"):
        warehouse.write_table_file(LakePaths(lake), "brand_new", pd.DataFrame({"x": [1]}))
    assert (lake / "tables" / "brand_new" / "all.parquet").exists(), "the rows are written all the same"


def test_concurrent_writers_of_one_table_never_show_each_other_half_files(lake):
    paths = LakePaths(lake)
    rows = pd.DataFrame({"part": ["a"] * 1000, "value": np.arange(1000)})
    for part in ("a", "b"):
        warehouse.write_table_file(paths, "metrics", rows.assign(part=part), part=part)
    writers = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import numpy as np, pandas as pd
        from audiorec_assets.settings import LakePaths
        from audiorec_assets.warehouse import write_table_file
        rows = pd.DataFrame({{"part": [{part!r}] * 1000, "value": np.arange(1000)}})
        for _ in range(40):
            write_table_file(LakePaths({str(lake)!r}), "metrics", rows, part={part!r})
    """)], cwd=REPO) for part in ("a", "b")]
    counts = []
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        while any(w.poll() is None for w in writers):
            counts.append(con.sql("SELECT part, count(*) FROM audiorec.metrics GROUP BY part ORDER BY part").fetchall())
    assert [w.returncode for w in writers] == [0, 0]
    assert len(counts) > 5 and all(c == [("a", 1000), ("b", 1000)] for c in counts)
    assert sorted(p.name for p in (lake / "tables" / "metrics").iterdir()) == ["a.parquet", "b.parquet"]
