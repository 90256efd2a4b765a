"""KNN recommend at study size, in one process: audiorec's (dense score blocks + ``exclude_and_top_n``'s
``torch.topk``) vs a FAISS flat search with history-sorted batches that keeps audiorec's tie order (``flat_top_n``
below: searched ``n`` + the batch's longest history deep, seen items dropped, rows tied at the search's edge
ranked again densely; tried as a replacement and not kept, see bench/RESULTS.md), vs the bare FAISS loop of
``bench/bench_study.py`` (batches of 4 096, no tie handling). Top-100 for the users of val, test and test_cold, alternating the three ``--repeats`` times; the lists
of the first two are compared.

Usage:  .venv/bin/python bench/bench_knn_search.py LAKE [--encoder gauss_musicnn] [--repeats 2]
LAKE: an ingested lake (e.g. ``bench/bench_study.py``'s, or ``bench/onion_lake.py`` + ``audiorec materialize``).
CPU seconds of this process (``time.process_time``), wall, and the load average before each.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from collections.abc import Callable

import numpy as np
import torch

from audiorec_assets.evaluation.metrics import membership
from audiorec_assets.recommenders.base import TopN, exclude_and_top_n, history_mask_coords
from audiorec_assets.recommenders.candidate_lists import history_batches
from audiorec_assets.recommenders.data import InteractionData, interaction_data_from_parquet
from audiorec_assets.recommenders.knn import KnnRecommender, l2_normalise
from audiorec_assets.recommenders.runtime import dense_scores
from audiorec_assets.settings import ExperimentSettings

N = 100
SPLITS = ("val", "test", "test_cold")
BATCH_USERS = 1024  # users per FAISS search
MAX_ENTRIES = 4_000_000  # users × depth per FAISS search (≈ 12 bytes each, and as much again to rank them)
MAX_DEPTH = 2048  # deeper than this the dense block's top-N is cheaper than a heap search
DENSE_CELLS = 1 << 24  # users × candidates per dense block (64 MB of float32)


def seen_among(users: np.ndarray, data: InteractionData, columns: np.ndarray) -> np.ndarray:
    """``(n_users,)``: for each of ``users``, how many of its train entries are among the sorted item_idx
    ``columns`` (an upper bound of the distinct ones; other users 0)."""
    rows, items = history_mask_coords(users, data)
    inside = np.zeros(data.n_items, dtype=bool)
    inside[columns] = True
    counts = np.zeros(data.n_users, dtype=np.int64)
    counts[users] = np.bincount(rows[inside[items]], minlength=len(users))
    return counts


def flat_top_n(index, user_vectors: np.ndarray, users: np.ndarray, data: InteractionData, n: int,
               columns: np.ndarray, dense: Callable[[np.ndarray], np.ndarray]) -> TopN:
    """Top-``n`` of ``columns`` (sorted item_idx; row ``j`` of the FAISS ``index`` is item ``columns[j]``) for
    user indices ``users`` whose query vectors are ``user_vectors[users]``, train items excluded.

    ``dense(batch)``: the ``(len(batch), len(columns))`` float32 score block of the user indices ``batch``,
    for the rows ranked the dense way (ties at the edge of the search, very long histories).
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.full((len(users), n), -1, dtype=np.int64)
    scores = np.full((len(users), n), np.nan, dtype=np.float32)
    n_cols, redo = len(columns), []
    seen = seen_among(users, data, columns)
    for at in history_batches(np.arange(len(users)), seen[users], n, BATCH_USERS, MAX_ENTRIES):
        depth = min(n_cols, n + int(seen[users[at]].max()))
        if depth == 0:
            continue
        if MAX_DEPTH < depth < n_cols:
            redo.append(at)
            continue
        found_scores, found = index.search(np.ascontiguousarray(user_vectors[users[at]]), depth)
        found_items = np.where(found >= 0, columns[np.maximum(found, 0)], -1)
        dropped = membership(found_items, data.train, users[at])[0] | (found < 0)
        # every kept entry by score descending, then item ascending; dropped ones last
        keys = np.where(dropped, np.inf, -found_scores.astype(np.float64))
        ranked = np.lexsort((found_items, keys), axis=1)[:, :n]
        kept = ~np.take_along_axis(dropped, ranked, axis=1)
        top_scores = np.take_along_axis(found_scores, ranked, axis=1)
        width = ranked.shape[1]
        items[at, :width] = np.where(kept, np.take_along_axis(found_items, ranked, axis=1), -1)
        scores[at, :width] = np.where(kept, top_scores, np.nan)
        if depth < n_cols:  # (then depth >= n) the n-th kept score ties the deepest retrieved: maybe more tied
            edge = kept[:, -1] & (top_scores[:, -1] == found_scores[:, -1])
            redo.append(at[edge])
    again = np.concatenate(redo) if redo else np.zeros(0, np.int64)
    step = max(1, DENSE_CELLS // max(1, n_cols))
    for start in range(0, len(again), step):
        rows = again[start : start + step]
        top = exclude_and_top_n(dense(users[rows]), users[rows], data, n, columns=columns)
        items[rows], scores[rows] = top.items, top.scores
    return TopN(users=users, items=items, scores=scores)


def flat_path(model: KnnRecommender, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    import faiss

    cand = l2_normalise(np.ascontiguousarray(model._item_vectors[candidates]))
    index = faiss.IndexFlatIP(cand.shape[1])
    index.add(cand)
    items = torch.as_tensor(cand)
    return flat_top_n(index, model._user_vectors, users, model._data, N, candidates,
                      lambda b: dense_scores(torch.as_tensor(model._user_vectors[b]), items).numpy()).items


def bare_path(model: KnnRecommender, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """bench_study.py's bare loop: sort by history, search n + longest history deep, drop seen (no ties)."""
    import faiss

    data = model._data
    cand = l2_normalise(np.ascontiguousarray(model._item_vectors[candidates]))
    index = faiss.IndexFlatIP(cand.shape[1])
    index.add(cand)
    lengths = data.train.lengths()[users] if len(candidates) != len(data.cold_items) else np.zeros(len(users), int)
    order = np.argsort(lengths, kind="stable")
    top = np.full((len(users), N), -1, dtype=np.int64)
    for lo in range(0, len(order), 4096):
        at = order[lo:lo + 4096]
        _, labels = index.search(model._user_vectors[users[at]], min(index.ntotal, N + int(lengths[at].max())))
        found = np.where(labels >= 0, candidates[np.maximum(labels, 0)], -1)
        drop = membership(found, data.train, users[at])[0] | (found < 0)
        take = np.argsort(drop, axis=1, kind="stable")[:, :N]
        top[at] = np.take_along_axis(found, take, axis=1)
    return top


def timed(fn) -> tuple[object, float, float, float]:
    load = os.getloadavg()[0]
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - cpu, time.perf_counter() - wall, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("lake", type=Path)
    parser.add_argument("--encoder", default="gauss_musicnn")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    ingest = args.lake / "tables" / "ingest"
    data = interaction_data_from_parquet(ingest / "interactions" / "all.parquet", ingest / "tracks" / "all.parquet")
    vectors = np.load(args.lake / "embeddings" / f"{args.encoder}.npy")
    model = KnnRecommender(ExperimentSettings())
    model.fit(data, vectors)
    print(f"{data.n_users} users, {data.n_items} items, dim {vectors.shape[1]}, torch threads {torch.get_num_threads()}")
    jobs = {"audiorec recommend": lambda u, c: model.recommend(u, N, c).items,
            "flat search, ties": lambda u, c: flat_path(model, u, c),
            "bare faiss": lambda u, c: bare_path(model, u, c)}
    for repeat in range(args.repeats):
        lists = {}
        for name, job in jobs.items():
            def run_all(job=job):
                return [job(data.eval_users(s), data.candidates(s)) for s in SPLITS]
            lists[name], cpu, wall, load = timed(run_all)
            print(f"repeat {repeat + 1}  {name:20s} CPU {cpu:6.1f} s  wall {wall:6.1f} s  load {load:.2f}", flush=True)
        same = all(np.array_equal(a, b) for a, b in zip(lists["audiorec recommend"], lists["flat search, ties"]))
        rows = sum(int((a != b).any(1).sum()) for a, b in zip(lists["audiorec recommend"], lists["flat search, ties"]))
        print(f"repeat {repeat + 1}  flat lists == audiorec lists: {same} ({rows} rows differ: float rounding of near-ties)")


if __name__ == "__main__":
    main()
