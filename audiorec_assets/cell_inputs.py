"""What a cell's model reads from the lake: the split as arrays and the encoder's item vectors, checked. No Dagster
here: the assets (``defs/models.py``) and the ``audiorec`` commands (``queries.py``) share it."""

from __future__ import annotations

import numpy as np

from audiorec_assets.encoders import BUILTIN_ENCODERS, NO_AUDIO_ENCODER, is_twin
from audiorec_assets.encoders.run import embedding_problems
from audiorec_assets.encoders.standardize import zscore_columns
from audiorec_assets.recommenders.data import InteractionData, interaction_data_from_parquet
from audiorec_assets.settings import ExperimentSettings, LakePaths

VALID_CHECK = "vectors_valid"  # the embeddings asset's blocking check, which this repeats


def load_interaction_data(paths: LakePaths) -> InteractionData:
    """The split and the catalogue of one published ingest (the link resolved once: an ingest publishing
    meanwhile cannot pair one set's interactions with another's tracks)."""
    ingest = paths.ingest.resolve()
    return interaction_data_from_parquet(ingest / "interactions" / "all.parquet", ingest / "tracks" / "all.parquet")


class VectorFileError(ValueError):
    """An encoder's ``.npy`` fails the embeddings check; the message names the file, the problem and the fix."""


def load_item_vectors(paths: LakePaths, encoder: str, n_items: int) -> np.ndarray:
    """The encoder's item vectors, refused unless they pass the embeddings check (whatever run checked them:
    a file dropped in or changed after its check, or whose check failed in another run, stops here)."""
    path = paths.embedding_file(encoder)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: materialize audiorec/embeddings partition '{encoder}' first.")
    builtin = encoder in BUILTIN_ENCODERS or is_twin(encoder)  # computed by audiorec
    fix = (f"materialize audiorec/embeddings partition '{encoder}' again (the tracks may have changed since)"
           if builtin else
           "replace the file with a float32 array of one finite, non-zero row per track of audiorec.tracks in "
           f"item_idx order, then materialize audiorec/embeddings partition '{encoder}'")
    try:
        vectors = np.load(path)
    except (ValueError, OSError, EOFError) as err:
        raise VectorFileError(f"{path} cannot be read as a .npy array ({err}): {fix}.") from None
    problems = embedding_problems(vectors, n_items, no_audio=encoder == NO_AUDIO_ENCODER)
    if problems:
        raise VectorFileError(f"{path} fails the embeddings check ({VALID_CHECK}): {'; '.join(problems)}. "
                              f"Refusing to train on it: {fix}.")
    return vectors


def vectors_for_models(vectors: np.ndarray, settings: ExperimentSettings) -> np.ndarray:
    """What the recommenders see: the stored vectors, z-scored per feature when ``encode.standardize``."""
    return zscore_columns(vectors) if settings.encode.standardize else vectors
