"""The last details of the authors' procedure that ``preset: paper_code`` matches (issue 18, item 2), and that
the guide preset is left as it was: the zero [PAD] row and Hugging Face BERT's token type, initialisation and
layer norms in BERT4Rec, the Shallow net's validation negatives redrawn every epoch, and the versions that make
only paper_code cells stale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from audiorec_assets.recommenders import bert4rec_model as b4m
from audiorec_assets.recommenders import shallow
from audiorec_assets.recommenders.shallow import ShallowRecommender
from audiorec_assets_tests import test_bert4rec as bert_tests
from audiorec_assets_tests import test_shallow as shallow_tests

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def bert_net(preset: str, audio_dim: int = bert_tests.DIM, **bert: object) -> b4m.Bert4RecNet:
    config = b4m.Bert4RecConfig.from_settings(bert_tests.settings_for(preset, **bert), 30, audio_dim)
    torch.manual_seed(0)
    vectors = torch.randn(30, audio_dim) if audio_dim else torch.zeros(30, 0)
    return b4m.Bert4RecNet(config, vectors).eval()


# --------------------------------------------------------------------------- (a) the [PAD] row


@pytest.mark.parametrize("audio_dim", [bert_tests.DIM, 0])
def test_paper_code_pad_row_starts_at_zero_and_mask_row_is_bert_normal(audio_dim):
    net = bert_net("paper_code", audio_dim)
    assert torch.count_nonzero(net.pad_embedding) == 0 and net.pad_embedding.requires_grad
    assert 0.005 < net.mask_embedding.std().item() < 0.05
    # the [PAD] row is a softmax class: it starts at logit 0 and then trains through the tied head
    logits = net.vocab_logits(torch.randn(3, net.config.hidden_dim))
    assert torch.count_nonzero(logits[:, -2]) == 0


def test_guide_has_no_pad_row():
    net = bert_net("guide")
    assert not hasattr(net, "pad_embedding")
    assert net.vocab_logits(torch.randn(3, net.config.hidden_dim)).shape[-1] == net.config.n_vocab


# --------------------------------------------------------------------------- (c) Hugging Face's BertModel


def test_paper_code_has_hf_token_type_init_and_layer_norms():
    net = bert_net("paper_code")
    assert net.config.hf_bert and net.token_type.requires_grad
    assert 0.005 < net.token_type.std().item() < 0.05
    norms = [m for m in net.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 1 + 2 * net.config.layers and all(m.eps == 1e-12 for m in norms)
    for layer in net.encoder.layers:
        assert isinstance(layer.dropout, nn.Identity)  # BertIntermediate: no dropout inside the FFN
        weights = [layer.self_attn.in_proj_weight, layer.self_attn.out_proj.weight,
                   layer.linear1.weight, layer.linear2.weight]
        biases = [layer.self_attn.in_proj_bias, layer.self_attn.out_proj.bias, layer.linear1.bias, layer.linear2.bias]
        assert all(0.01 < w.std().item() < 0.03 and abs(w.mean().item()) < 0.01 for w in weights)
        assert all(torch.count_nonzero(b) == 0 for b in biases)


def test_guide_keeps_torch_defaults():
    net = bert_net("guide")
    assert not net.config.hf_bert and not hasattr(net, "token_type")
    assert all(m.eps == 1e-5 for m in net.modules() if isinstance(m, nn.LayerNorm))
    layer = net.encoder.layers[0]
    assert isinstance(layer.dropout, nn.Dropout)
    assert torch.count_nonzero(layer.linear1.bias) > 0  # torch's uniform init, not BERT's zero biases


def test_paper_code_encoder_is_hugging_face_bert():
    """With the same weights, Hugging Face's ``BertModel`` (the authors' encoder) fed the same input vectors gives
    the same hidden states at every real position (eval mode: no dropout)."""
    from transformers import BertConfig, BertModel

    net = bert_net("paper_code", dropout=0.1, ffn_dim=32)
    config = net.config
    bert = BertModel(BertConfig(vocab_size=2, hidden_size=config.hidden_dim, num_hidden_layers=config.layers,
                                num_attention_heads=config.heads, intermediate_size=config.ffn_dim,
                                max_position_embeddings=config.n_positions, hidden_act="gelu"),
                     add_pooling_layer=False).eval()
    with torch.no_grad():
        emb = bert.embeddings
        emb.position_embeddings.weight.copy_(net.positions.weight)
        emb.token_type_embeddings.weight[0].copy_(net.token_type)
        emb.LayerNorm.load_state_dict(net.embedding_norm.state_dict())
        for ours, theirs in zip(net.encoder.layers, bert.encoder.layer):
            attention = theirs.attention
            query, key, value = ours.self_attn.in_proj_weight.chunk(3)
            q_bias, k_bias, v_bias = ours.self_attn.in_proj_bias.chunk(3)
            for linear, weight, bias in ((attention.self.query, query, q_bias), (attention.self.key, key, k_bias),
                                         (attention.self.value, value, v_bias)):
                linear.weight.copy_(weight)
                linear.bias.copy_(bias)
            attention.output.dense.load_state_dict(ours.self_attn.out_proj.state_dict())
            attention.output.LayerNorm.load_state_dict(ours.norm1.state_dict())
            theirs.intermediate.dense.load_state_dict(ours.linear1.state_dict())
            theirs.output.dense.load_state_dict(ours.linear2.state_dict())
            theirs.output.LayerNorm.load_state_dict(ours.norm2.state_dict())
        assert bert.config.layer_norm_eps == 1e-12
        tokens = torch.tensor([[3, 7, config.mask_token, 1, config.pad_token, config.pad_token],
                               [5, config.mask_token, 2, 9, 11, 4]])
        real = tokens != config.pad_token
        # the authors' input table: items, then [MASK], then [PAD] (zero at initialisation)
        table = torch.cat([net.item_table, net.mask_embedding[None], net.pad_embedding[None]])
        inputs = table[torch.where(tokens == config.mask_token, config.n_items, tokens)]
        theirs_out = bert(inputs_embeds=inputs, attention_mask=real.float()).last_hidden_state
        ours_out = net.encode(tokens)
    torch.testing.assert_close(ours_out[real], theirs_out[real], rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- (b) Shallow validation negatives


def recorded_val_negatives(preset: str, monkeypatch: pytest.MonkeyPatch, seed: int = 7) -> list[torch.Tensor]:
    """The negatives of every validation-loss evaluation of one fit."""
    seen: list[torch.Tensor] = []
    original = shallow._hinge_sum

    def recording(net, users, items, negatives, *, backward_scale):
        if backward_scale is None:
            seen.append(negatives.clone())
        return original(net, users, items, negatives, backward_scale=backward_scale)

    monkeypatch.setattr(shallow, "_hinge_sum", recording)
    data, vectors = shallow_tests.synthetic_data()
    settings = shallow_tests.settings_for(preset, max_epochs=4, patience=10).model_copy(update={"seed": seed})
    ShallowRecommender(settings).fit(data, vectors.copy())
    monkeypatch.setattr(shallow, "_hinge_sum", original)
    assert len(seen) == 4
    return seen


def test_paper_code_draws_fresh_validation_negatives_every_epoch_from_the_seed(monkeypatch):
    first = recorded_val_negatives("paper_code", monkeypatch)
    assert all(not torch.equal(a, b) for a, b in zip(first, first[1:]))
    again = recorded_val_negatives("paper_code", monkeypatch)
    assert all(torch.equal(a, b) for a, b in zip(first, again))  # reproducible from the seed
    other_seed = recorded_val_negatives("paper_code", monkeypatch, seed=8)
    assert not torch.equal(first[0], other_seed[0])
    assert all(int(n.max()) < shallow_tests.N_USERS for n in first)  # negative users


def test_guide_validation_negatives_are_drawn_once_per_fit(monkeypatch):
    seen = recorded_val_negatives("guide", monkeypatch)
    assert all(torch.equal(seen[0], later) for later in seen[1:])


# --------------------------------------------------------------------------- versions


def test_a_paper_code_revision_makes_only_paper_code_cells_stale():
    from audiorec_assets.defs.sources import model_settings_version
    from audiorec_assets.fingerprints import combine
    from audiorec_assets.settings import ExperimentSettings

    def unrevised(settings: ExperimentSettings, recommender: str) -> str:  # the formula before any revision
        own = (recommender,) if recommender in type(settings).model_fields else ()
        return combine(settings.fingerprint("preset", "seed", "seeds", *own), settings.encode.standardize)

    guide, paper = ExperimentSettings(preset="guide"), ExperimentSettings(preset="paper_code")
    for recommender in ("knn", "shallow", "bert4rec", "popularity", "als"):
        assert model_settings_version(guide, recommender) == unrevised(guide, recommender)
    for recommender in ("shallow", "bert4rec"):
        assert model_settings_version(paper, recommender) != unrevised(paper, recommender)
    assert model_settings_version(paper, "knn") == unrevised(paper, "knn")
    assert np.all([model_settings_version(paper, r) != model_settings_version(guide, r) for r in ("shallow", "knn")])
