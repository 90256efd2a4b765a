"""Tables for people on hand-built metrics / user_metrics frames whose answers are known by construction."""

from __future__ import annotations

import dagster as dg
import duckdb
import matplotlib.axes
import numpy as np
import pandas as pd
import pytest
import yaml

from audiorec_assets_tests.helpers import materialization, write_cell_tables
from audiorec_assets.evaluation import tables
from audiorec_assets.evaluation.metrics import METRICS, summarise, wilson_interval
from audiorec_assets.evaluation.plots import (LABEL_GAP, bar_text, hitrate_plot_png, leaderboard_view, reference_label,
                                              spread_labels)
from audiorec_assets.settings import ExperimentSettings
from audiorec_assets.study import study_cells

N_USERS = 120
USERS = np.array([f"u{i:03d}" for i in range(N_USERS)])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
B = 2000  # the tables' bootstrap resamples: the smallest p is 1 / (B + 1)
P_MIN = 1 / (B + 1)

_rng = np.random.default_rng(0)
BASE = _rng.uniform(0.05, 0.5, N_USERS)  # per-user NDCG of a "shuffled" system
COLD = _rng.uniform(0.0, 0.3, N_USERS)

# (encoder, recommender, split) → per-user NDCG@10; HitRate = NDCG > 0.35; @20 = 1.2 × @10
WARM = {
    ("musicnn", "knn"): BASE + 0.1,  # a constant shift over its twin `shuffled` (shuffled_base = musicnn)
    ("shuffled", "knn"): BASE,
    ("mfcc", "knn"): BASE + 0.02,  # identical to its twin `shuffled_mfcc`
    ("shuffled_mfcc", "knn"): BASE + 0.02,
    ("musicnn", "shallow"): BASE + 0.15,
    ("shuffled", "shallow"): BASE + 0.05,
    ("musicnn", "bert4rec"): BASE + 0.2,
    ("none", "popularity"): BASE - 0.04,
    ("none", "als"): BASE + 0.3,  # the best reference
    ("none", "shallow"): BASE + 0.12,
    ("none", "bert4rec"): BASE + 0.18,
}
COLD_CELLS = {  # only these have test_cold rows (not mfcc/shuffled_mfcc, not the references)
    ("musicnn", "knn"): COLD + 0.3,
    ("shuffled", "knn"): COLD,
    ("musicnn", "shallow"): COLD + 0.25,
    ("shuffled", "shallow"): COLD + 0.05,
}


def hitrate(ndcg: np.ndarray) -> np.ndarray:
    return (ndcg > 0.35).astype(np.float64)


def per_user(ndcg: np.ndarray) -> dict[tuple[str, int], np.ndarray]:
    out = {}
    for k, scale in ((10, 1.0), (20, 1.2)):
        v = np.minimum(1.0, ndcg * scale)
        for m in METRICS:
            out[(m, k)] = hitrate(v) if m == "hitrate" else v
    return out


