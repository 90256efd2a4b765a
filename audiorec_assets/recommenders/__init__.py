"""Recommender registry: key → entry. Adding a recommender is one module plus one line here.

Entries are import strings (loading the registry never imports torch) plus what the model does
with audio, which decides the cells of the study (:mod:`audiorec_assets.study`):

* ``required`` — scores items by their vectors only (``knn``): never under encoder ``none``;
* ``optional`` — uses the encoder's vectors, or learns item-id embeddings under ``none``
  (``shallow``, ``bert4rec``);
* ``none`` — knows no audio (``popularity``, ``als``): one cell, under encoder ``none``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal

from audiorec_assets.recommenders.base import Recommender

AudioUse = Literal["required", "optional", "none"]


@dataclass(frozen=True)
class RecommenderEntry:
    target: str  # "module:Class"
    audio: AudioUse


RECOMMENDERS: dict[str, RecommenderEntry] = {
    "knn": RecommenderEntry("audiorec_assets.recommenders.knn:KnnRecommender", "required"),
    "shallow": RecommenderEntry("audiorec_assets.recommenders.shallow:ShallowRecommender", "optional"),
    "bert4rec": RecommenderEntry("audiorec_assets.recommenders.bert4rec:Bert4RecRecommender", "optional"),
    "popularity": RecommenderEntry("audiorec_assets.recommenders.popularity:PopularityRecommender", "none"),
    "als": RecommenderEntry("audiorec_assets.recommenders.als:AlsRecommender", "none"),
}


def recommender_entry(name: str) -> RecommenderEntry:
    try:
        return RECOMMENDERS[name]
    except KeyError:
        raise KeyError(f"Unknown recommender {name!r}; known: {sorted(RECOMMENDERS)}") from None


def recommender_class(name: str) -> type[Recommender]:
    module_name, class_name = recommender_entry(name).target.split(":")
    return getattr(importlib.import_module(module_name), class_name)
