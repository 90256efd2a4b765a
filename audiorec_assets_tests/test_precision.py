"""Setting encode.precision: which models train under bf16 autocast, on which device, and that it is recorded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiorec_assets.recommenders.bert4rec import Bert4RecRecommender
from audiorec_assets.recommenders.runtime import training_precision
from audiorec_assets.recommenders.shallow import ShallowRecommender
from audiorec_assets.settings import ExperimentSettings, SettingsError, parse_settings

from .test_shallow import synthetic_data


def test_auto_is_fp32_on_the_cpu_and_for_models_that_do_not_allow_it():
    cpu = torch.device("cpu")
    assert training_precision("auto", cpu, model_allows=True) == "fp32"
    assert training_precision("bf16", cpu, model_allows=True) == "bf16"
    assert training_precision("bf16", cpu, model_allows=False) == "fp32"
    assert training_precision("fp32", cpu, model_allows=True) == "fp32"


def test_bad_precision_names_the_setting():
    with pytest.raises(SettingsError, match="encode.precision"):
        parse_settings({"encode": {"precision": "fp8"}}, source="test")


def small_bert4rec_settings(precision: str) -> ExperimentSettings:
    return ExperimentSettings(seed=3, encode={"precision": precision},
                              bert4rec={"hidden_dim": 16, "ffn_dim": 16, "max_len": 20, "infer_len": 10,
                                        "batch_size": 16, "max_epochs": 3, "patience": 2})


def test_bf16_autocast_trains_bert4rec_and_is_recorded(monkeypatch):
    data, vectors = synthetic_data()
    seen: list[torch.dtype] = []
    original = torch.nn.functional.linear

    def recording_linear(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.functional, "linear", recording_linear)
    report = Bert4RecRecommender(small_bert4rec_settings("bf16")).fit(data, vectors)
    assert report.params["precision"] == "bf16" and torch.bfloat16 in seen
    assert np.isfinite(report.train_loss).all() and report.train_loss[-1] < report.train_loss[0]
    seen.clear()
    fp32 = Bert4RecRecommender(small_bert4rec_settings("auto")).fit(data, vectors)
    assert fp32.params["precision"] == "fp32" and set(seen) == {torch.float32}


def test_shallow_never_autocasts():
    data, vectors = synthetic_data()
    settings = ExperimentSettings(encode={"precision": "bf16"}, shallow={"max_epochs": 1, "batch_size": 64})
    assert ShallowRecommender(settings).fit(data, vectors).params["precision"] == "fp32"
