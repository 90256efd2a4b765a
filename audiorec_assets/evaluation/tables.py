"""Tables for people: the leaderboard and the study's comparison tables (pure pandas).

Every table is at one K (``settings.headline_k``) and one split. Cells are (encoder, recommender) pairs; the cells
of encoder ``none`` (no audio) are the **references**: flagged ``reference = True`` and compared with, never counted
as an encoder. The paired statistics and their families: docs/statistics.md, "Paired comparisons".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from audiorec_assets.encoders import NO_AUDIO_ENCODER as NO_AUDIO
from audiorec_assets.evaluation.metrics import METRICS, wilson_interval
from audiorec_assets.evaluation.significance import paired_family

# the study's three tables: name → recommender key
COMPARISONS: dict[str, str] = {"cosine": "knn", "shallow": "shallow", "bert": "bert4rec", "sasrec": "sasrec"}
HEADLINE_METRIC = "hitrate"  # what the leaderboard sorts by and the plot shows
SIGNIFICANCE_METRIC = "ndcg"  # what the paired tests compare
SHUFFLED = "shuffled"
# (a, b): is a better than b? The paper's ordering BERT4Rec ≥ Shallow ≥ KNN
RECOMMENDER_PAIRS: tuple[tuple[str, str], ...] = (("bert4rec", "shallow"), ("shallow", "knn"), ("bert4rec", "knn"))
ALPHA = 0.05  # for the verdict column only; the p-values are in the tables
N_RESAMPLES = 2000

Cell = tuple[str, str]

CELL_COLUMNS = ["encoder", "recommender", "reference", "k", *METRICS, "hitrate_ci_low", "hitrate_ci_high", "n_users",
                "n_seeds", "hitrate_seed_sd", "ndcg_seed_sd", "preset"]


def recommendations_frame(top_users: np.ndarray, top_items: np.ndarray, top_scores: np.ndarray,
                          user_ids: np.ndarray, track_ids: np.ndarray) -> pd.DataFrame:
    """Long rows (user_id, rank, track_id, score) from a top-N block; -1 padding dropped.

    The ids are categoricals over ``user_ids`` / ``track_ids`` (codes = indices): no per-row string is built,
    Parquet stores them dictionary-encoded (SQL still reads VARCHAR), and :func:`ranked_matrix` maps them back
    through the categories alone.
    """
    n_users, n = top_items.shape
    ranks = np.tile(np.arange(1, n + 1, dtype=np.int32), n_users)
    users = np.repeat(top_users, n)
    items = top_items.ravel()
    keep = items >= 0
    return pd.DataFrame({
        "user_id": pd.Categorical.from_codes(users[keep], categories=pd.Index(user_ids, dtype=object)),
        "rank": ranks[keep],
        "track_id": pd.Categorical.from_codes(items[keep], categories=pd.Index(track_ids, dtype=object)),
        "score": top_scores.ravel()[keep].astype(np.float64),
    })


def positions_in(values: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each of ``values`` in ``index`` (unique), -1 where absent; a categorical is mapped through
    its categories (thousands of strings), not row by row (millions)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        lookup = np.append(index.get_indexer(values.cat.categories), -1)  # code -1 (missing) → -1
        return lookup[codes]
    return index.get_indexer(values)


def ranked_matrix(rows: pd.DataFrame, users: np.ndarray, item_of: pd.Series, n: int) -> np.ndarray:
    """Back from long rows to an (len(users), n) item_idx matrix with -1 padding (row r ↔ ``users[r]`` ids)."""
    out = np.full((len(users), n), -1, dtype=np.int64)
    rows = rows[rows["rank"] <= n]
    row = positions_in(rows["user_id"], pd.Index(users, dtype=object))
    item = positions_in(rows["track_id"], item_of.index)
    unknown_users, unknown_tracks = row < 0, item < 0
    if unknown_users.any() or unknown_tracks.any():
        raise ValueError(
            f"{int(unknown_users.sum())} recommendation row(s) name users outside this split and "
            f"{int(unknown_tracks.sum())} name unknown tracks: the recommendations are older than the split; "
            "materialize audiorec/recommendations (with audiorec/models) again."
        )
    out[row, rows["rank"].to_numpy() - 1] = item_of.to_numpy()[item]
    return out


def is_reference(encoder: str) -> bool:
    """A cell without audio (encoder ``none``): a reference, not an encoder."""
    return encoder == NO_AUDIO


def shuffled_twin(encoder: str, encoders: Iterable[str], shuffled_base: str | None) -> str | None:
    """The shuffled control of ``encoder`` among ``encoders``: ``shuffled_<encoder>`` if present, else
    ``shuffled`` when ``encoder`` is the settings' ``encode.shuffled_base``; None for the controls, ``none``
    and encoders without a twin."""
    encoders = set(encoders)
    if encoder == SHUFFLED or encoder.startswith(f"{SHUFFLED}_") or encoder in ("random", NO_AUDIO):
        return None
    if f"{SHUFFLED}_{encoder}" in encoders:
        return f"{SHUFFLED}_{encoder}"
    if shuffled_base is not None and encoder == shuffled_base and SHUFFLED in encoders:
        return SHUFFLED
    return None


def leaderboard(metrics: pd.DataFrame, k: int = 50, split: str = "test", cells: Sequence[Cell] | None = None,
                missing: bool = False) -> pd.DataFrame:
    """One row per cell with the ``split`` metrics @k as columns (:data:`CELL_COLUMNS`), best first (HitRate, then
    NDCG); ``cells`` (e.g. :func:`audiorec_assets.study.study_cells`) limits the rows to those cells, and with
    ``missing`` a cell without rows for ``split`` is still listed (NaN metrics, last). Metrics are seed means.
    """
    index = ["encoder", "recommender"]
    rows = metrics[(metrics["split"] == split) & (metrics["k"] == k)]
    if cells is not None:
        wanted = set(map(tuple, cells))
        rows = rows[np.array([c in wanted for c in zip(rows["encoder"], rows["recommender"])], dtype=bool)]
    rows = rows.drop_duplicates(index + ["metric"], keep="last")
    by_metric = {m: rows[rows["metric"] == m].set_index(index) for m in ("hitrate", "ndcg")}
    grouped = rows.groupby(index)
    table = rows.pivot(index=index, columns="metric", values="value").reindex(columns=list(METRICS))
    table.columns.name = None
    table["n_users"] = by_metric["hitrate"]["n_users"].reindex(table.index).fillna(grouped["n_users"].max())
    table["n_seeds"] = grouped["n_seeds"].max() if "n_seeds" in rows else np.nan
    for m, sub in by_metric.items():
        table[f"{m}_seed_sd"] = sub["seed_sd"] if "seed_sd" in sub else np.nan
    table["preset"] = grouped["preset"].first() if "preset" in rows else None
    table = table.reset_index()
    if cells is not None and missing:
        table = pd.DataFrame(list(dict.fromkeys(map(tuple, cells))), columns=index).merge(table, on=index, how="left")
    table["reference"] = table["encoder"].map(is_reference).astype(bool)
    table["k"] = int(k)
    n_seeds = pd.to_numeric(table["n_seeds"], errors="coerce")  # rows written before seeds were recorded: one seed
    table["n_seeds"] = n_seeds.where(table["n_users"].isna(), n_seeds.fillna(1))
    # one seed: Wilson from the HitRate and n_users, whatever interval the row holds; several seeds: the row's
    # interval over users and seeds (evaluation/seed_intervals.py)
    stored = by_metric["hitrate"].reindex(pd.MultiIndex.from_frame(table[index]))
    stored_ci = zip(stored["ci_low"], stored["ci_high"]) if "ci_low" in stored else [(np.nan, np.nan)] * len(table)
    bounds = [(lo, hi) if s > 1 and pd.notna(lo) and pd.notna(hi) else
              wilson_interval(p, int(n)) if pd.notna(n) and pd.notna(p) else (np.nan, np.nan)
              for p, n, s, (lo, hi) in zip(table["hitrate"], table["n_users"], table["n_seeds"], stored_ci)]
    table["hitrate_ci_low"] = [lo for lo, _ in bounds]
    table["hitrate_ci_high"] = [hi for _, hi in bounds]
    table = table[CELL_COLUMNS].astype({"n_users": "Int64", "n_seeds": "Int64", "k": "int64", **{
        c: "float64" for c in [*METRICS, "hitrate_ci_low", "hitrate_ci_high", "hitrate_seed_sd", "ndcg_seed_sd"]}})
    return table.sort_values([HEADLINE_METRIC, SIGNIFICANCE_METRIC, "encoder", "recommender"],
                             ascending=[False, False, True, True], na_position="last", ignore_index=True)


def user_values(user_metrics: pd.DataFrame, split: str, k: int, metric: str) -> pd.DataFrame:
    """Per-user values of one metric: users as rows, (encoder, recommender) cells as columns, NaN where a
    cell has no row for that user."""
    um = user_metrics
    rows = um[(um["split"] == split) & (um["k"] == k) & (um["metric"] == metric)]
    if rows.empty:
        return pd.DataFrame(index=pd.Index([], name="user_id"),
                            columns=pd.MultiIndex.from_tuples([], names=["encoder", "recommender"]))
    return rows.pivot_table(index="user_id", columns=["encoder", "recommender"], values="value", aggfunc="mean")


def _paired(wide: pd.DataFrame, a: Cell, b: Cell) -> tuple[np.ndarray, np.ndarray] | None:
    if a not in wide.columns or b not in wide.columns:
        return None
    both = wide[[a, b]].dropna()
    return both[a].to_numpy(), both[b].to_numpy()


def _mean_paired_diff(wide: pd.DataFrame, a: Cell, b: Cell) -> float:
    pair = _paired(wide, a, b)
    return float(np.mean(pair[0] - pair[1])) if pair is not None and len(pair[0]) else np.nan


def compare_cells(sig: pd.DataFrame, hit: pd.DataFrame, pairs: Sequence[tuple[Cell, Cell] | None], name: str,
                  metric: str = SIGNIFICANCE_METRIC, seed: int = 0, n_resamples: int = N_RESAMPLES) -> pd.DataFrame:
    """One family of paired comparisons ``a − b`` (one row per pair, None = not compared), Holm within it, in the
    columns of :func:`_family_columns`. ``sig``/``hit``: :func:`user_values` of the significance metric and of
    HitRate (the mean paired HitRate difference on the users both cells have)."""
    family = paired_family([None if p is None else _paired(sig, *p) for p in pairs], n_resamples=n_resamples, seed=seed)
    values = [family[c].to_numpy() for c in ("mean_diff", "ci_low", "ci_high", "p_holm")]
    values.append([np.nan if p is None else _mean_paired_diff(hit, *p) for p in pairs])
    return pd.DataFrame(dict(zip(_family_columns(metric, name), values)))


def _family_columns(metric: str, name: str) -> list[str]:
    """The columns :func:`compare_cells` writes for the family ``name``."""
    return [f"{metric}_diff_vs_{name}", f"vs_{name}_ci_low", f"vs_{name}_ci_high", f"vs_{name}_p_holm",
            f"hitrate_diff_vs_{name}"]


def _best_first(board: pd.DataFrame, metric: str, tie: str) -> pd.DataFrame:
    """``board`` by ``metric``, then the headline metric, descending; ties by ``tie``; missing values last."""
    return board.sort_values([metric, HEADLINE_METRIC, tie], ascending=[False, False, True], ignore_index=True,
                             na_position="last")


def _best(board: pd.DataFrame, metric: str) -> int | None:
    scored = board[metric].astype(float)
    return None if scored.isna().all() else int(scored.idxmax())


def comparison(metrics: pd.DataFrame, user_metrics: pd.DataFrame, recommender: str, k: int = 50, seed: int = 0,
               split: str = "test", shuffled_base: str | None = None, metric: str = SIGNIFICANCE_METRIC,
               n_resamples: int = N_RESAMPLES) -> pd.DataFrame:
    """The study's table for one recommender: its audio encoders as rows (best first by ``metric``@k), then the
    reference cells, metrics @k on ``split`` as columns; empty when the recommender has no rows on an audio encoder.

    Three paired families, each Holm-corrected over the encoder rows: ``vs_twin`` (column ``twin``), ``vs_best``
    (``best`` = True, its diff 0) and ``vs_reference`` (the best reference cell by ``metric``, its diff 0; the other
    reference rows are not compared).
    """
    cells = metrics[(metrics["split"] == split) & (metrics["k"] == k)]
    audio = leaderboard(cells[(cells["recommender"] == recommender) & (cells["encoder"] != NO_AUDIO)], k=k, split=split)
    refs = leaderboard(cells[cells["encoder"] == NO_AUDIO], k=k, split=split)
    stat_columns = [c for name in ("twin", "best", "reference") for c in _family_columns(metric, name)]
    columns = [*CELL_COLUMNS[:3], "best", "twin", *CELL_COLUMNS[3:], *stat_columns]
    if audio.empty:
        return pd.DataFrame(columns=columns)
    audio, refs = _best_first(audio, metric, "encoder"), _best_first(refs, metric, "recommender")
    sig = user_values(user_metrics, split, k, metric)
    hit = user_values(user_metrics, split, k, "hitrate")
    encoders = list(audio["encoder"])
    cell = [(e, recommender) for e in encoders]
    twins = [shuffled_twin(e, encoders, shuffled_base) for e in encoders]
    best_i, ref_i = _best(audio, metric), _best(refs, metric)
    best = cell[best_i] if best_i is not None else None
    best_ref = (refs.at[ref_i, "encoder"], refs.at[ref_i, "recommender"]) if ref_i is not None else None
    families = {"twin": [(c, (t, recommender)) if t else None for c, t in zip(cell, twins)],
                "best": [(c, best) if best and c != best else None for c in cell],
                "reference": [(c, best_ref) if best_ref else None for c in cell]}
    parts = [compare_cells(sig, hit, pairs, name, metric, seed, n_resamples) for name, pairs in families.items()]
    audio = pd.concat([audio, *parts], axis=1)
    audio["twin"] = twins
    audio["best"] = [c == best for c in cell]
    if best_i is not None:
        audio.loc[best_i, [f"{metric}_diff_vs_best", "hitrate_diff_vs_best"]] = 0.0
    refs = refs.assign(best=False, twin=None)
    if ref_i is not None:
        refs.loc[ref_i, f"{metric}_diff_vs_reference"] = 0.0  # one by one: new columns (older pandas refuse a list)
        refs.loc[ref_i, "hitrate_diff_vs_reference"] = 0.0
    table = pd.concat([audio, refs.reindex(columns=audio.columns)], ignore_index=True) if len(refs) else audio
    table["best"] = table["best"].astype(bool)
    table["reference"] = table["reference"].astype(bool)
    return table[columns]


def _recommender_order(recommenders: Iterable[str]) -> list[str]:
    known = list(COMPARISONS.values())
    return sorted(set(recommenders), key=lambda r: (known.index(r) if r in known else len(known), r))


def comparison_cold(metrics: pd.DataFrame, user_metrics: pd.DataFrame, k: int = 50, seed: int = 0,
                    shuffled_base: str | None = None, metric: str = SIGNIFICANCE_METRIC, split: str = "test_cold",
                    n_resamples: int = N_RESAMPLES) -> pd.DataFrame:
    """Cold start: every cell with ``test_cold`` rows @k (recommenders knn, shallow, bert4rec first, then by
    ``metric``), each encoder vs its shuffled twin on the same users; Holm within each recommender."""
    cells = metrics[(metrics["split"] == split) & (metrics["k"] == k)]
    columns = [*CELL_COLUMNS[:3], "twin", *CELL_COLUMNS[3:], *_family_columns(metric, "twin")]
    if cells.empty:
        return pd.DataFrame(columns=columns)
    sig = user_values(user_metrics, split, k, metric)
    hit = user_values(user_metrics, split, k, "hitrate")
    blocks = []
    for recommender in _recommender_order(cells["recommender"]):
        board = leaderboard(cells[cells["recommender"] == recommender], k=k, split=split)
        board = _best_first(board, metric, "encoder")
        encoders = list(board["encoder"])
        twins = [shuffled_twin(e, encoders, shuffled_base) for e in encoders]
        stats = compare_cells(sig, hit, [((e, recommender), (t, recommender)) if t else None
                                         for e, t in zip(encoders, twins)], "twin", metric, seed, n_resamples)
        blocks.append(pd.concat([board, stats], axis=1).assign(twin=twins))
    table = pd.concat(blocks, ignore_index=True)
    table["reference"] = table["reference"].astype(bool)
    return table[columns]


def comparison_recommenders(user_metrics: pd.DataFrame, k: int = 50, seed: int = 0, split: str = "test",
                            metric: str = SIGNIFICANCE_METRIC, pairs: Sequence[tuple[str, str]] = RECOMMENDER_PAIRS,
                            encoders: Sequence[str] | None = None, n_resamples: int = N_RESAMPLES) -> pd.DataFrame:
    """Per encoder, the recommenders against each other on the same users: one row per encoder × pair
    (``recommender_a`` vs ``recommender_b``, both cells present), Holm within each encoder's pairs.

    Columns: ``encoder, reference, recommender_a, recommender_b, n_users`` (paired), ``{metric}_a``,
    ``{metric}_b`` (means on those users), ``{metric}_diff`` (a − b), ``ci_low, ci_high, p_value, p_holm``,
    ``hitrate_diff`` and ``verdict`` ("a > b" / "a < b" when p_holm < 0.05, else "no significant
    difference"). ``encoders`` fixes the order (default: alphabetical, ``none`` last).
    """
    columns = ["encoder", "reference", "recommender_a", "recommender_b", "n_users", f"{metric}_a", f"{metric}_b",
               f"{metric}_diff", "ci_low", "ci_high", "p_value", "p_holm", "hitrate_diff", "verdict"]
    sig = user_values(user_metrics, split, k, metric)
    hit = user_values(user_metrics, split, k, "hitrate")
    present = set(sig.columns)
    found = {e for e, _ in present}
    if encoders is not None:
        order = [e for e in dict.fromkeys(encoders) if e in found]
    else:
        order = sorted(found, key=lambda e: (is_reference(e), e))
    rows = []
    for encoder in order:
        family = [(a, b) for a, b in pairs if (encoder, a) in present and (encoder, b) in present]
        if not family:
            continue
        paired = [_paired(sig, (encoder, a), (encoder, b)) for a, b in family]
        stats = paired_family(paired, n_resamples=n_resamples, seed=seed)
        for (a, b), pair, (_, s) in zip(family, paired, stats.iterrows()):
            verdict = ("not compared" if s["n_paired"] == 0 else
                       f"{a} > {b}" if s["p_holm"] < ALPHA and s["mean_diff"] > 0 else
                       f"{a} < {b}" if s["p_holm"] < ALPHA and s["mean_diff"] < 0 else "no significant difference")
            rows.append({
                "encoder": encoder, "reference": is_reference(encoder), "recommender_a": a, "recommender_b": b,
                "n_users": int(s["n_paired"]),
                f"{metric}_a": float(pair[0].mean()) if len(pair[0]) else np.nan,
                f"{metric}_b": float(pair[1].mean()) if len(pair[1]) else np.nan,
                f"{metric}_diff": s["mean_diff"], "ci_low": s["ci_low"], "ci_high": s["ci_high"],
                "p_value": s["p_value"], "p_holm": s["p_holm"],
                "hitrate_diff": _mean_paired_diff(hit, (encoder, a), (encoder, b)), "verdict": verdict,
            })
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({"n_users": "int64", "reference": bool}) if len(table) else table
