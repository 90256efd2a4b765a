"""BERT4Rec over audio item vectors: a bidirectional transformer predicts masked items of a user's history.

Token ids: items are ``0 .. n_items-1`` (their ``item_idx``), then ``PAD = n_items`` and
``MASK = n_items + 1``. A user's sequence is their distinct train items in first-listen order, the
last ``bert4rec.max_len`` (300) of them, right-padded; positions count from the sequence start.

Two presets (``settings.preset``, see docs/recommenders.md):

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
    padding row (zero at initialisation) and the [MASK] row (N(0, 0.02)), as the authors' tied embedding
    matrix does. The encoder is set up as Hugging Face's ``BertModel`` (token-type vector, BERT's
    initialisation and LayerNorm eps: ``Bert4RecConfig.hf_bert``). Plateau scheduler.

Encoder ``none`` (item vectors of width 0): the item table is a learned id embedding of width
``bert4rec.id_dim`` (128, the authors' "random" run), N(0, 0.02), trained, tied to the output head;
no projections (plain BERT4Rec). Such a model cannot score tracks without train plays.

Candidates: training softmaxes over the train vocabulary only (``data.train_items``), so tracks
without train plays are never pushed down by training; they are scored at inference from their
audio (guide: frozen vectors; paper_code: their untrained audio rows).

Both: learned positions, embedding LayerNorm + dropout, ``bert4rec.layers`` post-norm encoder layers
(GELU, ``ffn_dim``, ``heads``, ``dropout``), every non-pad position masked independently (fresh each
epoch), full-softmax cross-entropy (the default loss, below) at masked positions only (hidden states
of masked positions are gathered first, so logits are ``(n_masked, n_items)``, never
``(batch, length, n_items)``). Adam,
batches of ``bert4rec.batch_size`` users, each padded to its longest sequence; ``bert4rec.length_batches: true``
(off by default, on in the demo) groups users of similar length into a batch (``bert4rec_sequences.epoch_batches``). Inference: "last ``infer_len - 1`` train items + [MASK]";
scores are the logits at the [MASK].

Training loss (opt-in, either preset and encoder ``none``; the study's full softmax is the default):

``bert4rec.loss``
    ``softmax`` (default): the cross-entropy above. ``gbce``: gSASRec's generalised BCE (Petrov &
    Macdonald, RecSys 2023) of each masked position's positive against ``negatives`` items drawn uniformly
    from the train vocabulary per sequence (shared by its masked positions; a position's own positive is
    never its negative); only those logits are computed (no ``n_items``-wide matrix), which is what makes
    it cheap at Music4All-Onion size. paper_code's [PAD] and [MASK] rows take no part in gBCE. The
    formula, the sampling and why per sequence: ``bert4rec_loss.py``.
``bert4rec.negatives``
    Negatives per sequence, i.e. per masked position (default 256, at least 1, at most the train
    vocabulary size minus one).
``bert4rec.gbce_t``
    gSASRec's calibration ``t`` in [0, 1] (default 0.75): ``beta = alpha (t (1 - 1/alpha) + 1/alpha)``,
    ``alpha = negatives / (n_vocab - 1)``; 0 = plain BCE, 1 = ``beta = alpha``.

The validation loss (early stopping, plateau scheduler) is the full-softmax one of the preset under
both losses. ``FitReport.params`` record ``loss`` (and, for gBCE, ``negatives``, ``gbce_t``,
``gbce_beta``, ``gbce_logit_offset``, ``negative_sampling``); the reported train loss is the loss trained on.
The loss is not part of the saved config (it does not change the architecture); a changed ``bert4rec.loss``
makes the cells stale through the settings fingerprint of the ``bert4rec`` section.

The network is ``bert4rec_model.py``, its inputs and training epoch ``bert4rec_sequences.py``, the
training losses ``bert4rec_loss.py``, the preset-specific validation loss ``bert4rec_validation.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from audiorec_assets.recommenders.base import TopN
from audiorec_assets.recommenders.bert4rec_loss import STREAM_NEGATIVES, training_loss
from audiorec_assets.recommenders.bert4rec_model import SCORE_BATCH_CELLS, STREAM_TRAIN, Bert4RecConfig, Bert4RecNet
from audiorec_assets.recommenders.bert4rec_sequences import TrainSequences, inference_tokens, train_epoch
from audiorec_assets.recommenders.bert4rec_validation import NO_VALIDATION_PARAMS, validation_loss
from audiorec_assets.recommenders.data import InteractionData
from audiorec_assets.recommenders.runtime import make_generator
from audiorec_assets.recommenders.torch_base import (
    TorchRecommender,
    TrainingPlan,
    TrainingSettings,
    recommend_in_batches,
)


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

    def prepare_training(
        self, net: Bert4RecNet, optimizer: torch.optim.Optimizer, data: InteractionData
    ) -> TrainingPlan:
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
        device = next(net.parameters()).device

        def score_block(block: np.ndarray) -> torch.Tensor:
            tokens, mask_at = inference_tokens(data.train, block, net.config)
            return net.mask_scores(tokens.to(device), mask_at.to(device))

        with torch.no_grad():
            return recommend_in_batches(users, n, data, score_block, max_cells=SCORE_BATCH_CELLS,
                                        candidates=candidates)
