"""BERT4Rec's training loss: the study's full softmax vs gSASRec's gBCE over sampled negatives (``bert4rec.loss``).

    .venv/bin/python bench/bench_bert4rec_loss.py demo     # (a) quality and epoch time on the demo
    .venv/bin/python bench/bench_bert4rec_loss.py step     # (b) one training step at Music4All-Onion size
    .venv/bin/python bench/bench_bert4rec_loss.py          # both

(a) ``demo``: the demo data set (``generate_demo``, seed 0) is ingested and encoded with ``mfcc`` and its
shuffled twin ``shuffled_mfcc`` through the Dagster assets, in a temporary lake (``BENCH_LAKE`` keeps it and
reuses it); then, in-process (the cells' own functions: ``Bert4RecRecommender.fit``, ``recommend_all_splits``,
``evaluate``), BERT4Rec is trained with the demo's settings (``audiorec_assets/datasets/demo_experiment.yaml``)
for each loss, encoder and seed, and Recall@50 / NDCG@10 on ``test`` are printed per seed and as
mean ± sample standard deviation over seeds, with epochs run and seconds per epoch (training + validation).
The losses: ``softmax``; ``gbce`` with 256 negatives (the default; the demo's train vocabulary has ≈ 280
tracks, so that is almost every item) and with 32.

(b) ``step``: a net of the study's size on synthetic data: 56 512 train items with random 1024-d vectors
(MERT's width), ``batch_size`` (128) sequences of ``max_len`` (300) random items, the preset's masking;
one optimiser step (forward, backward, Adam) timed ``BENCH_STEPS`` (3) times after one warm-up, for the
softmax and gBCE (256 negatives) back to back in this process, per preset (guide: hidden 256 → scored in the
1024-d audio space; paper_code: hidden = 1024, tied trainable table). Then the output layer alone
(forward, one batch): the full softmax, gBCE with negatives drawn per position (the design not taken) and
per sequence (``bert4rec_loss``). Last, the full-softmax forward of guide's validation loss for 1 000 users
(one [MASK] each), which both losses keep. ``os.getloadavg()`` is
printed beside every figure: the machine is shared.

Environment: ``BENCH_SEEDS`` (default ``1,2,3``), ``BENCH_STEPS`` (3), ``BENCH_PRESETS`` (``guide,paper_code``),
``BENCH_ITEMS`` (56512), ``BENCH_DIM`` (1024), ``BENCH_LAKE`` (a lake folder to build once and reuse),
``BENCH_THREADS`` (torch threads; default torch's choice); for (a) ``BENCH_LOSSES`` (default
``softmax,gbce-256,gbce-32``; also ``gbce-256-e100``: gBCE allowed 100 epochs instead of the demo's 40),
``BENCH_ENCODERS`` (``mfcc,shuffled_mfcc``), ``BENCH_EPOCH_TIMES`` (``1``: also time a few epochs of each loss,
interleaved; ``0``: skip).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiorec_assets.recommenders import bert4rec_model as b4m  # noqa: E402
from audiorec_assets.recommenders import bert4rec_sequences as b4s  # noqa: E402
from audiorec_assets.recommenders.bert4rec_loss import STREAM_NEGATIVES, training_loss  # noqa: E402
from audiorec_assets.recommenders.runtime import make_generator, seeded  # noqa: E402
from audiorec_assets.settings import ExperimentSettings  # noqa: E402

DEMO_SETTINGS = Path(__file__).resolve().parents[1] / "audiorec_assets" / "datasets" / "demo_experiment.yaml"
LOSSES = {"softmax": {"loss": "softmax"}, "gbce-256": {"loss": "gbce", "negatives": 256},
          "gbce-32": {"loss": "gbce", "negatives": 32},
          # the demo's settings stop at 40 epochs, where gBCE is still improving
          "gbce-256-e100": {"loss": "gbce", "negatives": 256, "max_epochs": 100}}
DEFAULT_LOSSES = "softmax,gbce-256,gbce-32"
TIMED_EPOCHS = 3


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def machine() -> str:
    return (f"{platform.platform()}; {platform.processor() or platform.machine()}; {os.cpu_count()} CPUs; "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")


# ----------------------------------------------------------------------------- (a) the demo


def build_demo_lake(lake: Path) -> None:
    """Demo data (seed 0), ingest, and the mfcc / shuffled_mfcc embeddings, through the Dagster assets."""
    import dagster as dg

    from audiorec_assets.datasets.demo import generate_demo
    from audiorec_assets.definitions import build_definitions
    from audiorec_assets.defs.embeddings import EMBEDDINGS
    from audiorec_assets.defs.execute import everything, materialize

    if (lake / "embeddings" / "shuffled_mfcc.npy").exists():
        return
    lake.mkdir(parents=True, exist_ok=True)
    generate_demo(lake / "raw", seed=0)
    (lake / "experiment.yaml").write_text("encoders: [mfcc, shuffled_mfcc]\nrecommenders: [bert4rec]\n"
                                          "encode: {shuffled_base: mfcc}\n")
    os.environ["AUDIOREC_LAKE"] = str(lake)
    defs = build_definitions(lake)
    for selection, key in ((dg.AssetSelection.groups("ingest"), None),
                           (dg.AssetSelection.assets(EMBEDDINGS).required_multi_asset_neighbors(), "mfcc"),
                           (dg.AssetSelection.assets(EMBEDDINGS).required_multi_asset_neighbors(), "shuffled_mfcc")):
        result = materialize(everything(defs), selection=selection, partition_key=key, resources=defs.resources)
        assert result.success, key


def demo_settings(seed: int, loss: dict[str, object]) -> ExperimentSettings:
    raw = yaml.safe_load(DEMO_SETTINGS.read_text())
    raw["bert4rec"] = {**raw["bert4rec"], **loss}
    raw.update(seed=seed, ks=[10, 50], top_n=50, headline_k=10)
    raw.pop("encoders", None)
    return ExperimentSettings.model_validate(raw)


def run_demo() -> None:
    from audiorec_assets.cell_inputs import load_interaction_data, load_item_vectors
    from audiorec_assets.evaluation.protocol import evaluate, recommend_all_splits
    from audiorec_assets.recommenders.bert4rec import Bert4RecRecommender
    from audiorec_assets.settings import LakePaths

    seeds = [int(s) for s in os.environ.get("BENCH_SEEDS", "1,2,3").split(",") if s.strip()]  # none: timings only
    losses = [name.strip() for name in os.environ.get("BENCH_LOSSES", DEFAULT_LOSSES).split(",") if name.strip()]
    encoders = [name.strip() for name in os.environ.get("BENCH_ENCODERS", "mfcc,shuffled_mfcc").split(",")]
    keep = os.environ.get("BENCH_LAKE")
    lake = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="bench-b4r-loss-")) / "lake"
    started = time.perf_counter()
    build_demo_lake(lake)
    print(f"demo lake {lake} ready in {time.perf_counter() - started:.1f} s ({load()})\n", flush=True)
    paths = LakePaths(lake)
    data = load_interaction_data(paths)
    print(f"train vocabulary {len(data.train_items)} of {data.n_items} tracks; "
          f"{len(data.eval_users('test'))} test users\n")
    if seeds:
        print("| loss | encoder | seed | Recall@50 | NDCG@10 | epochs | best epoch | s/epoch | fit s | load |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|", flush=True)
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for encoder in encoders:
        vectors = load_item_vectors(paths, encoder, data.n_items)
        for loss_name in losses:
            for seed in seeds:
                settings = demo_settings(seed, LOSSES[loss_name])
                model = Bert4RecRecommender(settings)
                report = model.fit(data, vectors)
                rows = recommend_all_splits(model, data, settings.top_n).assign(seed=seed)
                summary, _ = evaluate(rows, data, settings.ks, settings.top_n)
                test = summary[summary["split"] == "test"].set_index(["metric", "k"])["value"]
                recall, ndcg = float(test[("recall", 50)]), float(test[("ndcg", 10)])
                per_epoch = report.seconds / len(report.train_loss)
                results.setdefault((loss_name, encoder), []).append((recall, ndcg, per_epoch))
                print(f"| {loss_name} | {encoder} | {seed} | {recall:.4f} | {ndcg:.4f} | {len(report.train_loss)} | "
                      f"{report.best_epoch} | {per_epoch:.3f} | {report.seconds:.1f} | {load()} |", flush=True)
    if not results:
        print("(no seeds: no quality runs)")
    else:
        print("\nMean ± sample SD over seeds", seeds, "(test split):\n")
        print("| loss | encoder | Recall@50 | NDCG@10 | s/epoch |")
        print("|---|---|---|---|---|")
    for (loss_name, encoder), values in results.items():
        cells = []
        for column in range(3):
            series = [v[column] for v in values]
            spread = statistics.stdev(series) if len(series) > 1 else float("nan")
            digits = 3 if column == 2 else 4
            cells.append(f"{statistics.mean(series):.{digits}f} ± {spread:.{digits}f}")
        print(f"| {loss_name} | {encoder} | " + " | ".join(cells) + " |", flush=True)
    if os.environ.get("BENCH_EPOCH_TIMES", "1") == "1":
        time_demo_epochs(data, load_item_vectors(paths, encoders[0], data.n_items), losses)


def time_demo_epochs(data, vectors: np.ndarray, losses: list[str], repeats: int = 3) -> None:
    """Seconds per epoch (training + validation) of ``TIMED_EPOCHS``-epoch fits, the losses interleaved
    ``repeats`` times (the quality runs above stop after different numbers of epochs, under a changing load)."""
    from audiorec_assets.recommenders.bert4rec import Bert4RecRecommender

    timed = [name for name in losses if LOSSES[name].get("max_epochs") is None]
    print(f"\nSeconds per epoch, {TIMED_EPOCHS}-epoch fits, interleaved {repeats} times:\n")
    print("| round | " + " | ".join(timed) + " | load after |")
    print("|---:|" + "---:|" * len(timed) + "---|", flush=True)
    for round_ in range(1, repeats + 1):
        cells = []
        for name in timed:
            settings = demo_settings(1, {**LOSSES[name], "max_epochs": TIMED_EPOCHS, "patience": TIMED_EPOCHS})
            report = Bert4RecRecommender(settings).fit(data, vectors)
            cells.append(f"{report.seconds / len(report.train_loss):.3f}")
        print(f"| {round_} | " + " | ".join(cells) + f" | {load()} |", flush=True)


# ----------------------------------------------------------------------------- (b) one step at study size


def time_steps(preset: str, loss_name: str, n_items: int, dim: int, steps: int) -> tuple[list[float], float]:
    """Seconds of ``steps`` optimiser steps (after one warm-up) and the last loss, from one seeded start."""
    settings = ExperimentSettings(preset=preset, seed=0, bert4rec={"loss": loss_name})
    bert = settings.bert4rec
    config = b4m.Bert4RecConfig.from_settings(settings, n_items, dim, n_items)
    rng = np.random.default_rng(0)
    audio = torch.as_tensor(rng.normal(size=(n_items, dim)).astype(np.float32))
    tokens = torch.as_tensor(rng.integers(0, n_items, size=(bert.batch_size, bert.max_len)))
    lengths = torch.full((bert.batch_size,), bert.max_len)
    with seeded(0, torch.device("cpu")):
        net = b4m.Bert4RecNet(config, audio).train()
        optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=bert.lr)
        loss_fn = training_loss(bert, n_items, make_generator(0, STREAM_NEGATIVES))
        masks = make_generator(0, b4m.STREAM_TRAIN)
        seconds, value = [], float("nan")
        for step in range(steps + 1):
            masked = b4s.sample_mask(lengths, bert.max_len, config.mask_prob, masks, config.at_least_one_mask)
            inputs, targets = tokens.masked_fill(masked, config.mask_token), tokens[masked]
            started = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net, inputs, masked, targets)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            if step:  # the first step pays for allocations and kernel choices
                seconds.append(time.perf_counter() - started)
    return seconds, value


def time_validation_forward(n_items: int, dim: int, users: int = 1000) -> float:
    """Seconds of guide's full-softmax validation forward for ``users`` sequences of ``infer_len`` tokens."""
    settings = ExperimentSettings(seed=0)
    config = b4m.Bert4RecConfig.from_settings(settings, n_items, dim, n_items)
    rng = np.random.default_rng(1)
    audio = torch.as_tensor(rng.normal(size=(n_items, dim)).astype(np.float32))
    tokens = torch.as_tensor(rng.integers(0, n_items, size=(users, config.infer_len)))
    tokens[:, -1] = config.mask_token
    with seeded(0, torch.device("cpu")), torch.no_grad():
        net = b4m.Bert4RecNet(config, audio).eval()
        started = time.perf_counter()
        for block in tokens.split(max(1, b4m.SCORE_BATCH_CELLS // n_items)):
            hidden = net.encode(block)[:, -1]
            torch.log_softmax(net.vocab_logits(hidden), dim=-1)
        return time.perf_counter() - started


def time_heads(n_items: int, dim: int, negatives: int, batch: int, length: int, mask_prob: float) -> dict[str, float]:
    """Forward seconds of the output layer alone (no encoder, no backward) at the masked positions of one
    batch: the full softmax's ``(n_masked, n_items)`` product; gBCE's negatives drawn per position and
    gathered (``n_masked × N`` rows, in 64 MB chunks; the design not taken); gBCE's negatives per sequence
    (``batch × N`` rows and one batched product, what ``bert4rec_loss`` does)."""
    from audiorec_assets.recommenders.bert4rec_loss import sequence_logits

    generator = torch.Generator().manual_seed(0)
    table = torch.randn(n_items, dim, generator=generator)
    masked = torch.rand(batch, length, generator=generator) < mask_prob
    query = torch.randn(int(masked.sum()), dim, generator=generator)
    per_position = torch.randint(n_items, (len(query), negatives), generator=generator)
    per_sequence = torch.randint(n_items, (batch, negatives), generator=generator)

    def dense() -> None:
        query @ table.T

    def gathered() -> None:
        chunk = max(1, (1 << 24) // (negatives * dim))
        for start in range(0, len(query), chunk):
            rows = table[per_position[start : start + chunk]]
            torch.bmm(rows, query[start : start + chunk].unsqueeze(-1))

    def shared() -> None:
        sequence_logits(query, masked, table[per_sequence])

    seconds = {}
    with torch.no_grad():
        for name, head in (("softmax (n_masked × n_items)", dense), ("gbce, negatives per position", gathered),
                           ("gbce, negatives per sequence", shared)):
            head()
            started = time.perf_counter()
            head()
            seconds[name] = time.perf_counter() - started
    return seconds


def run_step() -> None:
    n_items = int(os.environ.get("BENCH_ITEMS", "56512"))
    dim = int(os.environ.get("BENCH_DIM", "1024"))
    steps = int(os.environ.get("BENCH_STEPS", "3"))
    presets = [p.strip() for p in os.environ.get("BENCH_PRESETS", "guide,paper_code").split(",") if p.strip()]
    defaults = ExperimentSettings().bert4rec
    print(f"{n_items} items × {dim}-d, batch {defaults.batch_size} × {defaults.max_len} tokens, gBCE "
          f"{defaults.negatives} negatives, t {defaults.gbce_t}; {steps} timed steps after 1 warm-up\n")
    print("| preset | loss | s/step (each) | mean s/step | speed-up | last loss | load before → after |")
    print("|---|---|---|---:|---:|---:|---|", flush=True)
    for preset in presets:
        means = {}
        for loss_name in ("softmax", "gbce"):
            before = load()
            seconds, value = time_steps(preset, loss_name, n_items, dim, steps)
            means[loss_name] = statistics.mean(seconds)
            speedup = f"{means['softmax'] / means['gbce']:.1f}×" if loss_name == "gbce" else "1×"
            print(f"| {preset} | {loss_name} | {', '.join(f'{s:.2f}' for s in seconds)} | {means[loss_name]:.2f} | "
                  f"{speedup} | {value:.3f} | {before} → {load()} |", flush=True)
    print(f"\nOutput layer alone, forward only, one batch ({defaults.batch_size} × {defaults.max_len}, p 0.15):\n")
    print("| head | s | load before → after |")
    print("|---|---:|---|")
    before = load()
    for name, seconds in time_heads(n_items, dim, defaults.negatives, defaults.batch_size, defaults.max_len,
                                    0.15).items():
        print(f"| {name} | {seconds:.2f} | {before} → {load()} |", flush=True)
    before = load()
    seconds = time_validation_forward(n_items, dim)
    print(f"\nguide validation loss forward (full softmax, 1 000 users × {defaults.infer_len} tokens): "
          f"{seconds:.2f} s ({before} → {load()})", flush=True)


def main() -> None:
    if os.environ.get("BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
    what = sys.argv[1:] or ["demo", "step"]
    print(f"Machine: {machine()}\n")
    if "demo" in what:
        run_demo()
        print()
    if "step" in what:
        run_step()


if __name__ == "__main__":
    main()
