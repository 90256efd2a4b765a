"""Across partitions: ``audiorec/leaderboard`` and the study's comparison tables (cosine / shallow / bert)."""

from pathlib import Path

import dagster as dg
import pandas as pd

from audiorec_assets.defs import lineage
from audiorec_assets.defs.models import METRICS, part_name
from audiorec_assets.lakeio import atomic_path
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.evaluation import tables
from audiorec_assets.settings import ExperimentSettings, LakePaths
from audiorec_assets.warehouse import write_table_file

LEADERBOARD = dg.AssetKey(["audiorec", "leaderboard"])


def _main_k(ks: list[int]) -> int:
    return 50 if 50 in ks else max(ks)


def configured_metric_files(paths: LakePaths, settings: ExperimentSettings, table: str = "metrics") -> list[Path]:
    """The ``table`` files of the encoders × recommenders in the settings that exist: what the tables for
    people are made of (the study plan uses the same list). Older partitions' files stay queryable in
    ``audiorec.<table>``."""
    files = [paths.table_dir(table) / f"{part_name(e, r)}.parquet" for e in settings.encoders for r in settings.recommenders]
    return [f for f in files if f.exists()]


def configured_rows(paths: LakePaths, settings: ExperimentSettings, table: str) -> pd.DataFrame:
    files = configured_metric_files(paths, settings, table)
    if not files:
        raise FileNotFoundError(f"No {table} yet for the configured encoders × recommenders in {paths.table_dir(table)}.")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


@dg.asset(key=LEADERBOARD, deps=[METRICS], group_name="evaluation", kinds={"duckdb", "parquet"},
          description="One row per encoder × recommender with the test metrics @50; plot of HitRate@50 with CIs.")
def leaderboard(lake: LakeResource) -> dg.MaterializeResult:
    from audiorec_assets.evaluation.plots import hitrate_plot_png

    paths, settings = lake.paths(), lake.settings()
    metrics = configured_rows(paths, settings, "metrics")
    k = _main_k(settings.ks)
    board = tables.leaderboard(metrics, k=k)
    write_table_file(paths, "leaderboard", board)
    png = hitrate_plot_png(metrics, k=k)
    plot_path = paths.tables / "leaderboard_hitrate.png"
    with atomic_path(plot_path) as tmp:
        tmp.write_bytes(png)
    metrics_fps = [lineage.table_fingerprint(f) for f in configured_metric_files(paths, settings)]
    return dg.MaterializeResult(metadata={
        lineage.BUILT_FROM: lineage.tables_built_from(settings, metrics_fps),
        "dagster/row_count": len(board),
        "leaderboard": dg.MetadataValue.md(board.to_markdown(index=False, floatfmt=".4f")),
        "hitrate_plot": dg.MetadataValue.md(_png_markdown(png)),
        "plot_path": dg.MetadataValue.path(str(plot_path)),
    })


def _png_markdown(png: bytes) -> str:
    import base64

    return f"![HitRate@50 by encoder and recommender](data:image/png;base64,{base64.b64encode(png).decode()})"


def build_comparison_asset(name: str, recommender: str) -> dg.AssetsDefinition:
    @dg.asset(key=dg.AssetKey(["audiorec", f"comparison_{name}"]), deps=[METRICS], group_name="evaluation",
              kinds={"duckdb", "parquet"},
              description=f"The study's '{name}' table: {recommender} per encoder, test metrics @50, "
                          f"paired bootstrap vs the best encoder (Holm-corrected).")
    def comparison(lake: LakeResource) -> dg.MaterializeResult:
        paths, settings = lake.paths(), lake.settings()
        k = _main_k(settings.ks)
        board = tables.comparison(configured_rows(paths, settings, "metrics"),
                                  configured_rows(paths, settings, "user_metrics"), recommender,
                                  k=k, seed=settings.seed)
        write_table_file(paths, f"comparison_{name}", board)
        return dg.MaterializeResult(metadata={
            "dagster/row_count": len(board),
            "table": dg.MetadataValue.md(board.to_markdown(index=False, floatfmt=".4f") if len(board) else "(no rows)"),
        })

    return comparison


COMPARISON_ASSETS = [build_comparison_asset(name, rec) for name, rec in tables.COMPARISONS.items()]
