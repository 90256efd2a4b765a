"""Top-K ranking metrics, per user and vectorised over users, and their 95 % intervals (definitions:
docs/statistics.md, "Metrics" and "Confidence intervals"; Precision@K divides by K, not the list length).

A user without recommendations (a row of -1) scores 0 on every metric; so does a user with no relevant items (the
metrics are undefined there; callers evaluate only the users of a split, ``InteractionData.eval_users``).
HitRate's Wilson interval stays the interval of the mean proportion with per-user values averaged over seeds
(fractions, not 0/1); the normal interval of the other metrics has NaN bounds with fewer than two users.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

METRICS: tuple[str, ...] = ("hitrate", "recall", "precision", "ndcg", "mrr")
Z_95 = 1.959963984540054  # two-sided 95 % quantile of the standard normal

PerUser = dict[tuple[str, int], np.ndarray]


class _CsrLike(Protocol):
    indptr: np.ndarray
    indices: np.ndarray


def _as_csr(relevant: _CsrLike | tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    indptr, indices = relevant if isinstance(relevant, tuple) else (relevant.indptr, relevant.indices)
    return np.asarray(indptr, dtype=np.int64), np.asarray(indices, dtype=np.int64)


def _select_rows(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR rows ``rows`` (in that order) as a new CSR, without a Python loop."""
    starts, lengths = indptr[rows], indptr[rows + 1] - indptr[rows]
    new_indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_indptr[1:])
    # position j of the output comes from starts[row] + (j - new_indptr[row])
    offsets = np.arange(new_indptr[-1], dtype=np.int64) - np.repeat(new_indptr[:-1] - starts, lengths)
    return new_indptr, indices[offsets]


def membership(
    candidates: np.ndarray, sets: _CsrLike | tuple[np.ndarray, np.ndarray], rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``member[r, j]`` = whether ``candidates[r, j]`` lies in CSR row ``rows[r]`` of ``sets`` (row r when
    ``rows`` is None), and the number of distinct items of each of those rows.

    Negative candidates (padding) are never members. One ``searchsorted`` of keys
    ``r * n_keys + item`` against the sorted, de-duplicated keys of the sets: no per-row loop.
    Shared by the metrics (hits) and the recommenders (removing train history).
    """
    candidates = np.asarray(candidates)
    if candidates.ndim != 2:
        raise ValueError(f"candidates must be 2-d (rows × N), got shape {candidates.shape}")
    indptr, indices = _as_csr(sets)
    if rows is not None:
        indptr, indices = _select_rows(indptr, indices, np.asarray(rows, dtype=np.int64))
    n_rows = candidates.shape[0]
    if len(indptr) - 1 != n_rows:
        raise ValueError(f"{n_rows} candidate rows but {len(indptr) - 1} set rows")
    cand = candidates.astype(np.int64, copy=False)
    valid = cand >= 0

    n_keys = int(max(cand.max(initial=-1), indices.max(initial=-1))) + 1
    set_rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(indptr))
    set_keys = np.unique(set_rows * n_keys + indices)  # sorted, duplicates dropped
    sizes = np.bincount(set_keys // max(n_keys, 1), minlength=n_rows).astype(np.int64)
    if len(set_keys) == 0:
        return np.zeros(cand.shape, dtype=bool), sizes

    cand_keys = np.arange(n_rows, dtype=np.int64)[:, None] * n_keys + np.where(valid, cand, 0)
    pos = np.minimum(np.searchsorted(set_keys, cand_keys), len(set_keys) - 1)
    return (set_keys[pos] == cand_keys) & valid, sizes


def hit_matrix(
    recommended: np.ndarray, relevant: _CsrLike | tuple[np.ndarray, np.ndarray], users: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``hits[r, j]`` = whether ``recommended[r, j]`` is relevant to row r's user, and ``|relevant|`` per row.

    Row r of ``recommended`` belongs to CSR row ``users[r]`` of ``relevant`` (row r when
    ``users`` is None). -1 entries are never hits; relevant lists are de-duplicated; an
    item repeated within a row of ``recommended`` is an error (it would count twice).
    """
    recommended = np.asarray(recommended)
    if recommended.ndim != 2:
        raise ValueError(f"recommended must be 2-d (users × N), got shape {recommended.shape}")
    rec = recommended.astype(np.int64, copy=False)
    _check_distinct(rec, rec >= 0)
    return membership(rec, relevant, users)


def _check_distinct(rec: np.ndarray, valid: np.ndarray) -> None:
    """Duplicated items in a row would count twice (recall > 1); a recommender bug, so fail loudly."""
    if rec.shape[1] < 2:
        return
    s = np.sort(np.where(valid, rec, -1), axis=1)
    if np.any((s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)):
        raise ValueError("a row of recommended holds the same item twice")


def metrics_from_hits(hits: np.ndarray, n_relevant: np.ndarray, ks: Sequence[int]) -> PerUser:
    """All metrics of :data:`METRICS` at every K from a hit matrix; K may exceed the list length (positions past
    the end are misses)."""
    n_rows, n_cols = hits.shape
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"every k must be >= 1, got {ks}")
    k_max = max(ks, default=0)
    # pad to the largest K once so that every K reads the same cumulative arrays
    h = np.zeros((n_rows, max(k_max, n_cols)), dtype=bool)
    h[:, :n_cols] = hits
    discount = 1.0 / np.log2(np.arange(2, h.shape[1] + 2, dtype=np.float64))
    cum_hits = np.cumsum(h, axis=1, dtype=np.int64)
    cum_dcg = np.cumsum(h * discount, axis=1)
    ideal = np.concatenate([[0.0], np.cumsum(discount)])  # ideal[m] = Σ_{i=1..m} 1/log2(i+1)
    any_hit = h.any(axis=1)
    first = np.where(any_hit, h.argmax(axis=1), np.iinfo(np.int64).max)  # 0-based rank of the first hit

    out: PerUser = {}
    has_rel = n_relevant > 0
    for k in ks:
        hits_k = cum_hits[:, k - 1].astype(np.float64)
        idcg = ideal[np.minimum(n_relevant, k)]
        out[("hitrate", k)] = (hits_k > 0).astype(np.float64)
        out[("recall", k)] = np.divide(hits_k, n_relevant, out=np.zeros(n_rows), where=has_rel)
        out[("precision", k)] = hits_k / k
        out[("ndcg", k)] = np.divide(cum_dcg[:, k - 1], idcg, out=np.zeros(n_rows), where=idcg > 0)
        out[("mrr", k)] = np.where(first < k, 1.0 / (np.minimum(first, k) + 1.0), 0.0)
    return out


