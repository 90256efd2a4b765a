"""Benchmark: batched KNN recommendation + vectorised metrics vs a per-user loop vs a bare matmul.

At the study's scale (56 512 items × 1024-d float32, 20 000 users with ~50 train items
each; synthetic random vectors, seed 0) it times

  (a) ``KnnRecommender.recommend`` for all users (top 100) + ``per_user_metrics`` at ks (10, 20, 50);
  (b) a per-user loop: one FAISS search per user + per-user Python metrics, on a subset of
      users, extrapolated linearly to all users;
  (c) a bare batched ``users @ items.T`` + ``argpartition`` top-100 (then sorted), same batches,
      no history removal: the floor any exact scorer pays;

and prints a markdown table (also written to ``bench/out/knn_eval.md``) with the machine.

Run: ``python bench/bench_knn_eval.py``. Every constant below can be overridden by an
environment variable of the same name prefixed ``BENCH_`` (e.g. ``BENCH_N_USERS=5000``);
``BENCH_SCALE=0.1`` multiplies item and user counts (not the dimension) for a quick check.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from audiorec_assets.evaluation.metrics import per_user_metrics  # noqa: E402
from audiorec_assets.recommenders.data import InteractionData, UserItems  # noqa: E402
from audiorec_assets.recommenders.knn import KnnRecommender, l2_normalise  # noqa: E402
from audiorec_assets.settings import ExperimentSettings  # noqa: E402


def _env(name: str, default: float) -> float:
    return float(os.environ.get(f"BENCH_{name}", default))


SCALE = _env("SCALE", 1.0)
N_ITEMS = int(_env("N_ITEMS", 56_512 * SCALE))
DIM = int(_env("DIM", 1024))
N_USERS = int(_env("N_USERS", 20_000 * SCALE))
TRAIN_PER_USER = int(_env("TRAIN_PER_USER", 50))  # mean; Poisson-distributed, at least 1
TEST_PER_USER = int(_env("TEST_PER_USER", 10))
TOP_N = int(_env("TOP_N", 100))
KS = (10, 20, 50)
LOOP_USERS = int(_env("LOOP_USERS", max(20, 500 * SCALE)))
BATCH_SIZE = int(_env("BATCH_SIZE", 4096))
SEED = int(_env("SEED", 0))
OUT = Path(__file__).resolve().parent / "out" / "knn_eval.md"


def random_sets(rng: np.random.Generator, n_users: int, n_items: int, mean_len: int) -> UserItems:
    """Per-user random distinct item sets (Poisson lengths ≥ 1), built without a per-user loop."""
    lengths = np.maximum(1, rng.poisson(mean_len, size=n_users))
    users = np.repeat(np.arange(n_users, dtype=np.int64), lengths)
    items = rng.integers(0, n_items, size=len(users))
    keys = np.unique(users * n_items + items)  # drops the rare repeats
    return UserItems.from_pairs(keys // n_items, keys % n_items, np.zeros(len(keys)), n_users)


def synthetic() -> tuple[InteractionData, np.ndarray]:
    rng = np.random.default_rng(SEED)
    vectors = rng.standard_normal((N_ITEMS, DIM), dtype=np.float32)
    train = random_sets(rng, N_USERS, N_ITEMS, TRAIN_PER_USER)
    test = random_sets(rng, N_USERS, N_ITEMS, TEST_PER_USER)  # overlap with train is harmless here
    empty = UserItems(indptr=np.zeros(N_USERS + 1, dtype=np.int64), indices=np.zeros(0, dtype=np.int64))
    data = InteractionData(
        user_ids=np.array([f"u{u}" for u in range(N_USERS)], dtype=object),
        track_ids=np.array([f"t{i}" for i in range(N_ITEMS)], dtype=object),
        train=train, train_plays=np.ones(len(train.indices), dtype=np.int64), val=empty, test=test,
    )
    return data, vectors


def python_metrics(ranked: list[int], relevant: set[int], ks: tuple[int, ...]) -> dict[tuple[str, int], float]:
    """The definitions of docs/statistics.md, one user, plain Python: the per-user baseline."""
    out = {}
    for k in ks:
        hits = [i + 1 for i, item in enumerate(ranked[:k]) if item in relevant]
        ideal = sum(1 / math.log2(i + 1) for i in range(1, min(len(relevant), k) + 1))
        out[("hitrate", k)] = float(bool(hits))
        out[("recall", k)] = len(hits) / len(relevant) if relevant else 0.0
        out[("precision", k)] = len(hits) / k
        out[("ndcg", k)] = sum(1 / math.log2(r + 1) for r in hits) / ideal if ideal else 0.0
        out[("mrr", k)] = 1 / hits[0] if hits else 0.0
    return out


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    import faiss
    import scipy

    print(f"building synthetic data: {N_ITEMS} items × {DIM}-d, {N_USERS} users ...", flush=True)
    data, vectors = synthetic()
    users = np.arange(N_USERS)
    model = KnnRecommender(ExperimentSettings(), batch_size=BATCH_SIZE)
    t_fit, _ = timed(lambda: model.fit(data, vectors))

    # (a) batched recommendation + vectorised metrics
    t_rec, top = timed(lambda: model.recommend(users, TOP_N))
    t_met, per_user = timed(lambda: per_user_metrics(top.items, data.test, KS, users=top.users))
    t_batched = t_rec + t_met

    # (b) per-user loop on a subset, extrapolated
    loop_users = np.random.default_rng(SEED + 1).choice(N_USERS, size=min(LOOP_USERS, N_USERS), replace=False)
    index, user_vectors, index_items = model._index, model._user_vectors, model._index_items
    agree = 0

    def per_user_loop() -> None:
        nonlocal agree
        for r in loop_users:
            seen = set(data.train.items_of(r).tolist())
            k = min(TOP_N + len(seen), index.ntotal)
            _, labels = index.search(user_vectors[r : r + 1], k)
            ranked = [int(index_items[j]) for j in labels[0] if j >= 0 and int(index_items[j]) not in seen][:TOP_N]
            scores = python_metrics(ranked, set(data.test.items_of(r).tolist()), KS)
            agree += ranked == top.items[r][top.items[r] >= 0].tolist() and all(
                abs(v - per_user[key][r]) < 1e-12 for key, v in scores.items()
            )

    t_loop_subset, _ = timed(per_user_loop)
    t_loop = t_loop_subset * N_USERS / len(loop_users)

    # (c) bare batched matmul + argpartition over the same (normalised) train items, same batch size
    items_n = l2_normalise(vectors[index_items])

    def bare() -> None:
        for start in range(0, N_USERS, BATCH_SIZE):
            s = user_vectors[start : start + BATCH_SIZE] @ items_n.T
            part = np.argpartition(-s, TOP_N - 1, axis=1)[:, :TOP_N]
            part_scores = np.take_along_axis(s, part, axis=1)
            np.take_along_axis(part, np.argsort(-part_scores, axis=1), axis=1)

    t_bare, _ = timed(bare)

    machine = (
        f"{platform.platform()}, {platform.processor() or platform.machine()}, os.cpu_count()={os.cpu_count()}, "
        f"faiss omp threads={faiss.omp_get_max_threads()}; Python {platform.python_version()}, "
        f"numpy {np.__version__}, faiss {faiss.__version__}, scipy {scipy.__version__}"
    )
    rows = [
        ("KNN fit (user means + index)", t_fit, None),
        (f"(a) KnnRecommender.recommend, all {N_USERS} users, top {TOP_N}", t_rec, None),
        (f"(a) per_user_metrics, ks {KS}", t_met, None),
        ("(a) batched total (recommend + metrics)", t_batched, 1.0),
        (f"(b) per-user loop, extrapolated from {len(loop_users)} users ({t_loop_subset:.2f} s)", t_loop, t_loop / t_batched),
        ("(c) bare matmul + argpartition top-100, no exclusion", t_bare, t_bare / t_batched),
    ]
    lines = [
        "# KNN + evaluation benchmark\n",
        f"{N_ITEMS} items × {DIM}-d float32 ({len(index_items)} in train), {N_USERS} users, "
        f"{data.train.lengths().mean():.1f} train / {data.test.lengths().mean():.1f} test items per user, "
        f"batch {BATCH_SIZE}, seed {SEED}.\n",
        f"Machine: {machine}\n",
        "| step | seconds | × batched total |",
        "|---|---:|---:|",
        *(f"| {name} | {sec:.3f} | {'' if ratio is None else f'{ratio:.2f}'} |" for name, sec, ratio in rows),
        "",
        f"Per-user loop agreed with the batched path (items and metrics) for {agree}/{len(loop_users)} users.",
    ]
    text = "\n".join(lines)
    print(text)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text + "\n")


if __name__ == "__main__":
    main()
