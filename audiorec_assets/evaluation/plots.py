"""Figures for people: PNG bytes, ready for Dagster metadata or a file."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from audiorec_assets.encoders import NO_AUDIO_ENCODER as NO_AUDIO  # the encoder of the reference cells

LABELS = {"hitrate": "HitRate", "recall": "Recall", "precision": "Precision", "ndcg": "NDCG", "mrr": "MRR"}


def _metric_table(metrics_df: pd.DataFrame, metric: str, k: int, split: str | None) -> pd.DataFrame:
    """The ``metric``@k rows (one per encoder × recommender), encoders and recommenders sorted by name."""
    rows = metrics_df[(metrics_df["metric"] == metric) & (metrics_df["k"] == k)]
    if split is not None:
        rows = rows[rows["split"] == split]
    return rows.sort_values(["encoder", "recommender"]).drop_duplicates(["encoder", "recommender"], keep="last")


def spread_labels(values: np.ndarray, gap: float, floor: float | None = None) -> np.ndarray:
    """Heights for labels at ``values`` at least ``gap`` apart (and not below ``floor``), each as near its value
    as that allows: labels that would overlap are stacked around their mean; the order of the values is kept."""
    values = np.asarray(values, dtype=float)
    clusters: list[list[int]] = []
    for i in np.argsort(values, kind="stable"):
        clusters.append([int(i)])
        while len(clusters) > 1:  # merge the last two while they overlap
            low, high = clusters[-2], clusters[-1]
            top_of_low = values[low].mean() + (len(low) - 1) * gap / 2
            bottom_of_high = values[high].mean() - (len(high) - 1) * gap / 2
            if bottom_of_high - top_of_low >= gap:
                break
            clusters[-2:] = [low + high]
    heights = np.empty(len(values))
    for members in clusters:
        first = values[members].mean() - (len(members) - 1) * gap / 2
        heights[members] = first + gap * np.arange(len(members))
    if floor is not None and len(heights):
        order = np.argsort(heights, kind="stable")
        lifted = np.maximum.accumulate(np.maximum(heights[order], floor) - gap * np.arange(len(order)))
        heights[order] = lifted + gap * np.arange(len(order))
    return heights


BAR_WIDTH = 12  # characters: narrow enough for the metadata column of the asset page
_EIGHTHS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")


def bar_text(value: float, top: float, width: int = BAR_WIDTH) -> str:
    """``value`` as a bar of block characters, ``width`` long at ``top``: a plot that fits in a table cell."""
    if not np.isfinite(value) or not np.isfinite(top) or top <= 0:
        return ""
    eighths = int(round(min(max(value, 0.0), top) / top * width * 8))
    return "█" * (eighths // 8) + _EIGHTHS[eighths % 8]


def leaderboard_view(board: pd.DataFrame, metric: str = "hitrate", digits: int = 3) -> pd.DataFrame:
    """A leaderboard (:func:`audiorec_assets.evaluation.tables.leaderboard`) for people: the cell, a bar of
    ``metric``, the metrics rounded to ``digits``, HitRate's CI as one ``low–high`` text, users and seeds; the
    seed-spread columns only when some cell has more than one seed."""
    view = pd.DataFrame({"encoder": board["encoder"], "recommender": board["recommender"]})
    view["audio"] = np.where(board["reference"].astype(bool), "no", "yes")
    values = board[metric].astype(float)
    view[metric] = values.round(digits)
    view[f"{metric}_bar"] = [bar_text(v, values.max()) for v in values]
    for column in ("ndcg", "recall"):
        if column in board:
            view[column] = board[column].astype(float).round(digits)
    if {"hitrate_ci_low", "hitrate_ci_high"} <= set(board.columns):
        view["hitrate_95ci"] = [f"{lo:.{digits}f}–{hi:.{digits}f}" if pd.notna(lo) and pd.notna(hi) else None
                                for lo, hi in zip(board["hitrate_ci_low"], board["hitrate_ci_high"])]
    for column in ("n_users", "n_seeds"):
        if column in board:
            view[column] = board[column]
    several_seeds = "n_seeds" in board and (pd.to_numeric(board["n_seeds"], errors="coerce") > 1).any()
    for column in ("hitrate_seed_sd", "ndcg_seed_sd"):
        if several_seeds and column in board:
            view[column] = board[column].astype(float).round(digits)
    return view.reset_index(drop=True)


def whiskers(value: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Error-bar lengths from interval bounds; a missing bound draws no whisker."""
    return np.vstack([np.nan_to_num(value - low, nan=0.0).clip(min=0),
                      np.nan_to_num(high - value, nan=0.0).clip(min=0)])


