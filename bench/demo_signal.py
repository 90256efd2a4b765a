"""Diagnostic: does the demo data set reward a better audio encoder, warm and cold?

Generates the demo (``generate_demo``) into a temporary folder, encodes every track with the
project's ``mfcc`` and ``musicnn`` encoders, and builds the own-catalogue split in pandas the
way ``audiorec_assets/data/splits.py`` does:

* evaluation window = ``[midnight(last event − 30 days), last event]``, train = the year before
  (or from the first event's midnight);
* train pairs = distinct (user, track) of the train window;
* warm eval = evaluation-window pairs of train users that are new to the user, on tracks
  with train plays (val and test halves together);
* cold eval = evaluation-window pairs of train users on tracks **without** train plays.

It then scores a cosine KNN the way the project's KNN does (user = unweighted mean of the raw
vectors of the user's distinct train tracks; users and items L2-normalised; the user's train
tracks excluded) with

* ``mfcc``    — each of the 104 features z-scored over the catalogue first,
* ``musicnn`` — the 200-d MSD penultimate layer,
* ``shuffled`` — musicnn's rows permuted across tracks (a derangement, as ``controls.py``),
* ``random``   — i.i.d. standard-normal 200-d vectors,

on warm (candidates = tracks with train plays) and cold (candidates = tracks without train
plays), and prints HitRate@10 and NDCG@10 (binary relevance, mean over users) with 95 %
intervals (Wilson for HitRate, normal for NDCG), plus a popularity baseline (distinct train
listeners) on warm. The last lines check the targets the demo is built to meet: on cold,
mfcc and musicnn above both controls on HitRate@10 and NDCG@10, on warm on NDCG@10, each
time with non-overlapping intervals (exit status 1 otherwise).

Reference rows, not targets, read from the generator's ground truth: ``style_only`` (the
track's timbre mix over the styles: it knows the style and nothing within it),
``attributes`` (the rendered attributes, standardised, next to the mix: a perfect ear under
the same KNN) and ``oracle`` (each user's true appeal at the end of the log, from
``demo_model``; no KNN). The last column, *within-style AUC*, is the share of same-style
candidates a relevant track outscores (0.5 = no ranking within a style), the question the
demo is built to ask: does a better encoder rank better within a style?

Run: ``.venv/bin/python bench/demo_signal.py [--seed 42] [--cache bench/out/demo_signal]``.
``--cache`` keeps the vectors by audio content hash, so a rerun after a change of the
listening simulation only re-encodes what changed. ``--no-musicnn`` skips the slow encoder
(the shuffled control then permutes the mfcc vectors). Single-threaded on purpose.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from audiorec_assets.datasets.demo import generate_demo  # noqa: E402
from audiorec_assets.encoders import make_audio_encoder  # noqa: E402
from audiorec_assets.encoders.controls import random_vectors, shuffled_vectors  # noqa: E402
from audiorec_assets.encoders.run import (  # noqa: E402
    PreviousEmbeddings,
    encode_catalogue,
    encoder_signature,
)

K = 10
Z = 1.959963984540054


# ----------------------------------------------------------------------------- split


def make_split(listens: pd.DataFrame) -> dict[str, object]:
    """Train pairs, warm and cold evaluation pairs, as splits.py's own-catalogue rules."""
    ts = listens["timestamp"]
    last = ts.max()
    test_start = (last - timedelta(days=30)).normalize()
    train_start = max(ts.min().normalize(), test_start - timedelta(days=365))
    train = listens[(ts >= train_start) & (ts < test_start)]
    window = listens[ts >= test_start]
    train_pairs = train.drop_duplicates(["user_id", "track_id"])[["user_id", "track_id"]]
    train_users = set(train_pairs["user_id"])
    train_tracks = set(train_pairs["track_id"])
    seen = set(zip(train_pairs["user_id"], train_pairs["track_id"]))
    ev = window.drop_duplicates(["user_id", "track_id"])[["user_id", "track_id"]]
    ev = ev[ev["user_id"].isin(train_users)]
    ev = ev[[(u, t) not in seen for u, t in zip(ev["user_id"], ev["track_id"])]]
    warm = ev[ev["track_id"].isin(train_tracks)]
    cold = ev[~ev["track_id"].isin(train_tracks)]
    return dict(train_start=train_start, test_start=test_start, last=last, train_pairs=train_pairs,
                warm=warm, cold=cold, train_tracks=train_tracks, n_window_events=len(window))


# ----------------------------------------------------------------------------- scoring


