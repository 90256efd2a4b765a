"""No asset invents data: a ``raw/`` without data fails ``listens`` in one line naming it, and nothing in ``raw/`` is
written or deleted; only ``audiorec demo`` (and ``mock-logs``) write a log, and the demo's is flagged synthetic."""

import dagster as dg
import pandas as pd
import pytest

from audiorec_assets.datasets.demo import write_demo_if_empty
from audiorec_assets.data.sources import SYNTHETIC_MARKER, SourceError, detect_source, log_is_synthetic
from audiorec_assets.definitions import build_definitions
from audiorec_assets.defs.execute import everything
from audiorec_assets.defs.ingest import LISTENS
from audiorec_assets.runner import failure_lines
from audiorec_assets.settings import LakePaths
from audiorec_assets_tests.helpers import SMALL_DEMO, ingest_lake, materialization, write_demo


def contents(folder) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes; {} when it is missing."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()} \
        if folder.exists() else {}


@pytest.mark.parametrize("raw_state", ["missing", "empty", "only .keep"])
def test_listens_fails_on_a_raw_folder_without_data_and_touches_nothing(lake, raw_state):
    raw = lake / "raw"
    if raw_state != "missing":
        raw.mkdir()
    if raw_state == "only .keep":
        (raw / ".keep").write_text("kept by the mount\n")
    before = contents(raw)
    defs = build_definitions(lake)
    listens_op = dg.AssetSelection.assets(LISTENS).required_multi_asset_neighbors()  # the whole ingest
    result = dg.materialize(everything(defs), selection=listens_op, resources=defs.resources, raise_on_error=False)
    assert not result.success
    [line] = [line for line in failure_lines(result) if "ingest failed:" in line]
    assert "\n" not in line and f"{raw} " in line and "run `audiorec demo`" in line, line
    assert "Music4All-Onion" in line and "own catalogue" in line, line
    assert raw.exists() == (raw_state != "missing") and contents(raw) == before  # nothing written, nothing deleted
    assert not (lake / "tables").exists() or not list((lake / "tables").rglob("*.parquet"))  # no listens table


def test_the_demo_written_as_audiorec_demo_does_is_flagged_synthetic(lake):
    raw = lake / "raw"
    raw.mkdir()
    (raw / ".keep").write_text("kept\n")
    summary = write_demo(lake)
    assert summary.raw_dir == raw and (raw / ".keep").read_text() == "kept\n"  # the hidden file came along
    assert (raw / "DEMO.md").exists() and log_is_synthetic(detect_source(raw).log_path)
    assert write_demo_if_empty(raw, LakePaths(lake).staging, seed=2, **SMALL_DEMO) is None  # holds data: untouched

    result = ingest_lake(lake)
    info = pd.read_parquet(LakePaths(lake).table_dir("split_info") / "all.parquet")
    assert info["synthetic"].dtype == bool and info["synthetic"].tolist() == [True]
    for asset in ("listens", "interactions", "split_info"):
        assert materialization(result, asset).metadata["synthetic_log"].value is True, asset

    # the log edited by hand: no longer the one the marker describes, so neither flag would be right
    with open(raw / "listens.csv", "a") as log:
        log.write("u_new,t000,2019-07-01 10:00:00\n")
    with pytest.raises(SourceError, match=r"listens.synthetic.json marks a synthetic .*`audiorec demo`"):
        log_is_synthetic(detect_source(raw).log_path)


def test_audiorec_demo_writes_the_demo_before_it_runs_anything(lake, monkeypatch):
    """``runner.demo`` writes the demo into an empty ``raw/`` itself (nothing is run here: the study's runs are
    stubbed out, so it stops at the missing leaderboard)."""
    from audiorec_assets import runner
    from audiorec_assets.datasets import demo
    from audiorec_assets.defs import execute

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setattr(execute, "bring_up_to_date", lambda *args, **kwargs: [])
    monkeypatch.setattr(demo, "write_demo_if_empty", lambda raw, staging, seed: write_demo_if_empty(
        raw, staging, seed=seed, **SMALL_DEMO))  # the runner's own call, at the small size
    with pytest.raises(SystemExit, match="no leaderboard yet"):
        runner.demo(lake)
    raw = lake / "raw"
    assert (raw / "DEMO.md").exists() and (raw / SYNTHETIC_MARKER).exists()
    assert log_is_synthetic(detect_source(raw).log_path)