def build(warm=WARM, cold=COLD_CELLS, users: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``audiorec.metrics`` and ``audiorec.user_metrics`` rows for the cells above (``users``: a cell's user subset)."""
    metrics, user_rows = [], []
    for split, cells in (("test", warm), ("test_cold", cold)):
        for (encoder, recommender), values in cells.items():
            keep = (users or {}).get((encoder, recommender), slice(None))
            pu = {key: v[keep] for key, v in per_user(values).items()}
            metrics.append(summarise(pu).assign(encoder=encoder, recommender=recommender, split=split,
                                                preset="guide", n_seeds=2, seed_sd=0.01))
            user_rows += [pd.DataFrame({"encoder": encoder, "recommender": recommender, "split": split,
                                        "user_id": USERS[keep], "metric": m, "k": k, "value": v})
                          for (m, k), v in pu.items()]
    return pd.concat(metrics, ignore_index=True), pd.concat(user_rows, ignore_index=True)


@pytest.fixture(scope="module")
def frames():
    return build()


def row(table: pd.DataFrame, encoder: str, recommender: str) -> pd.Series:
    match = table[(table["encoder"] == encoder) & (table["recommender"] == recommender)]
    assert len(match) == 1, (encoder, recommender)
    return match.iloc[0]


# ------------------------------------------------------------------ twins
def test_shuffled_twin():
    encoders = ["musicnn", "shuffled", "mfcc", "shuffled_mfcc", "random", "none", "mert"]
    assert tables.shuffled_twin("musicnn", encoders, "musicnn") == "shuffled"
    assert tables.shuffled_twin("mfcc", encoders, "musicnn") == "shuffled_mfcc"
    assert tables.shuffled_twin("mfcc", encoders, "mfcc") == "shuffled_mfcc"  # its own twin first
    assert tables.shuffled_twin("musicnn", encoders, None) is None  # the base is not known
    assert tables.shuffled_twin("musicnn", ["musicnn", "mfcc"], "musicnn") is None  # no control ran
    for encoder in ("mert", "shuffled", "shuffled_mfcc", "random", "none"):
        assert tables.shuffled_twin(encoder, encoders, "musicnn") is None, encoder


# ------------------------------------------------------------------ per-recommender comparison
def test_comparison_pairs_each_encoder_with_its_twin(frames):
    metrics, users = frames
    t = tables.comparison(metrics, users, "knn", k=10, seed=0, shuffled_base="musicnn")
    audio = t[~t["reference"]]
    assert dict(zip(audio["encoder"], audio["twin"])) == {
        "musicnn": "shuffled", "mfcc": "shuffled_mfcc", "shuffled": None, "shuffled_mfcc": None}
    assert set(audio["recommender"]) == {"knn"} and (t["k"] == 10).all()

    shift = row(t, "musicnn", "knn")  # a constant shift: the smallest p, CI excluding 0
    assert shift["ndcg_diff_vs_twin"] == pytest.approx(0.1)
    assert 0 < shift["vs_twin_ci_low"] <= shift["vs_twin_ci_high"]
    assert shift["vs_twin_ci_low"] == pytest.approx(0.1) and shift["vs_twin_ci_high"] == pytest.approx(0.1)
    assert shift["vs_twin_p_holm"] == pytest.approx(2 * P_MIN)  # Holm over the two encoders with a twin
    assert shift["hitrate_diff_vs_twin"] == pytest.approx(np.mean(hitrate(BASE + 0.1) - hitrate(BASE)))

    same = row(t, "mfcc", "knn")  # identical systems: diff 0, p 1, CI containing 0
    assert same["ndcg_diff_vs_twin"] == 0.0 and same["hitrate_diff_vs_twin"] == 0.0
    assert same["vs_twin_ci_low"] <= 0.0 <= same["vs_twin_ci_high"]
    assert same["vs_twin_p_holm"] == pytest.approx(1.0)
    assert t[t["twin"].isna()][["ndcg_diff_vs_twin", "vs_twin_p_holm"]].isna().all().all()

    # vs the best encoder (musicnn, by NDCG): kept; Holm across the three others
    assert t["best"].sum() == 1 and shift["best"] and shift["ndcg_diff_vs_best"] == 0.0
    other = row(t, "shuffled", "knn")
    assert other["ndcg_diff_vs_best"] == pytest.approx(-0.1) and other["vs_best_p_holm"] == pytest.approx(3 * P_MIN)
    assert other["vs_best_ci_high"] < 0


def test_comparison_flags_reference_rows_and_compares_with_the_best_reference(frames):
    metrics, users = frames
    t = tables.comparison(metrics, users, "knn", k=10, seed=0, shuffled_base="musicnn")
    refs = t[t["reference"]]
    assert (refs["encoder"] == "none").all()
    assert set(refs["recommender"]) == {"popularity", "als", "shallow", "bert4rec"}
    assert list(t["reference"]) == [False] * 4 + [True] * 4  # encoders first, references below
    assert t[~t["reference"]]["ndcg"].is_monotonic_decreasing and refs["ndcg"].is_monotonic_decreasing
    assert not refs["best"].any() and refs["twin"].isna().all()
    # the best reference is als (its diff 0); every encoder is compared with it
    assert row(t, "none", "als")["ndcg_diff_vs_reference"] == 0.0
    assert refs[refs["recommender"] != "als"]["ndcg_diff_vs_reference"].isna().all()
    musicnn = row(t, "musicnn", "knn")
    assert musicnn["ndcg_diff_vs_reference"] == pytest.approx(0.1 - 0.3)
    assert musicnn["vs_reference_ci_high"] < 0 and musicnn["vs_reference_p_holm"] == pytest.approx(4 * P_MIN)
    # the reference rows carry their own metrics
    assert row(t, "none", "als")["ndcg"] == pytest.approx(np.mean(BASE + 0.3))


def test_comparison_is_empty_without_audio_rows_of_that_recommender(frames):
    metrics, users = frames
    no_bert = metrics[~((metrics["encoder"] != "none") & (metrics["recommender"] == "bert4rec"))]
    t = tables.comparison(no_bert, users, "bert4rec", k=10, shuffled_base="musicnn")
    assert t.empty and {"reference", "twin", "ndcg_diff_vs_twin", "vs_reference_p_holm"} <= set(t.columns)


def test_small_noisy_difference_with_few_users_is_not_significant():
    rng = np.random.default_rng(3)
    base = rng.uniform(0.1, 0.5, N_USERS)
    noisy = base + 0.005 + 0.05 * rng.standard_normal(N_USERS)
    few = {"users": {("musicnn", "knn"): slice(0, 8), ("shuffled", "knn"): slice(0, 8)}}
    metrics, users = build({("musicnn", "knn"): noisy, ("shuffled", "knn"): base}, {}, **few)
    t = tables.comparison(metrics, users, "knn", k=10, shuffled_base="musicnn")
    r = row(t, "musicnn", "knn")
    assert r["n_users"] == 8
    assert r["vs_twin_ci_low"] < 0 < r["vs_twin_ci_high"] and r["vs_twin_p_holm"] > 0.05


# ------------------------------------------------------------------ cold start
def test_comparison_cold_only_has_cells_with_cold_rows(frames):
    metrics, users = frames
    t = tables.comparison_cold(metrics, users, k=10, seed=0, shuffled_base="musicnn")
    assert set(zip(t["encoder"], t["recommender"])) == set(COLD_CELLS)
    assert not t["reference"].any() and list(t["recommender"]) == ["knn", "knn", "shallow", "shallow"]
    knn = row(t, "musicnn", "knn")
    assert knn["twin"] == "shuffled" and knn["ndcg"] == pytest.approx(np.mean(COLD + 0.3))
    assert knn["ndcg_diff_vs_twin"] == pytest.approx(0.3) and knn["vs_twin_ci_low"] > 0
    # Holm within each recommender: one comparison per family here, so p stays at its minimum
    assert knn["vs_twin_p_holm"] == pytest.approx(P_MIN)
    assert row(t, "musicnn", "shallow")["vs_twin_p_holm"] == pytest.approx(P_MIN)
    assert row(t, "musicnn", "shallow")["ndcg_diff_vs_twin"] == pytest.approx(0.2)
    assert tables.comparison_cold(metrics[metrics["split"] == "test"], users, k=10).empty


# ------------------------------------------------------------------ recommenders against each other
def test_comparison_recommenders_pairs_on_the_same_users():
    # bert4rec on musicnn scored only the first 100 users: its pairs use those
    metrics, users = build(users={("musicnn", "bert4rec"): slice(0, 100)})
    t = tables.comparison_recommenders(users, k=10, seed=0, encoders=["musicnn", "none"])
    got = list(zip(t["encoder"], t["recommender_a"], t["recommender_b"]))
    assert got == [("musicnn", "bert4rec", "shallow"), ("musicnn", "shallow", "knn"), ("musicnn", "bert4rec", "knn"),
                   ("none", "bert4rec", "shallow")]  # no knn without audio
    assert t["n_users"].tolist() == [100, N_USERS, 100, N_USERS]
    assert t["reference"].tolist() == [False, False, False, True]
    np.testing.assert_allclose(t["ndcg_diff"], [0.05, 0.05, 0.1, 0.06])
    first = t.iloc[0]
    assert first["ndcg_a"] == pytest.approx(np.mean(BASE[:100] + 0.2))
    assert first["ndcg_b"] == pytest.approx(np.mean(BASE[:100] + 0.15))
    # Holm within each encoder: three equal minimal p-values → 3 × P_MIN; the lone `none` pair keeps P_MIN
    np.testing.assert_allclose(t["p_holm"], [3 * P_MIN] * 3 + [P_MIN])
    assert t["verdict"].tolist() == ["bert4rec > shallow", "shallow > knn", "bert4rec > knn", "bert4rec > shallow"]
    assert (t["ci_low"] > 0).all()


# ------------------------------------------------------------------ leaderboard
def test_leaderboard_lists_every_configured_cell_at_headline_k(frames):
    metrics, _ = frames
    settings = ExperimentSettings(encoders=["musicnn", "shuffled", "mfcc", "shuffled_mfcc", "random", "none"],
                                  ks=[10, 20], headline_k=20, top_n=20)
    cells = study_cells(settings)
    board = tables.leaderboard(metrics, k=settings.headline_k, cells=cells, missing=True)
    assert list(board.columns) == tables.CELL_COLUMNS
    assert set(zip(board["encoder"], board["recommender"])) == set(cells)
    assert len(board) == len(cells) and (board["k"] == 20).all()
    # by default (the audiorec.leaderboard table) only cells with results are listed
    ran_only = tables.leaderboard(metrics, k=settings.headline_k, cells=cells)
    assert len(ran_only) == int(board["hitrate"].notna().sum()) and ran_only["hitrate"].notna().all()
    musicnn = row(board, "musicnn", "knn")
    assert musicnn["ndcg"] == pytest.approx(np.mean(np.minimum(1, 1.2 * (BASE + 0.1))))  # the @20 values
    # cells never run (random) are listed last, without values
    missing = board[board["encoder"] == "random"]
    assert len(missing) == 3 and missing["hitrate"].isna().all() and missing["n_users"].isna().all()
    assert board.index[board["encoder"] == "random"].min() > board.index[board["hitrate"].notna()].max()
    ran = board[board["hitrate"].notna()]
    assert ran["hitrate"].is_monotonic_decreasing  # best first
    # HitRate's Wilson interval, seeds, references
    for _, r in ran.iterrows():
        assert (r["hitrate_ci_low"], r["hitrate_ci_high"]) == pytest.approx(wilson_interval(r["hitrate"], r["n_users"]))
    assert (ran["n_seeds"] == 2).all()
    assert (ran["hitrate_seed_sd"] == 0.01).all() and (ran["ndcg_seed_sd"] == 0.01).all()
    assert (board["reference"] == (board["encoder"] == "none")).all()
    assert set(board[board["reference"]]["recommender"]) == {"popularity", "als", "shallow", "bert4rec"}


def test_leaderboard_cold_and_rows_without_seed_columns(frames):
    metrics, _ = frames
    cells = list(WARM) + [("random", "knn")]
    cold = tables.leaderboard(metrics, k=10, split="test_cold", cells=cells, missing=False)
    assert set(zip(cold["encoder"], cold["recommender"])) == set(COLD_CELLS)
    old = metrics.drop(columns=["n_seeds", "seed_sd"])  # rows written before seeds were recorded
    board = tables.leaderboard(old, k=10)
    assert (board["n_seeds"] == 1).all() and board["hitrate_seed_sd"].isna().all()


def test_leaderboard_shows_the_users_seeds_interval_of_a_cell_of_several_seeds(frames):
    """Several seeds: the metrics row's interval over users and seeds (evaluation/seed_intervals.py), not Wilson's
    over users; one seed: Wilson from the HitRate and n_users, as before."""
    metrics, _ = frames
    wide = metrics.copy()
    at = (wide["encoder"] == "mfcc") & (wide["recommender"] == "knn") & (wide["metric"] == "hitrate")
    wide.loc[at, ["ci_low", "ci_high"]] = 0.01, 0.99
    mfcc = row(tables.leaderboard(wide, k=10), "mfcc", "knn")
    assert (mfcc["hitrate_ci_low"], mfcc["hitrate_ci_high"]) == (0.01, 0.99)
    one_seed = row(tables.leaderboard(wide.assign(n_seeds=1), k=10), "mfcc", "knn")
    assert (one_seed["hitrate_ci_low"], one_seed["hitrate_ci_high"]) == pytest.approx(
        wilson_interval(one_seed["hitrate"], one_seed["n_users"]))


# ------------------------------------------------------------------ plot
def test_plot_is_png_with_references_as_dashed_lines(frames, monkeypatch):
    metrics, _ = frames
    lines, bars, ticks = [], [], []
    axes = matplotlib.axes.Axes
    real_axhline, real_bar, real_ticks = axes.axhline, axes.bar, axes.set_xticks

    def axhline(self, y=0, *args, **kwargs):
        lines.append((kwargs.get("label"), y, kwargs.get("linestyle")))
        return real_axhline(self, y, *args, **kwargs)

    def bar(self, x, height, *args, **kwargs):
        bars.append((kwargs.get("label"), list(height)))
        return real_bar(self, x, height, *args, **kwargs)

    def set_xticks(self, positions, labels=None, **kwargs):
        ticks.extend(labels or [])
        return real_ticks(self, positions, labels, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "axhline", axhline)
    monkeypatch.setattr(matplotlib.axes.Axes, "bar", bar)
    monkeypatch.setattr(matplotlib.axes.Axes, "set_xticks", set_xticks)
    png = hitrate_plot_png(metrics, k=10, split="test")
    assert png[:8] == PNG_MAGIC and len(png) > 1000
    assert "none" not in ticks and set(ticks) == {"musicnn", "shuffled", "mfcc", "shuffled_mfcc"}
    assert {label for label, _, _ in lines} == {"popularity", "als", "shallow (item ids)", "bert4rec (item ids)"}
    assert all(style == "--" for _, _, style in lines)
    hit = metrics[(metrics["metric"] == "hitrate") & (metrics["k"] == 10) & (metrics["split"] == "test")]
    als = hit[(hit["encoder"] == "none") & (hit["recommender"] == "als")]["value"].iloc[0]
    assert dict((label, y) for label, y, _ in lines)["als"] == pytest.approx(als)
    assert {label for label, _ in bars} == {"knn", "shallow", "bert4rec"}
    # the cold plot has no references; no rows at all still gives a PNG
    assert hitrate_plot_png(metrics, k=10, split="test_cold")[:8] == PNG_MAGIC
    assert hitrate_plot_png(metrics, k=50)[:8] == PNG_MAGIC


def test_reference_labels_do_not_overlap(frames, monkeypatch):
    metrics, _ = frames
    close = metrics.copy()
    hit = (close["metric"] == "hitrate") & (close["k"] == 10) & (close["split"] == "test")
    popularity = close.loc[hit & (close["recommender"] == "popularity"), "value"].iloc[0]
    for i, recommender in enumerate(["als", "shallow", "bert4rec"]):  # four references within 0.002
        close.loc[hit & (close["encoder"] == "none") & (close["recommender"] == recommender), "value"] = \
            popularity + 0.0005 * (i + 1)
    labels = {}
    real_text = matplotlib.axes.Axes.text

    def text(self, x, y, s, *args, **kwargs):
        labels[s.strip()] = (y, self.get_ylim())
        return real_text(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "text", text)
    assert hitrate_plot_png(close, k=10, split="test")[:8] == PNG_MAGIC
    names = [reference_label(r) for r in ("popularity", "als", "shallow", "bert4rec")]
    assert set(names) <= set(labels)
    heights = sorted(labels[n][0] for n in names)
    bottom, top = labels[names[0]][1]
    assert min(np.diff(heights)) >= 0.999 * LABEL_GAP * (top - bottom)  # a label's height apart
    assert bottom <= heights[0] and heights[-1] <= top  # all inside the axes
    # in the order of their lines: the highest line has the highest label
    assert max(names, key=lambda n: labels[n][0]) == reference_label("bert4rec")


def test_spread_labels_and_text_bars():
    heights = spread_labels(np.array([0.30, 0.10, 0.10, 0.105, 0.50]), gap=0.02)
    assert heights[0] == pytest.approx(0.30) and heights[4] == pytest.approx(0.50)  # alone: where they are
    assert np.diff(np.sort(heights[1:4])).min() == pytest.approx(0.02)
    assert np.mean(heights[1:4]) == pytest.approx(np.mean([0.10, 0.10, 0.105]))  # stacked around their mean
    assert heights[3] == max(heights[1:4])
    assert spread_labels(np.array([0.0, 0.0]), gap=0.1, floor=0.0).tolist() == pytest.approx([0.0, 0.1])
    assert bar_text(1.0, 1.0, width=20) == "█" * 20 and bar_text(0.5, 1.0, width=20) == "█" * 10
    assert bar_text(0.51, 1.0, width=20) == "█" * 10 + "▎"  # 81.6 eighths of a character: 82
    assert bar_text(np.nan, 1.0) == "" and bar_text(0.3, 0.0) == ""


def test_leaderboard_view_for_people(frames):
    metrics, _ = frames
    board = tables.leaderboard(metrics, k=10)
    view = leaderboard_view(board)
    assert list(view)[:5] == ["encoder", "recommender", "audio", "hitrate", "hitrate_bar"]
    assert {"hitrate_seed_sd", "ndcg_seed_sd"} <= set(view)  # two seeds: their spread is shown
    assert (view["hitrate"] == board["hitrate"].round(3)).all() and view["hitrate_bar"].iloc[0] == "█" * 12
    best = board.iloc[0]
    assert view["hitrate_95ci"].iloc[0] == f"{best['hitrate_ci_low']:.3f}–{best['hitrate_ci_high']:.3f}"
    one_seed = leaderboard_view(tables.leaderboard(metrics.drop(columns=["n_seeds", "seed_sd"]), k=10))
    assert not {"hitrate_seed_sd", "ndcg_seed_sd"} & set(one_seed) and (one_seed["n_seeds"] == 1).all()


# ------------------------------------------------------------------ the assets on a lake
def test_assets_write_the_tables_at_headline_k(lake, frames):
    from audiorec_assets.defs.evaluation import LEADERBOARD, TABLE_ASSETS, configured_metric_files
    from audiorec_assets.defs.resources import LakeResource
    from audiorec_assets.settings import LakePaths
    from audiorec_assets.warehouse import write_table_file

    metrics, users = frames
    (lake / "experiment.yaml").write_text(
        "encoders: [musicnn, shuffled, mfcc, shuffled_mfcc, random, none]\nks: [10, 20]\nheadline_k: 10\ntop_n: 20\n"
        "encode: {shuffled_base: musicnn}\n")
    paths = LakePaths(lake)
    write_cell_tables(paths, metrics, users, WARM)
    # a file of a cell the study does not have (popularity on an encoder) is not read
    write_table_file(paths, "metrics", metrics[metrics["recommender"] == "popularity"].assign(encoder="mfcc"),
                     part="mfcc__popularity")
    assert paths.table_dir("metrics") / "mfcc__popularity.parquet" not in configured_metric_files(
        paths, ExperimentSettings.model_validate({"encoders": ["mfcc", "none"]}))

    result = dg.materialize(TABLE_ASSETS, resources={"lake": LakeResource(root=str(lake))})
    assert result.success
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        board = con.sql("SELECT * FROM audiorec.leaderboard").df()
        cosine = con.sql("SELECT * FROM audiorec.comparison_cosine").df()
        cold = con.sql("SELECT * FROM audiorec.comparison_cold").df()
        cold_board = con.sql("SELECT * FROM audiorec.leaderboard_cold").df()
        recs = con.sql("SELECT * FROM audiorec.comparison_recommenders").df()
    settings = ExperimentSettings.model_validate(yaml.safe_load((lake / "experiment.yaml").read_text()))
    assert set(zip(board["encoder"], board["recommender"])) <= set(study_cells(settings))  # configured cells
    assert board["hitrate"].notna().all()  # ... that have results
    ran = pd.Series([c in WARM for c in zip(board["encoder"], board["recommender"])])
    assert (board["k"] == 10).all() and (ran == board["hitrate"].notna()).all()
    assert not ((board["encoder"] == "mfcc") & (board["recommender"] == "popularity")).any()
    assert row(board, "musicnn", "knn")["ndcg"] == pytest.approx(np.mean(BASE + 0.1))  # @10, not @20 or 50
    assert cosine["reference"].sum() == 4 and row(cosine, "musicnn", "knn")["twin"] == "shuffled"
    assert set(zip(cold["encoder"], cold["recommender"])) == set(COLD_CELLS)
    assert set(zip(cold_board["encoder"], cold_board["recommender"])) == set(COLD_CELLS)
    assert list(zip(recs["encoder"], recs["recommender_a"], recs["recommender_b"])) == [
        ("musicnn", "bert4rec", "shallow"), ("musicnn", "shallow", "knn"), ("musicnn", "bert4rec", "knn"),
        ("shuffled", "shallow", "knn"), ("none", "bert4rec", "shallow")]  # in the settings' encoder order
    meta = materialization(result, "leaderboard").metadata
    assert meta["k"].value == 10 and "data:image/png;base64," in meta["hitrate_plot"].value
    # the table for people is a Dagster table (the UI shows it in the asset's page), numbers rounded
    shown = meta["table"]
    assert isinstance(shown, dg.TableMetadataValue) and list(meta)[0] == "table"
    assert [c.name for c in shown.schema.columns][:5] == ["encoder", "recommender", "audio", "hitrate", "hitrate_bar"]
    records = [r.data for r in shown.records]
    assert [(r["encoder"], r["recommender"]) for r in records] == list(zip(board["encoder"], board["recommender"]))
    floats = [v for r in records for v in r.values() if isinstance(v, float)]
    assert floats and all(v == round(v, 3) for v in floats)  # 3 decimals: 0.119, not 0.11888111888111888
    assert records[0]["hitrate"] == round(board["hitrate"].iloc[0], 3)
    assert "hitrate_ci_low" in meta["all_columns"].value  # every column, in the dialog
    comparison = materialization(result, "comparison_cosine").metadata["table"]
    assert isinstance(comparison, dg.TableMetadataValue) and "vs_twin_p_holm" in [c.name for c in
                                                                                 comparison.schema.columns]
    floats = [v for r in comparison.records for v in r.data.values() if isinstance(v, float)]
    assert floats and all(v == round(v, 3) for v in floats)
    assert (paths.tables / "leaderboard_hitrate.png").read_bytes()[:8] == PNG_MAGIC
    assert LEADERBOARD in {key for a in TABLE_ASSETS for key in a.keys}


def test_the_page_leaves_out_columns_empty_in_this_study():
    """A seed spread with one seed (or a comparison against references the study lacks) is not shown; the
    dialog's every-column markdown keeps it."""
    from audiorec_assets.defs.evaluation import for_people

    comparison = pd.DataFrame({"encoder": ["musicnn"], "recommender": ["knn"], "reference": [False],
                               "twin": ["shuffled"], "hitrate": [0.25], "ndcg": [0.1],
                               "ndcg_diff_vs_reference": [np.nan], "vs_reference_p_holm": [np.nan]})
    shown = for_people(comparison)
    assert "ndcg_diff_vs_reference" not in shown and "vs_reference_p_holm" not in shown and "ndcg" in shown
    assert "vs_reference_p_holm" in for_people(comparison.assign(vs_reference_p_holm=[0.04]))
