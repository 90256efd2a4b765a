"""Training plumbing shared by the torch recommenders (shallow, bert4rec).

Seeding and determinism, device choice, the early-stopping loop that keeps and restores the
best checkpoint, the plateau scheduler, safetensors save/load, and batched top-N scoring.
Nothing here knows a model's architecture; each model module supplies callables.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from audiorec_assets.lakeio import atomic_path
from audiorec_assets.recommenders.base import FitReport, Recommender, TopN, candidate_mask, exclude_and_top_n
from audiorec_assets.recommenders.data import InteractionData, UserItems
from audiorec_assets.settings import ExperimentSettings, effective_device

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model.json"

# Plateau scheduler of the authors' code: divide the learning rate by 10 after 5 flat epochs.
PLATEAU_PATIENCE = 5
PLATEAU_FACTOR = 0.1
# Learned item-id embeddings (encoder none) start as BERT's initializer: N(0, 0.02).
ID_INIT_STD = 0.02

logger = logging.getLogger(__name__)


class ModelFileError(ValueError):
    """A saved model does not match the data or item vectors it is loaded with; the message says which."""


# --------------------------------------------------------------------------- devices and randomness


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


def index_batches(order: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive slices of ``order`` of at most ``batch_size`` entries."""
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


# --------------------------------------------------------------------------- inputs


def item_vectors_tensor(item_vectors: np.ndarray, n_items: int, device: torch.device) -> torch.Tensor:
    """The item vectors as a float32 tensor on ``device``; checks one finite row per item."""
    if item_vectors.ndim != 2 or item_vectors.shape[0] != n_items:
        raise ValueError(
            f"item_vectors must have one row per item ({n_items} rows, item_idx order); got shape {item_vectors.shape}"
        )
    if not np.isfinite(item_vectors).all():
        bad = np.flatnonzero(~np.isfinite(item_vectors).all(axis=1))
        raise ValueError(f"item_vectors hold NaN/inf in rows (item_idx) {bad[:10].tolist()}; re-encode those tracks")
    return torch.as_tensor(np.ascontiguousarray(item_vectors, dtype=np.float32)).to(device)


