"""Settings of the science issue and the cells of the study: errors name the setting; cells follow the rules."""

import pytest

from audiorec_assets.settings import SettingsError, parse_settings
from audiorec_assets.study import CellError, check_cell, study_cells


@pytest.mark.parametrize("raw, setting", [
    ({"seeds": []}, "seeds"),
    ({"seeds": [1, 1]}, "seeds"),
    ({"encode": {"standardize": "yes"}}, "encode.standardize"),
    ({"encode": {"standardize": 1}}, "encode.standardize"),
    ({"encoders": ["none"], "recommenders": ["knn", "popularity"]}, "encoders"),
    ({"headline_k": 15}, "headline_k"),
    ({"als": {"factors": 0}}, "als.factors"),
    ({"recommenders": ["knn", "nope"]}, "nope"),
    ({"encoders": ["mfcc", "shuffled_none"]}, "shuffled_none"),
    ({"encode": {"shuffled_base": "none"}}, "shuffled_base"),
])
def test_bad_settings_name_the_setting(raw, setting):
    with pytest.raises(SettingsError, match=setting.replace(".", r"\.")):
        parse_settings(raw, source="experiment.yaml")


def test_references_run_once_under_none_and_knn_never_there():
    settings = parse_settings({"encoders": ["musicnn", "random", "none"],
                               "recommenders": ["knn", "shallow", "popularity", "als"]}, source="test")
    cells = study_cells(settings)
    assert cells == [("musicnn", "knn"), ("musicnn", "shallow"), ("random", "knn"), ("random", "shallow"),
                     ("none", "shallow"), ("none", "popularity"), ("none", "als")]
    # without `none` among the encoders, the recommenders without audio still run (once), the id models do not
    without_none = parse_settings({"encoders": ["musicnn"], "recommenders": ["knn", "shallow", "popularity"]},
                                  source="test")
    assert study_cells(without_none) == [("musicnn", "knn"), ("musicnn", "shallow"), ("none", "popularity")]


@pytest.mark.parametrize("encoder, recommender, words", [
    ("none", "knn", "cannot run on encoder 'none'"),
    ("musicnn", "popularity", "runs once, under encoder 'none'"),
    ("random", "als", "runs once, under encoder 'none'"),
])
def test_impossible_cells_say_why(encoder, recommender, words):
    with pytest.raises(CellError, match=words):
        check_cell(encoder, recommender)


def test_seed_list_and_derived_headline_k():
    settings = parse_settings({"seeds": [3, 1, 2], "ks": [5, 10]}, source="test")
    assert settings.run_seeds == [3, 1, 2] and settings.headline_k == 10
    assert parse_settings({}, source="test").run_seeds == [42]
    assert settings.with_overrides({"ks": [10, 50]}).headline_k == 50  # derived again, not frozen
