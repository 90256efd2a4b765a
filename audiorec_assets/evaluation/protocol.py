"""The evaluation protocol of one encoder × recommender cell: which splits, which candidates, which users.

Warm splits (``val``, ``test``): candidates = the train vocabulary; every recommender takes part. Cold split
(``test_cold``): candidates = the tracks without train plays; only models that can score a track from its audio
alone (``Recommender.scores_unseen_items``) take part. Several seeds: docs/statistics.md, "Seeds".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from audiorec_assets.evaluation.metrics import per_user_metrics
from audiorec_assets.evaluation.seed_intervals import summarise_seeds
from audiorec_assets.evaluation.tables import ranked_matrix, recommendations_frame
from audiorec_assets.recommenders.base import Recommender
from audiorec_assets.recommenders.data import COLD_SPLITS, EVAL_SPLITS, WARM_SPLITS, InteractionData

RECOMMENDATION_COLUMNS = ["encoder", "recommender", "seed", "split", "user_id", "rank", "track_id", "score"]


def evaluation_splits(model: Recommender, data: InteractionData) -> list[str]:
    """The splits ``model`` is evaluated on: the warm ones, plus the cold one when it can score cold tracks."""
    splits = list(WARM_SPLITS)
    if model.scores_unseen_items:
        splits += [s for s in COLD_SPLITS if len(data.eval_users(s)) and len(data.candidates(s))]
    return splits


def recommend_all_splits(model: Recommender, data: InteractionData, n: int) -> pd.DataFrame:
    """Top-``n`` rows (split, user_id, rank, track_id, score) for every user of every evaluated split."""
    frames = []
    for split in evaluation_splits(model, data):
        top = model.recommend(data.eval_users(split), n, candidates=data.candidates(split))
        block = recommendations_frame(top.users, top.items, top.scores, data.user_ids, data.track_ids)
        frames.append(block.assign(split=pd.Categorical.from_codes(np.full(len(block), EVAL_SPLITS.index(split)),
                                                                   categories=list(EVAL_SPLITS))))
    return pd.concat(frames, ignore_index=True)


def evaluate(recommendations: pd.DataFrame, data: InteractionData, ks: Sequence[int],
             top_n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(summary, user_metrics)`` of the rows of ``audiorec.recommendations`` for one cell (any seeds).

    summary: split, metric, k, value, ci_low, ci_high (over users and seeds), n_users, n_seeds, seed_sd;
    user_metrics: split, user_id, metric, k, value (the user's value averaged over seeds). Every user of a split
    counts (a user without recommendations scores 0); splits without rows are left out.
    """
    item_of = pd.Series(np.arange(data.n_items), index=data.track_ids)
    summaries, per_user_rows = [], []
    present = set(recommendations["split"].unique())
    for split in [s for s in EVAL_SPLITS if s in present]:
        users = data.eval_users(split)
        rows = recommendations[recommendations["split"] == split]
        by_seed: list[Mapping[tuple[str, int], np.ndarray]] = []
        for _seed, seed_rows in rows.groupby("seed", sort=True):
            ranked = ranked_matrix(seed_rows, data.user_ids[users], item_of, top_n)
            by_seed.append(per_user_metrics(ranked, data.split(split), ks, users=users))
        summary, mean_per_user = summarise_seeds(by_seed)
        summaries.append(summary.assign(split=split))
        per_user_rows += [pd.DataFrame({"split": split, "user_id": data.user_ids[users], "metric": metric,
                                        "k": k, "value": values}) for (metric, k), values in mean_per_user.items()]
    return pd.concat(summaries, ignore_index=True), pd.concat(per_user_rows, ignore_index=True)
