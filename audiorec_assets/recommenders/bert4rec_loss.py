"""BERT4Rec's training loss, setting ``bert4rec.loss``: the study's full softmax, or gSASRec's gBCE.

``softmax`` (default, the study)
    Cross-entropy over the whole training softmax at every masked position
    (:meth:`Bert4RecNet.masked_lm_loss`): ``n_masked × n_vocab`` logits per batch. At Music4All-Onion size
    (56 512 train tracks, 1024-d) that product is most of a run's time.

``gbce``
    The generalised binary cross-entropy of gSASRec (Petrov & Macdonald, RecSys 2023). At each masked
    position, the positive item's logit ``s+`` and the logits ``s-`` of ``bert4rec.negatives`` (N)
    sampled items. With the sampling rate ``alpha = N / (n_vocab - 1)`` and the calibration
    ``t = bert4rec.gbce_t``, ``beta = alpha * (t * (1 - 1/alpha) + 1/alpha)`` and the loss of a position is

        -[log(sigmoid(s+) ** beta) + sum_s- log(1 - sigmoid(s-))] = beta * softplus(-s+) + sum softplus(s-),

    averaged over the masked positions (summed over a position's negatives; gSASRec's code also divides by
    ``N + 1``, a constant factor that Adam does not see). ``t = 0`` is plain BCE with negative sampling
    (``beta = 1``), ``t = 1`` gives ``beta = alpha``.

    The scores enter gBCE shifted by one constant, ``s = logit + log(beta / N)``: the value at which the
    loss of equal scores is stationary (``beta sigmoid(-s) = N sigmoid(s)``), so an untrained net, whose
    logits are near 0, starts there. The shift changes no ranking and adds no parameter. Without it, the
    first steps spend the gradient on lowering every score at once; BERT4Rec's logits have no bias, so the
    item rows themselves move together, and with a tied table of small learned ids (encoder ``none``,
    N(0, 0.02)) the table collapsed onto that common direction and training stalled at chance (measured on
    the synthetic test catalogue; the full softmax is blind to such a shift and never has the problem).

    Sampling: N items **per sequence** (a row of the batch), uniformly with replacement from the train
    vocabulary, from a CPU generator of their own stream (``STREAM_NEGATIVES``: a seed gives the same run
    on every device, and the shuffling and masking of a seed are the same under both losses). The masked
    positions of a sequence share its N negatives; at each position, a drawn item equal to that position's
    positive is left out of its sum, so the positive is never its own negative and each position's
    negatives are uniform over the other ``n_vocab - 1`` items (N of them, less the rare draws of the
    positive: N / n_vocab per position on average). Other items of the user's history may be drawn, as in
    gSASRec. Where gSASRec
    draws N items for every position independently, sharing them within a sequence is what makes gBCE
    cheap on a CPU: the negatives' logits are one batched matrix product ``(positions of a sequence × dim)
    · (dim × N)`` over ``batch × N`` gathered rows, whereas independent negatives gather
    ``n_masked × N`` rows (6 GB at Music4All-Onion size, 1024-d), which measured about as slow as the full
    softmax's matrix product on this project's CPU (bench/RESULTS.md, *BERT4Rec: a loss that does not score
    every item*: forward 4.5–7.2 s against 6.7–7.5 s; per sequence 0.2–0.3 s).

    Only the logits needed are computed, never the ``(n_masked, n_vocab)`` matrix. They are those of the
    softmax without its special rows: guide ``out_proj(h) · audio_i``, paper_code and encoder ``none``
    ``h · e_i`` (the [PAD] and [MASK] rows that paper_code's softmax includes take no part). Memory: the
    gathered negatives are ``batch_size × N × dim`` floats (134 MB at 128 × 256 × 1024).

The validation loss that early stopping monitors stays the full-softmax cross-entropy
(``bert4rec_validation.py``) under both losses: it is a forward pass over far fewer positions than an
epoch trains on (guide: one [MASK] per validation user), so it does not dominate an epoch's time, and
it keeps one yardstick whichever loss trained the model. The train loss a fit reports is the loss it
trained with (gBCE values are not cross-entropies; compare the val loss).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from audiorec_assets.recommenders.bert4rec_model import Bert4RecNet, LogitsAt
from audiorec_assets.settings import Bert4RecSettings
from audiorec_assets.settings_sasrec import SasRecSettings

# The independent random stream of gBCE's negatives (streams 1 and 2: bert4rec_model.py).
STREAM_NEGATIVES = 3
NEGATIVE_SAMPLING = ("uniform with replacement over the train vocabulary, per sequence, shared by its masked "
                     "positions; a position's own positive is left out of its negatives")


class TrainingLoss(Protocol):
    """The loss of one training batch; ``params`` go into ``FitReport.params``."""

    def __call__(self, net: Bert4RecNet, inputs: torch.Tensor, masked: torch.Tensor, targets: torch.Tensor,
                 logits_at: LogitsAt = "masked") -> torch.Tensor: ...

    def params(self) -> dict[str, object]: ...


class SoftmaxLoss:
    """The study's loss: full-softmax cross-entropy at the masked positions (:meth:`Bert4RecNet.masked_lm_loss`)."""

    def __call__(self, net: Bert4RecNet, inputs: torch.Tensor, masked: torch.Tensor, targets: torch.Tensor,
                 logits_at: LogitsAt = "masked") -> torch.Tensor:
        return net.masked_lm_loss(inputs, masked, targets, logits_at=logits_at)

    def params(self) -> dict[str, object]:
        return {"loss": "softmax"}


