"""Paired significance tests over per-user metric arrays."""

from __future__ import annotations

import numpy as np
import pytest

from audiorec_assets.evaluation.significance import (
    PairedResult,
    bootstrap_means,
    holm,
    paired_bootstrap,
    paired_family,
)


def test_identical_systems_differ_by_nothing():
    a = np.random.default_rng(0).random(300)
    res = paired_bootstrap(a, a.copy(), n_resamples=500, seed=0)
    assert res.mean_diff == 0.0 and res.ci_low == 0.0 and res.ci_high == 0.0
    assert res.p_value == pytest.approx(1.0)


def test_clearly_different_systems():
    rng = np.random.default_rng(1)
    b = rng.random(400)
    a = b + 0.1 + 0.05 * rng.standard_normal(400)  # true mean difference 0.1
    res = paired_bootstrap(a, b, n_resamples=2000, seed=0)
    assert res.p_value < 0.01
    assert res.p_value == pytest.approx(1 / 2001)  # no resample reaches the null: the smallest p possible
    assert 0 < res.ci_low < 0.1 < res.ci_high
    assert res.ci_low < res.mean_diff < res.ci_high
    # the percentile interval agrees with the normal approximation at this n
    d = a - b
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    assert res.ci_low == pytest.approx(d.mean() - half, abs=0.2 * half)
    assert res.ci_high == pytest.approx(d.mean() + half, abs=0.2 * half)


def test_no_difference_gives_large_p():
    rng = np.random.default_rng(2)
    a, b = rng.random(500), rng.random(500)  # same distribution, independent
    res = paired_bootstrap(a, b, n_resamples=1000, seed=3)
    assert res.ci_low < 0 < res.ci_high or res.p_value > 0.05
    assert res.p_value > 0.01


def test_seeded_and_deterministic():
    rng = np.random.default_rng(4)
    a, b = rng.random(250), rng.random(250)
    r1 = paired_bootstrap(a, b, n_resamples=700, seed=11)
    r2 = paired_bootstrap(a, b, n_resamples=700, seed=11)
    r3 = paired_bootstrap(a, b, n_resamples=700, seed=12)
    assert isinstance(r1, PairedResult) and r1 == r2
    assert (r1.ci_low, r1.ci_high) != (r3.ci_low, r3.ci_high)
    assert r1.n == 250 and r1.n_resamples == 700


def test_blocks_do_not_change_distribution_shape():
    # more entries than one block holds (4M): resamples still have the right mean and spread
    d = np.random.default_rng(5).standard_normal(50_000)
    means = bootstrap_means(d, 100, seed=0)
    assert means.shape == (100,)
    assert abs(means.mean() - d.mean()) < 3 * d.std() / np.sqrt(50_000)
    assert 0.5 < means.std() / (d.std() / np.sqrt(50_000)) < 1.5


def test_bad_inputs_rejected():
    with pytest.raises(ValueError):
        paired_bootstrap(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError):
        paired_bootstrap(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError):
        paired_bootstrap(np.array([np.nan, 1.0]), np.zeros(2))


def test_holm():
    # sorted p [0.01, 0.03, 0.04] × [3, 2, 1] = [0.03, 0.06, 0.04]; running max → [0.03, 0.06, 0.06]
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])


def test_holm_leaves_untested_comparisons_out_of_the_family():
    # two real p-values: family size 2, not 3
    got = holm([0.01, np.nan, 0.04])
    np.testing.assert_allclose(got[[0, 2]], [0.02, 0.04])
    assert np.isnan(got[1])
    assert np.isnan(holm([np.nan])).all() and len(holm([])) == 0


def test_paired_family_known_answers():
    rng = np.random.default_rng(7)
    b = rng.random(300)
    few = rng.random(12)
    pairs = [
        (b.copy(), b.copy()),  # identical systems
        (b + 0.05, b),  # a constant shift
        (few + 0.01 * rng.standard_normal(12), few),  # a small noisy difference, few users
        None,  # not compared
        (np.zeros(0), np.zeros(0)),  # no common users
    ]
    fam = paired_family(pairs, n_resamples=999, seed=0)
    assert list(fam.columns) == ["n_paired", "mean_diff", "ci_low", "ci_high", "p_value", "p_holm"]
    assert fam["n_paired"].tolist() == [300, 300, 12, 0, 0]

    same = fam.iloc[0]
    assert same["mean_diff"] == 0.0 and same["ci_low"] <= 0.0 <= same["ci_high"]
    assert same["p_value"] == pytest.approx(1.0) and same["p_holm"] == pytest.approx(1.0)

    shift = fam.iloc[1]
    assert shift["mean_diff"] == pytest.approx(0.05)
    assert shift["ci_low"] == pytest.approx(0.05) and shift["ci_high"] == pytest.approx(0.05)  # excludes 0
    assert shift["p_value"] == pytest.approx(1 / 1000)  # the smallest p the bootstrap can give
    assert shift["p_holm"] == pytest.approx(3 / 1000)  # × 3 real comparisons (Holm's first step)

    noisy = fam.iloc[2]
    assert noisy["ci_low"] < 0 < noisy["ci_high"]
    assert noisy["p_holm"] > 0.05 and noisy["p_holm"] >= noisy["p_value"]

    assert fam.iloc[3:][["mean_diff", "ci_low", "ci_high", "p_value", "p_holm"]].isna().all().all()


def test_paired_family_agrees_with_single_bootstraps_and_holm():
    rng = np.random.default_rng(8)
    pairs = [(rng.random(80), rng.random(80)) for _ in range(4)]
    fam = paired_family(pairs, n_resamples=500, seed=5)
    singles = [paired_bootstrap(a, b, n_resamples=500, seed=5) for a, b in pairs]
    np.testing.assert_allclose(fam["mean_diff"], [r.mean_diff for r in singles])
    np.testing.assert_allclose(fam["ci_low"], [r.ci_low for r in singles])
    np.testing.assert_allclose(fam["p_value"], [r.p_value for r in singles])
    np.testing.assert_allclose(fam["p_holm"], holm([r.p_value for r in singles]))