def reference_label(recommender: str) -> str:
    """How a reference line is labelled: the recommender, and "(item ids)" for the ones that learn ids."""
    return recommender if recommender in ("popularity", "als") else f"{recommender} (item ids)"


def hitrate_plot_png(metrics_df: pd.DataFrame, k: int = 50, split: str | None = "test",
                     metric: str = "hitrate") -> bytes:
    """Grouped bar chart of ``metric``@``k`` on ``split`` from ``audiorec.metrics`` rows: audio encoders on x, one bar
    per recommender, 95 % CI whiskers (none where a CI is missing); the reference cells (encoder ``none``) as dashed
    horizontal lines labelled with their recommender, their CI as a faint band. No matching rows: the PNG says so.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: assets run without a display
    import matplotlib.pyplot as plt

    table = _metric_table(metrics_df, metric, k, split)
    is_ref = table["encoder"] == NO_AUDIO
    bars, refs = table[~is_ref], table[is_ref].sort_values("value", ascending=False)
    encoders = sorted(bars["encoder"].unique())
    recommenders = sorted(bars["recommender"].unique())
    colours = plt.get_cmap("tab10").colors
    colour_of = {r: colours[i % len(colours)]
                 for i, r in enumerate(sorted(set(table["recommender"]), key=lambda r: (r not in recommenders, r)))}
    label = f"{LABELS.get(metric, metric)}@{k}"
    width_in = max(6.0, 1.5 + len(encoders) * (0.4 + 0.25 * max(1, len(recommenders))))
    fig, ax = plt.subplots(figsize=(width_in, 4.5))
    try:
        if table.empty:
            ax.text(0.5, 0.5, f"no {metric}@{k} rows" + (f" for split {split!r}" if split else ""),
                    ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        else:
            x = np.arange(len(encoders))
            width = 0.8 / max(1, len(recommenders))
            for j, rec in enumerate(recommenders):
                sub = bars[bars["recommender"] == rec].set_index("encoder").reindex(encoders)
                value = sub["value"].to_numpy(dtype=float)
                # NaN bounds (too few users) → no whisker
                yerr = whiskers(value, sub["ci_low"].to_numpy(dtype=float), sub["ci_high"].to_numpy(dtype=float))
                shown = np.isfinite(value)  # a cell without a row draws no bar
                ax.bar((x - 0.4 + width * (j + 0.5))[shown], value[shown], width, label=rec, color=colour_of[rec],
                       yerr=yerr[:, shown], capsize=3)
            left, right = (-0.6, len(encoders) - 0.4) if encoders else (0.0, 1.0)
            for _, ref in refs.iterrows():
                name = reference_label(ref["recommender"])
                colour = colour_of[ref["recommender"]]
                ax.axhline(ref["value"], color=colour, linestyle="--", linewidth=1.5, label=name)
                if pd.notna(ref.get("ci_low")) and pd.notna(ref.get("ci_high")):
                    ax.axhspan(ref["ci_low"], ref["ci_high"], color=colour, alpha=0.08, linewidth=0)
            ax.set_xlim(left, right)
            ax.set_ylim(bottom=0)
            _label_references(ax, refs, colour_of, right)
            if encoders:
                ax.set_xticks(x, encoders, rotation=30, ha="right")
                ax.set_xlabel("encoder")
            else:
                ax.set_xticks([])
            ax.set_ylabel(label)
            ax.set_title(f"{label}" + (f" ({split})" if split else "") + " with 95 % CI")
            ax.legend(title="recommender" + ("\n(dashed: no audio)" if len(refs) else ""), fontsize="small",
                      loc="upper left", bbox_to_anchor=(1.01, 1.0))
            ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")  # the legend sits outside the axes
        return buffer.getvalue()
    finally:
        plt.close(fig)


LABEL_GAP = 0.055  # of the y range: the height of a "small" label on the 4.5-inch figure, with a margin


def _label_references(ax, refs: pd.DataFrame, colour_of: dict, right: float) -> None:
    """Each reference line's name at the right end, near its line, no two labels overlapping (stacked where
    the lines are close), on a pale box so that bars behind them do not hide them."""
    if refs.empty:
        return
    bottom, top = ax.get_ylim()
    gap = LABEL_GAP * (top - bottom)
    heights = spread_labels(refs["value"].to_numpy(dtype=float) + gap / 2, gap, floor=bottom + gap / 2)
    if heights.max() + gap / 2 > top:  # room for the highest label
        ax.set_ylim(bottom, heights.max() + gap / 2)
    for (_, ref), height in zip(refs.iterrows(), heights):
        ax.text(right, height, reference_label(ref["recommender"]) + " ", ha="right", va="center",
                fontsize="small", color=colour_of[ref["recommender"]],
                bbox=dict(facecolor="white", alpha=0.7, edgecolor="none", pad=1.0))
