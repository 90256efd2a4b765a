"""The embeddings check holds across runs: the model steps refuse vectors that fail it, whoever checked them."""

import dagster as dg
import numpy as np
import pytest

from audiorec_assets.defs.execute import materialize
from audiorec_assets.definitions import build_definitions
from audiorec_assets.defs.embeddings import EMBEDDINGS
from audiorec_assets.defs.models import MODELS, VectorFileError, load_item_vectors
from audiorec_assets.settings import LakePaths
from audiorec_assets_tests.helpers import write_own
from audiorec_assets_tests.test_pipeline import small_log

N_TRACKS = 34  # small_log(n_new=4): 30 tracks + 4 new ones


@pytest.fixture
def ingested(lake):
    write_own(lake / "raw", small_log(n_new=4))
    (lake / "experiment.yaml").write_text("ks: [5, 10, 50]\ntop_n: 60\n")
    defs = build_definitions(lake)
    assert dg.materialize(list(defs.assets) + list(defs.asset_checks), selection=dg.AssetSelection.groups("ingest"),
                          resources=defs.resources).success
    return lake


def failure_message(result) -> str:
    error = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    while error.cause is not None:  # the user's error under Dagster's wrapper
        error = error.cause
    return error.message


def test_vectors_that_failed_their_check_are_refused_by_a_later_run(ingested):
    lake = ingested
    mine = lake / "embeddings" / "mine.npy"
    mine.parent.mkdir(exist_ok=True)
    vectors = np.random.default_rng(0).standard_normal((N_TRACKS, 8)).astype(np.float32)
    vectors[5, 3] = np.nan
    np.save(mine, vectors)
    defs = build_definitions(lake)
    everything = list(defs.assets) + list(defs.asset_checks)
    checked = materialize(everything, selection=dg.AssetSelection.assets(EMBEDDINGS).required_multi_asset_neighbors(), partition_key="mine",
                             resources=defs.resources, raise_on_error=False)
    [check] = checked.get_asset_check_evaluations()
    assert not check.passed and "NaN" in str(check.metadata["problems"].value)

    cell = dg.MultiPartitionKey({"encoder": "mine", "recommender": "knn"})
    result = materialize(everything, selection=dg.AssetSelection.assets(MODELS), partition_key=cell,
                            resources=defs.resources, raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert str(mine) in message and "1 row(s) with NaN/inf, first at item_idx 5" in message
    assert "replace the file" in message
    assert not (lake / "models" / "mine" / "knn").exists()

    np.save(mine, np.arange(N_TRACKS * 8, dtype=np.int32).reshape(N_TRACKS, 8) + 1)  # passes the row count
    result = materialize(everything, selection=dg.AssetSelection.assets(MODELS), partition_key=cell,
                            resources=defs.resources, raise_on_error=False)
    assert not result.success and "dtype int32, expected float32" in failure_message(result)


@pytest.mark.parametrize("vectors, problem", [
    (np.ones((N_TRACKS, 4), dtype=np.float32), "every track has the same vector"),
    (np.vstack([np.zeros((1, 4)), np.eye(N_TRACKS - 1, 4)]).astype(np.float32), "all-zero row(s), first at item_idx 0"),
    (np.eye(N_TRACKS - 1, 4, dtype=np.float32), f"{N_TRACKS - 1} rows but the catalogue has {N_TRACKS}"),
    (np.ones(N_TRACKS, dtype=np.float32), "expected a 2-D (tracks, dim) array"),
    (np.full((N_TRACKS, 4), np.inf, dtype=np.float32), "NaN/inf"),
])
def test_the_loader_applies_the_whole_check(tmp_path, vectors, problem):
    paths = LakePaths(tmp_path)
    paths.embeddings.mkdir()
    np.save(paths.embedding_file("mfcc"), vectors)
    with pytest.raises(VectorFileError, match="fails the embeddings check") as err:
        load_item_vectors(paths, "mfcc", N_TRACKS)
    assert problem in str(err.value) and str(paths.embedding_file("mfcc")) in str(err.value)
    assert "materialize audiorec/embeddings partition 'mfcc' again" in str(err.value)


def test_the_encoder_without_audio_passes_and_unreadable_files_are_named(tmp_path):
    paths = LakePaths(tmp_path)
    paths.embeddings.mkdir()
    np.save(paths.embedding_file("none"), np.zeros((N_TRACKS, 0), dtype=np.float32))
    assert load_item_vectors(paths, "none", N_TRACKS).shape == (N_TRACKS, 0)
    np.save(paths.embedding_file("none"), np.zeros((N_TRACKS, 2), dtype=np.float32))
    with pytest.raises(VectorFileError, match=rf"shape \({N_TRACKS}, 2\), expected \({N_TRACKS}, 0\)"):
        load_item_vectors(paths, "none", N_TRACKS)
    paths.embedding_file("mine").write_bytes(b"not an array")
    with pytest.raises(VectorFileError, match="mine.npy cannot be read as a .npy array"):
        load_item_vectors(paths, "mine", N_TRACKS)
