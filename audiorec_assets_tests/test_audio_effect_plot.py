"""The figure of what audio adds: each encoder next to its own shuffled twin, warm and cold, on the hand-built
metrics of ``test_tables`` (whose answers are known by construction)."""

from __future__ import annotations

import dagster as dg
import matplotlib.axes
import numpy as np
import pandas as pd
import pytest

from audiorec_assets.evaluation import tables
from audiorec_assets.evaluation.audio_effect_plot import audio_effect_png, audio_effect_rows, twin_verdicts
from audiorec_assets_tests.helpers import materialization, write_cell_tables
from audiorec_assets_tests.test_tables import COLD_CELLS, PNG_MAGIC, WARM, build

PAIRS = {  # (split, recommender, encoder) → twin: every encoder with a twin in the cells of test_tables
    ("test", "knn", "mfcc"): "shuffled_mfcc",
    ("test", "knn", "musicnn"): "shuffled",
    ("test", "shallow", "musicnn"): "shuffled",
    ("test_cold", "knn", "musicnn"): "shuffled",
    ("test_cold", "shallow", "musicnn"): "shuffled",
}


@pytest.fixture(scope="module")
def frames():
    return build()


def verdicts_of(metrics: pd.DataFrame, users: pd.DataFrame, k: int) -> pd.DataFrame:
    """The vs-twin tests as the asset reads them: the three warm comparison tables and the cold one."""
    warm = [twin_verdicts(tables.comparison(metrics, users, r, k=k, seed=0, shuffled_base="musicnn"), "test")
            for r in tables.COMPARISONS.values()]
    cold = twin_verdicts(tables.comparison_cold(metrics, users, k=k, seed=0, shuffled_base="musicnn"), "test_cold")
    return pd.concat([*warm, cold], ignore_index=True)


def stored(metrics: pd.DataFrame, split: str, encoder: str, recommender: str, k: int) -> pd.Series:
    pick = ((metrics["split"] == split) & (metrics["encoder"] == encoder) & (metrics["recommender"] == recommender)
            & (metrics["metric"] == "hitrate") & (metrics["k"] == k))
    assert pick.sum() == 1
    return metrics[pick].iloc[0]


def test_each_encoder_is_paired_with_its_own_twin_on_warm_and_cold(frames):
    metrics, users = frames
    effect = audio_effect_rows(metrics, 10, "musicnn", verdicts_of(metrics, users, 10))
    assert {(s, r, e): t for s, r, e, t in zip(effect["split"], effect["recommender"], effect["encoder"],
                                                effect["twin"])} == PAIRS
    # musicnn × bert4rec has no twin, the twins and the references are no rows of their own
    assert ("musicnn", "bert4rec") in WARM and "bert4rec" not in set(effect["recommender"])
    assert not set(effect["encoder"]) & {"shuffled", "shuffled_mfcc", "none"}
    assert list(effect["split"]) == ["test"] * 3 + ["test_cold"] * 2  # warm first, knn before shallow
    for r in effect.itertuples():  # HitRate@headline_k and its interval as audiorec.metrics holds them
        mine, twin = (stored(metrics, r.split, e, r.recommender, 10) for e in (r.encoder, r.twin))
        assert (r.k, r.value, r.ci_low, r.ci_high, r.n_users) == (10, mine["value"], mine["ci_low"],
                                                                 mine["ci_high"], mine["n_users"])
        assert (r.twin_value, r.twin_ci_low, r.twin_ci_high) == (twin["value"], twin["ci_low"], twin["ci_high"])
        assert r.ci_low < r.value < r.ci_high
    at_20 = audio_effect_rows(metrics, 20, "musicnn")
    assert not np.allclose(at_20["value"], effect["value"])  # the K asked for, not another
    verdict = {(s, r, e): v for s, r, e, v in zip(effect["split"], effect["recommender"], effect["encoder"],
                                                  effect["verdict"])}
    assert verdict[("test", "knn", "musicnn")] == "audio > twin"  # a constant shift over its twin
    assert verdict[("test", "knn", "mfcc")] == "no significant difference"  # identical to its twin
    assert verdict[("test_cold", "shallow", "musicnn")] == "audio > twin"
    assert effect["p_holm"].notna().all()
    untested = audio_effect_rows(metrics, 10, "musicnn")  # no comparison tables yet
    assert (untested["verdict"] == "not tested").all() and untested["p_holm"].isna().all()


