"""Top-N from a ranked candidate generator (best items first) with each user's train history dropped.

For models whose candidates come as ranked lists rather than a dense score block (popularity's one global
ranking): a batch asks the generator for ``n`` + its longest history, so ``n`` unseen items always remain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from audiorec_assets.evaluation.metrics import membership
from audiorec_assets.recommenders.base import TopN, padded_top
from audiorec_assets.recommenders.data import UserItems

# Bounds per generator call: users per batch, and batch × candidates (≈ 25 bytes per entry → 400 MB at most).
DEFAULT_BATCH_SIZE = 4096
MAX_CANDIDATE_ENTRIES = 16_000_000


def history_batches(
    users: np.ndarray, history_lengths: np.ndarray, n: int, batch_size: int = DEFAULT_BATCH_SIZE,
    max_entries: int = MAX_CANDIDATE_ENTRIES,
) -> Iterator[np.ndarray]:
    """Positions into ``users``, in batches of users with similar history length.

    A batch must fetch ``n + longest history`` candidates per user, so users are sorted
    by history length: one heavy user then costs only its own batch. A batch holds at most
    ``batch_size`` users and ``max_entries`` candidates (at least one user).
    """
    lengths = history_lengths[users]
    order = np.argsort(lengths, kind="stable")
    sorted_len = lengths[order]
    start = 0
    while start < len(order):
        stop = min(start + batch_size, len(order))
        # cost of the batch [start, e) is (e - start) * (n + sorted_len[e - 1]): non-decreasing in e
        cost = np.arange(1, stop - start + 1) * (n + sorted_len[start:stop])
        stop = start + max(1, int(np.searchsorted(cost, max_entries, side="right")))
        yield order[start:stop]
        start = stop


def drop_seen_top_n(
    candidates: np.ndarray, scores: np.ndarray, users: np.ndarray, train: UserItems, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """First ``n`` candidates of each row that are not in that user's train items.

    ``candidates`` (b, L): item ids, best first, -1 for none; ``scores`` aligned. Returns
    items (b, n) int64 with -1 padding and scores (b, n) float32 with NaN padding. Vectorised:
    a stable argsort of the "drop" mask moves the kept candidates to the front in order.
    """
    seen, _ = membership(candidates, train, users)
    drop = seen | (candidates < 0)
    take = np.argsort(drop, axis=1, kind="stable")[:, :n]
    items = np.take_along_axis(candidates, take, axis=1).astype(np.int64)
    top = np.take_along_axis(scores, take, axis=1).astype(np.float32)
    return padded_top(items, top, np.take_along_axis(drop, take, axis=1), n)


Candidates = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]  # (users, depth) -> (items, scores)


def recommend_from_candidates(users: np.ndarray, n: int, train: UserItems, candidates: Candidates,
                              batch_size: int = DEFAULT_BATCH_SIZE) -> TopN:
    """Top-``n`` unseen items per user from a candidate generator, in batches of similar history length.

    ``candidates(batch, depth)`` returns each user's best ``depth`` items (best first, -1 for
    none) and their scores; ``depth`` = ``n`` + the batch's longest train history, so ``n``
    unseen items remain whenever the generator has that many.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    users = np.asarray(users, dtype=np.int64)
    items_out = np.full((len(users), n), -1, dtype=np.int64)
    scores_out = np.full((len(users), n), np.nan, dtype=np.float32)
    lengths = train.lengths()
    for pos in history_batches(users, lengths, n, batch_size):
        batch = users[pos]
        items, scores = candidates(batch, n + int(lengths[batch].max()))
        if items.shape[1]:
            items_out[pos], scores_out[pos] = drop_seen_top_n(items, scores, batch, train, n)
    return TopN(users=users, items=items_out, scores=scores_out)
