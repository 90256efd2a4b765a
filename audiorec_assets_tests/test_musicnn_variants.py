"""The other models of the ``musicnn`` package as encoders: ``musicnn_mtt`` (MTT_musicnn), ``vgg_msd`` (MSD_vgg),
``vgg_mtt`` (MTT_vgg), on their real checkpoints.

Golden references: MTT_musicnn's are ``reference_MTT_musicnn.npz`` (shared with ``test_musicnn.py``), the VGG
models' ``reference_<MODEL>.npz``, both from upstream TensorFlow on the same clip (``data/musicnn/README.md``).
As in ``test_musicnn.py``, the weights come from the ``musicnn`` package via the real download path, once per
session into a temporary model cache (pip's cache makes the second download cheap); tests that need them
skip only when ``pip download`` fails (no network) or ``AUDIOREC_OFFLINE`` is set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audiorec_assets.data.audio import load_audio
from audiorec_assets.encoders import AUDIO_ENCODERS, audio_encoder_class, make_audio_encoder
from audiorec_assets.encoders.base import EncoderContext, WeightsNotFoundError
from audiorec_assets.encoders.musicnn.tf_checkpoint import read_index
from audiorec_assets.encoders.musicnn.weights import (
    AVAILABLE_CHECKPOINTS,
    OFFLINE_ENV,
    WeightsDownloadError,
    downloads_allowed,
    install_checkpoints,
    locate_checkpoint,
)

DATA = Path(__file__).parent / "data" / "musicnn"
CLIP = DATA / "clip_16k.wav"
NEW_ENCODERS = {"musicnn_mtt": ("MTT_musicnn", 200), "vgg_msd": ("MSD_vgg", 256), "vgg_mtt": ("MTT_vgg", 256)}
VGG = ("MSD_vgg", "MTT_vgg")
ATOL, RTOL = 1e-4, 1e-5


def _is_optimizer_state(name: str) -> bool:
    """Adam's slots and step counters: saved by training, not part of the network."""
    return "/Adam" in name or name in {"beta1_power", "beta2_power", "global_step"}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not downloads_allowed():
        pytest.skip(f"{OFFLINE_ENV} is set: not downloading the musicnn package for its weights")
    root = tmp_path_factory.mktemp("audiorec_models")
    try:
        install_checkpoints(root)
    except WeightsDownloadError as err:
        pytest.skip(f"cannot download the musicnn package (offline?): {str(err).splitlines()[0]}")
    return root


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))  # shared CI machines
    return load_audio(CLIP, sr=16000)


@pytest.fixture(scope="module")
def mel_batch() -> np.ndarray:
    with np.load(DATA / "reference_MTT_musicnn.npz") as npz:
        return npz["mel_batch"]  # (3, 187, 96), the clip's log-mel patches


def test_registry_lists_the_new_encoders_with_their_dims() -> None:
    for name, (checkpoint, dim) in NEW_ENCODERS.items():
        assert name in AUDIO_ENCODERS
        cls = audio_encoder_class(name)
        assert (cls.name, cls.checkpoint, cls.dim, cls.sample_rate, cls.clip_seconds) == (
            name, checkpoint, dim, 16000, None)
        assert checkpoint in AVAILABLE_CHECKPOINTS and checkpoint in cls.model_id


@pytest.mark.parametrize("checkpoint", ["MTT_musicnn", *VGG])
def test_every_checkpoint_variable_maps_onto_the_torch_model(models_dir: Path, checkpoint: str) -> None:
    """No network variable of the checkpoint is left unused, none is missing, and every shape matches."""
    from audiorec_assets.encoders.musicnn import load_pretrained, load_pretrained_vgg

    if checkpoint in VGG:
        from audiorec_assets.encoders.musicnn.vgg import _convert, tf_variable_map
        network = load_pretrained_vgg(checkpoint, EncoderContext(models_dir=models_dir))
    else:
        from audiorec_assets.encoders.musicnn.model import _convert, tf_variable_map
        network = load_pretrained(checkpoint, EncoderContext(models_dir=models_dir))
    prefix = locate_checkpoint(checkpoint, models_dir, allow_download=False)
    _, entries = read_index(prefix)
    network_variables = {name for name in entries if not _is_optimizer_state(name)}
    mapping = tf_variable_map()
    assert {tf for tf, _ in mapping.values()} == network_variables
    state = network.state_dict()
    assert {k for k in state if not k.endswith("num_batches_tracked")} == set(mapping)
    for key, (tf_name, kind) in mapping.items():
        converted = _convert(np.zeros(entries[tf_name].shape, np.float32), kind)
        assert tuple(state[key].shape) == converted.shape, (checkpoint, key, tf_name)


@pytest.mark.parametrize("name", list(NEW_ENCODERS))
def test_encoder_gives_finite_vectors_of_its_dim(models_dir: Path, clip: np.ndarray, name: str) -> None:
    encoder = make_audio_encoder(name, EncoderContext(models_dir=models_dir))
    encoder.load()
    vectors = encoder.embed([clip[: 4 * 16000], clip, clip[:8000]])  # 4 s, 10 s, a 0.5-s clip padded
    assert vectors.shape == (3, NEW_ENCODERS[name][1]) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all() and np.abs(vectors).sum(axis=1).min() > 0
    # Batched with other tracks = alone.
    np.testing.assert_allclose(encoder.embed([clip])[0], vectors[1], atol=1e-5)
    assert encoder.embed([]).shape == (0, NEW_ENCODERS[name][1])


