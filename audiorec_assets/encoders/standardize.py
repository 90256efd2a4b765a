"""Z-scoring of item vectors over the catalogue (pure numpy): the ``mfcc`` encoder's ``finalize`` and the setting
``encode.standardize``."""

from __future__ import annotations

import numpy as np


def zscore_columns(raw: np.ndarray) -> np.ndarray:
    """Each column z-scored over the rows (mean 0, population sd 1), float32; a column with no spread becomes 0.

    "No spread": sd at most 4 float32 ulps of the column's mean, i.e. rounding noise of equal values.
    Computed in float64 (large offsets such as MFCC c0 ≈ −440 keep their precision), so the result
    depends only on the rows, not on how they were batched.
    """
    x = np.asarray(raw, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a (tracks, features) matrix, got shape {x.shape}")
    if len(x) == 0 or x.shape[1] == 0:
        return x.astype(np.float32)
    mean = x.mean(axis=0)
    sd = x.std(axis=0)
    spread = sd > 4 * np.finfo(np.float32).eps * np.abs(mean)
    z = np.zeros_like(x)
    z[:, spread] = (x[:, spread] - mean[spread]) / sd[spread]
    return z.astype(np.float32)
