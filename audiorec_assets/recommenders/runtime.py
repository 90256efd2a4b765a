"""Where and how the torch recommenders run: the device, seeded deterministic execution, random streams."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np
import torch

from audiorec_assets.settings import effective_device


def resolve_device(requested: str) -> torch.device:
    """The torch device named by the ``encode.device`` setting; raises if it is not available here."""
    requested = effective_device(requested)
    try:
        device = torch.device(requested)
    except RuntimeError as err:
        raise ValueError(
            f"Setting encode.device={requested!r} is not a torch device name (try 'cpu' or 'cuda')."
        ) from err
    if device.type == "cuda":
        # cuBLAS needs this before its first use to run deterministically; harmless otherwise.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        if not torch.cuda.is_available():
            raise ValueError(
                f"Setting encode.device={requested!r} asks for CUDA, but torch sees no CUDA device "
                f"(torch {torch.__version__}). Set encode.device to 'cpu' or run on a machine with a GPU."
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"Setting encode.device={requested!r} asks for MPS, which is not available; use 'cpu'.")
    return device


def dense_scores(queries: torch.Tensor, items: torch.Tensor, out: np.ndarray | None = None) -> torch.Tensor:
    """``queries @ items.T`` without autograd: one block of scores for a top-N.

    On the CPU (float32) through numpy's BLAS: on the machines this was measured on (AMD EPYC, torch's CPU
    wheel with MKL) torch's sgemm did less than half the FLOP per CPU-second of numpy's OpenBLAS
    (``bench/bench_cell_paths.py``, bench/RESULTS.md); the block is the same matrix product either way. On other
    devices (and dtypes) torch's own. ``out`` (CPU, float32, at least ``len(queries)`` rows): a buffer the block is
    written into and returned from, reused across blocks — a fresh 65 MB block per batch costs page faults.
    """
    if queries.device.type == "cpu" and queries.dtype == items.dtype == torch.float32:
        left, right = queries.detach().numpy(), items.detach().numpy()
        block = None if out is None else out[: len(left)]
        return torch.from_numpy(np.matmul(left, right.T, out=block))
    return queries @ items.T


def training_precision(requested: str, device: torch.device, model_allows: bool) -> str:
    """``fp32`` or ``bf16``: what setting ``encode.precision`` means for a model on ``device``.

    ``auto`` is bf16 only on a CUDA device that supports it, and only for models whose training tolerates it
    (``model_allows``: LayerNorm, softmax and the loss stay fp32 under autocast); ``bf16`` asks for it anywhere.
    """
    if not model_allows or requested == "fp32":
        return "fp32"
    if requested == "bf16":
        return "bf16"
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of a resolved :func:`training_precision` (nothing for fp32)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run the block with torch's global RNGs seeded by ``seed`` and deterministic algorithms on.

    The caller's RNG state and determinism flag are restored afterwards, so training a model
    never changes the randomness of code around it.
    """
    import torch.utils.deterministic

    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    was_filling = torch.utils.deterministic.fill_uninitialized_memory
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        # warn_only: an op without a deterministic kernel warns instead of failing the run.
        torch.use_deterministic_algorithms(True, warn_only=True)
        # Deterministic mode would also NaN-fill every new empty tensor; our code never reads
        # uninitialised memory, and the fill costs ~15 % of a CPU training step.
        torch.utils.deterministic.fill_uninitialized_memory = False
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)
            torch.utils.deterministic.fill_uninitialized_memory = was_filling


def make_generator(seed: int, stream: int) -> torch.Generator:
    """A CPU generator for one independent random stream (shuffling, negatives, masks) of a run.

    Sampling happens on the CPU and is moved to the device, so a seed gives the same samples
    on every device.
    """
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed * 1_000_003 + stream)
    return generator
