"""Ranking metrics: hand-computed cases and agreement with ranx, an independent implementation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from audiorec_assets.evaluation.metrics import (
    METRICS,
    confidence_interval,
    per_user_metrics,
    summarise,
    wilson_interval,
)
from audiorec_assets.evaluation.plots import hitrate_plot_png


def csr(sets: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in sets])]).astype(np.int64)
    indices = np.array([i for s in sets for i in s], dtype=np.int64)
    return indptr, indices


def at(per_user: dict, k: int, row: int = 0) -> dict[str, float]:
    return {m: float(per_user[(m, k)][row]) for m in METRICS}


def assert_metrics(got: dict[str, float], want: dict[str, float]) -> None:
    for m in METRICS:
        assert got[m] == pytest.approx(want[m], abs=1e-12), m


# ------------------------------------------------------------------ hand-computed
def test_two_hits_in_three():
    # relevant {2,5}; ranking [5,1,2]; K=3: hits at ranks 1 and 3
    # hit 1; recall 2/2; precision 2/3; MRR 1/1;
    # NDCG = (1/log2(2) + 1/log2(4)) / (1/log2(2) + 1/log2(3)) = 1.5 / 1.6309...
    pu = per_user_metrics(np.array([[5, 1, 2]]), csr([[2, 5]]), ks=[3])
    assert_metrics(at(pu, 3), {
        "hitrate": 1, "recall": 1, "precision": 2 / 3, "mrr": 1,
        "ndcg": (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)),
    })


def test_hit_beyond_k_is_not_counted_and_padding_is_a_miss():
    # relevant {7}; ranking [1,2,7,-1]
    # K=2: no hit → all 0
    # K=3: hit at rank 3 → recall 1/1, precision 1/3, MRR 1/3, NDCG (1/log2(4)) / (1/log2(2)) = 0.5
    # K=4: the -1 is a miss; precision 1/4, the rest as at K=3
    pu = per_user_metrics(np.array([[1, 2, 7, -1]]), csr([[7]]), ks=[2, 3, 4])
    assert_metrics(at(pu, 2), dict.fromkeys(METRICS, 0.0))
    assert_metrics(at(pu, 3), {"hitrate": 1, "recall": 1, "precision": 1 / 3, "mrr": 1 / 3, "ndcg": 0.5})
    assert_metrics(at(pu, 4), {"hitrate": 1, "recall": 1, "precision": 1 / 4, "mrr": 1 / 3, "ndcg": 0.5})


def test_ideal_dcg_uses_min_of_relevant_and_k():
    # relevant {1,2,3,4}; ranking [9,1,-1,-1]; K=2: one hit at rank 2
    # recall 1/4; precision 1/2; MRR 1/2; NDCG = (1/log2(3)) / (1/log2(2) + 1/log2(3))  (ideal over min(4,2)=2)
    pu = per_user_metrics(np.array([[9, 1, -1, -1]]), csr([[1, 2, 3, 4]]), ks=[2])
    assert_metrics(at(pu, 2), {
        "hitrate": 1, "recall": 1 / 4, "precision": 1 / 2, "mrr": 1 / 2,
        "ndcg": (1 / math.log2(3)) / (1 + 1 / math.log2(3)),
    })


def test_k_longer_than_list_divides_precision_by_k():
    # relevant {3}; ranking [3]; K=5: precision 1/5 (CONTRACT: hits / K), recall 1, NDCG 1, MRR 1
    pu = per_user_metrics(np.array([[3]]), csr([[3]]), ks=[5])
    assert_metrics(at(pu, 5), {"hitrate": 1, "recall": 1, "precision": 1 / 5, "mrr": 1, "ndcg": 1})


def test_user_without_recommendations_or_relevant_items_scores_zero():
    rec = np.array([[-1, -1, -1], [4, 5, 6]])
    pu = per_user_metrics(rec, csr([[1, 2], []]), ks=[1, 3])
    for key, values in pu.items():
        np.testing.assert_array_equal(values, [0.0, 0.0], err_msg=str(key))


def test_users_maps_rows_to_relevance_rows_and_duplicates_in_relevant_count_once():
    relevant = csr([[1], [2, 2, 3], [4]])  # user 1 lists item 2 twice: |relevant| = 2
    pu = per_user_metrics(np.array([[2, 9], [4, 1]]), relevant, ks=[2], users=np.array([1, 2]))
    np.testing.assert_allclose(pu[("recall", 2)], [1 / 2, 1.0])
    np.testing.assert_allclose(pu[("mrr", 2)], [1.0, 1.0])


def test_repeated_item_in_a_row_is_rejected():
    with pytest.raises(ValueError, match="twice"):
        per_user_metrics(np.array([[1, 1, -1, -1]]), csr([[1]]), ks=[2])


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError):
        per_user_metrics(np.array([[1, 2]]), csr([[1], [2]]), ks=[2])


# ------------------------------------------------------------------ against ranx
def random_case(seed: int = 0, n_users: int = 200, n_items: int = 300, n_rec: int = 30):
    """Random relevant sets (1–15 items) and rankings with short lists, empty lists and -1 padding."""
    rng = np.random.default_rng(seed)
    sets = [sorted(rng.choice(n_items, size=rng.integers(1, 16), replace=False).tolist()) for _ in range(n_users)]
    rec = np.full((n_users, n_rec), -1, dtype=np.int64)
    for u in range(n_users):
        length = rng.choice([0, rng.integers(1, n_rec), n_rec], p=[0.1, 0.3, 0.6])
        # bias rankings towards relevant items so that hits are common at every rank
        pool = np.unique(np.concatenate([sets[u], rng.choice(n_items, size=20, replace=False)]))
        rec[u, :length] = rng.permutation(pool)[:length] if len(pool) >= length else rng.choice(n_items, length, replace=False)
    return sets, rec


# ranx compiles its numba kernels on first use (~30 s once per environment, cached afterwards)
@pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaTypeSafetyWarning")
def test_matches_ranx_on_random_data():
    import ranx  # a test dependency (pyproject [test]): its absence must fail, not skip
    sets, rec = random_case()
    ks = [1, 5, 10, 30, 40]  # 40 > list length: positions past the end are misses
    pu = per_user_metrics(rec, csr(sets), ks=ks)

    has_recs = (rec >= 0).any(axis=1)
    # ranx cannot hold a query without results: compare on users with recommendations,
    # and check the others score 0 separately (CONTRACT: a user without recommendations scores 0)
    assert 0 < has_recs.sum() < len(rec)
    qid = [f"u{u:04d}" for u in range(len(rec))]
    qrels = ranx.Qrels.from_dict({qid[u]: {f"i{i}": 1 for i in sets[u]} for u in np.flatnonzero(has_recs)})
    run = ranx.Run.from_dict({
        qid[u]: {f"i{i}": float(rec.shape[1] - r) for r, i in enumerate(rec[u]) if i >= 0}  # score falls with rank
        for u in np.flatnonzero(has_recs)
    })
    # ranx "ndcg" is Järvelin's Σ rel/log2(rank+1); with binary relevance it equals "ndcg_burges" (2^1 − 1 = 1)
    # and its ideal DCG sums the first min(|relevant|, K) positions, as docs/statistics.md defines.
    names = {"hitrate": "hit_rate", "recall": "recall", "precision": "precision", "ndcg": "ndcg", "mrr": "mrr"}
    wanted = [f"{names[m]}@{k}" for m in METRICS for k in ks]
    ranx.evaluate(qrels, run, wanted, return_mean=False, threads=1)
    for m in METRICS:
        for k in ks:
            theirs = np.array([run.scores[f"{names[m]}@{k}"][qid[u]] for u in np.flatnonzero(has_recs)])
            np.testing.assert_allclose(pu[(m, k)][has_recs], theirs, rtol=0, atol=1e-9, err_msg=f"{m}@{k}")
            np.testing.assert_array_equal(pu[(m, k)][~has_recs], 0.0)
    assert pu[("hitrate", 10)].mean() > 0.2  # the case really exercises hits


def test_metric_bounds_and_monotonicity_in_k():
    sets, rec = random_case(seed=1)
    pu = per_user_metrics(rec, csr(sets), ks=[5, 10, 20])
    for values in pu.values():
        assert ((values >= 0) & (values <= 1)).all()
    for m in ("hitrate", "recall", "mrr"):
        assert (pu[(m, 5)] <= pu[(m, 10)]).all() and (pu[(m, 10)] <= pu[(m, 20)]).all()


# ------------------------------------------------------------------ summary and plot
def wilson_textbook(hits: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson (1927) score interval, written out independently of the code under test."""
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)


