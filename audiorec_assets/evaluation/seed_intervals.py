"""The 95 % interval of a cell trained under several seeds: over users *and* seeds (docs/statistics.md, "Seeds", has
the model, the formulas and why not a two-level bootstrap; ``audiorec_assets_tests/test_seed_intervals.py`` checks
the coverage by simulation).

A users × seeds matrix ``X`` of per-user values, read as ``X[u, s] = μ + a_u + b_s + e_us``: the users-only interval
of the seed-averaged values misses the seeds' shared part ``σ_b²/S``, estimated by two-way ANOVA as ``v_seed`` and
added to each half of that interval, with Student's t at the Welch–Satterthwaite degrees of freedom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from audiorec_assets.evaluation.metrics import CI_METHOD, Z_95, PerUser, confidence_interval, summarise


def seed_variance(values: np.ndarray) -> float:
    """``v_seed``: the estimated variance the seeds' shared effect adds to the mean of ``values`` (users × seeds),
    ``max(0, MS_seeds − MS_resid) / (n·S)``; 0 with one seed or one user."""
    values = np.asarray(values, dtype=np.float64)
    n, n_seeds = values.shape
    if n_seeds < 2 or n < 2:
        return 0.0
    seed_means, user_means, grand = values.mean(axis=0), values.mean(axis=1), values.mean()
    ms_seeds = n * float(np.var(seed_means, ddof=1))
    residual = values - user_means[:, None] - seed_means[None, :] + grand
    ms_resid = float((residual**2).sum()) / ((n - 1) * (n_seeds - 1))
    return max(0.0, ms_seeds - ms_resid) / (n * n_seeds)


def users_seeds_interval(values: np.ndarray, method: str = "normal") -> tuple[float, float, float]:
    """Mean of ``values`` (users × seeds) and its 95 % interval over users and seeds (module docstring).

    ``method``: the users' interval of the seed-averaged values, ``"normal"`` or ``"wilson"`` (as
    :func:`~audiorec_assets.evaluation.metrics.confidence_interval`); exactly that interval when ``v_seed = 0``.
    Each half (Wilson's is asymmetric) becomes ``q · √((half / z)² + v_seed)``, the users' part counted as known.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be users × seeds, got shape {values.shape}")
    mean, low, high = confidence_interval(values.mean(axis=1), method)
    v_seed = seed_variance(values)
    if v_seed == 0.0 or not (np.isfinite(low) and np.isfinite(high)):
        return mean, low, high
    from scipy.special import stdtrit  # Student's t quantile; lighter to import than scipy.stats

    n_seeds = values.shape[1]
    bounds = []
    for half in (mean - low, high - mean):
        v_users = (half / Z_95) ** 2
        dof = (v_users + v_seed) ** 2 / (v_seed**2 / (n_seeds - 1))
        bounds.append(float(stdtrit(dof, 0.975)) * float(np.sqrt(v_users + v_seed)))
    low, high = mean - bounds[0], mean + bounds[1]
    if method == "wilson":
        low, high = max(0.0, low), min(1.0, high)
    return mean, low, high


def summarise_seeds(by_seed: Sequence[Mapping[tuple[str, int], np.ndarray]]) -> tuple[pd.DataFrame, PerUser]:
    """``(summary, mean_per_user)`` of one split of a cell from each seed's per-user values.

    summary: :func:`~audiorec_assets.evaluation.metrics.summarise` of the seed-averaged per-user values, with the
    interval over users and seeds when there are several seeds, ``n_seeds`` and ``seed_sd`` (sample sd of the cell's
    mean across seeds, NaN with one seed). mean_per_user: the seed-averaged values (``user_metrics``).
    """
    if not by_seed:
        raise ValueError("no seeds to summarise")
    stacked = {key: np.stack([np.asarray(seed[key], dtype=np.float64) for seed in by_seed], axis=1)
               for key in by_seed[0]}
    mean_per_user = {key: values.mean(axis=1) for key, values in stacked.items()}
    summary = summarise(mean_per_user)
    summary["n_seeds"] = len(by_seed)
    summary["seed_sd"] = np.nan
    if len(by_seed) > 1:
        for row, (metric, k) in enumerate(zip(summary["metric"], summary["k"])):
            values = stacked[(metric, int(k))]
            _, low, high = users_seeds_interval(values, CI_METHOD.get(metric, "normal"))
            summary.loc[row, ["ci_low", "ci_high"]] = low, high
            summary.loc[row, "seed_sd"] = float(np.std(values.mean(axis=0), ddof=1))
    return summary, mean_per_user
