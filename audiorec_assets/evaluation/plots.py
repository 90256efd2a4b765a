"""Figures for people: PNG bytes, ready for Dagster metadata or a file."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd


def _hitrate_table(metrics_df: pd.DataFrame, k: int, split: str | None) -> pd.DataFrame:
    """The hitrate@k rows (one per encoder × recommender), encoders and recommenders sorted by name."""
    rows = metrics_df[(metrics_df["metric"] == "hitrate") & (metrics_df["k"] == k)]
    if split is not None:
        rows = rows[rows["split"] == split]
    return rows.sort_values(["encoder", "recommender"]).drop_duplicates(["encoder", "recommender"], keep="last")


def hitrate_plot_png(metrics_df: pd.DataFrame, k: int = 50, split: str | None = "test") -> bytes:
    """Grouped bar chart of HitRate@``k`` on ``split``: encoders on x, one bar per recommender, 95 % CI whiskers.

    ``metrics_df`` has the columns of ``audiorec.metrics`` (encoder, recommender, split,
    metric, k, value, ci_low, ci_high). Missing CIs draw no whisker; with no matching rows
    the PNG says so instead of failing.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: assets run without a display
    import matplotlib.pyplot as plt

    table = _hitrate_table(metrics_df, k, split)
    encoders = sorted(table["encoder"].unique())
    recommenders = sorted(table["recommender"].unique())
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 + len(encoders) * (0.4 + 0.25 * len(recommenders))), 4.5))
    try:
        if table.empty:
            ax.text(0.5, 0.5, f"no hitrate@{k} rows" + (f" for split {split!r}" if split else ""),
                    ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        else:
            x = np.arange(len(encoders))
            width = 0.8 / len(recommenders)
            for j, rec in enumerate(recommenders):
                sub = table[table["recommender"] == rec].set_index("encoder").reindex(encoders)
                value = sub["value"].to_numpy(dtype=float)
                # whisker lengths; NaN bounds (too few users) → no whisker
                lower = np.nan_to_num(value - sub["ci_low"].to_numpy(dtype=float), nan=0.0).clip(min=0)
                upper = np.nan_to_num(sub["ci_high"].to_numpy(dtype=float) - value, nan=0.0).clip(min=0)
                ax.bar(x - 0.4 + width * (j + 0.5), np.nan_to_num(value), width, label=rec,
                       yerr=np.vstack([lower, upper]), capsize=3)
            ax.set_xticks(x, encoders, rotation=30, ha="right")
            ax.set_xlabel("encoder")
            ax.set_ylabel(f"HitRate@{k}")
            ax.set_title(f"HitRate@{k}" + (f" ({split})" if split else "") + " with 95 % CI")
            ax.legend(title="recommender", fontsize="small")
            ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        return buffer.getvalue()
    finally:
        plt.close(fig)
