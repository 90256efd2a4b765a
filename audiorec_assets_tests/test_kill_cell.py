"""``kill -9`` of a real encoder × recommender run at random moments: every table of the warehouse still returns
what one clean run wrote, the model folder is one clean run's (never half a folder, never missing once
written), no temporary is visible, and a rerun gives exactly the clean result."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np

from audiorec_assets.definitions import build_definitions
from audiorec_assets.defs.embeddings import EMBEDDINGS
from audiorec_assets.defs.execute import everything, materialize
from audiorec_assets.fingerprints import folder_fingerprint
from audiorec_assets_tests.helpers import write_own
from audiorec_assets_tests.test_pipeline import small_log

REPO = Path(__file__).resolve().parents[1]
CELL = "random|knn"
TABLES = ("recommendations", "metrics", "user_metrics")
SETTINGS = {"a": "ks: [5, 10]\ntop_n: 40\nencode: {shuffled_base: mfcc}\n",
            "b": "ks: [5, 10]\ntop_n: 25\nseed: 7\nencode: {shuffled_base: mfcc}\n"}  # other vectors, other lists

CELL_SCRIPT = textwrap.dedent(f"""
    import sys
    import dagster as dg
    from audiorec_assets.definitions import build_definitions
    from audiorec_assets.defs.execute import everything, materialize
    defs = build_definitions(sys.argv[1])
    print("ready", flush=True)
    result = materialize(everything(defs), selection=dg.AssetSelection.groups("recommenders"),
                         partition_key="{CELL}", resources=defs.resources, raise_on_error=False)
    sys.exit(0 if result.success else 1)
""")


def snapshot(lake: Path) -> dict[str, object]:
    """The cell's rows in every table (order-free) and the content of its model folder."""
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        rows = {t: tuple(sorted(map(repr, con.sql(f"SELECT * FROM audiorec.{t} WHERE encoder = 'random'").df()
                                    .astype(str).itertuples(index=False, name=None)))) for t in TABLES}
    model = lake / "models" / "random" / "knn"
    return {**rows, "model": folder_fingerprint(model) if model.exists() else None}


def use(lake: Path, settings: str) -> None:
    (lake / "experiment.yaml").write_text(SETTINGS[settings])
    defs = build_definitions(lake)
    encode = dg.AssetSelection.assets(EMBEDDINGS).required_multi_asset_neighbors()
    assert materialize(everything(defs), selection=encode, partition_key="random", resources=defs.resources).success


def start(lake: Path, log) -> tuple[subprocess.Popen, float]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    proc = subprocess.Popen([sys.executable, "-c", CELL_SCRIPT, str(lake)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=log)
    assert proc.stdout.readline().strip() == b"ready"
    return proc, time.monotonic()


def test_killed_cell_runs_leave_one_clean_result_per_table_and_a_rerun_succeeds(tmp_path):
    lake = tmp_path / "lake"
    write_own(lake / "raw", small_log(n_new=4))
    (lake / "experiment.yaml").write_text(SETTINGS["a"])
    defs = build_definitions(lake)
    assert dg.materialize(everything(defs), selection=dg.AssetSelection.groups("ingest"), resources=defs.resources).success
    log = open(tmp_path / "cell.log", "ab")
    clean, seconds = {}, 0.0
    for name in ("a", "b"):
        use(lake, name)
        proc, started = start(lake, log)
        assert proc.wait(120) == 0, f"see {tmp_path / 'cell.log'}"
        seconds = max(seconds, time.monotonic() - started)
        clean[name] = snapshot(lake)
    assert all(clean["a"][t] != clean["b"][t] for t in (*TABLES, "model")), "the two settings must differ everywhere"

    delays = np.random.default_rng(3).uniform(0.0, seconds, size=6)
    for i, delay in enumerate(delays):
        target = "a" if i % 2 == 0 else "b"
        use(lake, target)
        proc, started = start(lake, log)
        time.sleep(max(0.0, started + delay - time.monotonic()))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        now = snapshot(lake)  # every table answers, whatever the moment of the kill
        for part, value in now.items():
            assert value in (clean["a"][part], clean["b"][part]), f"kill after {delay:.2f} s: {part} is no clean result"
        visible = [p for t in TABLES for p in (lake / "tables" / t).iterdir() if not p.name.endswith(".parquet")
                   or p.name.startswith(".")]
        assert visible == [], f"temporaries visible in tables/: {visible}"
        assert sorted(p.name for p in (lake / "models" / "random").iterdir()) == ["knn"]  # no staging beside it

    use(lake, "b")
    proc, _ = start(lake, log)
    assert proc.wait(120) == 0
    assert snapshot(lake) == clean["b"]
    log.close()
