"""Tables for people: the leaderboard and the study's comparison tables (pure pandas)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audiorec_assets.evaluation.metrics import METRICS
from audiorec_assets.evaluation.significance import holm, paired_bootstrap

# the study's three tables: name → recommender key
COMPARISONS: dict[str, str] = {"cosine": "knn", "shallow": "shallow", "bert": "bert4rec"}
SIGNIFICANCE_METRIC = "ndcg"


def recommendations_frame(top_users: np.ndarray, top_items: np.ndarray, top_scores: np.ndarray,
                          user_ids: np.ndarray, track_ids: np.ndarray) -> pd.DataFrame:
    """Long rows (user_id, rank, track_id, score) from a top-N block; -1 padding dropped."""
    n_users, n = top_items.shape
    ranks = np.tile(np.arange(1, n + 1, dtype=np.int32), n_users)
    users = np.repeat(top_users, n)
    items = top_items.ravel()
    keep = items >= 0
    return pd.DataFrame({
        "user_id": user_ids[users[keep]],
        "rank": ranks[keep],
        "track_id": track_ids[items[keep]],
        "score": top_scores.ravel()[keep].astype(np.float64),
    })


def ranked_matrix(rows: pd.DataFrame, users: np.ndarray, item_of: pd.Series, n: int) -> np.ndarray:
    """Back from long rows to an (len(users), n) item_idx matrix with -1 padding (row r ↔ ``users[r]`` ids)."""
    out = np.full((len(users), n), -1, dtype=np.int64)
    row_of = pd.Series(np.arange(len(users)), index=users)
    rows = rows[rows["rank"] <= n]
    unknown_users = ~rows["user_id"].isin(row_of.index)
    unknown_tracks = ~rows["track_id"].isin(item_of.index)
    if unknown_users.any() or unknown_tracks.any():
        raise ValueError(
            f"{int(unknown_users.sum())} recommendation row(s) name users outside this split and "
            f"{int(unknown_tracks.sum())} name unknown tracks: the recommendations are older than the split; "
            "materialize audiorec/recommendations (with audiorec/models) again."
        )
    out[row_of.loc[rows["user_id"]].to_numpy(), rows["rank"].to_numpy() - 1] = item_of.loc[rows["track_id"]].to_numpy()
    return out


def leaderboard(metrics: pd.DataFrame, k: int = 50, split: str = "test") -> pd.DataFrame:
    """One row per encoder × recommender with the ``split`` metrics @k as columns, best hitrate first."""
    rows = metrics[(metrics["split"] == split) & (metrics["k"] == k)]
    columns = ["encoder", "recommender", *METRICS, "hitrate_ci_low", "hitrate_ci_high", "n_users"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    table = rows.pivot_table(index=["encoder", "recommender"], columns="metric", values="value").reset_index()
    table.columns.name = None
    ci = rows[rows["metric"] == "hitrate"].set_index(["encoder", "recommender"])[["ci_low", "ci_high", "n_users"]]
    table = table.join(ci.rename(columns={"ci_low": "hitrate_ci_low", "ci_high": "hitrate_ci_high"}),
                       on=["encoder", "recommender"])
    return table[columns].sort_values(["hitrate", "ndcg"], ascending=False, ignore_index=True)


def comparison(metrics: pd.DataFrame, user_metrics: pd.DataFrame, recommender: str, k: int = 50,
               seed: int = 0) -> pd.DataFrame:
    """The study's table for one recommender: encoders as rows, test metrics @k as columns, best first.

    Each encoder is compared with the best one (by NDCG@k) on the same test users: paired
    bootstrap of the per-user NDCG@k difference, p-values Holm-corrected across encoders.
    """
    board = leaderboard(metrics[metrics["recommender"] == recommender], k=k)
    board = board.drop(columns="recommender").sort_values(SIGNIFICANCE_METRIC, ascending=False, ignore_index=True)
    if board.empty:
        return board
    per_user = user_metrics[(user_metrics["recommender"] == recommender) & (user_metrics["split"] == "test")
                            & (user_metrics["k"] == k) & (user_metrics["metric"] == SIGNIFICANCE_METRIC)]
    wide = per_user.pivot_table(index="user_id", columns="encoder", values="value")
    best = board["encoder"].iloc[0]
    diffs, lows, highs, raw_p = [], [], [], []
    for encoder in board["encoder"]:
        if encoder == best or best not in wide or encoder not in wide:
            diffs.append(0.0 if encoder == best else np.nan)
            lows.append(np.nan)
            highs.append(np.nan)
            raw_p.append(np.nan)
            continue
        pair = wide[[encoder, best]].dropna()
        result = paired_bootstrap(pair[encoder].to_numpy(), pair[best].to_numpy(), seed=seed)
        diffs.append(result.mean_diff)
        lows.append(result.ci_low)
        highs.append(result.ci_high)
        raw_p.append(result.p_value)
    board[f"{SIGNIFICANCE_METRIC}_diff_vs_best"] = diffs
    board["diff_ci_low"], board["diff_ci_high"] = lows, highs
    tested = ~np.isnan(np.array(raw_p, dtype=float))
    adjusted = np.full(len(raw_p), np.nan)
    if tested.any():
        adjusted[tested] = holm(np.array(raw_p, dtype=float)[tested])
    board["p_value_holm"] = adjusted
    board.insert(1, "best", board["encoder"] == best)
    return board