def test_summarise_mean_and_normal_ci_for_non_hitrate_metrics():
    # values [0,1,1,1]: mean 0.75, sample sd 0.5, half-width 1.96 * 0.5 / sqrt(4) ≈ 0.49
    per_user = {("recall", 10): np.array([0.0, 1, 1, 1]), ("ndcg", 10): np.array([0.5]),
                ("recall", 5): np.array([1.0, 1, 1, 1])}
    df = summarise(per_user)
    assert list(df.columns) == ["metric", "k", "value", "ci_low", "ci_high", "n_users"]
    assert list(zip(df["metric"], df["k"])) == [("recall", 5), ("recall", 10), ("ndcg", 10)]
    row = df.iloc[1]
    assert row["value"] == pytest.approx(0.75)
    assert row["ci_low"] == pytest.approx(0.75 - 1.959964 * 0.25, abs=1e-6)
    assert row["ci_high"] == pytest.approx(0.75 + 1.959964 * 0.25, abs=1e-6)
    assert row["n_users"] == 4
    assert df.iloc[0][["ci_low", "ci_high"]].tolist() == [1.0, 1.0]  # no spread, no width
    assert np.isnan(df.iloc[2]["ci_low"])  # one user: no interval


@pytest.mark.parametrize("hits,n", [(0, 4), (1, 4), (3, 4), (4, 4), (0, 1), (1, 1), (7, 50), (49, 50), (500, 2000)])
def test_summarise_hitrate_gets_the_wilson_interval(hits, n):
    from scipy.stats import binomtest

    values = np.array([1.0] * hits + [0.0] * (n - hits))
    row = summarise({("hitrate", 10): values}).iloc[0]
    assert row["value"] == pytest.approx(hits / n)
    low, high = wilson_textbook(hits, n)
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    theirs = binomtest(hits, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert row["ci_low"] == pytest.approx(theirs.low, abs=1e-9)
    assert row["ci_high"] == pytest.approx(theirs.high, abs=1e-9)
    # inside [0, 1], around the estimate, and never a point (the normal interval is one at p = 0 or 1)
    assert 0.0 <= row["ci_low"] <= row["value"] <= row["ci_high"] <= 1.0
    assert row["ci_high"] - row["ci_low"] > 0


def test_wilson_at_the_edges_and_for_seed_averaged_hits():
    # p = 0 on 4 users: [0, z²/(n + z²)]; p = 1: [n/(n + z²), 1]
    z2 = 1.959963984540054 ** 2
    assert wilson_interval(0.0, 4) == (0.0, pytest.approx(z2 / (4 + z2)))
    assert wilson_interval(1.0, 4) == (pytest.approx(4 / (4 + z2)), 1.0)
    assert all(np.isnan(wilson_interval(0.5, 0)))
    # per-user HitRate averaged over two seeds (0, 0.5 or 1): still the interval of the mean proportion
    values = np.array([0.5, 1.0, 0.0, 0.5, 1.0, 1.0])
    _, low, high = confidence_interval(values, method="wilson")
    p = values.mean()
    want = wilson_textbook(p * len(values), len(values))
    assert (low, high) == (pytest.approx(want[0]), pytest.approx(want[1]))
    with pytest.raises(ValueError):
        confidence_interval(values, method="exact")


def test_summarise_keeps_normal_intervals_for_the_others_beside_wilson():
    values = np.array([0.0, 1, 1, 1])
    df = summarise({("hitrate", 10): values, ("precision", 10): values}).set_index("metric")
    assert df.loc["hitrate", "ci_low"] == pytest.approx(wilson_textbook(3, 4)[0])
    assert df.loc["precision", "ci_low"] == pytest.approx(0.75 - 1.959963984540054 * 0.25)  # may leave [0, 1]
    assert df.loc["precision", "ci_high"] > 1.0 >= df.loc["hitrate", "ci_high"]


def test_hitrate_plot_is_png():
    rows = [
        {"encoder": e, "recommender": r, "split": "test", "metric": "hitrate", "k": 50,
         "value": v, "ci_low": v - 0.02, "ci_high": v + 0.02}
        for (e, r, v) in [("mfcc", "knn", 0.1), ("mfcc", "popularity", 0.2), ("musicnn", "knn", 0.3)]
    ]
    rows.append({**rows[0], "ci_low": np.nan, "ci_high": np.nan, "encoder": "random"})
    png = hitrate_plot_png(pd.DataFrame(rows), k=50)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    empty = hitrate_plot_png(pd.DataFrame(rows), k=10)  # no rows: a PNG that says so
    assert empty[:8] == b"\x89PNG\r\n\x1a\n"