def gbce_beta(negatives: int, n_vocab: int, t: float) -> float:
    """gSASRec's ``beta = alpha (t (1 - 1/alpha) + 1/alpha)`` with ``alpha = negatives / (n_vocab - 1)``."""
    alpha = negatives / (n_vocab - 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def sequence_logits(query: torch.Tensor, masked: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``(n_masked, N)``: each masked position's ``query`` row (row-major order of ``masked`` ``(batch, length)``)
    dotted with the ``N`` vectors of its own sequence, ``vectors`` ``(batch, N, dim)``, as one batched product."""
    rows = masked.nonzero()[:, 0]
    ranks = (masked.long().cumsum(dim=1) - 1)[masked]  # the position's place among its row's masked positions
    width = int(masked.sum(dim=1).max()) if len(rows) else 0
    padded = query.new_zeros(len(masked), width, query.shape[1]).index_put((rows, ranks), query)
    return torch.bmm(padded, vectors.transpose(1, 2))[rows, ranks]


def gbce(positive_logits: torch.Tensor, negative_logits: torch.Tensor, beta: float,
         keep: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over positions of ``beta * softplus(-s+) + sum softplus(s-)`` (the module docstring's gBCE); ``keep``
    ``(n_masked, N)`` says which negatives count (default: all)."""
    negative_terms = F.softplus(negative_logits)
    if keep is not None:
        negative_terms = negative_terms * keep
    return (beta * F.softplus(-positive_logits) + negative_terms.sum(dim=-1)).mean()


@dataclass
class GbceLoss:
    """gSASRec's gBCE over ``negatives`` items sampled per sequence (module docstring)."""

    negatives: int
    t: float
    beta: float
    generator: torch.Generator

    @property
    def offset(self) -> float:
        """The constant added to every logit: ``log(beta / negatives)`` (module docstring)."""
        return math.log(self.beta / self.negatives)

    def draw(self, n_sequences: int, n_vocab: int) -> torch.Tensor:
        """``(n_sequences, negatives)`` positions in the train vocabulary, uniform, with replacement (CPU)."""
        return torch.randint(n_vocab, (n_sequences, self.negatives), generator=self.generator)

    def __call__(self, net: Bert4RecNet, inputs: torch.Tensor, masked: torch.Tensor, targets: torch.Tensor,
                 logits_at: LogitsAt = "masked") -> torch.Tensor:
        if logits_at != "masked":
            raise ValueError("loss 'gbce' computes logits at masked positions only")
        query = net.out_proj(net.encode(inputs)[masked])  # (n_masked, table dim): the scoring space
        positives = net.vocab_targets(targets)  # positions in the train vocabulary
        drawn = self.draw(len(inputs), len(net.vocab)).to(positives.device)
        table = net.item_table
        positive_logits = (query * table[net.vocab[positives]]).sum(dim=-1)
        negative_logits = sequence_logits(query, masked, table[net.vocab[drawn]])
        keep = drawn[masked.nonzero()[:, 0]] != positives.unsqueeze(1)
        # in fp32 also under bf16 autocast (setting encode.precision), as the softmax's cross-entropy is
        return gbce(positive_logits.float() + self.offset, negative_logits.float() + self.offset, self.beta, keep)

    def params(self) -> dict[str, object]:
        return {"loss": "gbce", "negatives": self.negatives, "gbce_t": self.t, "gbce_beta": self.beta,
                "gbce_logit_offset": self.offset, "negative_sampling": NEGATIVE_SAMPLING}


def training_loss(settings: Bert4RecSettings | SasRecSettings, n_vocab: int, generator: torch.Generator,
                  section: str = "bert4rec") -> TrainingLoss:
    """The loss ``<section>.loss`` names for a train vocabulary of ``n_vocab`` items; raises ``ValueError``
    naming the setting when gBCE cannot be calibrated (``<section>.negatives`` above ``n_vocab - 1``).
    ``section``: the settings section read (``bert4rec``, or ``sasrec``, which trains with the same losses)."""
    if settings.loss == "softmax":
        return SoftmaxLoss()
    if n_vocab < 2:
        raise ValueError(f"{section}.loss 'gbce' needs at least 2 items with train plays to sample negatives from "
                         f"(the train vocabulary has {n_vocab}); use {section}.loss 'softmax'")
    if settings.negatives > n_vocab - 1:
        raise ValueError(f"{section}.negatives={settings.negatives} must be at most the train vocabulary size minus "
                         f"one ({n_vocab - 1}) with {section}.loss 'gbce'; lower it, or use {section}.loss 'softmax' "
                         f"(on so few items the full softmax is cheap)")
    return GbceLoss(negatives=settings.negatives, t=settings.gbce_t,
                    beta=gbce_beta(settings.negatives, n_vocab, settings.gbce_t), generator=generator)
