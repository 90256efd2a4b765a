"""BERT4Rec's training loss, setting ``bert4rec.loss``: the study's full softmax, or gSASRec's gBCE.

What each is and what it measured: docs/recommenders.md, "Opt-in sampled loss for BERT4Rec".

gBCE (Petrov & Macdonald, RecSys 2023): with the positive's logit ``s+``, the logits ``s-`` of N =
``bert4rec.negatives`` sampled items, ``alpha = N / (n_vocab - 1)``, ``t = bert4rec.gbce_t`` and
``beta = alpha * (t * (1 - 1/alpha) + 1/alpha)``, the loss of a masked position is

    -[log(sigmoid(s+) ** beta) + sum_s- log(1 - sigmoid(s-))] = beta * softplus(-s+) + sum softplus(s-),

averaged over the masked positions (gSASRec's code also divides by ``N + 1``, a constant factor that Adam does
not see). ``t = 0`` is plain BCE with negative sampling (``beta = 1``), ``t = 1`` gives ``beta = alpha``.

The scores enter gBCE shifted by ``log(beta / N)``, where the loss of equal scores is stationary
(``beta sigmoid(-s) = N sigmoid(s)``), so an untrained net, whose logits are near 0, starts there; no ranking
changes. Without it the first steps lower every score at once; BERT4Rec's logits have no bias, so the item rows
move together, and a tied table of small learned ids (encoder ``none``) collapsed onto that direction and stalled
at chance (measured on the synthetic test catalogue).

Sampling: N items **per sequence**, uniformly with replacement from the train vocabulary, from a CPU generator of
their own stream (``STREAM_NEGATIVES``: a seed gives the same run on every device, and the shuffling and masking
are the same under both losses). A sequence's masked positions share its negatives; a drawn item equal to a
position's positive is left out of that position's sum. gSASRec draws per position; sharing per sequence makes the
negatives' logits one batched product over ``batch × N`` gathered rows, whereas per-position negatives gather
``n_masked × N`` rows (6 GB at Music4All-Onion size, 1024-d), measured about as slow as the full softmax
(bench/RESULTS.md, *BERT4Rec: a loss that does not score every item*). Only those logits are computed, never the
``(n_masked, n_vocab)`` matrix; paper_code's [PAD] and [MASK] rows take no part. Memory: ``batch_size × N × dim``
floats (134 MB at 128 × 256 × 1024).

Validation stays the full-softmax loss under both (``bert4rec_validation.py``): far fewer positions than an epoch
trains on, and one yardstick whichever loss trained the model.
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
