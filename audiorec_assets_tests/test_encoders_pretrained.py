"""Pretrained encoders, offline: tiny randomly initialised models of the real classes, fakes for the rest.

* Music2Vec: a tiny ``Data2VecAudioModel`` snapshot loaded through the real loader.
* MERT: a tiny snapshot whose config.json ``auto_map`` points at hub-style code files
  (``configuration_MERT.py`` / ``modeling_MERT.py``, a HuBERT subclass as in MERT's
  repo) written here, proving the ``trust_remote_code`` + local-folder path.
* EnCodecMAE, JukeMIR, MusicFM: their packages are not installable offline, so the pure
  chunking / pooling functions run on fake models, the error paths on empty folders, and
  the JukeMIR / MusicFM load paths on fake packages.
"""

from __future__ import annotations

import json
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from audiorec_assets.encoders import make_audio_encoder
from audiorec_assets.encoders.base import EncoderContext, EncoderError, WeightsNotFoundError
from audiorec_assets.encoders.audio_input import conv_output_lengths, length_batches
from audiorec_assets.encoders.hf import fill_missing_config, load_hf_audio_model

TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16, 16),
    conv_kernel=(10, 3),
    conv_stride=(5, 2),
)


@pytest.fixture(autouse=True)
def offline_empty_hf_cache(tmp_path, monkeypatch):
    """No network, and an empty Hugging Face cache, so only the files a test writes exist."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HUGGINGFACE_HUB_CACHE", str(cache), raising=False)


def _waves(sr: int, seconds: tuple[float, ...], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(int(s * sr))).astype(np.float32) for s in seconds]


def _feature_extractor(sr: int):
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=sr, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )


# --------------------------------------------------------------------------- pure helpers


def test_length_batches_sorts_and_groups():
    lengths = [30, 10, 30, 20, 30, 10]
    assert length_batches(lengths, 2, same_length=False) == [[1, 5], [3, 0], [2, 4]]
    assert length_batches(lengths, 2, same_length=True) == [[1, 5], [3], [0, 2], [4]]
    assert sorted(i for b in length_batches(lengths, 4, True) for i in b) == list(range(6))
    assert length_batches([], 3, True) == []
    with pytest.raises(ValueError):
        length_batches([1], 0, True)


def test_conv_output_lengths_matches_formula():
    # wav2vec2's feature encoder: 400 samples → 1 frame, 20 ms hop at 16 kHz
    kernels, strides = (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)
    assert conv_output_lengths(np.array([400, 16000, 399]), kernels, strides).tolist() == [1, 49, 0]


# --------------------------------------------------------------------------- music2vec


def _music2vec_snapshot(folder: Path, with_preprocessor: bool = True) -> None:
    import torch
    from transformers import Data2VecAudioConfig, Data2VecAudioModel

    torch.manual_seed(0)
    config = Data2VecAudioConfig(**TINY, conv_pos_kernel_size=5, num_conv_pos_embeddings=3)
    Data2VecAudioModel(config).save_pretrained(folder)
    if with_preprocessor:
        _feature_extractor(16000).save_pretrained(folder)


def test_music2vec_tiny_model_loads_offline_and_embeds(tmp_path):
    models = tmp_path / "models"
    _music2vec_snapshot(models / "music2vec")
    enc = make_audio_encoder("music2vec", EncoderContext(models_dir=models, batch_size=4))
    assert (enc.sample_rate, enc.dim, enc.clip_seconds) == (16000, 768, 30.0)
    enc.load()
    assert type(enc._bundle.model).__name__ == "Data2VecAudioModel"
    assert enc._bundle.padded_batches is False  # data2vec-audio: equal-length batches only
    assert enc.dim == 32 and enc.describe()["dim"] == 32 and type(enc).dim == 768  # the real model size

    short, long_ = _waves(16000, (0.8, 1.3))
    both = enc.embed([short, long_])
    assert both.shape == (2, 32) and both.dtype == np.float32 and np.all(np.isfinite(both))
    assert not np.allclose(both[0], both[1])
    alone = enc.embed([short])
    np.testing.assert_allclose(alone[0], both[0], atol=1e-5)
    # equal-length tracks do share a batch, with the same result as one at a time
    twin = enc.embed([short, short.copy() * 0.5, long_])
    np.testing.assert_allclose(twin[0], alone[0], atol=1e-5)


def test_data2vec_padded_batches_would_change_vectors(tmp_path):
    """Why Music2Vec batches by length: with padding + mask its output depends on the batch."""
    from audiorec_assets.encoders.hf import embed_mean_pooled

    folder = tmp_path / "m2v"
    _music2vec_snapshot(folder)
    padded = load_hf_audio_model(
        folder, device="cpu", sample_rate=16000, model_class="Data2VecAudioModel", batching="padded"
    )
    short, long_ = _waves(16000, (0.8, 1.3))
    alone = embed_mean_pooled(padded, [short], 4)
    batched = embed_mean_pooled(padded, [short, long_], 4)
    assert np.abs(alone[0] - batched[0]).max() > 1e-4


def test_music2vec_without_preprocessor_uses_standard_extractor(tmp_path):
    models = tmp_path / "models"
    _music2vec_snapshot(models / "music2vec", with_preprocessor=False)
    enc = make_audio_encoder("music2vec", EncoderContext(models_dir=models))
    vec = enc.embed(_waves(16000, (0.5,)))
    assert vec.shape == (1, 32) and np.all(np.isfinite(vec))
    assert enc._bundle.feature_extractor.sampling_rate == 16000


def test_hf_encoder_empty_waveform_raises(tmp_path):
    models = tmp_path / "models"
    _music2vec_snapshot(models / "music2vec")
    enc = make_audio_encoder("music2vec", EncoderContext(models_dir=models))
    with pytest.raises(EncoderError, match="#1"):
        enc.embed([_waves(16000, (0.5,))[0], np.zeros(0, dtype=np.float32)])


# --------------------------------------------------------------------------- MERT (hub code)

CONFIGURATION_MERT = '''
from transformers import HubertConfig


class MERTConfig(HubertConfig):
    """Test stand-in for MERT's hub config: HuBERT's, under its own model_type."""

    model_type = "mert_model"

    def __init__(self, feature_extractor_cqt=False, **kwargs):
        super().__init__(**kwargs)
        self.feature_extractor_cqt = feature_extractor_cqt
        # MERT's hub config predates this attribute (transformers >= 4.48 reads it).
        if hasattr(self, "conv_pos_batch_norm"):
            del self.conv_pos_batch_norm
'''

MODELING_MERT = '''
from transformers import HubertModel

from .configuration_MERT import MERTConfig


class MERTModel(HubertModel):
    """Test stand-in for MERT's hub model: a HuBERT subclass returning last_hidden_state."""

    config_class = MERTConfig
    base_model_prefix = "mert_model"
