"""The recommender registry itself: key → entry, with no import of the models, their base class or the settings
(the settings check their ``recommenders`` list against it, and the models' base class reads the settings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AudioUse = Literal["required", "optional", "none"]


@dataclass(frozen=True)
class RecommenderEntry:
    target: str  # "module:Class"
    audio: AudioUse
    # bump when a change to the recommender's ``paper_code`` procedure changes its results: it makes the
    # paper_code cells of this recommender stale and leaves the guide's versions as they are (defs/sources.py)
    paper_code_revision: int = 0


RECOMMENDERS: dict[str, RecommenderEntry] = {
    "knn": RecommenderEntry("audiorec_assets.recommenders.knn:KnnRecommender", "required"),
    # paper_code revision 1: validation negatives redrawn every epoch (shallow); a zero [PAD] row and Hugging Face
    # BERT's token-type vector and initialisation (bert4rec)
    "shallow": RecommenderEntry("audiorec_assets.recommenders.shallow:ShallowRecommender", "optional",
                                paper_code_revision=1),
    "bert4rec": RecommenderEntry("audiorec_assets.recommenders.bert4rec:Bert4RecRecommender", "optional",
                                 paper_code_revision=1),
    "sasrec": RecommenderEntry("audiorec_assets.recommenders.sasrec:SasRecRecommender", "optional"),
    "popularity": RecommenderEntry("audiorec_assets.recommenders.popularity:PopularityRecommender", "none"),
    "als": RecommenderEntry("audiorec_assets.recommenders.als:AlsRecommender", "none"),
}


def recommender_entry(name: str) -> RecommenderEntry:
    try:
        return RECOMMENDERS[name]
    except KeyError:
        raise KeyError(f"Unknown recommender {name!r}; known: {sorted(RECOMMENDERS)}") from None
