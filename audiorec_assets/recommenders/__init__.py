"""Recommender registry: key → entry. Adding a recommender is one module plus one line in :mod:`.registry`.

Entries are import strings (loading the registry never imports torch) plus what the model does with audio, which
decides the cells of the study (:mod:`audiorec_assets.study`, docs/recommenders.md): ``required`` (scores by the
vectors only: never under encoder ``none``), ``optional`` (learns item-id embeddings under ``none``) or ``none``
(knows no audio: one cell, under encoder ``none``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from audiorec_assets.recommenders.registry import RECOMMENDERS, AudioUse, RecommenderEntry, recommender_entry

if TYPE_CHECKING:  # the base class imports the settings, which import the registry: not at run time here
    from audiorec_assets.recommenders.base import Recommender

__all__ = ["RECOMMENDERS", "AudioUse", "RecommenderEntry", "recommender_class", "recommender_entry"]


def recommender_class(name: str) -> type[Recommender]:
    module_name, class_name = recommender_entry(name).target.split(":")
    return getattr(importlib.import_module(module_name), class_name)
