"""The ingest is one op that publishes its four tables by one switch of ``tables/ingest`` (issue 16, item 3): a
failed blocking check publishes nothing, readers see one whole set at every moment, an older lake is moved into
place once, and ``--select`` of one ingest key (or of the embeddings) runs the multi-asset it belongs to."""

import hashlib
import os
import shutil
import subprocess
import threading

import dagster as dg
import duckdb
import pytest

from audiorec_assets import warehouse
from audiorec_assets.definitions import build_definitions
from audiorec_assets.defs.execute import everything
from audiorec_assets.runner import failure_lines
from audiorec_assets.settings import INGEST_TABLES, LakePaths
from audiorec_assets_tests.helpers import ingest_lake, write_own
from audiorec_assets_tests.test_lake_atomic import shifted, snapshot
from audiorec_assets_tests.test_pipeline import small_log


def published_bytes(lake) -> dict[str, bytes]:
    return {t: (LakePaths(lake).table_dir(t) / "all.parquet").read_bytes() for t in INGEST_TABLES}


def test_a_failed_blocking_check_publishes_nothing_and_fails_in_one_line(lake):
    write_own(lake / "raw", small_log(seed=0))
    ingest_lake(lake)
    before, link = published_bytes(lake), os.readlink(lake / "tables" / "ingest")
    shutil.rmtree(lake / "raw")
    write_own(lake / "raw", shifted(small_log(seed=1, n_new=2), days=3))
    broken = sorted((lake / "raw" / "audio").iterdir())[0]
    broken.write_bytes(b"not audio at all")
    defs = build_definitions(lake)
    result = dg.materialize(everything(defs), selection=dg.AssetSelection.groups("ingest"),
                            resources=defs.resources, raise_on_error=False)
    assert not result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.asset_key.path[-1] == "tracks" and evaluation.check_name == "great_expectations"
    assert not evaluation.passed and evaluation.metadata["failed"].value > 0
    assert broken.name in str(evaluation.metadata["failures"].value)
    assert not result.get_asset_materialization_events()
    [line] = [line for line in failure_lines(result) if line.startswith("ingest failed:")]
    assert "\n" not in line and "audiorec/tracks" in line and "nothing was published" in line, line
    assert published_bytes(lake) == before and os.readlink(lake / "tables" / "ingest") == link
    assert len(list((lake / "tables" / ".ingest").iterdir())) == 1, "the new set was not kept anywhere"


def test_readers_see_one_whole_set_at_every_moment_of_the_switch(tmp_path):
    lake = tmp_path / "lake"
    raws = {1: tmp_path / "raw_v1", 2: tmp_path / "raw_v2"}
    write_own(raws[1], small_log(seed=0))
    write_own(raws[2], shifted(small_log(seed=1, n_new=2), days=3))
    link = lake / "tables" / "ingest"

    def use_raw(version: int) -> None:
        shutil.rmtree(lake / "raw", ignore_errors=True)
        shutil.copytree(raws[version], lake / "raw")

    def read_set() -> tuple[str, tuple[str, ...]]:
        """The link's target, and the four tables read from it (the link followed once, as a reader should)."""
        target = os.readlink(link)  # never missing: FileNotFoundError fails the test
        version = link.parent / target
        assert sorted(os.listdir(version)) == sorted(INGEST_TABLES)
        return target, tuple(hashlib.sha1((version / t / "all.parquet").read_bytes()).hexdigest()
                             for t in INGEST_TABLES)

    clean = {}
    for version in (1, 2):
        use_raw(version)
        ingest_lake(lake)
        clean[version] = read_set()
    assert clean[1][0] != clean[2][0] and not os.path.isabs(clean[1][0]), "one relative link per set"
    seen, errors, stop = [], [], threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(read_set())
            except Exception as err:  # a missing link or table, a half-written file
                errors.append(repr(err))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in (1, 2, 1):
            use_raw(version)
            ingest_lake(lake)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]
    assert len(seen) > 10 and set(seen) == {clean[1], clean[2]}, "only the two whole sets, each under its own id"
    assert read_set() == clean[1]


def test_an_older_lake_or_a_copy_that_followed_the_link_is_moved_into_place_once(tmp_path):
    lake = tmp_path / "lake"
    write_own(lake / "raw", small_log(seed=0))
    ingest_lake(lake)
    before = snapshot(lake)
    # the layout of an older audiorec: tables/<table>/all.parquet and views over those folders
    published = (lake / "tables" / "ingest").resolve()
    for table in INGEST_TABLES:
        shutil.move(published / table, lake / "tables" / table)
    (lake / "tables" / "ingest").unlink()
    shutil.rmtree(lake / "tables" / ".ingest")
    with duckdb.connect(str(lake / "warehouse.duckdb")) as con:
        for table in INGEST_TABLES:
            con.execute(f"CREATE OR REPLACE VIEW audiorec.{table} AS SELECT * FROM read_parquet("
                        f"'{lake / 'tables' / table}/[!.]*.parquet', union_by_name = true)")
    warehouse._current_views.clear()

    assert warehouse.refresh_views(LakePaths(lake)) == sorted(INGEST_TABLES)  # what `audiorec sql` does first
    assert os.readlink(lake / "tables" / "ingest") == os.path.join(".ingest", "migrated")
    assert not [t for t in INGEST_TABLES if (lake / "tables" / t).exists()]
    assert snapshot(lake) == before
    assert not warehouse.migrate_ingest_tables(LakePaths(lake)), "once"

    followed = tmp_path / "followed"  # a copy by a tool that follows symlinks: tables/ingest is a folder there
    shutil.copytree(lake, followed)
    assert not (followed / "tables" / "ingest").is_symlink()
    assert warehouse.migrate_ingest_tables(LakePaths(followed)) and (followed / "tables" / "ingest").is_symlink()
    assert snapshot(followed) == before

    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(lake), str(copy)], check=True)
    shutil.rmtree(lake / "tables" / ".ingest")  # the original's files are gone: the copy must not need them
    assert snapshot(copy) == before
    shutil.rmtree(copy / "raw")
    write_own(copy / "raw", shifted(small_log(seed=1, n_new=2), days=3))
    ingest_lake(copy)  # a new set replaces the migrated one like any other
    assert all(snapshot(copy)[t] != before[t] for t in INGEST_TABLES)


@pytest.mark.parametrize("select, keys", [
    ("key:audiorec/interactions", {"listens", "tracks", "interactions", "split_info"}),
    ("key:audiorec/audio_vectors", {"audio_vectors"}),
    ("key:audiorec/embeddings", {"embeddings", "encoders"}),
])
def test_select_of_one_asset_runs_its_multi_asset(lake, dagster_home, capsys, select, keys):
    from audiorec_assets.cli import main

    write_own(lake / "raw", small_log(seed=0))
    (lake / "experiment.yaml").write_text("encoders: [mfcc]\nrecommenders: [knn]\nks: [5]\ntop_n: 10\n")
    if not select.endswith("interactions"):
        ingest_lake(lake)
    if select.endswith("embeddings"):  # what it reads: mfcc's encoding, an asset of its own
        main(["--lake", str(lake), "materialize", "--plain", "--select", "key:audiorec/audio_vectors"])
    main(["--lake", str(lake), "materialize", "--plain", "--select", select])
    out = capsys.readouterr().out
    assert "DagsterInvalidSubsetError" not in out
    with dg.DagsterInstance.get() as instance:
        done = {k.path[-1] for k in instance.get_asset_keys() if instance.get_latest_materialization_event(k)}
    assert keys <= done, (done, out)
