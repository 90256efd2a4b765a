"""Paired comparison of two systems scored on the same users: a seeded paired bootstrap over users, Holm-corrected
within a family of comparisons (the families: docs/statistics.md, "Paired comparisons").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Cap on resample-matrix entries built at once (int64 indices): 4M ≈ 32 MB.
_MAX_BLOCK_ENTRIES = 4_000_000


@dataclass(frozen=True)
class PairedResult:
    """``mean_diff`` = mean(a − b); ``ci_low``/``ci_high`` its percentile-bootstrap interval at ``confidence``;
    ``p_value`` two-sided bootstrap p-value for H0: mean(a − b) = 0."""

    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    n_resamples: int
    confidence: float


def _paired_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-d arrays over the same users, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("a and b must be finite")
    return a - b


def bootstrap_means(d: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of ``n_resamples`` resamples (with replacement, size ``len(d)``) of ``d``, drawn in blocks so memory
    stays bounded; the draws depend only on ``seed``, ``len(d)`` and ``n_resamples`` (so does the block size)."""
    n = len(d)
    rng = np.random.default_rng(seed)
    block = max(1, _MAX_BLOCK_ENTRIES // max(n, 1))
    out = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, block):
        stop = min(start + block, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = d[idx].mean(axis=1)
    return out


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> PairedResult:
    """Paired bootstrap of the mean difference ``a − b`` over users.

    CI: percentile interval of the resampled means. p-value: the resampled means are
    shifted to the null (centred on 0) and ``p = (1 + #{|m* − m̄| ≥ |m̄|}) / (B + 1)``, so it
    is never 0, is 1 for identical inputs and its resolution is ``1 / (B + 1)``.
    """
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie in (0, 1)")
    d = _paired_diff(a, b)
    n = len(d)
    if n == 0:
        raise ValueError("no users to compare")
    mean = float(d.mean())
    boot = bootstrap_means(d, n_resamples, seed)
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    # tolerance: resampled means of a constant array differ from its mean by rounding only
    tol = 1e-12 * max(1.0, abs(mean))
    extreme = np.count_nonzero(np.abs(boot - mean) >= abs(mean) - tol)
    p = (1 + extreme) / (n_resamples + 1)
    return PairedResult(mean_diff=mean, ci_low=float(low), ci_high=float(high), p_value=float(min(1.0, p)), n=n,
                        n_resamples=n_resamples, confidence=confidence)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (same order as given), for a family of comparisons; NaN entries
    (comparisons that could not be made) stay NaN and do not count towards the family size."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(len(p), np.nan)
    tested = ~np.isnan(p)
    q = p[tested]
    m = len(q)
    if m == 0:
        return out
    order = np.argsort(q, kind="stable")
    out[np.flatnonzero(tested)[order]] = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * q[order]))
    return out


FAMILY_COLUMNS = ["n_paired", "mean_diff", "ci_low", "ci_high", "p_value", "p_holm"]


def paired_family(pairs: Sequence[tuple[np.ndarray, np.ndarray] | None], n_resamples: int = 2000, seed: int = 0,
                  confidence: float = 0.95) -> pd.DataFrame:
    """The paired bootstrap of ``a − b`` for every pair of one family, p-values Holm-corrected across it.

    One row per pair, in order, with :data:`FAMILY_COLUMNS`. A pair that is ``None`` or has no users is not a
    comparison: NaN row (``n_paired`` 0), outside the Holm family. Every pair is resampled with the same ``seed``.
    """
    rows = []
    for pair in pairs:
        if pair is None or len(pair[0]) == 0:
            rows.append({"n_paired": 0, "mean_diff": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan})
            continue
        r = paired_bootstrap(pair[0], pair[1], n_resamples=n_resamples, seed=seed, confidence=confidence)
        rows.append({"n_paired": r.n, "mean_diff": r.mean_diff, "ci_low": r.ci_low, "ci_high": r.ci_high,
                     "p_value": r.p_value})
    frame = pd.DataFrame(rows, columns=FAMILY_COLUMNS[:-1])
    frame["p_holm"] = holm(frame["p_value"].to_numpy(dtype=float))
    return frame.astype({"n_paired": "int64"})
