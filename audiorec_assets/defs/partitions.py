"""Partitions: encoders (built-ins + vectors a user dropped in the lake) and recommenders."""

from __future__ import annotations

import dagster as dg

from audiorec_assets.encoders import BUILTIN_ENCODERS
from audiorec_assets.recommenders import RECOMMENDERS
from audiorec_assets.settings import LakePaths


def encoder_keys(lake: LakePaths) -> list[str]:
    """Built-in encoder keys, then every ``<lake>/embeddings/<name>.npy`` a user dropped in."""
    dropped = sorted(p.stem for p in lake.embeddings.glob("*.npy") if not p.name.startswith(".")) if lake.embeddings.exists() else []
    return [*BUILTIN_ENCODERS, *(name for name in dropped if name not in BUILTIN_ENCODERS)]


def encoder_partitions(lake: LakePaths) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(encoder_keys(lake))


def model_partitions(lake: LakePaths) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition({
        "encoder": encoder_partitions(lake),
        "recommender": dg.StaticPartitionsDefinition(list(RECOMMENDERS)),
    })