'''


def _mert_snapshot(folder: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModel, HubertConfig

    folder.mkdir(parents=True)
    (folder / "configuration_MERT.py").write_text(textwrap.dedent(CONFIGURATION_MERT))
    (folder / "modeling_MERT.py").write_text(textwrap.dedent(MODELING_MERT))
    # MERT-v1-330M is a "large"-style HuBERT: layer-norm conv features, pre-LN encoder
    config = HubertConfig(
        **TINY,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
    ).to_dict()
    config.pop("conv_pos_batch_norm", None)
    config.update(
        model_type="mert_model",
        architectures=["MERTModel"],
        auto_map={"AutoConfig": "configuration_MERT.MERTConfig", "AutoModel": "modeling_MERT.MERTModel"},
        feature_extractor_cqt=False,
    )
    (folder / "config.json").write_text(json.dumps(config))
    cfg = AutoConfig.from_pretrained(str(folder), trust_remote_code=True, local_files_only=True)
    cfg.conv_pos_batch_norm = False  # only to build the weights; the saved config lacks it
    torch.manual_seed(0)
    model = AutoModel.from_config(cfg, trust_remote_code=True)
    model.save_pretrained(folder)
    # keep the hub-style config.json (without conv_pos_batch_norm)
    (folder / "config.json").write_text(json.dumps(config))
    _feature_extractor(24000).save_pretrained(folder)


def test_mert_loader_runs_snapshot_code_offline_and_pads_exactly(tmp_path):
    models = tmp_path / "models"
    _mert_snapshot(models / "mert")
    enc = make_audio_encoder("mert", EncoderContext(models_dir=models, batch_size=8))
    assert (enc.sample_rate, enc.dim, enc.model_id) == (24000, 1024, "m-a-p/MERT-v1-330M")
    enc.load()
    model = enc._bundle.model
    assert type(model).__name__ == "MERTModel" and model.config.model_type == "mert_model"
    assert model.config.conv_pos_batch_norm is False  # filled from HubertConfig's defaults
    assert enc._bundle.padded_batches is True  # layer-norm HuBERT: padded + masked batches
    assert enc.dim == 32  # this instance reports what the (tiny) model produces

    short, long_ = _waves(24000, (0.7, 1.6), seed=3)
    both = enc.embed([long_, short])
    assert both.shape == (2, 32) and both.dtype == np.float32 and np.all(np.isfinite(both))
    alone = enc.embed([short])
    np.testing.assert_allclose(alone[0], both[1], atol=1e-5)


def test_supports_padded_batches_rules():
    from types import SimpleNamespace as NS

    from audiorec_assets.encoders.hf import supports_padded_batches

    assert supports_padded_batches(NS(model_type="mert_model", feat_extract_norm="layer"))
    assert not supports_padded_batches(NS(model_type="hubert", feat_extract_norm="group"))
    assert not supports_padded_batches(NS(model_type="hubert", feat_extract_norm="layer", conv_pos_batch_norm=True))
    assert not supports_padded_batches(NS(model_type="data2vec-audio", feat_extract_norm="layer"))


def test_fill_missing_config_only_adds_absent_attributes():
    from transformers import PretrainedConfig

    config = PretrainedConfig()
    config.hidden_size = 7
    filled = fill_missing_config(config, "HubertConfig")
    assert config.hidden_size == 7 and "hidden_size" not in filled
    assert "conv_pos_batch_norm" in filled and config.conv_pos_batch_norm is False


@pytest.mark.parametrize("name,repo", [("mert", "m-a-p/MERT-v1-330M"), ("music2vec", "m-a-p/music2vec-v1")])
def test_hf_encoders_missing_weights_say_what_to_do(tmp_path, name, repo):
    models = tmp_path / "empty-models"
    models.mkdir()
    enc = make_audio_encoder(name, EncoderContext(models_dir=models))
    with pytest.raises(WeightsNotFoundError) as info:
        enc.load()
    msg = str(info.value)
    assert "encode.models_dir" in msg and "AUDIOREC_MODELS" in msg
    assert repo in msg and f"huggingface-cli download {repo} --local-dir" in msg
    assert str(models / name) in msg


# --------------------------------------------------------------------------- EnCodecMAE


class FakeMae:
    """Stands in for EncodecMAE: ``forward_finetune`` gives 1 frame per 320 samples of dim 3.

    Frame values: (chunk mean, chunk length in samples, 1), so pooling can be checked by hand.
    """

    def __init__(self):
        self.calls: list[tuple[int, ...]] = []

    def forward_finetune(self, x):
        import torch

        wav, lens = x["wav"], x["wav_lens"]
        self.calls.append(tuple(wav.shape))
        assert torch.all(lens == wav.shape[1])
        frames = wav.shape[1] // 320
        per_chunk = torch.stack(
            [wav.mean(dim=1), lens.to(wav.dtype), torch.ones(wav.shape[0], dtype=wav.dtype)], dim=-1
        )
        return {"visible_embeddings": per_chunk[:, None, :].expand(-1, frames, -1)}


def test_encodecmae_chunking():
    from audiorec_assets.encoders.encodecmae import CHUNK_SAMPLES, chunk_waveform

    w = np.arange(2 * CHUNK_SAMPLES + 1000, dtype=np.float32)
    full, tail = chunk_waveform(w)
    assert full.shape == (2, CHUNK_SAMPLES) and tail.shape == (1000,)
    np.testing.assert_array_equal(np.concatenate([full.ravel(), tail]), w)
    full, tail = chunk_waveform(w[: 2 * CHUNK_SAMPLES + 100])  # tail under one frame: dropped
    assert full.shape == (2, CHUNK_SAMPLES) and tail is None
    full, tail = chunk_waveform(w[:CHUNK_SAMPLES])
    assert full.shape == (1, CHUNK_SAMPLES) and tail is None
    full, tail = chunk_waveform(np.ones(50, dtype=np.float32))  # whole track under one frame: padded
    assert full.shape == (0, CHUNK_SAMPLES) and tail.shape == (320,) and tail[:50].sum() == 50
    with pytest.raises(EncoderError):
        chunk_waveform(np.zeros(0, dtype=np.float32))


def test_encodecmae_pool_frames_is_frame_weighted():
    from audiorec_assets.encoders.encodecmae import pool_frames

    a, b = np.zeros((3, 2)), np.ones((1, 2))
    np.testing.assert_allclose(pool_frames([a, b]), [0.25, 0.25])
    np.testing.assert_allclose(pool_frames([a, b]), np.concatenate([a, b]).mean(axis=0))
    assert pool_frames([a]).dtype == np.float32
    with pytest.raises(EncoderError):
        pool_frames([np.zeros((0, 2))])


def test_encodecmae_embed_with_fake_model():
    from audiorec_assets.encoders.encodecmae import CHUNK_SAMPLES, EncodecMaeEncoder

    enc = EncodecMaeEncoder(EncoderContext(batch_size=2))
    enc.model = FakeMae()
    w = np.concatenate([np.full(CHUNK_SAMPLES, 1.0), np.full(CHUNK_SAMPLES, 2.0), np.full(CHUNK_SAMPLES, 3.0)])
    w = np.concatenate([w, np.full(CHUNK_SAMPLES // 2, 5.0)]).astype(np.float32)
    out = enc.embed([w, np.full(640, 7.0, dtype=np.float32)])
    assert out.shape == (2, 3) and out.dtype == np.float32
    # 3 full chunks of 300 frames (values 1, 2, 3) + a half chunk of 150 frames (value 5)
    expected_mean = (300 * (1 + 2 + 3) + 150 * 5) / 1050
    np.testing.assert_allclose(out[0], [expected_mean, (900 * CHUNK_SAMPLES + 150 * CHUNK_SAMPLES // 2) / 1050, 1])
    np.testing.assert_allclose(out[1], [7.0, 640, 1])
    # full chunks batched (at most batch_size at a time), the tail alone
    assert enc.model.calls[:3] == [(2, CHUNK_SAMPLES), (1, CHUNK_SAMPLES), (1, CHUNK_SAMPLES // 2)]


def test_encodec_weights_are_not_downloaded(monkeypatch):
    """Building EncodecMAE calls EncodecModel.encodec_model_24khz(); inside the loader it must not download."""
    from audiorec_assets.encoders.encodecmae import encodec_without_download

    calls = []

    class EncodecModel:
        @staticmethod
        def encodec_model_24khz(pretrained=True, repository=None):
            calls.append(pretrained)
            return "model"

    fake = types.ModuleType("encodec")
    fake.EncodecModel = EncodecModel
    monkeypatch.setitem(sys.modules, "encodec", fake)
    original = EncodecModel.__dict__["encodec_model_24khz"]
    with encodec_without_download():
        assert EncodecModel.encodec_model_24khz() == "model"
    assert calls == [False]
    assert EncodecModel.__dict__["encodec_model_24khz"] is original
    EncodecModel.encodec_model_24khz()
    assert calls == [False, True]


def test_encodecmae_missing_package_and_weights(tmp_path):
    enc = make_audio_encoder("encodecmae", EncoderContext(models_dir=tmp_path))
    assert (enc.sample_rate, enc.dim) == (24000, 768)
    with pytest.raises(WeightsNotFoundError) as info:
        enc.load()
    msg = str(info.value)
    assert "habla-liaa/encodecmae" in msg
    assert "model.pt" in msg and "lpepino/encodecmae-base" in msg and str(tmp_path / "encodecmae") in msg
    assert "encode.models_dir" in msg


def test_encodecmae_load_path_with_fake_packages(tmp_path, monkeypatch):
    """The offline replacement of encodecmae.load_model: local gin files, local checkpoint, gin state restored."""
    import torch
    from torch import nn

    from audiorec_assets.encoders import encodecmae as mod

    folder = tmp_path / "encodecmae"
    folder.mkdir()
    (folder / "config.gin").write_text("get_model.model = @EncodecMAE\n")
    (folder / "imports").write_text("encodecmae.tasks.models\n")

    class TinyMae(nn.Module):
        def __init__(self):
            super().__init__()
            mod_ = __import__("encodec").EncodecModel.encodec_model_24khz()  # as EncodecEncoder does
            assert mod_ == "untrained"
            self.proj = nn.Linear(1, 4)
            self.visible_encoder = types.SimpleNamespace(compile=True)

        def forward_finetune(self, x):
            frames = x["wav"].reshape(x["wav"].shape[0], -1, 320).mean(-1, keepdim=True)
            return {"visible_embeddings": self.proj(frames)}

    ref = TinyMae.__new__(TinyMae)
    nn.Module.__init__(ref)
    ref.proj = nn.Linear(1, 4)
    # a Lightning-style checkpoint with a non-tensor object: not loadable with weights_only=True
    ckpt = {"state_dict": ref.state_dict(), "hyper_parameters": {"lr": types.SimpleNamespace(x=1)}}
    torch.save(ckpt, folder / "model.pt")

    state = {"config": "previous", "log": []}
    gin = types.ModuleType("gin")
    gin.config_str = lambda: state["config"]
    gin.clear_config = lambda: state.update(config="") or state["log"].append("clear")
    gin.parse_config_file = lambda path: state["log"].append(("file", path))
    gin.parse_config = lambda text: state.update(config=text) or state["log"].append(("restore", text))
    ginpipe, ginpipe_core = types.ModuleType("ginpipe"), types.ModuleType("ginpipe.core")
    ginpipe_core.gin_configure_externals = lambda flag: state["log"].append(("imports", flag["module_list"]))
    ginpipe.core = ginpipe_core
    hub = types.ModuleType("encodecmae.hub")
    hub.get_model = lambda: TinyMae
    pkg = types.ModuleType("encodecmae")
    pkg.hub = hub

    class EncodecModel:
        @staticmethod
        def encodec_model_24khz(pretrained=True, repository=None):
            return "untrained" if not pretrained else "downloaded"

    encodec = types.ModuleType("encodec")
    encodec.EncodecModel = EncodecModel
    for name, module in [
        ("gin", gin), ("ginpipe", ginpipe), ("ginpipe.core", ginpipe_core),
        ("encodecmae", pkg), ("encodecmae.hub", hub), ("encodec", encodec),
    ]:  # fmt: skip
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(mod, "find_spec", lambda name: object())

    enc = make_audio_encoder("encodecmae", EncoderContext(models_dir=tmp_path))
    enc.load()
    assert state["log"] == [
        "clear",
        ("imports", [str(folder / "imports")]),
        ("file", str(folder / "config.gin")),
        "clear",
        ("restore", "previous"),
    ]
    assert enc.model.visible_encoder.compile is False and not enc.model.training
    torch.testing.assert_close(enc.model.proj.weight, ref.proj.weight)  # the checkpoint was loaded
    out = enc.embed([np.full(24000 * 5, 0.5, dtype=np.float32)])
    expected = (ref.proj.weight[:, 0] * 0.5 + ref.proj.bias).detach().numpy()
    np.testing.assert_allclose(out[0], expected, rtol=1e-5)


# --------------------------------------------------------------------------- JukeMIR


def test_jukemir_pooling_and_normalisation():
    from audiorec_assets.encoders.jukemir import peak_normalize, pool_layer

    acts = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(pool_layer({36: acts}), [4, 5, 6, 7])
    np.testing.assert_allclose(pool_layer(acts[0]), acts[0])
    with pytest.raises(EncoderError, match="36"):
        pool_layer({12: acts})
    with pytest.raises(EncoderError):
        pool_layer(np.zeros((0, 4)))
    np.testing.assert_allclose(peak_normalize(np.array([0.1, -0.5, 0.25])), [0.2, -1.0, 0.5])
    assert not np.any(peak_normalize(np.zeros(4)))


def test_jukemir_missing_package_and_weights(tmp_path, monkeypatch):
    from audiorec_assets.encoders import jukemir as mod

    monkeypatch.setattr(mod, "find_spec", lambda name: None)  # as if jukemirlib were not installed
    enc = make_audio_encoder("jukemir", EncoderContext(models_dir=tmp_path))
    assert (enc.sample_rate, enc.clip_seconds, enc.dim) == (44100, 24.0, 4800)
    with pytest.raises(WeightsNotFoundError) as info:
        enc.load()
    msg = str(info.value)
    assert "rodrigo-castellon/jukemirlib" in msg
    assert "vqvae.pth.tar" in msg and "prior_level_2.pth.tar" in msg and "encode.models_dir" in msg


def test_jukemir_with_fake_jukemirlib(tmp_path, monkeypatch):
    folder = tmp_path / "jukemir"
    folder.mkdir()
    for f in ("vqvae.pth.tar", "prior_level_2.pth.tar"):
        (folder / f).write_bytes(b"")
    calls = []
    fake = types.ModuleType("jukemirlib")
    fake.constants = types.SimpleNamespace(CACHE_DIR="~/.cache/jukemirlib", DEVICE="cuda")
    fake.CACHE_DIR, fake.DEVICE = "~/.cache/jukemirlib", "cuda"

    def extract(audio=None, layers=None, **kwargs):
        calls.append((audio.copy(), layers))
        t = np.arange(5, dtype=np.float32)[:, None]
        return {36: np.repeat(t + float(np.abs(audio).max()), 4800, axis=1)}

    fake.extract = extract
    monkeypatch.setitem(sys.modules, "jukemirlib", fake)
    from audiorec_assets.encoders import jukemir as mod

    monkeypatch.setattr(mod, "find_spec", lambda name: object())  # "installed"

    enc = make_audio_encoder("jukemir", EncoderContext(models_dir=tmp_path, device="cpu"))
    enc.load()
    assert fake.constants.CACHE_DIR == str(folder) and fake.CACHE_DIR == str(folder) and fake.DEVICE == "cpu"
    long_wave = np.full(30 * 44100, 0.25, dtype=np.float32)
    out = enc.embed([long_wave, np.full(100, -0.5, dtype=np.float32)])
    assert out.shape == (2, 4800) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], [3.0, 3.0])  # mean over time of 0..4, + peak 1 after normalising
    audio, layers = calls[0]
    assert layers == [36] and audio.size == 24 * 44100 and np.abs(audio).max() == 1.0


# --------------------------------------------------------------------------- MusicFM


def test_musicfm_time_profile():
    from audiorec_assets.encoders.musicfm import PROFILE_STEPS, channel_mean, fit_length, time_profile

    hidden = np.arange(750 * 4, dtype=np.float32).reshape(750, 4)
    prof = time_profile(hidden)
    assert PROFILE_STEPS == 750 and prof.shape == (750,) and prof.dtype == np.float32
    np.testing.assert_allclose(prof, hidden.mean(axis=1))
    np.testing.assert_allclose(channel_mean(hidden[None]), hidden.mean(axis=1))
    short = time_profile(np.ones((10, 1024)))
    assert short[:10].tolist() == [1.0] * 10 and not short[10:].any()
    assert fit_length(np.arange(800)).tolist() == list(range(750))
    with pytest.raises(EncoderError):
        channel_mean(np.zeros(5))


def test_musicfm_missing_everything(tmp_path):
    enc = make_audio_encoder("musicfm", EncoderContext(models_dir=tmp_path))
    assert (enc.sample_rate, enc.clip_seconds, enc.dim) == (24000, 30.0, 750)
    with pytest.raises(WeightsNotFoundError) as info:
        enc.load()
    msg = str(info.value)
    assert "minzwon/musicfm" in msg
    assert "pretrained_fma.pt" in msg and "fma_stats.json" in msg and "minzwon/MusicFM" in msg
    assert "facebook/wav2vec2-conformer-rope-large-960h-ft" in msg and "encode.models_dir" in msg


FAKE_MUSICFM = '''
import json

