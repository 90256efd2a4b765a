"""The interval over users × seeds of a multi-seed cell (evaluation/seed_intervals.py), against independent
computations: a brute-force two-way ANOVA written out with loops, and simulations of a crossed user × seed model
whose true mean is known (coverage and width)."""

from __future__ import annotations

import numpy as np
import pytest

from audiorec_assets.evaluation.metrics import confidence_interval, summarise
from audiorec_assets.evaluation.seed_intervals import seed_variance, summarise_seeds, users_seeds_interval


def brute_force_seed_variance(values: np.ndarray) -> float:
    """Textbook two-way ANOVA without replication, with explicit sums: (MS_B - MS_E)+ / (n S)."""
    n, s = values.shape
    grand = sum(values[u, j] for u in range(n) for j in range(s)) / (n * s)
    col = [sum(values[u, j] for u in range(n)) / n for j in range(s)]
    row = [sum(values[u, j] for j in range(s)) / s for u in range(n)]
    ss_b = n * sum((c - grand) ** 2 for c in col)
    ss_e = sum((values[u, j] - row[u] - col[j] + grand) ** 2 for u in range(n) for j in range(s))
    ms_b, ms_e = ss_b / (s - 1), ss_e / ((n - 1) * (s - 1))
    return max(0.0, ms_b - ms_e) / (n * s)


def crossed(rng: np.random.Generator, n: int, seeds: int, sd_user: float, sd_seed: float, sd_noise: float,
            mu: float = 0.3) -> np.ndarray:
    return (mu + rng.normal(0, sd_user, (n, 1)) + rng.normal(0, sd_seed, (1, seeds))
            + rng.normal(0, sd_noise, (n, seeds)))


def test_seed_variance_is_the_two_way_anova_estimate():
    rng = np.random.default_rng(0)
    for sd_seed in (0.0, 0.02, 0.2):
        values = crossed(rng, 40, 3, 0.1, sd_seed, 0.05)
        assert seed_variance(values) == pytest.approx(brute_force_seed_variance(values), rel=1e-9, abs=1e-15)
    assert seed_variance(values[:, :1]) == 0.0


def test_one_seed_and_agreeing_seeds_give_exactly_the_users_interval():
    rng = np.random.default_rng(1)
    hits = (rng.random(143) < 0.3).astype(float)
    for method in ("wilson", "normal"):
        assert users_seeds_interval(hits[:, None], method) == confidence_interval(hits, method)
        same = np.repeat(hits[:, None], 3, axis=1)  # three seeds, the same lists
        assert users_seeds_interval(same, method) == pytest.approx(confidence_interval(hits, method), abs=1e-12)


def test_zero_seed_effect_stays_close_to_the_users_interval_and_a_large_one_widens_it():
    rng = np.random.default_rng(2)
    # user × seed noise only: seeds reshuffle who hits, no seed is better for everyone. The estimated seed part is
    # 0 in most draws (the interval is then the users' exactly) and small in the others.
    ratios = []
    for _ in range(100):
        noise = crossed(rng, 300, 3, 0.15, 0.0, 0.1)
        _, lo, hi = users_seeds_interval(noise)
        _, ulo, uhi = confidence_interval(noise.mean(axis=1))
        ratios.append((hi - lo) / (uhi - ulo))
    assert np.median(ratios) == pytest.approx(1.0) and 1.0 <= np.mean(ratios) < 1.05 and min(ratios) >= 1.0
    shifted = noise + np.array([[-0.05, 0.0, 0.05]])  # one seed trains a better model for every user
    _, lo, hi = users_seeds_interval(shifted)
    _, ulo, uhi = confidence_interval(shifted.mean(axis=1))
    assert hi - lo > 2 * (uhi - ulo)
    assert lo < shifted.mean() - 0.05 / np.sqrt(3) and hi > shifted.mean() + 0.05 / np.sqrt(3)


@pytest.mark.parametrize("sd_seed", [0.0, 0.01, 0.05])
def test_coverage_of_the_true_mean_over_users_and_seeds(sd_seed):
    """Simulated cells (200 users, 3 seeds) with a known population mean: the interval covers it about 95 % of
    the time whatever the seed effect; the users-only interval does not once seeds matter."""
    rng = np.random.default_rng(3)
    reps, mu = 400, 0.3
    covered = users_only = 0
    for _ in range(reps):
        values = crossed(rng, 200, 3, 0.15, sd_seed, 0.08, mu)
        _, lo, hi = users_seeds_interval(values)
        _, ulo, uhi = confidence_interval(values.mean(axis=1))
        covered += lo <= mu <= hi
        users_only += ulo <= mu <= uhi
    assert 0.92 <= covered / reps <= 0.995
    if sd_seed >= 0.05:
        assert users_only / reps < 0.6


def test_wilson_side_stays_in_the_unit_interval():
    rng = np.random.default_rng(4)
    values = np.stack([(rng.random(30) < p).astype(float) for p in (0.02, 0.3, 0.9)], axis=1)
    mean, lo, hi = users_seeds_interval(values, "wilson")
    assert 0.0 <= lo < mean < hi <= 1.0 and hi - lo > confidence_interval(values.mean(axis=1), "wilson")[2] - \
        confidence_interval(values.mean(axis=1), "wilson")[1]


def test_summarise_seeds_reports_seed_mean_spread_and_interval():
    rng = np.random.default_rng(5)
    hits = [(rng.random(100) < p).astype(float) for p in (0.2, 0.3, 0.4)]
    ndcg = [h * rng.random(100) for h in hits]
    by_seed = [{("hitrate", 10): h, ("ndcg", 10): g} for h, g in zip(hits, ndcg)]
    summary, mean_per_user = summarise_seeds(by_seed)
    row = summary.set_index("metric")
    assert (row["n_seeds"] == 3).all() and (row["n_users"] == 100).all()
    assert row.loc["hitrate", "value"] == pytest.approx(np.mean([h.mean() for h in hits]))
    assert row.loc["hitrate", "seed_sd"] == pytest.approx(np.std([h.mean() for h in hits], ddof=1))
    np.testing.assert_allclose(mean_per_user[("ndcg", 10)], np.mean(ndcg, axis=0))
    want = users_seeds_interval(np.stack(ndcg, axis=1), "normal")
    assert (row.loc["ndcg", "ci_low"], row.loc["ndcg", "ci_high"]) == pytest.approx(want[1:])
    # one seed: summarise's rows exactly, spread NaN
    single, _ = summarise_seeds(by_seed[:1])
    assert single.drop(columns=["n_seeds", "seed_sd"]).equals(summarise(by_seed[0]))
    assert single["seed_sd"].isna().all() and (single["n_seeds"] == 1).all()
