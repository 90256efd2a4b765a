"""Paired significance tests over per-user metric arrays."""

from __future__ import annotations

import numpy as np
import pytest

from audiorec_assets.evaluation.significance import (
    PairedResult,
    bootstrap_means,
    holm,
    paired_bootstrap,
    paired_t_test,
    wilcoxon_test,
)


def test_identical_systems_differ_by_nothing():
    a = np.random.default_rng(0).random(300)
    res = paired_bootstrap(a, a.copy(), n_resamples=500, seed=0)
    assert res.mean_diff == 0.0 and res.ci_low == 0.0 and res.ci_high == 0.0
    assert res.p_value == pytest.approx(1.0)
    assert paired_t_test(a, a) == 1.0 and wilcoxon_test(a, a) == 1.0


def test_clearly_different_systems():
    rng = np.random.default_rng(1)
    b = rng.random(400)
    a = b + 0.1 + 0.05 * rng.standard_normal(400)  # true mean difference 0.1
    res = paired_bootstrap(a, b, n_resamples=2000, seed=0)
    assert res.p_value < 0.01
    assert res.p_value == pytest.approx(1 / 2001)  # no resample reaches the null: the smallest p possible
    assert 0 < res.ci_low < 0.1 < res.ci_high
    assert res.ci_low < res.mean_diff < res.ci_high
    assert paired_t_test(a, b) < 0.01 and wilcoxon_test(a, b) < 0.01
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