import torch
from torch import nn
from transformers.models.wav2vec2_conformer.modeling_wav2vec2_conformer import Wav2Vec2ConformerConfig


class MusicFM25Hz(nn.Module):
    """Test stand-in with MusicFM25Hz's constructor and get_latent: one frame per 960 samples."""

    def __init__(self, is_flash=False, stat_path="./data/fma_stats.json", model_path="./data/pretrained_fma.pt"):
        super().__init__()
        with open(stat_path) as f:
            self.stat = json.load(f)
        # as upstream: the conformer config comes "from the hub"
        config = Wav2Vec2ConformerConfig.from_pretrained("facebook/wav2vec2-conformer-rope-large-960h-ft")
        self.width = config.hidden_size
        self.proj = nn.Linear(1, self.width)
        if model_path:
            raise AssertionError("the loader must not let upstream torch.load the checkpoint")

    def get_latent(self, x, layer_ix=12):
        assert layer_ix == 12
        frames = x.reshape(x.shape[0], -1, 960).mean(-1, keepdim=True)  # (B, T, 1)
        return self.proj(frames * self.stat["scale"])  # (B, T, width)
'''


def _fake_musicfm(models: Path) -> Path:
    import torch
    from torch import nn
    from transformers import Wav2Vec2ConformerConfig

    folder = models / "musicfm"
    code = folder / "musicfm" / "model"
    code.mkdir(parents=True)
    (code / "musicfm_25hz.py").write_text(textwrap.dedent(FAKE_MUSICFM))
    (folder / "fma_stats.json").write_text(json.dumps({"scale": 2.0}))
    Wav2Vec2ConformerConfig(hidden_size=8).save_pretrained(folder / "wav2vec2-conformer-rope-large-960h-ft")
    lin = nn.Linear(1, 8)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.fill_(0.5)
    state = {f"model.proj.{k}": v for k, v in lin.state_dict().items()}  # Lightning's "model." prefix
    torch.save({"state_dict": state}, folder / "pretrained_fma.pt")
    return folder


@pytest.fixture
def isolated_imports(monkeypatch):
    """Restore sys.path and drop any ``musicfm`` modules a test imported."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for key in [k for k in sys.modules if k == "musicfm" or k.startswith("musicfm.")]:
        del sys.modules[key]


def test_musicfm_load_path_with_fake_code(tmp_path, monkeypatch, isolated_imports):
    from audiorec_assets.encoders import musicfm as mod

    models = tmp_path / "models"
    folder = _fake_musicfm(models)
    monkeypatch.setattr(mod, "REQUIRED_PACKAGES", ())  # einops / torchaudio: only the real code needs them

    enc = make_audio_encoder("musicfm", EncoderContext(models_dir=models, batch_size=4))
    assert mod.missing_requirements(folder) == []
    enc.load()
    from transformers import Wav2Vec2ConformerConfig

    assert "from_pretrained" not in Wav2Vec2ConformerConfig.__dict__  # redirect undone
    w30 = np.full(30 * 24000, 0.1, dtype=np.float32)
    w10 = np.full(10 * 24000, -0.1, dtype=np.float32)
    out = enc.embed([w30, w10, w30.copy()])
    assert out.shape == (3, 750) and out.dtype == np.float32
    # proj weights 1, bias 0.5: hidden = 2 * frame_mean + 0.5 in each of 8 channels
    np.testing.assert_allclose(out[0], np.full(750, 0.7), rtol=1e-5)
    np.testing.assert_allclose(out[1, :250], np.full(250, 0.3), rtol=1e-5)
    assert not out[1, 250:].any()  # 10 s → 250 steps, zero-padded to 750
