"""Recommender registry: key → ``module:Class``. Adding a recommender is one module plus one line here."""

from __future__ import annotations

import importlib

from audiorec_assets.recommenders.base import Recommender

RECOMMENDERS: dict[str, str] = {
    "knn": "audiorec_assets.recommenders.knn:KnnRecommender",
    "shallow": "audiorec_assets.recommenders.shallow:ShallowRecommender",
    "bert4rec": "audiorec_assets.recommenders.bert4rec:Bert4RecRecommender",
    "popularity": "audiorec_assets.recommenders.popularity:PopularityRecommender",
}


def recommender_class(name: str) -> type[Recommender]:
    try:
        target = RECOMMENDERS[name]
    except KeyError:
        raise KeyError(f"Unknown recommender {name!r}; known: {sorted(RECOMMENDERS)}") from None
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)
