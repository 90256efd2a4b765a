"""What audio adds: each audio encoder next to its own shuffled twin, on warm (``test``) and cold (``test_cold``)
tracks, per recommender (docs/statistics.md, "Paired comparisons"). The study expects audio ≈ shuffled on warm
tracks under sequence models and audio ≫ shuffled on cold tracks; the figure shows whether that holds.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

from audiorec_assets.evaluation.plots import LABELS, whiskers
from audiorec_assets.evaluation.tables import ALPHA, _recommender_order, shuffled_twin

WARM, COLD = "test", "test_cold"
SPLIT_TITLES = {WARM: "warm tracks (test)", COLD: "cold tracks (test_cold)"}
VERDICT_COLUMNS = ["split", "encoder", "recommender", "twin", "p_holm", "diff"]
COLUMNS = ["split", "recommender", "encoder", "twin", "k", "value", "ci_low", "ci_high", "n_users",
           "twin_value", "twin_ci_low", "twin_ci_high", "twin_n_users", "p_holm", "verdict"]


def twin_verdicts(comparison: pd.DataFrame, split: str, metric: str = "ndcg") -> pd.DataFrame:
    """The vs-twin test of a comparison table (:func:`audiorec_assets.evaluation.tables.comparison` or
    ``comparison_cold``) as :data:`VERDICT_COLUMNS` rows for ``split``: the rows that were compared with a twin."""
    needed = {"encoder", "recommender", "twin", "vs_twin_p_holm", f"{metric}_diff_vs_twin"}
    if comparison.empty or not needed <= set(comparison.columns):
        return pd.DataFrame(columns=VERDICT_COLUMNS)
    tested = comparison[comparison["twin"].notna() & comparison["vs_twin_p_holm"].notna()]
    return pd.DataFrame({"split": split, "encoder": tested["encoder"], "recommender": tested["recommender"],
                         "twin": tested["twin"], "p_holm": tested["vs_twin_p_holm"].astype(float),
                         "diff": tested[f"{metric}_diff_vs_twin"].astype(float)})[VERDICT_COLUMNS]


def _verdict(p_holm: float, diff: float) -> str:
    if not np.isfinite(p_holm):
        return "not tested"
    if p_holm >= ALPHA:
        return "no significant difference"
    return "audio > twin" if diff > 0 else "audio < twin"


def audio_effect_rows(metrics: pd.DataFrame, k: int, shuffled_base: str | None,
                      verdicts: pd.DataFrame | None = None, metric: str = "hitrate",
                      splits: Sequence[str] = (WARM, COLD)) -> pd.DataFrame:
    """The figure's numbers: one row per split × recommender × audio encoder that has a shuffled twin
    (:func:`~audiorec_assets.evaluation.tables.shuffled_twin`) among that recommender's cells on that split.

    ``value``/``ci_low``/``ci_high``/``n_users``: the encoder's ``metric``@``k`` as stored in ``audiorec.metrics``;
    ``twin_*`` the same for its twin. ``p_holm`` and ``verdict`` come from ``verdicts`` (:func:`twin_verdicts`),
    matched on split, cell and twin; NaN / "not tested" where no comparison table tested the pair. Encoders without
    a twin, the twins themselves and the no-audio cells are left out. Ordered by split (as given), recommender (knn,
    shallow, bert4rec, then by name), encoder.
    """
    rows = metrics[(metrics["metric"] == metric) & (metrics["k"] == k) & metrics["split"].isin(splits)]
    cells = rows.drop_duplicates(["split", "encoder", "recommender"], keep="last").set_index(
        ["split", "recommender", "encoder"])
    tests = {} if verdicts is None else {
        (v.split, v.recommender, v.encoder, v.twin): (v.p_holm, v.diff) for v in verdicts.itertuples()}
    out = []
    for split in splits:
        in_split = cells.loc[split] if split in cells.index.get_level_values("split") else cells.iloc[:0]
        recommenders = in_split.index.get_level_values("recommender")
        for recommender in _recommender_order(recommenders):
            encoders = sorted(in_split.loc[recommender].index)
            for encoder in encoders:
                twin = shuffled_twin(encoder, encoders, shuffled_base)
                if twin is None:
                    continue
                mine, theirs = in_split.loc[(recommender, encoder)], in_split.loc[(recommender, twin)]
                p_holm, diff = tests.get((split, recommender, encoder, twin), (np.nan, np.nan))
                out.append({
                    "split": split, "recommender": recommender, "encoder": encoder, "twin": twin, "k": int(k),
                    **{c: mine.get(c, np.nan) for c in ("value", "ci_low", "ci_high", "n_users")},
                    **{f"twin_{c}": theirs.get(c, np.nan) for c in ("value", "ci_low", "ci_high", "n_users")},
                    "p_holm": float(p_holm), "verdict": _verdict(float(p_holm), float(diff))})
    frame = pd.DataFrame(out, columns=COLUMNS)
    floats = ["value", "ci_low", "ci_high", "twin_value", "twin_ci_low", "twin_ci_high", "p_holm"]
    return frame.astype({c: "float64" for c in floats})


HEADER_IN = 0.85  # inches above the panels: the title's two lines and the legend
MARKS = {"audio > twin": "*", "audio < twin": "*↓", "no significant difference": "ns", "not tested": ""}


def audio_effect_png(effect: pd.DataFrame, k: int, metric: str = "hitrate",
                     splits: Sequence[str] = (WARM, COLD)) -> bytes:
    """``effect`` (:func:`audio_effect_rows`) as a grid: one row of panels per recommender, warm and cold side by
    side (shared y within a row); in each panel every encoder's bar next to its shuffled twin's (hatched), 95 %
    interval whiskers, and the paired test's mark above the pair (``*`` audio better, ``*↓`` audio worse,
    ``ns`` no significant difference after Holm). A split with no rows shows that in its panel; no rows at all
    gives a PNG that says so."""
    import matplotlib

    matplotlib.use("Agg")  # headless: assets run without a display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    label = f"{LABELS.get(metric, metric)}@{k}"
    recommenders = _recommender_order(effect["recommender"])
    widest = max([effect[effect["recommender"] == r].groupby("split").size().max() for r in recommenders] or [1])
    n_rows = max(1, len(recommenders))
    height = HEADER_IN + 2.8 * n_rows
    fig, axes = plt.subplots(n_rows, len(splits), squeeze=False, sharey="row",
                             figsize=(max(7.0, len(splits) * (1.6 + 1.0 * widest)), height))
    colours = plt.get_cmap("tab10").colors
    colour_of = {e: colours[i % len(colours)] for i, e in enumerate(sorted(set(effect["encoder"])))}
    try:
        if effect.empty:
            for ax in axes.flat:
                ax.set_axis_off()
            fig.text(0.5, 0.5, f"no encoder with a shuffled twin has {label} rows", ha="center", va="center")
        for i, recommender in enumerate(recommenders):
            for j, split in enumerate(splits):
                ax = axes[i, j]
                sub = effect[(effect["recommender"] == recommender) & (effect["split"] == split)]
                if i == 0:
                    ax.set_title(SPLIT_TITLES.get(split, split))
                if j == 0:
                    ax.set_ylabel(f"{recommender}\n{label}")
                if sub.empty:
                    ax.text(0.5, 0.5, f"no encoder–twin pair\nwith {split} rows\nfor {recommender}", ha="center",
                            va="center", transform=ax.transAxes, color="grey")
                    ax.set_xticks([])
                    continue
                _pair_bars(ax, sub, colour_of)
        if not effect.empty:
            handles = [Patch(facecolor="0.5", label="encoder (audio)"),
                       Patch(facecolor="0.85", edgecolor="0.4", hatch="///", label="its shuffled twin")]
            # title and legend in a header of fixed height, whatever the number of rows
            fig.suptitle(f"What audio adds: {label} with 95 % CI, each encoder vs its shuffled twin\n"
                         f"paired NDCG@{k} test vs twin, Holm: * audio better, *↓ audio worse, ns no difference",
                         y=1 - 0.05 / height, va="top", fontsize="medium")
            fig.legend(handles=handles, loc="upper center", ncol=2, fontsize="small",
                       bbox_to_anchor=(0.5, 1 - 0.55 / height))
        fig.tight_layout()
        if not effect.empty:  # below the header (tight_layout alone leaves a gap that grows with the rows)
            fig.subplots_adjust(top=1 - (HEADER_IN + 0.3) / height)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def _pair_bars(ax, sub: pd.DataFrame, colour_of: dict) -> None:
    """One panel: the encoders of ``sub`` on x, each with its twin's bar to the right and the test's mark above."""
    x = np.arange(len(sub))
    width = 0.38
    value, twin_value = sub["value"].to_numpy(float), sub["twin_value"].to_numpy(float)
    colour = [colour_of[e] for e in sub["encoder"]]
    ax.bar(x - width / 2, value, width, color=colour, capsize=3,
           yerr=whiskers(value, sub["ci_low"].to_numpy(float), sub["ci_high"].to_numpy(float)))
    ax.bar(x + width / 2, twin_value, width, color=colour, alpha=0.35, hatch="///", edgecolor="0.4", capsize=3,
           yerr=whiskers(twin_value, sub["twin_ci_low"].to_numpy(float), sub["twin_ci_high"].to_numpy(float)))
    tops = np.fmax(np.fmax(sub["ci_high"].to_numpy(float), value), np.fmax(sub["twin_ci_high"].to_numpy(float),
                                                                        twin_value))
    top = np.nanmax(tops) if np.isfinite(tops).any() else 1.0
    for xi, height, verdict in zip(x, tops, sub["verdict"]):
        if MARKS.get(verdict):
            ax.text(xi, (height if np.isfinite(height) else 0) + 0.02 * top, MARKS[verdict], ha="center",
                    va="bottom", fontsize="small")
    ax.set_ylim(0, max(ax.get_ylim()[1], top * 1.15))
    ax.set_xticks(x, list(sub["encoder"]), fontsize="small")  # the twin's name is in the asset's table
    ax.set_xlim(-0.6, max(len(sub), 2) - 0.4)  # one pair stays as narrow as in a panel with two
    ax.grid(axis="y", alpha=0.3)