def test_musicnn_mtt_matches_upstream_and_differs_from_msd(models_dir: Path, clip: np.ndarray) -> None:
    context = EncoderContext(models_dir=models_dir)
    mtt = make_audio_encoder("musicnn_mtt", context).embed([clip])[0]
    msd = make_audio_encoder("musicnn", context).embed([clip])[0]
    with np.load(DATA / "reference_MTT_musicnn.npz") as npz:
        expected = npz["penultimate"].mean(axis=0)  # upstream TensorFlow, MTT_musicnn
    np.testing.assert_allclose(mtt, expected, atol=ATOL, rtol=RTOL)
    cosine = float(mtt @ msd / (np.linalg.norm(mtt) * np.linalg.norm(msd)))
    assert cosine < 0.9 and not np.allclose(mtt, msd, atol=1e-2)


@pytest.mark.parametrize("checkpoint", VGG)
def test_vgg_outputs_match_upstream_tensorflow(models_dir: Path, mel_batch: np.ndarray, checkpoint: str) -> None:
    """Golden test: taggram and pool5 of upstream TF VGG for the clip's patches (see data/musicnn/README.md)."""
    from audiorec_assets.encoders.musicnn import load_pretrained_vgg
    from audiorec_assets.encoders.musicnn.vgg import run_vgg

    out = run_vgg(load_pretrained_vgg(checkpoint, EncoderContext(models_dir=models_dir)), mel_batch)
    with np.load(DATA / f"reference_{checkpoint}.npz") as npz:
        reference = {k: npz[k] for k in npz.files}
    for name in ("taggram", "pool5"):  # observed: <= 1e-5 absolute
        np.testing.assert_allclose(getattr(out, name), reference[name], atol=ATOL, rtol=RTOL, err_msg=name)
    track, upstream = out.pool5.mean(axis=0), reference["pool5"].mean(axis=0)
    assert float(track @ upstream / (np.linalg.norm(track) * np.linalg.norm(upstream))) >= 0.999


@pytest.mark.parametrize("checkpoint", VGG)
def test_vgg_taggram_is_plausible(models_dir: Path, mel_batch: np.ndarray, checkpoint: str) -> None:
    """Shapes, probabilities in [0, 1], and tags that fit the clip (a Haydn string quartet)."""
    from audiorec_assets.encoders.musicnn import load_pretrained_vgg
    from audiorec_assets.encoders.musicnn.model import LABELS
    from audiorec_assets.encoders.musicnn.vgg import run_vgg

    out = run_vgg(load_pretrained_vgg(checkpoint, EncoderContext(models_dir=models_dir)), mel_batch)
    assert out.taggram.shape == (3, 50) and out.pool5.shape == (3, 256)
    assert np.isfinite(out.taggram).all() and (out.taggram >= 0).all() and (out.taggram <= 1).all()
    assert np.isfinite(out.pool5).all() and (out.pool5 >= -1e3).all()
    top5 = [LABELS[checkpoint][i] for i in np.argsort(-out.taggram.mean(axis=0))[:5]]
    upstream_musicnn = json.loads((DATA / "reference.json").read_text())[checkpoint.replace("vgg", "musicnn")]
    # The sister MusiCNN model (upstream TF) and this VGG agree on at least two of their top-5 tags.
    assert len(set(top5) & set(upstream_musicnn["top5_tags"])) >= 2, top5
    if checkpoint == "MTT_vgg":
        assert {"classical", "strings", "violin", "piano", "slow", "soft"} & set(top5[:2]), top5


def test_vgg_rejects_patches_of_another_length(models_dir: Path) -> None:
    import torch

    from audiorec_assets.encoders.musicnn import load_pretrained_vgg

    network = load_pretrained_vgg("MTT_vgg", EncoderContext(models_dir=models_dir))
    with pytest.raises(ValueError, match="187-frame"):
        network.forward_all(torch.zeros(1, 400, 96))


@pytest.mark.parametrize("name", list(NEW_ENCODERS))
def test_offline_without_weights_is_not_runnable_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    from audiorec_assets.encoders.availability import weights_files, weights_problem

    monkeypatch.setenv(OFFLINE_ENV, "1")
    context = EncoderContext(models_dir=tmp_path)
    checkpoint = NEW_ENCODERS[name][0]
    problem = weights_problem(name, context)
    assert problem is not None and checkpoint in problem and "downloads are off" in problem
    assert weights_files(name, context) == []
    with pytest.raises(WeightsNotFoundError) as info:
        make_audio_encoder(name, context).load()
    message = str(info.value)
    assert str(tmp_path / "musicnn" / checkpoint / ".index") in message
    assert "pip download --no-deps musicnn==0.1.0" in message and "AUDIOREC_MODELS" in message
    assert list(tmp_path.iterdir()) == []  # nothing downloaded, nothing created


def test_weights_fingerprint_is_the_encoders_own_checkpoint(models_dir: Path) -> None:
    from audiorec_assets.encoders.availability import weights_files, weights_problem

    context = EncoderContext(models_dir=models_dir)
    for name, (checkpoint, _) in {**NEW_ENCODERS, "musicnn": ("MSD_musicnn", 200)}.items():
        assert weights_problem(name, context) is None
        files = weights_files(name, context)
        assert sorted(p.name for p in files) == [".data-00000-of-00001", ".index"]
        assert {p.parent.name for p in files} == {checkpoint}
