"""The BERT4Rec network: its config (token ids, sizes, presets), embedding, encoder and item-scoring heads.

The presets: docs/recommenders.md and ``bert4rec.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from audiorec_assets.recommenders.torch_base import attach_item_table
from audiorec_assets.settings import ExperimentSettings

PRESET_MASK_PROB = {"guide": 0.15, "paper_code": 0.2}
BERT_INIT_STD = 0.02  # BERT's initializer range, for the new position and [MASK] vectors
HF_LAYER_NORM_EPS = 1e-12  # Hugging Face BertConfig's layer_norm_eps (paper_code)
TORCH_LAYER_NORM_EPS = 1e-5  # torch's default (guide)
LogitsAt = Literal["masked", "all"]

# Independent random streams of one fit (see runtime.make_generator).
STREAM_TRAIN = 1
STREAM_VAL_MASK = 2  # paper_code's validation mask, drawn once per fit
# Users scored per forward pass when computing the validation loss or recommending (bounds memory).
SCORE_BATCH_CELLS = 1 << 24


@dataclass(frozen=True)
class Bert4RecConfig:
    """Architecture of one BERT4Rec; saved with the weights and enough to rebuild it."""

    preset: str
    n_items: int
    audio_dim: int
    hidden_dim: int
    layers: int
    heads: int
    ffn_dim: int
    dropout: float
    max_len: int
    infer_len: int
    mask_prob: float
    items_trainable: bool  # paper_code trains the audio table; guide keeps it frozen
    project: bool  # guide: Linear projections between the audio space and the hidden space
    n_vocab: int = 0  # train-vocabulary size: the items of the training softmax
    id_items: bool = False  # encoder none: the item table is learned ids
    special_rows_in_softmax: bool = False  # paper_code: [PAD] and [MASK] rows compete in the softmax

    @classmethod
    def from_settings(cls, settings: ExperimentSettings, n_items: int, audio_dim: int,
                      n_vocab: int | None = None) -> Bert4RecConfig:
        """``audio_dim`` 0 means encoder ``none``: learned item ids of width ``bert4rec.id_dim``.
        ``n_vocab``: the number of train-vocabulary items (default: every item)."""
        bert, preset = settings.bert4rec, settings.preset
        guide = preset == "guide"
        id_items = audio_dim == 0
        table_dim = bert.id_dim if id_items else audio_dim
        project = guide and not id_items
        hidden = bert.hidden_dim if project else table_dim
        if hidden % bert.heads:
            where = ("bert4rec.id_dim (encoder none)" if id_items else "bert4rec.hidden_dim" if guide
                     else "the audio dimension (paper_code uses it as hidden size)")
            raise ValueError(f"bert4rec.heads={bert.heads} must divide {where} = {hidden}")
        return cls(
            preset=preset, n_items=n_items, audio_dim=table_dim, hidden_dim=hidden, layers=bert.layers,
            heads=bert.heads, ffn_dim=bert.ffn_dim, dropout=bert.dropout, max_len=bert.max_len,
            infer_len=bert.infer_len, n_vocab=n_items if n_vocab is None else n_vocab,
            mask_prob=bert.mask_prob if bert.mask_prob is not None else PRESET_MASK_PROB[preset],
            items_trainable=id_items or not guide, project=project, id_items=id_items,
            special_rows_in_softmax=not guide,
        )

    @property
    def pad_token(self) -> int:
        return self.n_items

    @property
    def mask_token(self) -> int:
        return self.n_items + 1

    @property
    def n_positions(self) -> int:
        return max(self.max_len, self.infer_len)

    @property
    def hf_bert(self) -> bool:
        """paper_code: the encoder is set up as Hugging Face's ``BertModel`` as the authors ran it
        (docs/recommenders.md); guide: ``torch.nn.TransformerEncoder`` with torch's defaults."""
        return self.preset == "paper_code"

    @property
    def at_least_one_mask(self) -> bool:
        """Whether masking forces one masked position into each sequence (guide) or not (paper_code, as the
        authors' code)."""
        return self.preset == "guide"


