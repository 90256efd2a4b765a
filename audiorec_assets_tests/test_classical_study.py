"""The issue's classical result, end to end: ``audiorec demo --dataset classical`` renders the catalogue (or takes it
from the cache), writes a mock log whose tastes follow composer and instrumentation, runs the study, and on the
cold-start split musicnn lies above both controls (``shuffled``, ``random``) with non-overlapping 95 % CIs on
HitRate@10 and NDCG@10, under KNN and under Shallow. Marked ``classical`` (≈ 15 min on 2 cores with the render
cache warm, ≈ 20 min without): ``pytest -m classical``."""

import shutil

import duckdb
import pytest

from audiorec_assets.cli import main


@pytest.mark.classical
def test_on_the_classical_catalogue_musicnn_beats_the_controls_on_cold_tracks(lake, dagster_home):
    pytest.importorskip("music21")
    if shutil.which("fluidsynth") is None:
        pytest.skip("needs Debian's fluidsynth and fluid-soundfont-gm")
    main(["--lake", str(lake), "demo", "--dataset", "classical"])
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("SELECT bool_and(synthetic) FROM audiorec.split_info").fetchone()[0] is True
        rows = con.sql("""SELECT encoder, recommender, metric, value, ci_low, ci_high FROM audiorec.metrics
                          WHERE split = 'test_cold' AND k = 10 AND metric IN ('hitrate', 'ndcg')""").df()
    for recommender in ("knn", "shallow"):
        for metric in ("hitrate", "ndcg"):
            by = rows[(rows.recommender == recommender) & (rows.metric == metric)].set_index("encoder")
            for control in ("shuffled", "random"):
                assert by.loc["musicnn", "ci_low"] > by.loc[control, "ci_high"], (recommender, metric, control, by)
