"""``bert4rec.length_batches``: batches of users of similar sequence length (the demo's setting, issue 18). Off, an
epoch's batches are exactly the plain shuffled slices (no BERT4Rec result changes); on, every sequence is still seen
once per epoch, a batch pads far less, and the settings fingerprint names it only when it is on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiorec_assets.recommenders import bert4rec as b4r
from audiorec_assets.recommenders.bert4rec_sequences import epoch_batches
from audiorec_assets.recommenders.training import index_batches
from audiorec_assets.settings import Bert4RecSettings, ExperimentSettings
from audiorec_assets_tests.test_bert4rec import sequential_data, settings_for

pytestmark = pytest.mark.usefixtures("torch_one_thread")

LENGTHS = torch.as_tensor(np.random.default_rng(0).integers(1, 104, 300))


def test_off_is_the_plain_shuffled_pass():
    plain = list(index_batches(torch.randperm(300, generator=torch.Generator().manual_seed(5)), 64))
    batches = epoch_batches(LENGTHS, 64, torch.Generator().manual_seed(5))
    assert len(batches) == len(plain) and all(torch.equal(a, b) for a, b in zip(batches, plain))


def test_on_sees_every_sequence_once_and_pads_less():
    generator = torch.Generator().manual_seed(5)
    batches = epoch_batches(LENGTHS, 64, generator, by_length=True)
    assert sorted(torch.cat(batches).tolist()) == list(range(300)) and max(len(b) for b in batches) == 64
    padded = sum(len(b) * int(LENGTHS[b].max()) for b in batches)
    random_padded = sum(len(b) * int(LENGTHS[b].max()) for b in epoch_batches(LENGTHS, 64, generator))
    assert padded < 0.75 * random_padded
    # deterministic per generator state, and the batch order is shuffled (not shortest first every epoch)
    again = epoch_batches(LENGTHS, 64, torch.Generator().manual_seed(5), by_length=True)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    orders = {tuple(int(LENGTHS[b].max()) for b in epoch_batches(LENGTHS, 64, generator, by_length=True))
              for _ in range(5)}
    assert len(orders) > 1


def test_fingerprint_names_it_only_when_on():
    off = ExperimentSettings()
    assert "length_batches" not in off.model_dump()["bert4rec"]
    on = ExperimentSettings(bert4rec=Bert4RecSettings(length_batches=True))
    assert on.model_dump()["bert4rec"]["length_batches"] is True
    assert on.fingerprint("bert4rec") != off.fingerprint("bert4rec")
    with pytest.raises(ValueError):
        Bert4RecSettings(length_batches="yes")


@pytest.mark.parametrize("preset", ["guide", "paper_code"])
def test_a_fit_with_length_batches_learns_and_says_so(preset):
    data, vectors = sequential_data()
    report = b4r.Bert4RecRecommender(settings_for(preset, length_batches=True)).fit(data, vectors.copy())
    assert report.params["length_batches"] is True
    assert report.val_loss[report.best_epoch] < report.val_loss[0]
    plain = b4r.Bert4RecRecommender(settings_for(preset)).fit(data, vectors.copy())
    assert plain.params["length_batches"] is False
