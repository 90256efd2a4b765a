"""Shallow training steps at Music4All-Onion size: the hinge sum as computed now (frozen unit item table kept once
per fit, each distinct user/item of a step embedded once, one backward through the embedding) vs straight from the
definition (every row gathered, projected and normalised: how it was before issue 19), back to back in one process.

Usage:  .venv/bin/python bench/bench_shallow_step.py [--steps 5] [--users 20000] [--items 56512] [--dims 200,1024]

Random pairs (mean history ≈ 213 as the Onion-size log), the settings' batch of 10 000 pairs and 20 negatives.
Prints seconds per optimiser step (CPU time of this process and wall) for each preset × dim.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import torch

from audiorec_assets.recommenders import shallow
from audiorec_assets.recommenders.runtime import seeded
from audiorec_assets.settings import ExperimentSettings, ShallowSettings


def definition_hinge_sum(net, users, items, negatives, *, backward_scale):
    """The hinge sum before issue 19: every row gathered, projected and normalised on its own, in micro-batches."""
    per_row = negatives.shape[1] * max(net.config.audio_dim, net.config.user_dim)
    chunk = max(1, shallow.MAX_CHUNK_FLOATS // max(1, per_row))
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, len(users), chunk):
        part = slice(start, start + chunk)
        user_vectors, item_vectors = net.unit_user_vectors(users[part]), net.unit_item_vectors(items[part])
        positive = (user_vectors * item_vectors).sum(-1, keepdim=True)
        if net.config.negative_kind == "item":
            negative = torch.einsum("rd,rkd->rk", user_vectors, net.unit_item_vectors(negatives[part]))
        else:
            negative = torch.einsum("rd,rkd->rk", item_vectors, net.unit_user_vectors(negatives[part]))
        loss_sum = torch.clamp(net.config.margin - positive + negative, min=0).sum()
        if backward_scale is not None:
            (loss_sum * backward_scale).backward()
        total += loss_sum.detach()
    return total


def step_seconds(hinge_sum, preset: str, dim: int, n_users: int, n_items: int, steps: int) -> tuple[float, float]:
    settings = ExperimentSettings(preset=preset, shallow=ShallowSettings())
    config = shallow.ShallowConfig.from_settings(settings, n_users, n_items, dim)
    generator = torch.Generator().manual_seed(0)
    vectors = torch.randn(n_items, dim, generator=generator)
    net = shallow.ShallowNet(config, vectors)
    shallow._hinge_sum, original = hinge_sum, shallow._hinge_sum
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    n_pairs = settings.shallow.batch_size * steps
    pairs = shallow._Pairs(users=torch.randint(n_users, (n_pairs,), generator=generator),
                           items=torch.randint(n_items, (n_pairs,), generator=generator))
    pool = torch.arange(n_users) if config.negative_kind == "user" else torch.arange(n_items)
    cpu, wall = time.process_time(), time.perf_counter()
    with seeded(0, torch.device("cpu")):  # deterministic algorithms on, as in a fit
        shallow._train_epoch(net, optimizer, pairs, settings.shallow.batch_size, pool, generator)
    shallow._hinge_sum = original
    return (time.process_time() - cpu) / steps, (time.perf_counter() - wall) / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=56_512)
    parser.add_argument("--dims", default="200,1024")
    args = parser.parse_args()
    print(f"# {platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"load {os.getloadavg()[0]:.2f}")
    print("| preset | dim | definition s/step (CPU / wall) | now s/step (CPU / wall) | CPU ratio |")
    print("|---|---:|---:|---:|---:|")
    for preset in ("guide", "paper_code"):
        for dim in (int(d) for d in args.dims.split(",")):
            before = step_seconds(definition_hinge_sum, preset, dim, args.users, args.items, args.steps)
            after = step_seconds(shallow._hinge_sum, preset, dim, args.users, args.items, args.steps)
            print(f"| {preset} | {dim} | {before[0]:.2f} / {before[1]:.2f} | {after[0]:.2f} / {after[1]:.2f} | "
                  f"{before[0] / after[0]:.2f}× |", flush=True)
    print(f"# peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB, "
          f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
