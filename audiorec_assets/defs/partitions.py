"""Partitions: encoders (built-ins + vectors a user dropped in the lake) and recommenders."""

from __future__ import annotations

import dagster as dg

from audiorec_assets.encoders import BUILTIN_ENCODERS
from audiorec_assets.recommenders import RECOMMENDERS
from audiorec_assets.settings import ENCODER_NAME, LakePaths


def encoder_keys(lake: LakePaths) -> list[str]:
    """Built-in encoder keys, then every ``<lake>/embeddings/<name>.npy`` a user dropped in.

    Files whose names are not valid keys (letters, digits, ``_ . -``) are ignored: a partition
    key with ``|`` or ``,`` would break loading the code location.
    """
    files = sorted(lake.embeddings.glob("*.npy")) if lake.embeddings.exists() else []
    dropped = [p.stem for p in files if ENCODER_NAME.fullmatch(p.stem)]
    return [*BUILTIN_ENCODERS, *(name for name in dropped if name not in BUILTIN_ENCODERS)]


def encoder_partitions(lake: LakePaths) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(encoder_keys(lake))


def model_partitions(lake: LakePaths) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition({
        "encoder": encoder_partitions(lake),
        "recommender": dg.StaticPartitionsDefinition(list(RECOMMENDERS)),
    })
