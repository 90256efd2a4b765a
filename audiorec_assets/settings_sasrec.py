"""The settings the two sequence models share (``SequenceSettings``) and the ``sasrec:`` section of ``experiment.yaml``
(kept apart from ``settings.py``, which imports both; ``bert4rec:`` adds its masking there).

Their values, and why SASRec's ``max_len`` is 50, not BERT4Rec's 300: docs/recommenders.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SequenceSettings(BaseModel):
    """A transformer over a user's train sequence (BERT4Rec, SASRec): its shape, training and loss."""

    model_config = ConfigDict(extra="forbid")

    hidden_dim: int = Field(256, ge=8)  # audio encoders: the Linear projection's width (BERT4Rec: guide only)
    layers: int = Field(2, ge=1)
    heads: int = Field(2, ge=1)
    ffn_dim: int = Field(256, ge=8)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    batch_size: int = Field(128, ge=1)
    max_epochs: int = Field(100, ge=1)
    patience: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    id_dim: int = Field(128, ge=8)  # encoder `none`: width of the learned item-id embeddings (= hidden size)
    # The training loss: softmax (the study) or gSASRec's sampled gbce (recommenders/bert4rec_loss.py).
    loss: Literal["softmax", "gbce"] = "softmax"
    negatives: int = Field(256, ge=1)  # gbce only; must stay below the train vocabulary size (checked at fit)
    gbce_t: float = Field(0.75, ge=0.0, le=1.0)  # gbce only; gSASRec's default


class SasRecSettings(SequenceSettings):
    max_len: int = Field(50, ge=2)  # the last max_len train items: training window and inference window
