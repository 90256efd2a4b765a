"""BERT4Rec over audio item vectors: a bidirectional transformer predicts masked items of a user's history.

Token ids: items are ``0 .. n_items-1`` (their ``item_idx``), then ``PAD = n_items`` and
``MASK = n_items + 1``. A user's sequence is their distinct train items in first-listen order, the
last ``bert4rec.max_len`` (300) of them, right-padded; positions count from the sequence start.

Two presets (``settings.preset``, see SEED_NOTES.md):

``guide``
    The audio vectors are a frozen buffer. Input: a learned ``Linear(audio_dim → hidden_dim)`` of the
    item's audio vector; [MASK] is a learned vector in hidden space, padding is zero (padded keys are
    masked out of attention, so a learned pad vector would never receive a gradient). Output: a learned
    ``Linear(hidden_dim → audio_dim)`` of the hidden state, dotted with the *raw* frozen audio vectors:
    ``logits = out_proj(h) · audio_iᵀ`` ("project to the item embedding space, score against the frozen
    embeddings"). Masking probability 0.15, at least one masked position per sequence.

``paper_code``
    What the authors' code ran: the audio vectors *are* the input embedding table (hidden size = audio
    dimension, no projection) and are trained; a learned [MASK] row and a zero padding row; the output
    head is tied to the same table (``logits = h · e_iᵀ``). Masking probability 0.2, as the authors'
    code: a sequence may end up with no masked position at all (it then contributes nothing; a batch
    with no masked position is skipped). The softmax runs over the train-vocabulary items *and* the
    padding and [MASK] rows (both N(0, 0.02)), as the authors' tied embedding matrix does. Plateau
    scheduler.

Encoder ``none`` (item vectors of width 0): the item table is a learned id embedding of width
``bert4rec.id_dim`` (128, the authors' "random" run), N(0, 0.02), trained, tied to the output head;
no projections (plain BERT4Rec). Such a model cannot score tracks without train plays.

Candidates: training softmaxes over the train vocabulary only (``data.train_items``), so tracks
without train plays are never pushed down by training; they are scored at inference from their
audio (guide: frozen vectors; paper_code: their untrained audio rows).

Both: learned positions, embedding LayerNorm + dropout, ``bert4rec.layers`` post-norm encoder layers
(GELU, ``ffn_dim``, ``heads``, ``dropout``), every non-pad position masked independently (fresh each
epoch), full-softmax cross-entropy at masked positions only (hidden states of masked positions are
gathered first, so logits are ``(n_masked, n_items)``, never ``(batch, length, n_items)``). Adam,
batches of ``bert4rec.batch_size`` users. Inference: "last ``infer_len - 1`` train items + [MASK]";
scores are the logits at the [MASK].

Validation loss (monitored for early stopping and the scheduler) is preset-specific; which definition
a fit used is recorded in ``FitReport.params["val_loss"]`` (``"guide"``, ``"paper_code"``,
``"guide_fallback"`` or ``"none"``), with a sentence in ``params["val_loss_detail"]`` and the number of
users in ``params["val_loss_users"]``.

``guide``
    For every user with validation items, the inference sequence "last ``infer_len - 1`` train items +
    [MASK]" is encoded, and the loss is the cross-entropy of each of the user's validation items at that
    [MASK], averaged over the user's items and then over users (every user counts once, as in the
    metrics). No minimum number of validation items.

``paper_code``
    The authors' masked-LM loss on the validation split: only users with at least
    ``PAPER_VAL_MIN_ITEMS`` (10) validation items; each user's sequence is their validation items alone
    in first-listen order (the last ``max_len``), without train history -- the authors' code builds its
    validation dataset from the validation interactions only, exactly as the train dataset is built from
    the train interactions. Each position is masked independently with the preset's probability (0.2,
    no forced mask), and the loss is the mean cross-entropy over all masked positions (logits only at
    masked positions, as in training). Two deliberate differences from the authors' code: the mask is
    drawn *once* per fit from a seeded generator (stream ``STREAM_VAL_MASK``), so the loss of different
    epochs is computed on the same positions and is comparable (the authors redraw it every epoch); and
    the mean is taken over all masked positions (the authors average per-batch means). If no user has
    10 validation items (or the fixed mask happens to mask nothing), the ``guide`` definition is used
    instead and ``params["val_loss"]`` says ``"guide_fallback"``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audiorec_assets.recommenders import torch_utils as tu
from audiorec_assets.recommenders.base import FitReport, TopN
from audiorec_assets.recommenders.data import InteractionData, UserItems
from audiorec_assets.settings import ExperimentSettings

PRESET_MASK_PROB = {"guide": 0.15, "paper_code": 0.2}
# The guide forces one masked position into a sequence where the draw masked none; the authors' code does not.
PRESET_AT_LEAST_ONE_MASK = {"guide": True, "paper_code": False}
# paper_code's validation loss only uses users with at least this many validation items (authors' code).
PAPER_VAL_MIN_ITEMS = 10
BERT_INIT_STD = 0.02  # BERT's initializer range, for the new position and [MASK] vectors
LogitsAt = Literal["masked", "all"]

# Independent random streams of one fit (see tu.make_generator).
STREAM_TRAIN = 1
STREAM_VAL_MASK = 2  # paper_code's validation mask, drawn once per fit
# Users scored per forward pass when computing the validation loss or recommending (bounds memory).
SCORE_BATCH_CELLS = 1 << 24


@dataclass(frozen=True)
class Bert4RecConfig:
    """Architecture of one BERT4Rec; saved with the weights and enough to rebuild it."""

    preset: str
    n_items: int
    audio_dim: int
    hidden_dim: int
    layers: int
    heads: int
    ffn_dim: int
    dropout: float
    max_len: int
    infer_len: int
    mask_prob: float
    items_trainable: bool  # paper_code trains the audio table; guide keeps it frozen
    project: bool  # guide: Linear projections between the audio space and the hidden space
    n_vocab: int = 0  # train-vocabulary size: the items of the training softmax
    id_items: bool = False  # encoder none: the item table is learned ids
    special_rows_in_softmax: bool = False  # paper_code: [PAD] and [MASK] rows compete in the softmax

    @classmethod
    def from_settings(cls, settings: ExperimentSettings, n_items: int, audio_dim: int,
                      n_vocab: int | None = None) -> Bert4RecConfig:
        """``audio_dim`` 0 means encoder ``none``: learned item ids of width ``bert4rec.id_dim``.
        ``n_vocab``: the number of train-vocabulary items (default: every item)."""
        bert, preset = settings.bert4rec, settings.preset
        guide = preset == "guide"
        id_items = audio_dim == 0
        table_dim = bert.id_dim if id_items else audio_dim
        project = guide and not id_items
        hidden = bert.hidden_dim if project else table_dim
        if hidden % bert.heads:
            where = ("bert4rec.id_dim (encoder none)" if id_items else "bert4rec.hidden_dim" if guide
                     else "the audio dimension (paper_code uses it as hidden size)")
            raise ValueError(f"bert4rec.heads={bert.heads} must divide {where} = {hidden}")
        return cls(
            preset=preset,
            n_items=n_items,
            audio_dim=table_dim,
            hidden_dim=hidden,
            layers=bert.layers,
            heads=bert.heads,
            ffn_dim=bert.ffn_dim,
            dropout=bert.dropout,
            max_len=bert.max_len,
            infer_len=bert.infer_len,
            mask_prob=bert.mask_prob if bert.mask_prob is not None else PRESET_MASK_PROB[preset],
            items_trainable=id_items or not guide,
            project=project,
            n_vocab=n_items if n_vocab is None else n_vocab,
            id_items=id_items,
            special_rows_in_softmax=not guide,
        )

    @property
    def pad_token(self) -> int:
        return self.n_items

    @property
    def mask_token(self) -> int:
        return self.n_items + 1

    @property
    def n_positions(self) -> int:
        return max(self.max_len, self.infer_len)

    @property
    def at_least_one_mask(self) -> bool:
        """Whether masking forces one masked position into each sequence (guide) or not (paper_code)."""
        return PRESET_AT_LEAST_ONE_MASK[self.preset]


class Bert4RecNet(nn.Module):
    """Token embedding (audio table + [MASK] + positions), transformer encoder, item-scoring head."""

    def __init__(self, config: Bert4RecConfig, audio_vectors: torch.Tensor):
        super().__init__()
        self.config = config
        hidden = config.hidden_dim
        if config.id_items:
            ids = torch.randn(config.n_items, config.audio_dim) * BERT_INIT_STD
            self.item_table = nn.Parameter(ids.to(audio_vectors.device))
        elif config.items_trainable:
            self.item_table = nn.Parameter(audio_vectors.clone())
        else:
            # Not persistent: the frozen vectors live in the lake and are passed again at load.
            self.register_buffer("item_table", audio_vectors, persistent=False)
        self.in_proj: nn.Module = nn.Linear(config.audio_dim, hidden) if config.project else nn.Identity()
        self.out_proj: nn.Module = nn.Linear(hidden, config.audio_dim) if config.project else nn.Identity()
        self.mask_embedding = nn.Parameter(torch.randn(hidden) * BERT_INIT_STD)
        # the training softmax's items (sorted item_idx): every item until fit sets the train vocabulary
        self.register_buffer("vocab", torch.arange(config.n_vocab, dtype=torch.int64))
        if config.special_rows_in_softmax:
            self.pad_embedding = nn.Parameter(torch.randn(hidden) * BERT_INIT_STD)
        self.positions = nn.Embedding(config.n_positions, hidden)
        nn.init.normal_(self.positions.weight, std=BERT_INIT_STD)
        self.embedding_norm = nn.LayerNorm(hidden)
        self.embedding_dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=hidden,
            nhead=config.heads,
            dim_feedforward=config.ffn_dim,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=config.layers, enable_nested_tensor=False)
        self.to(audio_vectors.device)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Input vectors ``(batch, length, hidden)`` for token ids ``(batch, length)``."""
        config = self.config
        is_item = tokens < config.n_items
        # Project each distinct item of the batch once, not once per occurrence.
        distinct, inverse = torch.unique(torch.where(is_item, tokens, 0), return_inverse=True)
        vectors = self.in_proj(self.item_table[distinct])[inverse]
        vectors = torch.where(is_item.unsqueeze(-1), vectors, 0.0)
        vectors = torch.where((tokens == config.mask_token).unsqueeze(-1), self.mask_embedding, vectors)
        vectors = vectors + self.positions(torch.arange(tokens.shape[1], device=tokens.device))
        return self.embedding_dropout(self.embedding_norm(vectors))

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(batch, length, hidden)``; padded positions are ignored as attention keys."""
        return self.encoder(self.embed(tokens), src_key_padding_mask=tokens == self.config.pad_token)

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every item for hidden states ``(..., hidden)`` → ``(..., n_items)`` (for ranking)."""
        return self.out_proj(hidden) @ self.item_table.T

    def vocab_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The training softmax's logits ``(..., n_vocab [+ 2])``: the train-vocabulary items, then (paper_code)
        the [PAD] and [MASK] rows."""
        logits = self.out_proj(hidden) @ self.item_table[self.vocab].T
        if self.config.special_rows_in_softmax:
            special = torch.stack([self.pad_embedding, self.mask_embedding])
            logits = torch.cat([logits, hidden @ special.T], dim=-1)
        return logits

    def vocab_targets(self, items: torch.Tensor) -> torch.Tensor:
        """Class index of train-vocabulary ``items`` in :meth:`vocab_logits`; other items are an error."""
        position = torch.searchsorted(self.vocab, items).clamp(max=max(len(self.vocab) - 1, 0))
        if len(items) and not torch.equal(self.vocab[position], items):
            raise ValueError("a target item has no train plays: the warm splits hold train-vocabulary tracks only")
        return position

    def masked_lm_loss(
        self, tokens: torch.Tensor, masked: torch.Tensor, targets: torch.Tensor, logits_at: LogitsAt = "masked"
    ) -> torch.Tensor:
        """Mean cross-entropy of ``targets`` (item_idx of the train vocabulary) at the ``masked`` positions
        of ``tokens`` (already [MASK]ed), over the training softmax (:meth:`vocab_logits`)."""
        hidden = self.encode(tokens)
        gather = masked_position_logits if logits_at == "masked" else all_position_logits
        logits = gather(self, hidden, masked)
        return F.cross_entropy(logits, self.vocab_targets(targets))

    def mask_scores(self, tokens: torch.Tensor, mask_at: torch.Tensor) -> torch.Tensor:
        """Item scores ``(batch, n_items)`` at position ``mask_at[b]`` of each sequence."""
        hidden = self.encode(tokens)
        return self.item_logits(hidden[torch.arange(len(tokens), device=tokens.device), mask_at])


def masked_position_logits(net: Bert4RecNet, hidden: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Training logits ``(n_masked, n_vocab)`` computed only for masked positions (rows in row-major order)."""
    return net.vocab_logits(hidden[masked])