def mean_item_vectors(user_items: UserItems, item_vectors: torch.Tensor) -> torch.Tensor:
    """Unweighted mean of each user's item vectors, ``(n_users, dim)``; zeros for users without items.

    Summed in float64 over chunks of pairs, so no (pairs × dim) copy of the vectors is made.
    """
    vectors = item_vectors.detach().to("cpu", torch.float64)
    rows = torch.as_tensor(user_items.row_ids(), dtype=torch.int64)
    items = torch.as_tensor(user_items.indices, dtype=torch.int64)
    sums = torch.zeros(user_items.n_users, vectors.shape[1], dtype=torch.float64)
    chunk = max(1, (1 << 22) // max(1, vectors.shape[1]))
    for start in range(0, len(items), chunk):
        sums.index_add_(0, rows[start : start + chunk], vectors[items[start : start + chunk]])
    counts = torch.as_tensor(user_items.lengths(), dtype=torch.float64).clamp(min=1.0)
    return (sums / counts.unsqueeze(1)).float().to(item_vectors.device)


# --------------------------------------------------------------------------- the training loop


def adam(net: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam over the trainable parameters only (frozen tables are buffers or ``requires_grad=False``)."""
    return torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)


def plateau_scheduler(
    optimizer: torch.optim.Optimizer, enabled: bool
) -> torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """The authors' ReduceLROnPlateau on the validation loss (patience 5, factor 0.1), or ``None``."""
    if not enabled:
        return None
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", patience=PLATEAU_PATIENCE, factor=PLATEAU_FACTOR
    )


class BestCheckpoint:
    """Early stopping on a monitored loss, keeping a CPU copy of the best weights seen."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best_loss = math.inf
        self.best_epoch: int | None = None
        self.epochs_without_improvement = 0
        self._best_state: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, loss: float, net: nn.Module) -> bool:
        """Record ``loss`` of ``epoch`` (0-based); returns True when training should stop."""
        if loss < self.best_loss:
            self.best_loss, self.best_epoch = loss, epoch
            self.epochs_without_improvement = 0
            self._best_state = {key: value.detach().to("cpu", copy=True) for key, value in net.state_dict().items()}
        else:
            self.epochs_without_improvement += 1
        return self.epochs_without_improvement >= self.patience

    def restore(self, net: nn.Module) -> None:
        """Load the best weights back into ``net`` (no-op before the first update)."""
        if self._best_state is not None:
            net.load_state_dict(self._best_state)


@dataclass
class TrainingHistory:
    """Per-epoch curves of one training run, after the best checkpoint has been restored."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False


def train_with_early_stopping(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    train_epoch: Callable[[int], float],
    val_loss: Callable[[], float] | None,
    max_epochs: int,
    patience: int,
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None,
    label: str = "model",
) -> TrainingHistory:
    """Run up to ``max_epochs`` epochs, stop after ``patience`` epochs without a better monitored loss,
    and leave ``net`` holding the best epoch's weights.

    The monitored loss is ``val_loss()`` (computed in eval mode), or the train loss when there is no
    validation data (``val_loss is None``). The plateau scheduler, if any, steps on the same loss.
    """
    history = TrainingHistory()
    checkpoint = BestCheckpoint(patience)
    for epoch in range(max_epochs):
        net.train()
        train_value = float(train_epoch(epoch))
        history.train_loss.append(train_value)
        monitored = train_value
        if val_loss is not None:
            net.eval()
            with torch.no_grad():
                monitored = float(val_loss())
            history.val_loss.append(monitored)
        history.learning_rate.append(float(optimizer.param_groups[0]["lr"]))
        if not math.isfinite(monitored):
            raise FloatingPointError(f"{label}: loss became {monitored} in epoch {epoch}; lower the learning rate")
        logger.info(
            "%s epoch %d: train loss %.5f, %s %.5f", label, epoch, train_value,
            "val loss" if val_loss is not None else "monitored", monitored,
        )
        if scheduler is not None:
            scheduler.step(monitored)
        if checkpoint.update(epoch, monitored, net):
            history.stopped_early = True
            break
    checkpoint.restore(net)
    net.eval()
    history.best_epoch = checkpoint.best_epoch
    return history


def fit_report(history: TrainingHistory, params: dict[str, object], seconds: float) -> FitReport:
    """A :class:`FitReport` from a training run, with the loop's own facts added to ``params``."""
    return FitReport(
        train_loss=list(history.train_loss),
        val_loss=list(history.val_loss),
        best_epoch=history.best_epoch,
        seconds=seconds,
        params={
            **params,
            "epochs_run": len(history.train_loss),
            "stopped_early": history.stopped_early,
            "early_stopping_on": "val_loss" if history.val_loss else "train_loss",
            "learning_rate_per_epoch": list(history.learning_rate),
        },
    )


def training_params(
    config: Any, net: nn.Module, settings: ExperimentSettings, batch_size: int, lr: float, device: torch.device
) -> dict[str, object]:
    """The FitReport ``params`` both torch models share: their config dataclass, sizes and run choices."""
    return {
        **asdict(config),
        **parameter_counts(net),
        "batch_size": batch_size,
        "lr": lr,
        "plateau_scheduler": uses_plateau_scheduler(settings),
        "device": str(device),
        "seed": settings.seed,
    }


def uses_plateau_scheduler(settings: ExperimentSettings) -> bool:
    """Only the authors' code (``paper_code``) decays the learning rate on a validation plateau."""
    return settings.preset == "paper_code"


def parameter_counts(net: nn.Module) -> dict[str, int]:
    """Trainable and frozen (non-trainable parameters and buffers) element counts."""
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in net.parameters() if not p.requires_grad)
    frozen += sum(b.numel() for b in net.buffers())
    return {"trainable_params": int(trainable), "frozen_values": int(frozen)}


# --------------------------------------------------------------------------- files


def _digest(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def data_fingerprint(data: InteractionData, item_vectors: np.ndarray) -> dict[str, Any]:
    """What a saved model was fitted on: user ids and item vectors (shapes and short hashes).

    Stored beside the weights so that load refuses data whose user index or vectors differ.
    """
    vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
    return {
        "n_users": int(data.n_users),
        "n_items": int(data.n_items),
        "user_ids": _digest("\n".join(map(str, data.user_ids)).encode()),
        "item_vectors": f"{vectors.shape[0]}x{vectors.shape[1]}:{_digest(vectors.tobytes())}",
    }


def save_model(
    directory: Path, recommender: str, net: nn.Module, config: dict[str, Any], fingerprint: dict[str, Any]
) -> None:
    """Write ``net``'s state dict as safetensors plus a JSON manifest (config, data fingerprint), atomically.

    Non-persistent buffers (the frozen audio vectors) are not written: load takes them from the lake.
    """
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().to("cpu").contiguous() for key, value in net.state_dict().items()}
    manifest = {"recommender": recommender, "format": 1, "config": config, "fitted_on": fingerprint}
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp))
    with atomic_path(directory / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))


