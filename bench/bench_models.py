"""One epoch of each trained recommender (+ a KNN cell) at Music4All-Onion size, on the CPU or a GPU, with its
time and peak memory: the GPU path (issue 19 item 4) and the memory bound (item 5).

Usage:
  .venv/bin/python bench/bench_models.py --device cuda                 # what bench/bench_gpu.sh runs
  .venv/bin/python bench/bench_models.py --device cpu --users 1000     # memory on the CPU: the tables and a
                                                                        # step's activations do not grow with users
  .venv/bin/python bench/bench_models.py --only bert4rec:paper_code:4800 --device cpu --users 500
  .venv/bin/python bench/bench_models.py --device cpu --max-steps 3   # memory: whole tables, 3 steps an epoch

Cases are ``model:preset:dim``. Each runs in its own subprocess so its peak RSS / peak GPU memory is its own.
Data: ``bench/study_data.py`` (20 000 users, 56 512 tracks, mean history 213 by default). Each case: fit with
``max_epochs=1`` (one epoch and one validation pass), then recommend top-100 for every val user.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

DEFAULT_CASES = (
    "knn:guide:200", "knn:guide:4800",
    "shallow:guide:200", "shallow:guide:1024", "shallow:paper_code:1024", "shallow:guide:4800", "shallow:paper_code:4800",
    "bert4rec:guide:200", "bert4rec:guide:1024", "bert4rec:paper_code:768", "bert4rec:paper_code:1024",
    "bert4rec:guide:4800", "bert4rec:paper_code:4800",
)


def limit_training_steps(max_steps: int) -> None:
    """End each training epoch after ``max_steps`` batches (memory probes: a step's peak is every step's)."""
    import itertools

    from audiorec_assets.recommenders import bert4rec_sequences, shallow, training

    def first_batches(order, batch_size):
        return itertools.islice(training.index_batches(order, batch_size), max_steps)

    shallow.index_batches = bert4rec_sequences.index_batches = first_batches


def run_case(case: str, args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from audiorec_assets.recommenders import recommender_class
    from audiorec_assets.settings import ExperimentSettings
    from study_data import gaussian_vectors, study_split

    model_name, preset, dim = case.split(":")
    if args.max_steps:
        limit_training_steps(args.max_steps)
    data = study_split(args.users, args.items, mean_history=args.mean_history, seed=0)
    vectors = gaussian_vectors(args.items, int(dim))
    overrides = {"preset": preset, "seed": 0, "encode": {"device": args.device},
                 "shallow": {"max_epochs": 1}, "bert4rec": {"max_epochs": 1, "hidden_dim": args.hidden}}
    if args.bert4rec_loss:
        overrides["bert4rec"]["loss"] = args.bert4rec_loss
    settings = ExperimentSettings(**overrides)
    model = recommender_class(model_name)(settings)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    report = model.fit(data, vectors)
    if cuda:
        torch.cuda.synchronize()
    fit_s = time.perf_counter() - started
    users = data.eval_users("val")
    started = time.perf_counter()
    top = model.recommend(users, 100)
    recommend_s = time.perf_counter() - started
    return {
        "case": case, "device": args.device, "users": args.users, "items": args.items,
        "fit_s": round(fit_s, 2), "recommend_s": round(recommend_s, 2), "recommended_users": int(len(users)),
        "train_loss": [round(x, 4) for x in report.train_loss], "filled": float(np.mean(top.items >= 0)),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "cpu_s": round(time.process_time(), 1),
    }


def run_child(command: list[str], timeout: float) -> tuple[int | str, str, str, float]:
    """Run one case; (exit status or "timeout", stdout, stderr, the child's peak RSS in GB, also when killed)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        deadline = time.monotonic() + timeout
        while True:
            pid, wait_status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                child.kill()
                pid, wait_status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.5)
        child.returncode = os.waitstatus_to_exitcode(wait_status)
        out.seek(0), err.seek(0)
        timed_out = time.monotonic() > deadline
        return ("timeout" if timed_out else child.returncode), out.read(), err.read(), usage.ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=56_512)
    parser.add_argument("--mean-history", type=float, default=213.0,
                        help="mean distinct train items per user; a small value keeps every user and item (the tables "
                             "that set the memory) with few steps per epoch")
    parser.add_argument("--hidden", type=int, default=1024, help="bert4rec.hidden_dim under guide (the issue's 1024)")
    parser.add_argument("--bert4rec-loss", default=None, help="bert4rec.loss (softmax | gbce); default: the settings'")
    parser.add_argument("--only", default=",".join(DEFAULT_CASES), help="comma-separated model:preset:dim cases")
    parser.add_argument("--max-steps", type=int, default=0,
                        help="stop each epoch after this many optimiser steps (0: whole epochs); for memory probes")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per case")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # internal: run one case here
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args)), flush=True)
        return
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {gpu}; "
          f"{args.users} users, {args.items} items; load {os.getloadavg()[0]:.2f}", flush=True)
    print("| case | fit (1 epoch) s | recommend s | peak RSS GB | peak GPU GB | train loss |", flush=True)
    print("|---|---:|---:|---:|---:|---|", flush=True)
    results = []
    for case in args.only.split(","):
        command = [sys.executable, __file__, "--case", case, "--device", args.device, "--users", str(args.users),
                   "--items", str(args.items), "--hidden", str(args.hidden),
                   "--mean-history", str(args.mean_history), "--max-steps", str(args.max_steps)]
        if args.bert4rec_loss:
            command += ["--bert4rec-loss", args.bert4rec_loss]
        status, stdout, stderr, peak_gb = run_child(command, args.timeout)
        if status == "timeout":
            print(f"| {case} | timed out after {args.timeout:.0f} s | | {peak_gb:.2f} (so far) | | |", flush=True)
            continue
        if status != 0:
            print(f"| {case} | failed: {stderr.strip().splitlines()[-1] if stderr.strip() else status}"
                  " | | | | |", flush=True)
            continue
        done = subprocess.CompletedProcess(command, 0, stdout, stderr)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(result)
        print(f"| {case} | {result['fit_s']} | {result['recommend_s']} | {result['peak_rss_gb']} | "
              f"{result['peak_gpu_gb'] if result['peak_gpu_gb'] is not None else '–'} | {result['train_loss']} |",
              flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
