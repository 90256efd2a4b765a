"""The numpy/torch paths of a cell at Music4All-Onion size (issue 19 item 2), each next to its reference in one run:

1. the split as arrays: ``InteractionData.from_frames`` (pandas maps ids to indices) vs
   ``interaction_data_from_parquet`` (one DuckDB join + sort);
2. top-N with history exclusion over a dense score block: the previous single-threaded numpy
   (``argpartition`` + ``lexsort``) vs ``exclude_and_top_n`` (``torch.topk``); and the score blocks themselves,
   torch's matmul vs ``dense_scores`` (numpy's BLAS on the CPU);
3. a KNN cell's recommend (top-100 for every val user) vs a bare equivalent (normalised matmul, history set to
   -inf, ``torch.topk``), lists compared;
4. ``recommend_all_splits`` + the Parquet round trip + ``evaluate`` (the recommendations and metrics steps).

Usage:  .venv/bin/python bench/bench_cell_paths.py [--users 20000] [--items 56512] [--dim 200]
Data: bench/study_data.py. CPU seconds of this process (``time.process_time``) and wall; load average printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))

from study_data import gaussian_vectors, study_split  # noqa: E402

from audiorec_assets.evaluation.protocol import evaluate, recommend_all_splits  # noqa: E402
from audiorec_assets.recommenders.base import exclude_and_top_n, history_mask_coords  # noqa: E402
from audiorec_assets.recommenders.data import InteractionData, interaction_data_from_parquet  # noqa: E402
from audiorec_assets.recommenders.knn import KnnRecommender, l2_normalise, mean_item_vectors  # noqa: E402
from audiorec_assets.recommenders.runtime import dense_scores  # noqa: E402
from audiorec_assets.settings import ExperimentSettings  # noqa: E402


class Timer:
    def __enter__(self):
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.cpu, self.wall = time.process_time() - self.cpu, time.perf_counter() - self.wall


def row(label: str, reference: Timer, audiorec: Timer) -> None:
    print(f"| {label} | {reference.cpu:.2f} / {reference.wall:.2f} | {audiorec.cpu:.2f} / {audiorec.wall:.2f} | "
          f"{audiorec.cpu / max(reference.cpu, 1e-9):.2f} |", flush=True)


def numpy_top_n(scores: np.ndarray, users: np.ndarray, data: InteractionData, n: int) -> np.ndarray:
    rows, cols = history_mask_coords(users, data)
    scores[rows, cols] = -np.inf
    candidates = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    return np.take_along_axis(candidates, np.lexsort((candidates, -candidate_scores), axis=1), axis=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=56_512)
    parser.add_argument("--dim", type=int, default=200)
    args = parser.parse_args()
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"{args.users} users, {args.items} items, {args.dim}-d; load {os.getloadavg()[0]:.2f}", flush=True)
    data = study_split(args.users, args.items)
    vectors = gaussian_vectors(args.items, args.dim)
    print("| path | reference CPU / wall s | audiorec CPU / wall s | audiorec ÷ reference (CPU) |")
    print("|---|---:|---:|---:|")

    with tempfile.TemporaryDirectory() as folder:  # 1. the split as arrays
        frames, rng = [], np.random.default_rng(0)
        for split in ("train", "val", "test", "test_cold"):
            part = data.split(split)
            frames.append(pd.DataFrame({
                "user_id": data.user_ids[part.row_ids()], "track_id": data.track_ids[part.indices],
                "first_ts": pd.Timestamp("2019-03-01") + pd.to_timedelta(rng.integers(0, 10**7, len(part.indices)),
                                                                          unit="s"),
                "plays": 1, "split": split}))
        pd.concat(frames, ignore_index=True).to_parquet(Path(folder) / "interactions.parquet")
        pd.DataFrame({"track_id": data.track_ids, "item_idx": np.arange(data.n_items)}).to_parquet(
            Path(folder) / "tracks.parquet")
        with Timer() as pandas_way:
            InteractionData.from_frames(pd.read_parquet(Path(folder) / "interactions.parquet"),
                                        pd.read_parquet(Path(folder) / "tracks.parquet"))
        with Timer() as duckdb_way:
            interaction_data_from_parquet(Path(folder) / "interactions.parquet", Path(folder) / "tracks.parquet")
        row("split as arrays (pandas from_frames → one DuckDB query)", pandas_way, duckdb_way)

    users = data.eval_users("val")  # 2. top-N over dense blocks
    block = max(1, (1 << 24) // data.n_items)
    blocks = [users[i : i + block] for i in range(0, len(users), block)]
    score_blocks = [np.random.default_rng(i).random((len(b), data.n_items), dtype=np.float32) for i, b in
                    enumerate(blocks[:10])]
    with Timer() as previous:
        before = [numpy_top_n(s.copy(), b, data, 100) for s, b in zip(score_blocks, blocks)]
    with Timer() as now:
        after = [exclude_and_top_n(s.copy(), b, data, 100).items for s, b in zip(score_blocks, blocks)]
    # rows may differ only where a tie straddles the 100th place: argpartition keeps an arbitrary one of the tied
    # items there, exclude_and_top_n the lowest item index
    same = np.mean([np.array_equal(x, y) for bx, by in zip(before, after) for x, y in zip(bx, by)])
    row(f"top-100 of {len(score_blocks)} blocks of {block} users (argpartition → torch.topk; equal rows {same:.4f})",
        previous, now)

    model = KnnRecommender(ExperimentSettings())  # 3. KNN recommend vs bare
    model.fit(data, vectors)
    # 2b. the score blocks: torch's matmul (MKL in the CPU wheel) vs dense_scores (numpy's BLAS on the CPU), inside
    # the whole recommend, three times each, alternating (a first call pays for the BLAS's threads and buffers)
    from audiorec_assets.recommenders import knn as knn_module

    def torch_matmul(queries: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return queries @ items.T

    timings: dict[str, list[Timer]] = {"torch": [], "numpy": []}
    for _ in range(3):
        for name, scores_with in (("torch", torch_matmul), ("numpy", dense_scores)):
            knn_module.dense_scores = scores_with
            with Timer() as timed:
                model.recommend(users, 100)
            timings[name].append(timed)
    knn_module.dense_scores = dense_scores
    best = {name: min(ts, key=lambda t: t.cpu) for name, ts in timings.items()}
    row(f"KNN recommend, {len(users)} users, best of 3: score blocks by torch matmul → dense_scores "
        f"(CPU s each: torch {[round(t.cpu, 1) for t in timings['torch']]}, "
        f"numpy {[round(t.cpu, 1) for t in timings['numpy']]})", best["torch"], best["numpy"])

    with Timer() as audiorec_knn:
        top = model.recommend(users, 100)
    with Timer() as bare_knn:
        user_vectors = torch.as_tensor(l2_normalise(mean_item_vectors(data.train, vectors)))
        items = torch.as_tensor(l2_normalise(vectors.copy()))
        not_train = torch.ones(data.n_items, dtype=torch.bool)
        not_train[torch.as_tensor(data.train_items)] = False
        bare = []
        for b in range(0, len(users), block):
            chunk = users[b : b + block]
            scores = user_vectors[chunk] @ items.T
            scores[:, not_train] = -np.inf
            r, c = history_mask_coords(chunk, data)
            scores[torch.as_tensor(r), torch.as_tensor(c)] = -np.inf
            bare.append(torch.topk(scores, 100, dim=1).indices.numpy())
    agreement = float(np.mean(np.sort(np.concatenate(bare), axis=1) == np.sort(top.items, axis=1)))
    row(f"KNN recommend, {len(users)} users (bare matmul + topk → audiorec; same items {agreement:.4f})",
        bare_knn, audiorec_knn)

    with Timer() as steps:  # 4. recommendations + metrics steps
        rows = recommend_all_splits(model, data, 100).assign(encoder="x", recommender="knn", seed=0)
        with tempfile.TemporaryDirectory() as folder:
            rows.to_parquet(Path(folder) / "r.parquet", index=False)
            rows = pd.read_parquet(Path(folder) / "r.parquet")
        with Timer() as metrics:
            evaluate(rows, data, [10, 50, 100], 100)
    print(f"# recommend all splits + Parquet round trip + evaluate: {steps.cpu:.1f} CPU-s / {steps.wall:.1f} s wall "
          f"(evaluate alone {metrics.cpu:.1f} / {metrics.wall:.1f}; {len(rows)} rows); load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
