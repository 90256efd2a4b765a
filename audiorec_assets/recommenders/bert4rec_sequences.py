"""BERT4Rec's inputs: users' item sequences as padded tokens, random masking, one training epoch, and scoring."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from audiorec_assets.recommenders.base import TopN
from audiorec_assets.recommenders.bert4rec_loss import SoftmaxLoss, TrainingLoss
from audiorec_assets.recommenders.bert4rec_model import SCORE_BATCH_CELLS, Bert4RecConfig, Bert4RecNet, LogitsAt
from audiorec_assets.recommenders.data import InteractionData, UserItems
from audiorec_assets.recommenders.torch_base import recommend_in_batches
from audiorec_assets.recommenders.training import index_batches

# Each user's tokens and the position scored: a [MASK] (BERT4Rec) or the last train item (SASRec).
QueryTokens = Callable[[UserItems, np.ndarray, Bert4RecConfig], tuple[torch.Tensor, torch.Tensor]]


def history_tokens(train: UserItems, users: np.ndarray, width: int, pad_token: int,
                   reserve: int = 0) -> tuple[np.ndarray, np.ndarray]:
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


def sample_mask(lengths: torch.Tensor, width: int, prob: float, generator: torch.Generator,
                at_least_one: bool = True) -> torch.Tensor:
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


def recommend_at(net: Bert4RecNet, data: InteractionData, users: np.ndarray, n: int, candidates: np.ndarray | None,
                 query_tokens: QueryTokens) -> TopN:
    """Top-``n`` of ``candidates`` by the item scores at the position ``query_tokens`` picks, train history excluded."""
    device = next(net.parameters()).device

    def score_block(block: np.ndarray) -> torch.Tensor:
        tokens, at = query_tokens(data.train, block, net.config)
        return net.mask_scores(tokens.to(device), at.to(device))

    with torch.no_grad():
        return recommend_in_batches(users, n, data, score_block, max_cells=SCORE_BATCH_CELLS, candidates=candidates)


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

    ``by_length`` (``bert4rec.length_batches``, docs/recommenders.md): the shuffled sequences are stably sorted by
    length (equal lengths stay in random order), cut into slices, and the slices' order shuffled; a random batch
    pads to ~100 positions on the demo for a mean of 45. Off, the draws from ``generator`` are exactly those of a
    plain shuffled pass.
    """
    order = torch.randperm(len(lengths), generator=generator)
    if not by_length:
        return list(index_batches(order, batch_size))
    order = order[torch.sort(lengths[order], stable=True).indices]
    batches = list(index_batches(order, batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def train_epoch(net: Bert4RecNet, optimizer: torch.optim.Optimizer, sequences: TrainSequences, batch_size: int,
                generator: torch.Generator, logits_at: LogitsAt = "masked", loss_fn: TrainingLoss | None = None,
                by_length: bool = False) -> float:
    """One pass over all sequences in random order with fresh masks; returns the mean loss per masked item.

    ``loss_fn``: the training loss (``bert4rec_loss.py``); ``None`` is the full softmax. It draws its own
    randomness (gBCE's negatives) from its own generator, so ``generator``'s order and masks do not depend on it.
    ``by_length``: batches of similar lengths (:func:`epoch_batches`).
    """
    config, device = net.config, next(net.parameters()).device
    loss_fn = SoftmaxLoss() if loss_fn is None else loss_fn
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
        loss = loss_fn(net, inputs, masked, targets, logits_at=logits_at)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # freed now, not at the next step: validation runs without them
        total += float(loss.detach()) * len(targets)
        count += len(targets)
    return total / max(count, 1)