def all_position_logits(net: Bert4RecNet, hidden: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """The same logits computed at every position and gathered afterwards (the slow way; bench only)."""
    return net.vocab_logits(hidden)[masked]


# --------------------------------------------------------------------------- sequences and masking


def history_tokens(
    train: UserItems, users: np.ndarray, width: int, pad_token: int, reserve: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's last ``width - reserve`` train items, right-padded to ``width``: ``(tokens, lengths)``.

    ``reserve`` leaves room after the history (inference appends a [MASK] there).
    """
    users = np.asarray(users, dtype=np.int64)
    keep = np.minimum(train.lengths()[users], width - reserve)
    tokens = np.full((len(users), width), pad_token, dtype=np.int64)
    rows = np.repeat(np.arange(len(users)), keep)
    cols = np.arange(keep.sum()) - np.repeat(np.cumsum(keep) - keep, keep)
    sources = np.repeat(train.indptr[users + 1] - keep, keep) + cols
    tokens[rows, cols] = train.indices[sources]
    return tokens, keep


def sample_mask(
    lengths: torch.Tensor, width: int, prob: float, generator: torch.Generator, at_least_one: bool = True
) -> torch.Tensor:
    """Bernoulli(``prob``) mask over the first ``lengths[b]`` positions of each row.

    With ``at_least_one`` (guide), rows where no position was drawn get one uniformly chosen position
    (that draw is made for every row, so the random stream does not depend on the outcome). Without it
    (paper_code), such rows stay unmasked.
    """
    valid = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)
    masked = (torch.rand((len(lengths), width), generator=generator) < prob) & valid
    if not at_least_one:
        return masked
    fallback = (torch.rand(len(lengths), generator=generator) * lengths).long().clamp(max=width - 1)
    empty = ~masked.any(dim=1) & (lengths > 0)
    masked[empty.nonzero().squeeze(1), fallback[empty]] = True
    return masked


def inference_tokens(train: UserItems, users: np.ndarray, config: Bert4RecConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Last ``infer_len - 1`` train items + [MASK] per user (fixed width ``infer_len``) and the mask position."""
    tokens, lengths = history_tokens(train, users, config.infer_len, config.pad_token, reserve=1)
    tokens[np.arange(len(users)), lengths] = config.mask_token
    return torch.as_tensor(tokens), torch.as_tensor(lengths)


@dataclass(frozen=True)
class TrainSequences:
    """Training sequences of every user with train items: padded tokens and lengths (CPU)."""

    tokens: torch.Tensor  # (n_sequences, max_len) int64, right-padded with the pad token
    lengths: torch.Tensor  # (n_sequences,) int64, ≥ 1

    @classmethod
    def from_train(cls, train: UserItems, config: Bert4RecConfig) -> TrainSequences:
        users = np.flatnonzero(train.lengths() > 0)
        tokens, lengths = history_tokens(train, users, config.max_len, config.pad_token)
        return cls(tokens=torch.as_tensor(tokens), lengths=torch.as_tensor(lengths))


def train_epoch(
    net: Bert4RecNet,
    optimizer: torch.optim.Optimizer,
    sequences: TrainSequences,
    batch_size: int,
    generator: torch.Generator,
    logits_at: LogitsAt = "masked",
) -> float:
    """One pass over all sequences in random order with fresh masks; returns the mean loss per masked item."""
    config = net.config
    device = next(net.parameters()).device
    total, count = 0.0, 0
    order = torch.randperm(len(sequences.lengths), generator=generator)
    for batch in tu.index_batches(order, batch_size):
        lengths = sequences.lengths[batch]
        width = int(lengths.max())
        targets_full = sequences.tokens[batch, :width]
        masked = sample_mask(lengths, width, config.mask_prob, generator, at_least_one=config.at_least_one_mask)
        if not masked.any():
            continue  # paper_code only: nothing masked in this batch, so nothing to predict
        inputs = targets_full.masked_fill(masked, config.mask_token)
        targets = targets_full[masked]
        optimizer.zero_grad(set_to_none=True)
        loss = net.masked_lm_loss(inputs.to(device), masked.to(device), targets.to(device), logits_at=logits_at)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(targets)
        count += len(targets)
    return total / max(count, 1)


def _user_batches(users: np.ndarray, n_items: int) -> list[np.ndarray]:
    size = max(1, SCORE_BATCH_CELLS // max(1, n_items))
    return [users[start : start + size] for start in range(0, len(users), size)]


@dataclass(frozen=True)
class ValidationLoss:
    """The validation loss of one fit: the callable, which definition it is and the users it covers."""

    compute: Callable[[], float]
    definition: Literal["guide", "paper_code", "guide_fallback"]
    users: np.ndarray  # user indices the loss is computed over
    detail: str  # one sentence for FitReport.params["val_loss_detail"]

    def params(self) -> dict[str, object]:
        return {"val_loss": self.definition, "val_loss_detail": self.detail, "val_loss_users": len(self.users)}


@dataclass(frozen=True)
class _ValBatch:
    """Inference sequences of some validation users and their (row, item, weight) targets, on the device."""

    tokens: torch.Tensor
    mask_at: torch.Tensor
    rows: torch.Tensor
    items: torch.Tensor
    weights: torch.Tensor  # 1 / (the user's number of val items): each user counts once


def _val_batches(
    data: InteractionData, users: np.ndarray, config: Bert4RecConfig, device: torch.device
) -> list[_ValBatch]:
    batches = []
    for block in _user_batches(users, config.n_items):
        tokens, mask_at = inference_tokens(data.train, block, config)
        counts = data.val.lengths()[block]
        batches.append(
            _ValBatch(
                tokens=tokens.to(device),
                mask_at=mask_at.to(device),
                rows=torch.as_tensor(np.repeat(np.arange(len(block)), counts), device=device),
                items=torch.as_tensor(np.concatenate([data.val.items_of(u) for u in block]), device=device),
                weights=torch.as_tensor(np.repeat(1.0 / counts, counts), dtype=torch.float32, device=device),
            )
        )
    return batches


def guide_validation_loss(net: Bert4RecNet, data: InteractionData, users: np.ndarray) -> Callable[[], float]:
    """Guide definition: CE of each val item at a [MASK] after the train history, per user then over users."""
    batches = _val_batches(data, users, net.config, next(net.parameters()).device)

    def val_loss() -> float:
        total = 0.0
        for batch in batches:
            hidden = net.encode(batch.tokens)
            at_mask = hidden[torch.arange(len(batch.tokens), device=hidden.device), batch.mask_at]
            log_probs = F.log_softmax(net.vocab_logits(at_mask), dim=-1)
            total += float(-(log_probs[batch.rows, net.vocab_targets(batch.items)] * batch.weights).sum())
        return total / len(users)

    return val_loss


def paper_val_users(val: UserItems) -> np.ndarray:
    """Users whose validation items count in paper_code's validation loss (at least ``PAPER_VAL_MIN_ITEMS``)."""
    return np.flatnonzero(val.lengths() >= PAPER_VAL_MIN_ITEMS)


@dataclass(frozen=True)
class MaskedValBatch:
    """Masked validation sequences of some users (only rows with a masked position), on the device."""

    inputs: torch.Tensor  # (rows, width) tokens with the masked positions replaced by [MASK]
    masked: torch.Tensor  # (rows, width) bool
    targets: torch.Tensor  # (n_masked,) the true items at the masked positions, row-major


def paper_val_batches(
    val: UserItems, users: np.ndarray, config: Bert4RecConfig, generator: torch.Generator, device: torch.device
) -> list[MaskedValBatch]:
    """Each user's val items (the last ``max_len``), masked once with ``generator``, in memory-bounded batches.

    Rows where the mask hit no position are dropped (they contribute nothing to the loss); the list is
    empty when no position was masked at all.
    """
    if not len(users):
        return []
    width = int(min(config.max_len, val.lengths()[users].max()))
    tokens, lengths = history_tokens(val, users, width, config.pad_token)
    tokens, lengths = torch.as_tensor(tokens), torch.as_tensor(lengths)
    masked = sample_mask(lengths, width, config.mask_prob, generator, at_least_one=False)
    keep = masked.any(dim=1)
    tokens, lengths, masked = tokens[keep], lengths[keep], masked[keep]
    # Bound the logits (masked positions × items) and the encoder activations of one forward pass.
    max_masked = max(1, SCORE_BATCH_CELLS // config.n_items)
    max_rows = max(1, SCORE_BATCH_CELLS // (width * max(config.hidden_dim, config.ffn_dim)))
    batches = []
    for start, stop in _row_groups(masked.sum(dim=1).tolist(), max_masked, max_rows):
        cut = int(lengths[start:stop].max())
        block_tokens, block_masked = tokens[start:stop, :cut], masked[start:stop, :cut]
        batches.append(
            MaskedValBatch(
                inputs=block_tokens.masked_fill(block_masked, config.mask_token).to(device),
                masked=block_masked.to(device),
                targets=block_tokens[block_masked].to(device),
            )
        )
    return batches


def _row_groups(masked_per_row: list[int], max_masked: int, max_rows: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` row ranges of at most ``max_rows`` rows and ``max_masked`` masked
    positions each (a single row over the limit gets a range of its own)."""
    groups, start, in_group = [], 0, 0
    for row, count in enumerate(masked_per_row):
        if row > start and (in_group + count > max_masked or row - start >= max_rows):
            groups.append((start, row))
            start, in_group = row, 0
        in_group += count
    if start < len(masked_per_row):
        groups.append((start, len(masked_per_row)))
    return groups


def paper_code_validation_loss(net: Bert4RecNet, batches: list[MaskedValBatch]) -> Callable[[], float]:
    """paper_code definition: mean cross-entropy over all masked positions of the fixed-masked batches."""
    n_masked = sum(len(batch.targets) for batch in batches)

    def val_loss() -> float:
        total = 0.0
        for batch in batches:
            total += float(net.masked_lm_loss(batch.inputs, batch.masked, batch.targets)) * len(batch.targets)
        return total / n_masked

    return val_loss


def validation_loss(net: Bert4RecNet, data: InteractionData, seed: int) -> ValidationLoss | None:
    """The validation loss of the net's preset (see module docstring); ``None`` when no user has val items."""
    config = net.config
    guide_users = data.eval_users("val")
    if not len(guide_users):
        return None
    guide_detail = (
        f"cross-entropy of each val item at a [MASK] after the last {config.infer_len - 1} train items; "
        f"mean per user, then over {len(guide_users)} users"
    )
    if config.preset == "guide":
        return ValidationLoss(guide_validation_loss(net, data, guide_users), "guide", guide_users, guide_detail)
    users = paper_val_users(data.val)
    generator = tu.make_generator(seed, STREAM_VAL_MASK)
    batches = paper_val_batches(data.val, users, config, generator, next(net.parameters()).device)
    if not batches:
        reason = (
            f"no user has >= {PAPER_VAL_MIN_ITEMS} val items" if not len(users)
            else f"the fixed mask (p={config.mask_prob}) masked no val position of the {len(users)} users "
            f"with >= {PAPER_VAL_MIN_ITEMS} val items"
        )
        detail = f"paper_code masked-LM val loss impossible ({reason}); guide definition instead: {guide_detail}"
        return ValidationLoss(guide_validation_loss(net, data, guide_users), "guide_fallback", guide_users, detail)
    n_masked = sum(len(batch.targets) for batch in batches)
    detail = (
        f"masked-LM on the val items (no train history) of {len(users)} users with >= {PAPER_VAL_MIN_ITEMS} "
        f"val items; positions masked with p={config.mask_prob} once per fit (seeded); mean cross-entropy "
        f"over {n_masked} masked positions"
    )
    return ValidationLoss(paper_code_validation_loss(net, batches), "paper_code", users, detail)


class Bert4RecRecommender(tu.TorchRecommender):
    """Scores at a [MASK] appended to the user's recent train history."""

    name = "bert4rec"

    @classmethod
    def build_net(cls, config: dict[str, Any], item_vectors: torch.Tensor) -> Bert4RecNet:
        return Bert4RecNet(Bert4RecConfig(**config), item_vectors)

    def fit(self, data: InteractionData, item_vectors: np.ndarray) -> FitReport:
        started = time.perf_counter()
        settings, bert = self.settings, self.settings.bert4rec
        device = tu.resolve_device(settings.encode.device)
        audio = tu.item_vectors_tensor(item_vectors, data.n_items, device)
        config = Bert4RecConfig.from_settings(settings, data.n_items, audio.shape[1], len(data.train_items))
        with tu.seeded(settings.seed, device):
            net = self.build_net(asdict(config), audio)
            net.vocab.copy_(torch.as_tensor(data.train_items, device=device))
            optimizer = tu.adam(net, bert.lr)
            sequences = TrainSequences.from_train(data.train, config)
            # Shuffling and masking share one stream: both are drawn in a fixed order per batch.
            generator = tu.make_generator(settings.seed, STREAM_TRAIN)
            val = validation_loss(net, data, settings.seed)
            history = tu.train_with_early_stopping(
                net,
                optimizer,
                train_epoch=lambda _epoch: train_epoch(net, optimizer, sequences, bert.batch_size, generator),
                val_loss=val.compute if val is not None else None,
                max_epochs=bert.max_epochs,
                patience=bert.patience,
                scheduler=tu.plateau_scheduler(optimizer, enabled=tu.uses_plateau_scheduler(settings)),
                label=f"bert4rec[{settings.preset}]",
            )
        self._remember(net, data, item_vectors)
        params = tu.training_params(config, net, settings, bert.batch_size, bert.lr, device)
        params["n_sequences"] = len(sequences.lengths)
        params.update(
            val.params() if val is not None
            else {"val_loss": "none", "val_loss_detail": "no user has val items; early stopping on the train loss",
                  "val_loss_users": 0}
        )
        return tu.fit_report(history, params, time.perf_counter() - started)

    @property
    def scores_unseen_items(self) -> bool:
        """Audio items can be scored without train plays; learned ids cannot."""
        net, _ = self._fitted()
        return not net.config.id_items

    def recommend(self, users: np.ndarray, n: int, candidates: np.ndarray | None = None) -> TopN:
        net, data = self._fitted()
        device = next(net.parameters()).device

        def score_block(block: np.ndarray) -> torch.Tensor:
            tokens, mask_at = inference_tokens(data.train, block, net.config)
            return net.mask_scores(tokens.to(device), mask_at.to(device))

        with torch.no_grad():
            return tu.recommend_in_batches(users, n, data, score_block, max_cells=SCORE_BATCH_CELLS,
                                           candidates=candidates)