def per_user_metrics(
    recommended: np.ndarray,
    relevant: _CsrLike | tuple[np.ndarray, np.ndarray],
    ks: Sequence[int],
    users: np.ndarray | None = None,
) -> PerUser:
    """``{(metric, k): values}`` with one float64 value per row of ``recommended``.

    ``recommended``: (n_rows, N) item ids, best first, -1 padding. ``relevant``: a
    ``UserItems`` (or ``(indptr, indices)``); row r is scored against CSR row ``users[r]``
    (row r when ``users`` is None, e.g. ``per_user_metrics(top.items, data.test, ks, top.users)``).
    """
    hits, n_relevant = hit_matrix(recommended, relevant, users)
    return metrics_from_hits(hits, n_relevant, ks)


def wilson_interval(p: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``p`` observed on ``n`` trials (NaN bounds when n < 1).

    The bounds are clipped to [0, 1] and to ``p`` against rounding only (mathematically ``low <= p <= high`` inside
    [0, 1]; at p = 1 the upper bound is 1 exactly, not 0.9999999999999999).
    """
    if n < 1 or not np.isfinite(p):
        return float("nan"), float("nan")
    p = min(max(float(p), 0.0), 1.0)
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return float(min(p, max(0.0, centre - half))), float(max(p, min(1.0, centre + half)))


def confidence_interval(values: np.ndarray, method: str = "normal") -> tuple[float, float, float]:
    """Mean and its 95 % CI: ``method="normal"`` (mean ± 1.96·sd/√n, NaN bounds when fewer than two values)
    or ``"wilson"`` (the Wilson score interval of the mean as a proportion, values in [0, 1]; NaN bounds
    when there are no values)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if method == "wilson":
        low, high = wilson_interval(mean, n)
        return mean, low, high
    if method != "normal":
        raise ValueError(f"method must be 'normal' or 'wilson', got {method!r}")
    if n < 2:
        return mean, float("nan"), float("nan")
    half = Z_95 * float(values.std(ddof=1)) / np.sqrt(n)
    return mean, mean - half, mean + half


# metric → CI method of summarise (the rest: normal)
CI_METHOD: dict[str, str] = {"hitrate": "wilson"}


def summarise(per_user: Mapping[tuple[str, int], np.ndarray]) -> pd.DataFrame:
    """One row per (metric, k): ``metric, k, value`` (mean over users), ``ci_low, ci_high`` (95 %: Wilson for
    HitRate, normal approximation otherwise, see module docstring) and ``n_users``; rows ordered by metric
    (as in :data:`METRICS`) then k."""
    rows = []
    for (metric, k), values in per_user.items():
        mean, low, high = confidence_interval(values, CI_METHOD.get(metric, "normal"))
        rows.append({"metric": metric, "k": int(k), "value": mean, "ci_low": low, "ci_high": high, "n_users": len(values)})
    frame = pd.DataFrame(rows, columns=["metric", "k", "value", "ci_low", "ci_high", "n_users"])
    order = {m: i for i, m in enumerate(METRICS)}
    frame = frame.sort_values(["metric", "k"], key=lambda s: s.map(lambda m: order.get(m, len(order))) if s.name == "metric" else s)
    return frame.reset_index(drop=True).astype({"k": "int64", "n_users": "int64"})
