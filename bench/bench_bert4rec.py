"""Time one BERT4Rec training epoch with logits at masked positions only vs at every position.

    .venv/bin/python bench/bench_bert4rec.py            # 20k items x 200-d, 2000 users x 300 items
    BENCH_SCALE=0.05 .venv/bin/python bench/bench_bert4rec.py   # a quick smoke run

Environment:
    BENCH_SCALE    multiplies items, users and sequence length (default 1.0)
    BENCH_DEVICE   torch device (default cpu)
    BENCH_PRESETS  comma-separated presets (default paper_code; add guide for the projected model)
    BENCH_THREADS  torch CPU threads (default: torch's choice)

Memory: at full scale the all-position variant materialises (128 x 300) x 20k logits per batch,
about 3 GB, plus as much again for their gradient; scale down where that does not fit.
Prints a markdown table and the machine it ran on.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiorec_assets.recommenders import bert4rec_model as b4m  # noqa: E402
from audiorec_assets.recommenders import bert4rec_sequences as b4s  # noqa: E402
from audiorec_assets.recommenders.data import InteractionData, UserItems  # noqa: E402
from audiorec_assets.recommenders.runtime import make_generator, resolve_device, seeded  # noqa: E402
from audiorec_assets.recommenders.torch_base import item_vectors_tensor  # noqa: E402
from audiorec_assets.settings import ExperimentSettings  # noqa: E402

BASE_ITEMS, BASE_USERS, BASE_LEN, DIM = 20_000, 2_000, 300, 200
SEED = 0


def synthetic(n_users: int, n_items: int, length: int) -> tuple[InteractionData, np.ndarray]:
    """Every user has ``length`` distinct random train items; no val/test (training speed only)."""
    rng = np.random.default_rng(SEED)
    indices = np.concatenate([rng.choice(n_items, size=length, replace=False) for _ in range(n_users)])
    indptr = np.arange(n_users + 1, dtype=np.int64) * length
    empty = UserItems(indptr=np.zeros(n_users + 1, np.int64), indices=np.zeros(0, np.int64))
    data = InteractionData(
        user_ids=np.array([f"u{u}" for u in range(n_users)], dtype=object),
        track_ids=np.array([f"t{i}" for i in range(n_items)], dtype=object),
        train=UserItems(indptr=indptr, indices=indices.astype(np.int64)),
        train_plays=np.ones(len(indices), np.int64),
        val=empty,
        test=empty,
    )
    return data, rng.normal(size=(n_items, DIM)).astype(np.float32)


def time_epoch(
    settings: ExperimentSettings, data: InteractionData, vectors: np.ndarray, logits_at: b4m.LogitsAt
) -> tuple[float, float, int]:
    """Seconds and mean loss of one epoch from the same seeded start, and the number of batches."""
    device = resolve_device(settings.encode.device)
    audio = item_vectors_tensor(vectors, data.n_items, device)
    config = b4m.Bert4RecConfig.from_settings(settings, data.n_items, DIM)
    with seeded(settings.seed, device):
        net = b4m.Bert4RecNet(config, audio).train()
        optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=settings.bert4rec.lr)
        sequences = b4s.TrainSequences.from_train(data.train, config)
        generator = make_generator(settings.seed, b4m.STREAM_TRAIN)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        loss = b4s.train_epoch(net, optimizer, sequences, settings.bert4rec.batch_size, generator, logits_at=logits_at)
        if device.type == "cuda":
            torch.cuda.synchronize()
    batches = -(-len(sequences.lengths) // settings.bert4rec.batch_size)
    return time.perf_counter() - started, loss, batches


def peak_memory(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB (GPU, this run)"
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return f"{kib / 2**20:.2f} GiB (RSS, process so far)"


def machine(device: str) -> str:
    parts = [
        platform.platform(),
        platform.processor() or platform.machine(),
        f"{os.cpu_count()} CPUs",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
    ]
    if device.startswith("cuda"):
        parts.append(torch.cuda.get_device_name(torch.device(device)))
    return "; ".join(parts)


def main() -> None:
    scale = float(os.environ.get("BENCH_SCALE", "1.0"))
    device = os.environ.get("BENCH_DEVICE", "cpu")
    presets = [p.strip() for p in os.environ.get("BENCH_PRESETS", "paper_code").split(",") if p.strip()]
    if os.environ.get("BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
    n_items, n_users = max(50, round(BASE_ITEMS * scale)), max(8, round(BASE_USERS * scale))
    length = max(10, min(BASE_LEN, round(BASE_LEN * scale)))
    data, vectors = synthetic(n_users, n_items, length)

    print(f"Machine: {machine(device)}  \nDevice: {device}\n")
    print("| preset | logits at | items | dim | users | seq len | batches | epoch s | speed-up | mean loss | peak memory |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for preset in presets:
        settings = ExperimentSettings(
            preset=preset, seed=SEED, encode={"device": device}, bert4rec={"max_len": BASE_LEN}
        )
        warm_up, _ = synthetic(settings.bert4rec.batch_size, n_items, min(length, 20))
        for logits_at in ("masked", "all"):  # first-call costs (allocator, kernels) stay out of the timings
            time_epoch(settings, warm_up, vectors, logits_at)
        timings = {}
        for logits_at in ("masked", "all"):
            seconds, loss, batches = time_epoch(settings, data, vectors, logits_at)
            timings[logits_at] = seconds
            speedup = f"{timings['all'] / timings['masked']:.2f}x" if logits_at == "all" else "1.00x"
            print(
                f"| {preset} | {logits_at} | {n_items} | {DIM} | {n_users} | {length} | {batches} | "
                f"{seconds:.2f} | {speedup} | {loss:.4f} | {peak_memory(device)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
