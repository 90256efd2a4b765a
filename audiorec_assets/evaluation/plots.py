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


def _hitrate_table(metrics_df: pd.DataFrame, k: int, split: str | None) -> pd.DataFrame:
    return _metric_table(metrics_df, "hitrate", k, split)


def reference_label(recommender: str) -> str:
    """How a reference line is labelled: the recommender, and "(item ids)" for the ones that learn ids."""
    return recommender if recommender in ("popularity", "als") else f"{recommender} (item ids)"


def hitrate_plot_png(metrics_df: pd.DataFrame, k: int = 50, split: str | None = "test",
                     metric: str = "hitrate") -> bytes:
    """Grouped bar chart of ``metric``@``k`` (HitRate by default) on ``split``: audio encoders on x, one bar per
    recommender, 95 % CI whiskers; the reference cells (encoder ``none``: popularity, als, shallow/bert4rec on
    item ids) as dashed horizontal lines labelled with their recommender, with their CI as a faint band.

    ``metrics_df`` has the columns of ``audiorec.metrics`` (encoder, recommender, split,
    metric, k, value, ci_low, ci_high). Missing CIs draw no whisker; with no matching rows
    the PNG says so instead of failing.
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
                # whisker lengths; NaN bounds (too few users) → no whisker
                lower = np.nan_to_num(value - sub["ci_low"].to_numpy(dtype=float), nan=0.0).clip(min=0)
                upper = np.nan_to_num(sub["ci_high"].to_numpy(dtype=float) - value, nan=0.0).clip(min=0)
                shown = np.isfinite(value)  # a cell without a row draws no bar
                ax.bar((x - 0.4 + width * (j + 0.5))[shown], value[shown], width, label=rec, color=colour_of[rec],
                       yerr=np.vstack([lower, upper])[:, shown], capsize=3)
            left, right = (-0.6, len(encoders) - 0.4) if encoders else (0.0, 1.0)
            for _, ref in refs.iterrows():
                name = reference_label(ref["recommender"])
                colour = colour_of[ref["recommender"]]
                ax.axhline(ref["value"], color=colour, linestyle="--", linewidth=1.5, label=name)
                if pd.notna(ref.get("ci_low")) and pd.notna(ref.get("ci_high")):
                    ax.axhspan(ref["ci_low"], ref["ci_high"], color=colour, alpha=0.08, linewidth=0)
                ax.annotate(name, xy=(right, ref["value"]), xytext=(-3, 2), textcoords="offset points",
                            va="bottom", ha="right", fontsize="small", color=colour)
            ax.set_xlim(left, right)
            if encoders:
                ax.set_xticks(x, encoders, rotation=30, ha="right")
                ax.set_xlabel("encoder")
            else:
                ax.set_xticks([])
            ax.set_ylim(bottom=0)
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