class Bert4RecNet(nn.Module):
    """Token embedding (audio table + [MASK] + positions), transformer encoder, item-scoring head."""

    def __init__(self, config: Bert4RecConfig, audio_vectors: torch.Tensor):
        super().__init__()
        self.config = config
        hidden = config.hidden_dim
        attach_item_table(self, config, audio_vectors)
        self.in_proj: nn.Module = nn.Linear(config.audio_dim, hidden) if config.project else nn.Identity()
        self.out_proj: nn.Module = nn.Linear(hidden, config.audio_dim) if config.project else nn.Identity()
        self.mask_embedding = nn.Parameter(torch.randn(hidden) * BERT_INIT_STD)
        # the training softmax's items (sorted item_idx): every item until fit sets the train vocabulary
        self.register_buffer("vocab", torch.arange(config.n_vocab, dtype=torch.int64))
        if config.special_rows_in_softmax:
            # the authors' padding row starts at zero (their bert4rec.py:40-41); only [MASK] is N(0, 0.02)
            self.pad_embedding = nn.Parameter(torch.zeros(hidden))
        self.positions = nn.Embedding(config.n_positions, hidden)
        nn.init.normal_(self.positions.weight, std=BERT_INIT_STD)
        hf = config.hf_bert
        if hf:  # Hugging Face's BertEmbeddings adds token type 0's learned vector at every position
            self.token_type = nn.Parameter(torch.randn(hidden) * BERT_INIT_STD)
        eps = HF_LAYER_NORM_EPS if hf else TORCH_LAYER_NORM_EPS
        self.embedding_norm = nn.LayerNorm(hidden, eps=eps)
        self.embedding_dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(d_model=hidden, nhead=config.heads, dim_feedforward=config.ffn_dim,
                                           dropout=config.dropout, activation="gelu", layer_norm_eps=eps,
                                           batch_first=True)
        if hf:  # BertIntermediate has no dropout between the feed-forward layers (BertOutput's one is dropout2)
            layer.dropout = nn.Identity()
        self.encoder = nn.TransformerEncoder(layer, num_layers=config.layers, enable_nested_tensor=False)
        if hf:
            hf_bert_init(self.encoder)
        self.to(audio_vectors.device)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Input vectors ``(batch, length, hidden)`` for token ids ``(batch, length)``."""
        config = self.config
        is_item = tokens < config.n_items
        # Project each distinct item of the batch once, not once per occurrence.
        distinct, inverse = torch.unique(torch.where(is_item, tokens, 0), return_inverse=True)
        vectors = self.in_proj(self.item_table[distinct])[inverse]
        vectors = torch.where(is_item.unsqueeze(-1), vectors, 0.0)
        vectors = torch.where((tokens == config.mask_token).unsqueeze(-1), self.mask_embedding, vectors)
        vectors = vectors + self.positions(torch.arange(tokens.shape[1], device=tokens.device))
        if self.config.hf_bert:
            vectors = vectors + self.token_type
        return self.embedding_dropout(self.embedding_norm(vectors))

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(batch, length, hidden)``; padded positions are ignored as attention keys."""
        return self.encoder(self.embed(tokens), src_key_padding_mask=tokens == self.config.pad_token)

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every item for hidden states ``(..., hidden)`` → ``(..., n_items)`` (for ranking)."""
        return self.out_proj(hidden) @ self.item_table.T

    def vocab_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The training softmax's logits ``(..., n_vocab [+ 2])``: the train-vocabulary items, then (paper_code)
        the [PAD] and [MASK] rows."""
        logits = self.out_proj(hidden) @ self.item_table[self.vocab].T
        if self.config.special_rows_in_softmax:
            special = torch.stack([self.pad_embedding, self.mask_embedding])
            logits = torch.cat([logits, hidden @ special.T], dim=-1)
        return logits

    def vocab_targets(self, items: torch.Tensor) -> torch.Tensor:
        """Class index of train-vocabulary ``items`` in :meth:`vocab_logits`; other items are an error."""
        position = torch.searchsorted(self.vocab, items).clamp(max=max(len(self.vocab) - 1, 0))
        if len(items) and not torch.equal(self.vocab[position], items):
            raise ValueError("a target item has no train plays: the warm splits hold train-vocabulary tracks only")
        return position

    def masked_lm_loss(
        self, tokens: torch.Tensor, masked: torch.Tensor, targets: torch.Tensor, logits_at: LogitsAt = "masked"
    ) -> torch.Tensor:
        """Mean cross-entropy of ``targets`` (item_idx of the train vocabulary) at the ``masked`` positions
        of ``tokens`` (already [MASK]ed), over the training softmax (:meth:`vocab_logits`)."""
        hidden = self.encode(tokens)
        gather = masked_position_logits if logits_at == "masked" else all_position_logits
        logits = gather(self, hidden, masked)
        return F.cross_entropy(logits, self.vocab_targets(targets))

    def mask_scores(self, tokens: torch.Tensor, mask_at: torch.Tensor) -> torch.Tensor:
        """Item scores ``(batch, n_items)`` at position ``mask_at[b]`` of each sequence."""
        hidden = self.encode(tokens)
        return self.item_logits(hidden[torch.arange(len(tokens), device=tokens.device), mask_at])


def masked_position_logits(net: Bert4RecNet, hidden: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Training logits ``(n_masked, n_vocab)`` computed only for masked positions (rows in row-major order)."""
    return net.vocab_logits(hidden[masked])


def all_position_logits(net: Bert4RecNet, hidden: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """The same logits computed at every position and gathered afterwards (the slow way; bench only)."""
    return net.vocab_logits(hidden)[masked]


@torch.no_grad()
def hf_bert_init(encoder: nn.Module) -> None:
    """Hugging Face BERT's ``_init_weights`` on a ``TransformerEncoder``: every Linear weight and the attention's
    packed query/key/value weight N(0, 0.02), every bias zero, LayerNorms weight 1 and bias 0."""
    for module in encoder.modules():
        if isinstance(module, nn.Linear):
            module.weight.normal_(0.0, BERT_INIT_STD)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.MultiheadAttention):
            module.in_proj_weight.normal_(0.0, BERT_INIT_STD)
            module.in_proj_bias.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
