"""SASRec over audio item vectors: a causal (left-to-right) transformer predicts the next item at every position.

What it is, its settings, why no ``paper_code`` SASRec, and the demo's numbers: docs/recommenders.md, "SASRec".
Built from BERT4Rec's parts, not a copy of them: the guide's :class:`~.bert4rec_model.Bert4RecNet` with
:meth:`SasRecNet.encode` attending causally (position ``j`` sees items ``0..j``). It keeps BERT4Rec's post-norm
GELU layers, learned positions and embedding LayerNorm (the original SASRec is pre-norm with ReLU); no [MASK]
token is ever fed. Sequences are BERT4Rec's (:func:`~.bert4rec_sequences.history_tokens`), right-padded: that
needs no key-padding mask, as a causal position never sees the padding after it and padded positions are never
scored. Losses: ``bert4rec_loss.py``; validation: the guide BERT4Rec's (``bert4rec_validation.py``) scored at the
user's last train item instead of a [MASK].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from audiorec_assets.recommenders.base import TopN
from audiorec_assets.recommenders.bert4rec_loss import STREAM_NEGATIVES, TrainingLoss, training_loss
from audiorec_assets.recommenders.bert4rec_model import STREAM_TRAIN, Bert4RecConfig, Bert4RecNet
from audiorec_assets.recommenders.bert4rec_sequences import TrainSequences, history_tokens, recommend_at
from audiorec_assets.recommenders.bert4rec_validation import (NO_VALIDATION_PARAMS, ValidationLoss,
                                                              guide_validation_loss)
from audiorec_assets.recommenders.data import InteractionData, UserItems
from audiorec_assets.recommenders.runtime import make_generator
from audiorec_assets.recommenders.torch_base import TorchRecommender, TrainingPlan, TrainingSettings
from audiorec_assets.recommenders.training import index_batches
from audiorec_assets.settings import ExperimentSettings

PAPER_CODE_NOTE = "guide (the study's authors ran no SASRec: paper_code runs the guide's SASRec)"


def sasrec_config(settings: ExperimentSettings, n_items: int, audio_dim: int, n_vocab: int) -> Bert4RecConfig:
    """The guide BERT4Rec's architecture sized by ``settings.sasrec`` (``audio_dim`` 0: encoder ``none``)."""
    sas = settings.sasrec
    id_items = audio_dim == 0
    hidden = sas.id_dim if id_items else sas.hidden_dim
    if hidden % sas.heads:
        where = "sasrec.id_dim (encoder none)" if id_items else "sasrec.hidden_dim"
        raise ValueError(f"sasrec.heads={sas.heads} must divide {where} = {hidden}")
    return Bert4RecConfig(
        preset="guide", n_items=n_items, audio_dim=sas.id_dim if id_items else audio_dim, hidden_dim=hidden,
        layers=sas.layers, heads=sas.heads, ffn_dim=sas.ffn_dim, dropout=sas.dropout, max_len=sas.max_len,
        infer_len=sas.max_len, mask_prob=0.0, items_trainable=id_items, project=not id_items, n_vocab=n_vocab,
        id_items=id_items, special_rows_in_softmax=False,
    )


class SasRecNet(Bert4RecNet):
    """BERT4Rec's network with causal self-attention: the output at position ``j`` depends on items ``0..j``."""

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        future = torch.ones(length, length, dtype=torch.bool, device=tokens.device).triu(diagonal=1)
        return self.encoder(self.embed(tokens), mask=future, is_causal=True)


def last_item_tokens(train: UserItems, users: np.ndarray, config: Bert4RecConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Each user's last ``max_len`` train items (right-padded) and the position of the last one (0 when none)."""
    tokens, lengths = history_tokens(train, users, config.max_len, config.pad_token)
    return torch.as_tensor(tokens), torch.as_tensor(np.maximum(lengths - 1, 0))


def train_epoch(net: SasRecNet, optimizer: torch.optim.Optimizer, sequences: TrainSequences, batch_size: int,
                generator: torch.Generator, loss_fn: TrainingLoss) -> float:
    """One pass over the sequences in random order, every position predicting the next item; returns the mean
    loss per predicted item. Sequences hold at least two items."""
    device = next(net.parameters()).device
    total, count = 0.0, 0
    for batch in index_batches(torch.randperm(len(sequences.lengths), generator=generator), batch_size):
        lengths = sequences.lengths[batch]
        tokens = sequences.tokens[batch, : int(lengths.max())]
        inputs, following = tokens[:, :-1], tokens[:, 1:]
        scored = torch.arange(inputs.shape[1]).unsqueeze(0) < (lengths - 1).unsqueeze(1)
        targets = following[scored]
        loss = loss_fn(net, inputs.to(device), scored.to(device), targets.to(device))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        total += float(loss.detach()) * len(targets)
        count += len(targets)
    return total / max(count, 1)


class SasRecRecommender(TorchRecommender):
    """Scores at the last position of the user's recent train history."""

    name = "sasrec"
    autocast_safe = True  # as BERT4Rec: LayerNorm, softmax and the loss stay fp32 under autocast

    def __init__(self, settings: ExperimentSettings):
        # no paper_code SASRec exists (module docstring): every preset trains the guide's
        self.requested_preset = settings.preset
        super().__init__(settings.model_copy(update={"preset": "guide"}) if settings.preset != "guide" else settings)

    def training_settings(self) -> TrainingSettings:
        return self.settings.sasrec

    def make_config(self, data: InteractionData, audio_dim: int) -> Bert4RecConfig:
        return sasrec_config(self.settings, data.n_items, audio_dim, len(data.train_items))

    @classmethod
    def build_net(cls, config: dict[str, Any], item_vectors: torch.Tensor) -> SasRecNet:
        return SasRecNet(Bert4RecConfig(**config), item_vectors)

    def prepare_training(self, net: SasRecNet, optimizer: torch.optim.Optimizer, data: InteractionData) -> TrainingPlan:
        settings = self.settings
        net.vocab.copy_(torch.as_tensor(data.train_items, device=net.vocab.device))
        sequences = TrainSequences.from_train(data.train, net.config)
        keep = sequences.lengths >= 2
        if not keep.any():
            raise ValueError("sasrec needs users with at least 2 train items (a next item to predict); none has")
        sequences = TrainSequences(tokens=sequences.tokens[keep], lengths=sequences.lengths[keep])
        generator = make_generator(settings.seed, STREAM_TRAIN)
        loss_fn = training_loss(settings.sasrec, len(data.train_items), make_generator(settings.seed, STREAM_NEGATIVES),
                                section="sasrec")
        users = data.eval_users("val")
        params: dict[str, object] = {"n_sequences": len(sequences.lengths), **loss_fn.params()}
        if self.requested_preset != "guide":
            params["sasrec_preset"] = PAPER_CODE_NOTE
        val = ValidationLoss(
            guide_validation_loss(net, data, users, query_tokens=last_item_tokens), "guide", users,
            f"cross-entropy of each val item at the last of the last {net.config.max_len} train items; "
            f"mean per user, then over {len(users)} users") if len(users) else None
        params.update(val.params() if val is not None else NO_VALIDATION_PARAMS)
        return TrainingPlan(
            train_epoch=lambda _epoch: train_epoch(net, optimizer, sequences, settings.sasrec.batch_size, generator,
                                                   loss_fn),
            val_loss=val.compute if val is not None else None,
            params=params,
        )

    def recommend(self, users: np.ndarray, n: int, candidates: np.ndarray | None = None) -> TopN:
        net, data = self._fitted()
        return recommend_at(net, data, users, n, candidates, last_item_tokens)