def test_a_verdict_counts_only_for_the_twin_it_was_tested_against(frames):
    metrics, users = frames
    verdicts = verdicts_of(metrics, users, 10).assign(twin="random")
    assert (audio_effect_rows(metrics, 10, "musicnn", verdicts)["verdict"] == "not tested").all()
    assert twin_verdicts(pd.DataFrame(), "test").empty


def test_the_figure_shows_both_bars_of_each_pair_with_intervals(frames, monkeypatch):
    metrics, users = frames
    effect = audio_effect_rows(metrics, 10, "musicnn", verdicts_of(metrics, users, 10))
    bars, texts = [], []
    real_bar, real_text = matplotlib.axes.Axes.bar, matplotlib.axes.Axes.text

    def bar(self, x, height, *args, **kwargs):
        bars.append((list(height), kwargs.get("yerr")))
        return real_bar(self, x, height, *args, **kwargs)

    def text(self, x, y, s, *args, **kwargs):
        texts.append(s)
        return real_text(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", bar)
    monkeypatch.setattr(matplotlib.axes.Axes, "text", text)
    png = audio_effect_png(effect, 10)
    assert png[:8] == PNG_MAGIC and len(png) > 1000
    heights = [h for heights, _ in bars for h in heights]
    assert sorted(heights) == pytest.approx(sorted([*effect["value"], *effect["twin_value"]]))
    assert all(yerr is not None and np.asarray(yerr).shape[0] == 2 for _, yerr in bars)
    assert texts.count("*") == 4 and texts.count("ns") == 1  # the paired tests' marks


def test_without_cold_rows_it_still_renders_warm_and_says_so(frames, monkeypatch):
    metrics, _ = frames
    warm_only = metrics[metrics["split"] == "test"]
    effect = audio_effect_rows(warm_only, 10, "musicnn")
    assert set(effect["split"]) == {"test"} and len(effect) == 3
    texts = []
    real_text = matplotlib.axes.Axes.text

    def text(self, x, y, s, *args, **kwargs):
        texts.append(s)
        return real_text(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "text", text)
    assert audio_effect_png(effect, 10)[:8] == PNG_MAGIC
    assert [t for t in texts if "test_cold" in t] == [f"no encoder–twin pair\nwith test_cold rows\nfor {r}"
                                                      for r in ("knn", "shallow")]
    # no encoder with a twin at all still gives a PNG
    assert audio_effect_png(audio_effect_rows(metrics.iloc[:0], 10, "musicnn"), 10)[:8] == PNG_MAGIC


def test_the_asset_writes_the_png_beside_the_tables_and_shows_it(lake, frames):
    from audiorec_assets.defs.evaluation import AUDIO_EFFECT_PLOT, TABLE_ASSETS
    from audiorec_assets.defs.resources import LakeResource
    from audiorec_assets.settings import LakePaths

    metrics, users = frames
    (lake / "experiment.yaml").write_text(
        "encoders: [musicnn, shuffled, mfcc, shuffled_mfcc, none]\nks: [10, 20]\nheadline_k: 10\ntop_n: 20\n"
        "encode: {shuffled_base: musicnn}\n")
    paths = LakePaths(lake)
    write_cell_tables(paths, metrics, users, {**WARM, **COLD_CELLS})
    assert AUDIO_EFFECT_PLOT in {key for a in TABLE_ASSETS for key in a.keys}
    result = dg.materialize(TABLE_ASSETS, resources={"lake": LakeResource(root=str(lake))})
    assert result.success
    meta = materialization(result, "audio_effect_plot").metadata
    assert (paths.tables / "audio_effect.png").read_bytes()[:8] == PNG_MAGIC
    assert meta["path"].value == str(paths.tables / "audio_effect.png")
    assert "data:image/png;base64," in meta["plot"].value and meta["k"].value == 10
    pairs = [r.data for r in meta["pairs"].records]
    assert {(r["split"], r["recommender"], r["encoder"]): r["twin"] for r in pairs} == PAIRS
    assert {r["verdict"] for r in pairs} == {"audio > twin", "no significant difference"}  # tables were read