def load_model(
    directory: Path, recommender: str, data: InteractionData, item_vectors: np.ndarray
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Read what :func:`save_model` wrote: ``(state dict of CPU tensors, config, fingerprint)``.

    No pickle is involved. Raises :class:`ModelFileError` when the files belong to another recommender
    or were fitted on other users or item vectors than ``data`` / ``item_vectors``.
    """
    from safetensors.torch import load_file

    weights_path, manifest_path = directory / WEIGHTS_FILE, directory / CONFIG_FILE
    for path in (weights_path, manifest_path):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; re-materialize the model to write it")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("recommender") != recommender:
        raise ModelFileError(f"{manifest_path} holds a {manifest.get('recommender')!r} model, not {recommender!r}")
    fingerprint = data_fingerprint(data, item_vectors)
    for key, value in fingerprint.items():
        saved = manifest["fitted_on"].get(key)
        if saved != value:
            raise ModelFileError(
                f"Model in {directory} was fitted with {key}={saved!r} but is loaded with {value!r}; "
                "re-materialize the model for the current interactions and embeddings"
            )
    return load_file(str(weights_path), device="cpu"), manifest["config"], fingerprint


# --------------------------------------------------------------------------- recommending


def recommend_in_batches(
    users: np.ndarray,
    n: int,
    data: InteractionData,
    score_block: Callable[[np.ndarray], torch.Tensor],
    max_cells: int = 1 << 24,
    candidates: np.ndarray | None = None,
) -> TopN:
    """Top-``n`` per user from dense score blocks ``score_block(user_batch) -> (batch, n_items)``.

    Users are scored in batches of at most ``max_cells`` scores to bound memory; only ``candidates``
    (default: the train vocabulary) are ranked and each user's train items are excluded
    (:func:`exclude_and_top_n`).
    """
    users = np.asarray(users, dtype=np.int64)
    allowed = candidate_mask(data, candidates)
    batch = max(1, max_cells // max(1, data.n_items))
    parts: list[TopN] = []
    for start in range(0, len(users), batch):
        block_users = users[start : start + batch]
        scores = score_block(block_users).detach().to("cpu", torch.float32).numpy().copy()
        parts.append(exclude_and_top_n(scores, block_users, data, n, allowed))
    if not parts:
        return TopN(users=users, items=np.zeros((0, n), np.int64), scores=np.zeros((0, n), np.float32))
    return TopN(
        users=users,
        items=np.concatenate([p.items for p in parts]),
        scores=np.concatenate([p.scores for p in parts]),
    )


# --------------------------------------------------------------------------- the recommender shell

TorchRecommenderT = TypeVar("TorchRecommenderT", bound="TorchRecommender")


class TorchRecommender(Recommender):
    """What the torch recommenders share: the fitted net, save as safetensors, load without pickle.

    A subclass provides :meth:`build_net` (the one constructor used by both fit and load; its net
    carries a dataclass ``config``), ``fit`` and ``recommend``.
    """

    def __init__(self, settings: ExperimentSettings):
        super().__init__(settings)
        self.net: nn.Module | None = None
        self.data: InteractionData | None = None
        self._fingerprint: dict[str, Any] | None = None

    @classmethod
    @abstractmethod
    def build_net(cls, config: dict[str, Any], item_vectors: torch.Tensor) -> nn.Module:
        """An untrained net for the saved ``config`` (a dataclass dict) over ``item_vectors``."""

    def _remember(self, net: nn.Module, data: InteractionData, item_vectors: np.ndarray) -> None:
        net.eval()
        self.net, self.data = net, data
        self._fingerprint = data_fingerprint(data, item_vectors)

    def _fitted(self) -> tuple[Any, InteractionData]:
        if self.net is None or self.data is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() or load() first")
        return self.net, self.data

    def save(self, directory: Path) -> None:
        net, _ = self._fitted()
        save_model(directory, self.name, net, asdict(net.config), self._fingerprint or {})

    @classmethod
    def load(
        cls: type[TorchRecommenderT],
        directory: Path,
        settings: ExperimentSettings,
        data: InteractionData,
        item_vectors: np.ndarray,
    ) -> TorchRecommenderT:
        """Rebuild the saved net on ``settings.encode.device``; its architecture comes from the saved config."""
        state, config, fingerprint = load_model(directory, cls.name, data, item_vectors)
        device = resolve_device(settings.encode.device)
        net = cls.build_net(config, item_vectors_tensor(item_vectors, data.n_items, device))
        net.load_state_dict(state)
        net.eval()
        model = cls(settings)
        model.net, model.data, model._fingerprint = net, data, fingerprint
        return model
