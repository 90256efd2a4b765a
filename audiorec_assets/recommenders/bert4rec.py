"""BERT4Rec over audio item vectors: a bidirectional transformer predicts masked items of a user's history.

Presets, sequences, masking, the gBCE option and the validation loss: docs/recommenders.md.

Token ids: items are ``0 .. n_items-1`` (their ``item_idx``), then ``PAD = n_items`` and ``MASK = n_items + 1``.
guide: padding is zero, not learned (padded keys are masked out of attention, so a learned pad vector would never
receive a gradient); output ``logits = out_proj(h) · audio_iᵀ`` against the *raw* frozen vectors. paper_code: a
sequence may end up with no masked position (it then contributes nothing; a batch with none is skipped); the
encoder is set up as Hugging Face's ``BertModel`` (``Bert4RecConfig.hf_bert``). Hidden states of masked positions
are gathered before scoring, so logits are ``(n_masked, n_items)``, never ``(batch, length, n_items)``.

``FitReport.params`` record ``loss`` (and gBCE's ``negatives``, ``gbce_t``, ``gbce_beta``, ``gbce_logit_offset``,
``negative_sampling``); the reported train loss is the loss trained on. The loss is not part of the saved config
(it does not change the architecture); a changed ``bert4rec.loss`` makes the cells stale through the settings
fingerprint of the ``bert4rec`` section.

The network is ``bert4rec_model.py``, its inputs and training epoch ``bert4rec_sequences.py``, the
training losses ``bert4rec_loss.py``, the preset-specific validation loss ``bert4rec_validation.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from audiorec_assets.recommenders.base import TopN
from audiorec_assets.recommenders.bert4rec_loss import STREAM_NEGATIVES, training_loss
from audiorec_assets.recommenders.bert4rec_model import STREAM_TRAIN, Bert4RecConfig, Bert4RecNet
from audiorec_assets.recommenders.bert4rec_sequences import TrainSequences, inference_tokens, recommend_at, train_epoch
from audiorec_assets.recommenders.bert4rec_validation import NO_VALIDATION_PARAMS, validation_loss
from audiorec_assets.recommenders.data import InteractionData
from audiorec_assets.recommenders.runtime import make_generator
from audiorec_assets.recommenders.torch_base import TorchRecommender, TrainingPlan, TrainingSettings


class Bert4RecRecommender(TorchRecommender):
    """Scores at a [MASK] appended to the user's recent train history."""

    name = "bert4rec"
    autocast_safe = True  # a transformer: LayerNorm, softmax and the loss stay fp32 under autocast

    def training_settings(self) -> TrainingSettings:
        return self.settings.bert4rec

    def make_config(self, data: InteractionData, audio_dim: int) -> Bert4RecConfig:
        return Bert4RecConfig.from_settings(self.settings, data.n_items, audio_dim, len(data.train_items))

    @classmethod
    def build_net(cls, config: dict[str, Any], item_vectors: torch.Tensor) -> Bert4RecNet:
        return Bert4RecNet(Bert4RecConfig(**config), item_vectors)

    def prepare_training(self, net: Bert4RecNet, optimizer: torch.optim.Optimizer,
                         data: InteractionData) -> TrainingPlan:
        seed, batch_size = self.settings.seed, self.settings.bert4rec.batch_size
        by_length = self.settings.bert4rec.length_batches
        net.vocab.copy_(torch.as_tensor(data.train_items, device=net.vocab.device))
        sequences = TrainSequences.from_train(data.train, net.config)
        # Shuffling and masking share one stream: both are drawn in a fixed order per batch.
        generator = make_generator(seed, STREAM_TRAIN)
        loss_fn = training_loss(self.settings.bert4rec, len(data.train_items), make_generator(seed, STREAM_NEGATIVES))
        val = validation_loss(net, data, seed)
        return TrainingPlan(
            train_epoch=lambda _epoch: train_epoch(net, optimizer, sequences, batch_size, generator, loss_fn=loss_fn,
                                                   by_length=by_length),
            val_loss=val.compute if val is not None else None,
            params={"n_sequences": len(sequences.lengths), "length_batches": by_length, **loss_fn.params(),
                    **(val.params() if val is not None else NO_VALIDATION_PARAMS)},
        )

    def recommend(self, users: np.ndarray, n: int, candidates: np.ndarray | None = None) -> TopN:
        net, data = self._fitted()
        return recommend_at(net, data, users, n, candidates, inference_tokens)
