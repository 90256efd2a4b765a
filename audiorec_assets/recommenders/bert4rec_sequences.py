"""BERT4Rec's inputs: users' item sequences as padded tokens, random masking, and one training epoch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from audiorec_assets.recommenders.bert4rec_loss import TrainingLoss
from audiorec_assets.recommenders.bert4rec_model import Bert4RecConfig, Bert4RecNet, LogitsAt
from audiorec_assets.recommenders.data import UserItems
from audiorec_assets.recommenders.training import index_batches


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


def epoch_batches(lengths: torch.Tensor, batch_size: int, generator: torch.Generator,
                  by_length: bool = False) -> list[torch.Tensor]:
    """One epoch's batches of sequence indices: a random order cut into slices of ``batch_size``.

    ``by_length`` (``bert4rec.length_batches``): the shuffled sequences are sorted by length first (a stable sort:
    equal lengths stay in random order), cut into slices, and the slices' order shuffled. Each batch then pads to
    the longest of similar lengths instead of to the longest of a random draw (on the demo ~100 positions for a mean
    of 45), which is where a small model's time goes; every sequence is still seen once per epoch. Off, the draws
    from ``generator`` are exactly those of a plain shuffled pass.
    """
    order = torch.randperm(len(lengths), generator=generator)
    if not by_length:
        return list(index_batches(order, batch_size))
    order = order[torch.sort(lengths[order], stable=True).indices]
    batches = list(index_batches(order, batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def train_epoch(
    net: Bert4RecNet,
    optimizer: torch.optim.Optimizer,
    sequences: TrainSequences,
    batch_size: int,
    generator: torch.Generator,
    logits_at: LogitsAt = "masked",
    loss_fn: TrainingLoss | None = None,
    by_length: bool = False,
) -> float:
    """One pass over all sequences in random order with fresh masks; returns the mean loss per masked item.

    ``loss_fn``: the training loss (``bert4rec_loss.py``); ``None`` is the full softmax. It draws its own
    randomness (gBCE's negatives) from its own generator, so ``generator``'s order and masks do not depend on it.
    ``by_length``: batches of similar lengths (:func:`epoch_batches`).
    """
    config = net.config
    device = next(net.parameters()).device
    total, count = 0.0, 0
    for batch in epoch_batches(sequences.lengths, batch_size, generator, by_length):
        lengths = sequences.lengths[batch]
        width = int(lengths.max())
        targets_full = sequences.tokens[batch, :width]
        masked = sample_mask(lengths, width, config.mask_prob, generator, at_least_one=config.at_least_one_mask)
        if not masked.any():
            continue  # paper_code only: nothing masked in this batch, so nothing to predict
        inputs = targets_full.masked_fill(masked, config.mask_token)
        targets = targets_full[masked]
        inputs, masked, targets = inputs.to(device), masked.to(device), targets.to(device)
        if loss_fn is None:
            loss = net.masked_lm_loss(inputs, masked, targets, logits_at=logits_at)
        else:
            loss = loss_fn(net, inputs, masked, targets, logits_at=logits_at)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # freed now, not at the next step: validation runs without them
        total += float(loss.detach()) * len(targets)
        count += len(targets)
    return total / max(count, 1)


