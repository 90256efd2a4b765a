"""SASRec over audio item vectors: a causal (left-to-right) transformer predicts the next item at every position.

Kang & McAuley's SASRec, trained as Klenitskiy & Vasilev (RecSys 2023) found best: full-softmax cross-entropy
over the items at every position, which beats BERT4Rec in a third of its training time; gSASRec's sampled gBCE
(Petrov & Macdonald, RecSys 2023) is the opt-in cheaper loss. Built from BERT4Rec's parts, not a copy of them:

* the network is :class:`~.bert4rec_model.Bert4RecNet` set up as the guide's BERT4Rec (frozen audio vectors,
  a learned ``Linear(audio_dim → sasrec.hidden_dim)`` in, a ``Linear`` back out, logits against the raw frozen
  vectors; under encoder ``none`` learned ids of width ``sasrec.id_dim``, N(0, 0.02), tied to the head), with
  one change: :meth:`SasRecNet.encode` attends causally, so position ``j`` sees items ``0..j`` only. The encoder
  keeps BERT4Rec's post-norm GELU layers, learned positions and embedding LayerNorm (the original SASRec is
  pre-norm with ReLU); no [MASK] token is ever fed;
* sequences are BERT4Rec's (:func:`~.bert4rec_sequences.history_tokens`): a user's distinct train items in
  first-listen order, the last ``sasrec.max_len``, right-padded. Right padding needs no key-padding mask: a
  causal position never sees the padding after it, and padded positions are never scored;
* the losses are BERT4Rec's (``bert4rec_loss.py``, setting ``sasrec.loss``): ``softmax`` (default) is the
  cross-entropy over the train vocabulary of item ``j + 1`` at every position ``j`` of the sequence; ``gbce``
  scores each position's next item against ``sasrec.negatives`` items drawn per sequence (shared by its
  positions, a position's own positive never its negative), calibrated by ``sasrec.gbce_t``;
* the validation loss is the guide BERT4Rec's definition (``bert4rec_validation.py``) scored at the user's last
  train item instead of a [MASK]: the cross-entropy of each val item there, per user, then over users;
* recommend: the scores at the last position of the user's last ``max_len`` train items, train history
  excluded (:func:`~.torch_base.recommend_in_batches`). Audio cells score tracks without train plays from
  their frozen vectors (``test_cold``); id cells cannot.

Presets: the authors of the study did not run SASRec, so there is no ``paper_code`` SASRec. Under
``preset: paper_code`` this model runs the guide's SASRec unchanged (same settings, no plateau scheduler) and
records ``params.sasrec_preset`` saying so; the other recommenders of such a run still follow the authors' code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from audiorec_assets.recommenders.base import TopN
from audiorec_assets.recommenders.bert4rec_loss import STREAM_NEGATIVES, TrainingLoss, training_loss
from audiorec_assets.recommenders.bert4rec_model import SCORE_BATCH_CELLS, STREAM_TRAIN, Bert4RecConfig, Bert4RecNet
from audiorec_assets.recommenders.bert4rec_sequences import TrainSequences, history_tokens
from audiorec_assets.recommenders.bert4rec_validation import (NO_VALIDATION_PARAMS, ValidationLoss,
                                                              guide_validation_loss)
from audiorec_assets.recommenders.data import InteractionData, UserItems
from audiorec_assets.recommenders.runtime import make_generator
from audiorec_assets.recommenders.torch_base import (
    TorchRecommender,
    TrainingPlan,
    TrainingSettings,
    recommend_in_batches,
)
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
        device = next(net.parameters()).device

        def score_block(block: np.ndarray) -> torch.Tensor:
            tokens, last = last_item_tokens(data.train, block, net.config)
            return net.mask_scores(tokens.to(device), last.to(device))

        with torch.no_grad():
            return recommend_in_batches(users, n, data, score_block, max_cells=SCORE_BATCH_CELLS,
                                        candidates=candidates)
