"""Files and folders the lake writes atomically get the mode a plain write would (the umask decides)."""

import os
import stat

import duckdb
import pandas as pd
import pytest

from audiorec_assets import lakeio
from audiorec_assets.settings import LakePaths
from audiorec_assets.warehouse import write_table_file


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_tables_written_through_pandas_have_duckdbs_mode(tmp_path, umask, mask, expected):
    umask(mask)
    table = write_table_file(LakePaths(tmp_path), "things", pd.DataFrame({"x": [1, 2]}))
    by_duckdb = tmp_path / "by_duckdb.parquet"
    duckdb.sql(f"COPY (SELECT 1 AS x) TO '{by_duckdb}' (FORMAT parquet)")
    assert mode(table) == mode(by_duckdb) == expected
    with lakeio.atomic_dir(tmp_path / "folder") as folder:
        (folder / "f").write_text("x")
    assert mode(tmp_path / "folder") == 0o777 & ~mask
