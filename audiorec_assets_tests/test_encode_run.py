"""Incremental encoding: reuse by content hash, bad files named or skipped (never zero-filled), retries."""


import numpy as np
import pytest

from audiorec_assets.encoders.base import AudioEncoder, EncoderError
from audiorec_assets.encoders.run import (
    encode_catalogue, encoder_signature, index_frame, load_previous, vector_problems,
)
from audiorec_assets.lakeio import save_npy_atomic
from audiorec_assets_tests.helpers import write_tone


class LoudnessEncoder(AudioEncoder):
    """A deterministic toy encoder: RMS and peak of the waveform, counting its calls."""

    name, dim, sample_rate, clip_seconds, pooling, model_id = "toy", 2, 8000, None, "rms/peak", "toy"
    calls = 0

    def embed(self, waveforms):
        LoudnessEncoder.calls += len(waveforms)
        return np.array([[np.sqrt(np.mean(w**2)), np.abs(w).max()] for w in waveforms], dtype=np.float32)


@pytest.fixture
def audio(tmp_path):
    paths = [write_tone(tmp_path / f"t{i}.wav", freq=200 + 50 * i) for i in range(4)]
    (tmp_path / "t4.wav").write_bytes(b"broken")
    return paths + [tmp_path / "t4.wav"]


def store(tmp_path, encoder, paths, vectors, hashes, report):
    save_npy_atomic(tmp_path / "v.npy", vectors)
    index = index_frame([p.stem for p in paths], hashes, vectors, report.skipped, encoder_signature(encoder))
    index.to_parquet(tmp_path / "i.parquet")
    return load_previous(tmp_path / "v.npy", tmp_path / "i.parquet")


def test_a_bad_file_fails_naming_it(audio):
    with pytest.raises(EncoderError, match=r"t4\.wav.*encode.on_error: skip"):
        encode_catalogue(LoudnessEncoder(), audio, on_error="fail")


def test_skip_fills_the_mean_reports_the_track_and_retries_next_time(tmp_path, audio):
    encoder = LoudnessEncoder()
    vectors, hashes, report = encode_catalogue(encoder, audio, on_error="skip")
    assert report.skipped == ["t4"] and report.encoded == 4
    assert np.allclose(vectors[4], vectors[:4].mean(axis=0)) and not vector_problems(vectors, 5)
    previous = store(tmp_path, encoder, audio, vectors, hashes, report)
    LoudnessEncoder.calls = 0
    _, _, again = encode_catalogue(encoder, audio, previous, on_error="skip")
    assert (again.reused, again.skipped) == (4, ["t4"]), "a skipped track is tried again, not reused"
    assert LoudnessEncoder.calls == 0


def test_changed_files_are_encoded_again_and_a_mismatched_pair_is_not_trusted(tmp_path, audio):
    encoder = LoudnessEncoder()
    good = audio[:4]
    vectors, hashes, report = encode_catalogue(encoder, good)
    previous = store(tmp_path, encoder, good, vectors, hashes, report)
    write_tone(good[2], freq=999.0, seconds=0.5)
    LoudnessEncoder.calls = 0
    updated, _, again = encode_catalogue(encoder, good, previous)
    assert (again.encoded, again.reused, LoudnessEncoder.calls) == (1, 3, 1)
    assert np.array_equal(updated[[0, 1, 3]], vectors[[0, 1, 3]])
    # vectors replaced without their index (a crash between the two renames): nothing is reused
    save_npy_atomic(tmp_path / "v.npy", vectors * 2)
    assert load_previous(tmp_path / "v.npy", tmp_path / "i.parquet") is None


class EmptyIntolerantEncoder(LoudnessEncoder):
    """Raises, as real models do, on an empty waveform (a WAV with a header and no frames)."""

    def embed(self, waveforms):
        if any(len(w) == 0 for w in waveforms):
            raise ValueError("waveform #0 of the batch: cannot embed an empty waveform")
        return super().embed(waveforms)


@pytest.mark.parametrize("batch_size", [1, 8])
def test_a_lone_bad_file_in_its_batch_is_skipped_or_named(tmp_path, batch_size):
    from audiorec_assets.encoders.base import EncoderContext

    good = [write_tone(tmp_path / f"ok{i}.wav", freq=200 + 50 * i) for i in range(2)]
    empty = write_tone(tmp_path / "empty.wav", seconds=0.0)
    encoder = EmptyIntolerantEncoder(EncoderContext(batch_size=batch_size))
    vectors, _, report = encode_catalogue(encoder, good + [empty], on_error="skip")
    assert report.skipped == ["empty"] and report.encoded == 2 and not vector_problems(vectors, 3)
    # the usual case: the bad file is the only new one, alone in its batch
    vectors, hashes, report = encode_catalogue(encoder, good)
    previous = store(tmp_path, encoder, good, vectors, hashes, report)
    _, _, alone = encode_catalogue(encoder, good + [empty], previous, on_error="skip")
    assert (alone.reused, alone.skipped) == (2, ["empty"])
    with pytest.raises(EncoderError, match=r"empty\.wav: .*empty waveform.*encode.on_error: skip"):
        encode_catalogue(encoder, [empty], on_error="fail")