def l2n(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def evaluate(scores_fn, users: list[str], history: dict[str, np.ndarray], relevant: dict[str, set[int]],
             candidates: np.ndarray, style: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-user HitRate@K, NDCG@K and within-style AUC for a scorer ``scores_fn(user) -> (n_tracks,) scores``.

    Within-style AUC: for each relevant track, the share of the other candidates *of its style*
    (not relevant, not in the history) that score lower (ties count half); averaged over the
    user's relevant tracks. 0.5 = the scorer knows nothing within a style.
    """
    n_tracks = len(style)
    is_candidate = np.zeros(n_tracks, dtype=bool)
    is_candidate[candidates] = True
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    hits, ndcgs, aucs = [], [], []
    for user in users:
        scores = scores_fn(user).astype(np.float64).copy()
        allowed = is_candidate.copy()
        allowed[history[user]] = False
        scores[~allowed] = -np.inf
        top = np.argsort(-scores, kind="stable")[:K]
        rel = np.array([t in relevant[user] for t in top], dtype=float)
        ideal = discounts[: min(K, len(relevant[user]))].sum()
        hits.append(float(rel.any()))
        ndcgs.append(float(rel @ discounts / ideal))
        negatives = allowed.copy()
        negatives[list(relevant[user])] = False
        per_item = []
        for r in relevant[user]:
            others = scores[negatives & (style == style[r])]
            if len(others):
                per_item.append(np.mean((others < scores[r]) + 0.5 * (others == scores[r])))
        aucs.append(np.mean(per_item) if per_item else np.nan)
    return np.array(hits), np.array(ndcgs), np.array(aucs)


def wilson(p: float, n: int) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2)) / (1 + Z**2 / n)
    return centre - half, centre + half


def normal_ci(x: np.ndarray) -> tuple[float, float]:
    if len(x) < 2:
        return (math.nan, math.nan)
    half = Z * x.std(ddof=1) / math.sqrt(len(x))
    return x.mean() - half, x.mean() + half


# ----------------------------------------------------------------------------- encoding


def encode(name: str, paths: list[Path], cache: Path | None) -> tuple[np.ndarray, float]:
    encoder = make_audio_encoder(name)
    previous = None
    if cache is not None and (cache / f"{name}.npz").exists():
        stored = np.load(cache / f"{name}.npz", allow_pickle=False)
        previous = PreviousEmbeddings(list(stored["hashes"]), stored["vectors"], str(stored["signature"]))
    vectors, hashes, report = encode_catalogue(encoder, paths, previous)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cache / f"{name}.npz", hashes=np.array(hashes), vectors=vectors,
                 signature=np.array(encoder_signature(encoder)))
    return vectors.astype(np.float64), report.seconds


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--n-tracks", type=int, default=None)
    parser.add_argument("--n-users", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=None, help="keep encoder vectors here between runs")
    parser.add_argument("--keep", type=Path, default=None, help="generate into this folder instead of a temp dir")
    parser.add_argument("--no-musicnn", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    sizes = {k: v for k, v in (("n_tracks", args.n_tracks), ("n_users", args.n_users)) if v is not None}
    with tempfile.TemporaryDirectory() as tmp:
        raw = args.keep or Path(tmp) / "raw"
        if args.keep and raw.exists():
            import shutil

            shutil.rmtree(raw)
        summary = generate_demo(raw, seed=args.seed, **sizes)
        tracks = pd.read_csv(raw / "tracks.csv")
        listens = pd.read_csv(raw / "listens.csv", parse_dates=["timestamp"])
        paths = [raw / "audio" / f"{t}.flac" for t in tracks["track_id"]]
        print(f"demo seed {args.seed}: {summary.n_tracks} tracks, {summary.n_albums} albums, "
              f"{summary.n_artists} artists, {summary.n_users} users, {summary.n_events} events; "
              f"generate_demo {summary.seconds:.1f} s")
        vectors: dict[str, np.ndarray] = {}
        for name in ("mfcc",) + (() if args.no_musicnn else ("musicnn",)):
            v, secs = encode(name, paths, args.cache)
            print(f"encoded {name}: {v.shape[1]}-d in {secs:.1f} s")
            vectors[name] = v

    n = len(tracks)
    index = {t: i for i, t in enumerate(tracks["track_id"])}
    mf = vectors["mfcc"]
    vectors["mfcc"] = (mf - mf.mean(axis=0)) / np.where(mf.std(axis=0) > 1e-12, mf.std(axis=0), 1.0)
    base = "musicnn" if "musicnn" in vectors else "mfcc"
    vectors["shuffled"] = shuffled_vectors(vectors[base], seed=args.seed)
    vectors["random"] = random_vectors(n, vectors[base].shape[1], seed=args.seed).astype(np.float64)

    # reference rows, not targets: the generator's own ground truth, read from tracks.csv
    from audiorec_assets.datasets.demo_catalogue import attribute_matrix, style_mix

    mix = style_mix(tracks)
    vectors["style_only"] = mix  # the timbre mix over styles: knows the style, nothing within it
    attrs = attribute_matrix(tracks)
    vectors["attributes"] = np.hstack([(attrs - attrs.mean(axis=0)) / attrs.std(axis=0), 2.0 * mix])

    # the oracle: each user's true appeal at the end of the log (demo_model regenerates the tastes)
    from audiorec_assets.datasets.demo import demo_model
    from audiorec_assets.datasets.demo_catalogue import ATTRIBUTES, STYLES

    model, _ = demo_model(args.seed, **sizes)
    tastes = model.users.set_index("user_id")
    mu = tastes[[f"mu_{a}_end" for a in ATTRIBUTES]].to_numpy()
    style_taste = tastes[[f"taste_{s.name}_end" for s in STYLES]].to_numpy()
    fit = np.exp(-0.5 * (((attrs[None, :, :] - mu[:, None, :]) / tastes["width"].to_numpy()[:, None, None]) ** 2)
                 .sum(axis=2))
    true_appeal = dict(zip(tastes.index, fit * (style_taste @ mix.T)))
    style = tracks["style"].to_numpy()

    split = make_split(listens)
    train_pairs: pd.DataFrame = split["train_pairs"]  # type: ignore[assignment]
    history = {u: np.array([index[t] for t in g]) for u, g in train_pairs.groupby("user_id")["track_id"]}
    train_idx = np.array(sorted(index[t] for t in split["train_tracks"]))  # type: ignore[union-attr]
    cold_idx = np.setdiff1d(np.arange(n), train_idx)
    print(f"split: train [{split['train_start']:%Y-%m-%d}, {split['test_start']:%Y-%m-%d}), "
          f"eval to {split['last']:%Y-%m-%d %H:%M}; {len(train_pairs)} train pairs of {len(history)} users; "
          f"{len(train_idx)} warm and {len(cold_idx)} cold candidate tracks")
    for name in ("warm", "cold"):
        pairs: pd.DataFrame = split[name]  # type: ignore[assignment]
        print(f"  {name:4s} eval: {len(pairs)} pairs, {pairs['user_id'].nunique()} users, "
              f"{pairs['track_id'].nunique()} tracks")

    listeners = train_pairs["track_id"].value_counts()
    popularity = np.array([listeners.get(t, 0) for t in tracks["track_id"]], dtype=float)
    results: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    print()
    print(f"| split | model | users | HitRate@{K} [95 % CI] | NDCG@{K} [95 % CI] | within-style AUC |")
    print("|---|---|---|---|---|---|")
    for split_name, candidates in (("warm", train_idx), ("cold", cold_idx)):
        pairs = split[split_name]  # type: ignore[assignment]
        relevant = {u: {index[t] for t in g} for u, g in pairs.groupby("user_id")["track_id"]}
        users = sorted(relevant)
        models: list[tuple[str, object]] = []
        for name in ("mfcc", "musicnn", "shuffled", "random", "style_only", "attributes"):
            if name not in vectors:
                continue
            items = l2n(vectors[name])
            raw_vectors = vectors[name]
            profiles = {u: raw_vectors[history[u]].mean(axis=0) for u in users}  # raw mean, as the project

            def scorer(user: str, items: np.ndarray = items, profiles: dict = profiles) -> np.ndarray:
                p = profiles[user]
                return items @ (p / max(np.linalg.norm(p), 1e-12))

            models.append((name, scorer))
        models.append(("oracle", lambda user: true_appeal[user]))
        if split_name == "warm":
            models.append(("popularity", lambda user: popularity))
        for name, scorer in models:
            hit, ndcg, auc = evaluate(scorer, users, history, relevant, candidates, style)
            results[(split_name, name)] = (hit, ndcg)
            lo, hi = wilson(hit.mean(), len(hit))
            nlo, nhi = normal_ci(ndcg)
            print(f"| {split_name} | {name} | {len(users)} | {hit.mean():.3f} [{lo:.3f}, {hi:.3f}] | "
                  f"{ndcg.mean():.3f} [{nlo:.3f}, {nhi:.3f}] | {np.nanmean(auc):.3f} |")

    print()
    ok = True
    checks = [("cold", "hit"), ("cold", "ndcg"), ("warm", "ndcg")]
    for split_name, metric in checks:
        for enc in ("mfcc", "musicnn"):
            if (split_name, enc) not in results:
                continue
            for control in ("shuffled", "random"):
                a = results[(split_name, enc)]
                b = results[(split_name, control)]
                if metric == "hit":
                    a_lo = wilson(a[0].mean(), len(a[0]))[0]
                    b_hi = wilson(b[0].mean(), len(b[0]))[1]
                else:
                    a_lo, b_hi = normal_ci(a[1])[0], normal_ci(b[1])[1]
                passed = a_lo > b_hi
                ok &= passed
                label = "HitRate" if metric == "hit" else "NDCG"
                print(f"{'PASS' if passed else 'FAIL'}  {split_name} {label}@{K}: {enc} CI low {a_lo:.3f} "
                      f"> {control} CI high {b_hi:.3f}")
    print("all targets met" if ok else "some targets NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"({time.perf_counter() - t0:.0f} s)")
    sys.exit(code)
