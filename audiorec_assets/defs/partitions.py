"""Partitions: encoders (built-ins + vectors a user dropped in the lake) and recommenders."""

from __future__ import annotations

import dagster as dg

from audiorec_assets.encoders import BUILTIN_ENCODERS, SHUFFLED_PREFIX
from audiorec_assets.recommenders import RECOMMENDERS
from audiorec_assets.settings import ENCODER_NAME, LakePaths, SettingsError, load_settings


def encoder_keys(lake: LakePaths) -> list[str]:
    """Built-in encoder keys, the shuffled twins (``shuffled_<encoder>``) the lake's settings ask for, then every
    ``<lake>/embeddings/<name>.npy`` a user dropped in.

    Files whose names are not valid keys (letters, digits, ``_ . -``) are ignored: a partition
    key with ``|`` or ``,`` would break loading the code location. Unreadable settings add no twins
    (the runs that read them report the error).
    """
    try:
        configured = load_settings(lake.root).encoders
    except SettingsError:
        configured = []
    twins = [e for e in configured if e.startswith(SHUFFLED_PREFIX) and e not in BUILTIN_ENCODERS]
    files = sorted(lake.embeddings.glob("*.npy")) if lake.embeddings.exists() else []
    dropped = [p.stem for p in files if ENCODER_NAME.fullmatch(p.stem)]
    return list(dict.fromkeys([*BUILTIN_ENCODERS, *twins, *dropped]))


def encoder_partitions(lake: LakePaths) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(encoder_keys(lake))


def model_partitions(lake: LakePaths) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition({
        "encoder": encoder_partitions(lake),
        "recommender": dg.StaticPartitionsDefinition(list(RECOMMENDERS)),
    })
