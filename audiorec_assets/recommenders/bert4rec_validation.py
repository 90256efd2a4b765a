"""BERT4Rec's validation loss, monitored for early stopping and the plateau scheduler.

Its definition per preset, and where paper_code's differs from the authors' code: docs/recommenders.md. Which
definition a fit used is recorded in ``FitReport.params["val_loss"]`` (``"guide"``, ``"paper_code"``,
``"guide_fallback"`` or ``"none"``), with a sentence in ``params["val_loss_detail"]`` and the number of users in
``params["val_loss_users"]``. paper_code's sequences are the val items alone, without train history: the authors'
code builds its validation dataset from the validation interactions only, as the train dataset from the train
ones. Its mask is drawn once per fit (stream ``STREAM_VAL_MASK``) so that epochs are compared on the same
positions; if it masks nothing, or no user has ``PAPER_VAL_MIN_ITEMS`` val items, the guide definition is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from audiorec_assets.recommenders.bert4rec_model import SCORE_BATCH_CELLS, STREAM_VAL_MASK, Bert4RecConfig, Bert4RecNet
from audiorec_assets.recommenders.bert4rec_sequences import QueryTokens, history_tokens, inference_tokens, sample_mask
from audiorec_assets.recommenders.data import InteractionData, UserItems
from audiorec_assets.recommenders.runtime import make_generator

# paper_code's validation loss only uses users with at least this many validation items (authors' code).
PAPER_VAL_MIN_ITEMS = 10


@dataclass(frozen=True)
class ValidationLoss:
    """The validation loss of one fit: the callable, which definition it is and the users it covers."""

    compute: Callable[[], float]
    definition: Literal["guide", "paper_code", "guide_fallback"]
    users: np.ndarray  # user indices the loss is computed over
    detail: str  # one sentence for FitReport.params["val_loss_detail"]

    def params(self) -> dict[str, object]:
        return {"val_loss": self.definition, "val_loss_detail": self.detail, "val_loss_users": len(self.users)}


# FitReport.params of a fit without validation users
NO_VALIDATION_PARAMS = {"val_loss": "none", "val_loss_users": 0,
                        "val_loss_detail": "no user has val items; early stopping on the train loss"}


@dataclass(frozen=True)
class _ValBatch:
    """Inference sequences of some validation users and their (row, item, weight) targets, on the device."""

    tokens: torch.Tensor
    mask_at: torch.Tensor
    rows: torch.Tensor
    items: torch.Tensor
    weights: torch.Tensor  # 1 / (the user's number of val items): each user counts once


def _val_batches(data: InteractionData, users: np.ndarray, config: Bert4RecConfig, device: torch.device,
                 query_tokens: QueryTokens = inference_tokens) -> list[_ValBatch]:
    batches, size = [], max(1, SCORE_BATCH_CELLS // max(1, config.n_items))
    for block in (users[start : start + size] for start in range(0, len(users), size)):
        tokens, mask_at = query_tokens(data.train, block, config)
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


def guide_validation_loss(net: Bert4RecNet, data: InteractionData, users: np.ndarray,
                          query_tokens: QueryTokens = inference_tokens) -> Callable[[], float]:
    """Guide definition: CE of each val item at a [MASK] after the train history, per user then over users.
    ``query_tokens``: each user's tokens and the position scored (SASRec: its last train item, no [MASK])."""
    batches = _val_batches(data, users, net.config, next(net.parameters()).device, query_tokens)

    def val_loss() -> float:
        total = 0.0
        for batch in batches:
            hidden = net.encode(batch.tokens)
            at_mask = hidden[torch.arange(len(batch.tokens), device=hidden.device), batch.mask_at]
            log_probs = F.log_softmax(net.vocab_logits(at_mask), dim=-1)
            total += float(-(log_probs[batch.rows, net.vocab_targets(batch.items)] * batch.weights).sum())
        return total / len(users)

    return val_loss


@dataclass(frozen=True)
class MaskedValBatch:
    """Masked validation sequences of some users (only rows with a masked position), on the device."""

    inputs: torch.Tensor  # (rows, width) tokens with the masked positions replaced by [MASK]
    masked: torch.Tensor  # (rows, width) bool
    targets: torch.Tensor  # (n_masked,) the true items at the masked positions, row-major


def paper_val_batches(val: UserItems, users: np.ndarray, config: Bert4RecConfig, generator: torch.Generator,
                      device: torch.device) -> list[MaskedValBatch]:
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
        total = 0.0  # a plain loop: Python 3.12's sum() of floats rounds differently
        for b in batches:
            total += float(net.masked_lm_loss(b.inputs, b.masked, b.targets)) * len(b.targets)
        return total / n_masked

    return val_loss


def validation_loss(net: Bert4RecNet, data: InteractionData, seed: int) -> ValidationLoss | None:
    """The validation loss of the net's preset (see module docstring); ``None`` when no user has val items."""
    config = net.config
    guide_users = data.eval_users("val")
    if not len(guide_users):
        return None
    guide_detail = (f"cross-entropy of each val item at a [MASK] after the last {config.infer_len - 1} train items; "
                    f"mean per user, then over {len(guide_users)} users")
    if config.preset == "guide":
        return ValidationLoss(guide_validation_loss(net, data, guide_users), "guide", guide_users, guide_detail)
    users = np.flatnonzero(data.val.lengths() >= PAPER_VAL_MIN_ITEMS)
    generator = make_generator(seed, STREAM_VAL_MASK)
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
    detail = (f"masked-LM on the val items (no train history) of {len(users)} users with >= {PAPER_VAL_MIN_ITEMS} "
              f"val items; positions masked with p={config.mask_prob} once per fit (seeded); mean cross-entropy "
              f"over {n_masked} masked positions")
    return ValidationLoss(paper_code_validation_loss(net, batches), "paper_code", users, detail)

