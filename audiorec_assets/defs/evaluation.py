"""Across partitions: ``audiorec/leaderboard`` (+ ``leaderboard_cold``), the comparison tables and the figure of
what audio adds (``audiorec/audio_effect_plot``), at ``settings.headline_k`` over the configured cells whose files
exist; the tables themselves are pure functions in :mod:`audiorec_assets.evaluation.tables`."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from audiorec_assets.defs.automation import across_cells, with_tables
from audiorec_assets.defs.partitions import GRID
from audiorec_assets.defs.models import METRICS, REFERENCE_METRICS, REFERENCE_USER_METRICS, USER_METRICS, part_name
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.defs.sources import SETTINGS_TABLES
from audiorec_assets.fingerprints import file_hash, table_fingerprint
from audiorec_assets.lakeio import atomic_path, process_staging
from audiorec_assets.evaluation import tables
from audiorec_assets.settings import ExperimentSettings, LakePaths
from audiorec_assets.study import study_cells
from audiorec_assets.warehouse import write_table_file

LEADERBOARD = dg.AssetKey(["audiorec", "leaderboard"])
LEADERBOARD_COLD = dg.AssetKey(["audiorec", "leaderboard_cold"])
COLD_SPLIT = "test_cold"
CODE_VERSION = "1"  # bump when a change to the tables changes what they hold
# every table's asset spec: it reads the metrics of every cell (audio and references) and the settings of the tables
TABLE_SPEC = {"deps": [METRICS, REFERENCE_METRICS, USER_METRICS, REFERENCE_USER_METRICS, SETTINGS_TABLES],
              "group_name": "evaluation", "code_version": CODE_VERSION,
              "automation_condition": across_cells([METRICS, REFERENCE_METRICS])}
# the columns of the short markdown view of a comparison table (those present)
SUMMARY_COLUMNS = ["encoder", "recommender", "reference", "best", "twin", "n_users", "hitrate", "ndcg",
                   "ndcg_diff_vs_twin", "vs_twin_p_holm", "ndcg_diff_vs_best", "vs_best_p_holm",
                   "ndcg_diff_vs_reference", "vs_reference_p_holm"]


def configured_metric_files(paths: LakePaths, settings: ExperimentSettings, table: str = "metrics") -> list[Path]:
    """The ``table`` files of the study's cells (:func:`study_cells`) that exist: what the tables for people
    are made of. Older partitions' files stay queryable in ``audiorec.<table>``."""
    files = [paths.table_dir(table) / f"{part_name(e, r)}.parquet" for e, r in study_cells(settings)]
    return [f for f in files if f.exists()]


def configured_rows(paths: LakePaths, settings: ExperimentSettings, table: str,
                    filters: list[tuple] | None = None) -> pd.DataFrame:
    """The rows of ``table`` over the configured cells (``filters``: pyarrow row filters, to read less)."""
    files = configured_metric_files(paths, settings, table)
    if not files:
        raise FileNotFoundError(f"No {table} yet for the configured encoders × recommenders in {paths.table_dir(table)}.")
    return pd.concat([pd.read_parquet(f, filters=filters) for f in files], ignore_index=True)


def _user_rows(paths: LakePaths, settings: ExperimentSettings, split: str) -> pd.DataFrame:
    """The per-user rows the paired tests read: ``split``, K = headline_k, the significance metric and HitRate."""
    return configured_rows(paths, settings, "user_metrics", filters=[
        ("split", "==", split), ("k", "==", settings.headline_k),
        ("metric", "in", [tables.SIGNIFICANCE_METRIC, "hitrate"])])


DIGITS = 3  # metric values in the UI: what a 95 % CI of a few hundred users can tell apart


def _markdown(frame: pd.DataFrame) -> dg.MetadataValue:
    """Every column, numbers rounded (a dialog in the UI: "[Show Markdown]")."""
    return dg.MetadataValue.md(frame.round(DIGITS).to_markdown(index=False, floatfmt=f".{DIGITS}f")
                               if len(frame) else "(no rows)")


_COLUMN_TYPES = {"b": "bool", "i": "int", "u": "int", "f": "float"}


def _cell(value: object) -> str | int | float | bool:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), DIGITS)
    return str(value)


def _table(frame: pd.DataFrame) -> dg.MetadataValue:
    """``frame`` as a Dagster table: the UI shows it in the asset's page as it is (no dialog to open)."""
    schema = dg.TableSchema(columns=[dg.TableColumn(str(c), _COLUMN_TYPES.get(frame[c].dtype.kind, "string"))
                                     for c in frame.columns])
    return dg.MetadataValue.table([dg.TableRecord({str(c): _cell(v) for c, v in row.items()})
                                   for row in frame.to_dict("records")], schema)


def _png_markdown(png: bytes, k: int, split: str, label: str | None = None) -> str:
    import base64

    label = label or f"HitRate@{k} ({split}) by encoder and recommender, references dashed"
    return f"![{label}](data:image/png;base64,{base64.b64encode(png).decode()})"


def _write_plot(paths: LakePaths, name: str, png: bytes) -> Path:
    plot_path = paths.tables / f"{name}.png"
    with atomic_path(plot_path, staging=process_staging(paths.staging)) as tmp:
        tmp.write_bytes(png)
    return plot_path


def for_people(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of a table that the asset page shows: a comparison's main columns, a leaderboard's
    :func:`leaderboard_view`; a column empty in this study (a seed spread with one seed) is left out."""
    from audiorec_assets.evaluation.plots import leaderboard_view

    if "twin" in frame or "best" in frame:
        shown = frame[[c for c in SUMMARY_COLUMNS if c in frame]]
    else:
        shown = leaderboard_view(frame, digits=DIGITS) if "hitrate_ci_low" in frame else frame
    return shown.dropna(axis=1, how="all") if len(shown) else shown


def _table_result(lake: LakeResource, settings: ExperimentSettings, table: str, frame: pd.DataFrame, split: str,
                  key: dg.AssetKey | None = None, **metadata: object) -> dg.MaterializeResult:
    """Write ``frame`` as ``audiorec.<table>`` and describe it: row count, K, split, the table for people as a
    Dagster table (:func:`for_people`), every column as markdown."""
    written = write_table_file(lake.paths(), table, frame, connect=lake.connect)
    return dg.MaterializeResult(asset_key=key, data_version=dg.DataVersion(table_fingerprint(written)), metadata={
        "table": _table(for_people(frame)),
        **metadata,
        "dagster/row_count": len(frame),
        "k": settings.headline_k,
        "split": split,
        "all_columns": _markdown(frame),
    })


def build_leaderboard_asset(key: dg.AssetKey, split: str, description: str) -> dg.AssetsDefinition:
    """``audiorec/<table>``: one row per configured cell with results on ``split`` @headline_k, best first, and
    the plot of HitRate@headline_k with the reference cells as dashed lines."""
    table = key.path[-1]
    plot_key = dg.AssetKey(["audiorec", f"{table}_plot"])

    @dg.multi_asset(
        specs=[dg.AssetSpec(key, kinds={"duckdb", "parquet"}, description=description, **TABLE_SPEC),
               dg.AssetSpec(plot_key, kinds={"png"}, **TABLE_SPEC,
                            description=f"`<lake>/tables/{table}_hitrate.png`: HitRate@headline_k on {split} "
                                        f"by encoder and recommender, references dashed. {GRID}")],
        name=table,
    )
    def _asset(lake: LakeResource):
        from audiorec_assets.evaluation.plots import hitrate_plot_png

        paths, settings = lake.paths(), lake.settings()
        metrics = configured_rows(paths, settings, "metrics")
        k = settings.headline_k
        board = tables.leaderboard(metrics, k=k, split=split, cells=study_cells(settings))
        png = hitrate_plot_png(metrics, k=k, split=split, metric=tables.HEADLINE_METRIC)
        plot_path = _write_plot(paths, f"{table}_hitrate", png)
        markdown = dg.MetadataValue.md(_png_markdown(png, k, split))
        yield _table_result(lake, settings, table, board, split, key=key, hitrate_plot=markdown,
                            plot_path=dg.MetadataValue.path(str(plot_path)))
        yield dg.MaterializeResult(asset_key=plot_key, data_version=dg.DataVersion(file_hash(plot_path)),
                                   metadata={"plot": markdown, "path": dg.MetadataValue.path(str(plot_path))})

    return _asset


leaderboard = build_leaderboard_asset(
    LEADERBOARD, "test", "One row per configured encoder × recommender cell with the test metrics @headline_k "
    "(HitRate's 95 % CI: Wilson over users, and over seeds too with several; seed mean and spread), best first; "
    "plot of HitRate@headline_k with references. The latest "
    f"materialization shows the table below (SQL: `audiorec sql \"select * from leaderboard\"`). {GRID}")
leaderboard_cold = build_leaderboard_asset(
    LEADERBOARD_COLD, COLD_SPLIT, "The leaderboard on test_cold (cold tracks): every configured cell that has "
    f"test_cold rows, metrics @headline_k, best first; plot of HitRate@headline_k. {GRID}")


TableBuilder = Callable[[pd.DataFrame, pd.DataFrame, ExperimentSettings], pd.DataFrame]


def build_table_asset(table: str, split: str, build: TableBuilder, description: str) -> dg.AssetsDefinition:
    """An asset ``audiorec/<table>``: ``build(metrics, user_metrics, settings)`` over the configured cells."""

    @dg.asset(key=dg.AssetKey(["audiorec", table]), kinds={"duckdb", "parquet"}, description=description, **TABLE_SPEC)
    def _asset(lake: LakeResource) -> dg.MaterializeResult:
        paths, settings = lake.paths(), lake.settings()
        frame = build(configured_rows(paths, settings, "metrics"), _user_rows(paths, settings, split), settings)
        return _table_result(lake, settings, table, frame, split)

    return _asset


def build_comparison_asset(name: str, recommender: str) -> dg.AssetsDefinition:
    return build_table_asset(
        f"comparison_{name}", "test",
        lambda metrics, users, s: tables.comparison(metrics, users, recommender, k=s.headline_k, seed=s.seed,
                                                    shuffled_base=s.encode.shuffled_base),
        f"The study's '{name}' table: {recommender} per encoder, test metrics @headline_k, reference cells "
        f"(no audio) as flagged rows; paired bootstrap of NDCG vs the shuffled twin, the best encoder and the "
        f"best reference (Holm-corrected per family; per-user values averaged over each cell's seeds).")


AUDIO_EFFECT_PLOT = dg.AssetKey(["audiorec", "audio_effect_plot"])
# the comparison tables that test each encoder against its shuffled twin, and the split each is on
TWIN_TABLES = {**{f"comparison_{name}": "test" for name in tables.COMPARISONS}, "comparison_cold": COLD_SPLIT}
_TWIN_TABLE_KEYS = [dg.AssetKey(["audiorec", table]) for table in TWIN_TABLES]


@dg.asset(key=AUDIO_EFFECT_PLOT, deps=[METRICS, REFERENCE_METRICS, SETTINGS_TABLES, *_TWIN_TABLE_KEYS], group_name="evaluation", kinds={"png"},
          code_version=CODE_VERSION, automation_condition=with_tables(_TWIN_TABLE_KEYS),
          description="`<lake>/tables/audio_effect.png`: what audio adds. Per recommender, warm (test) and cold "
                      "(test_cold) side by side, each audio encoder's HitRate@headline_k (95 % CI) next to its "
                      "shuffled twin's, marked with the paired test vs the twin from the comparison tables.")
def audio_effect_plot(lake: LakeResource) -> dg.MaterializeResult:
    """The figure of :mod:`audiorec_assets.evaluation.audio_effect_plot` and its numbers as a table. Its own asset,
    not metadata on one comparison table, because it reads the twin verdicts of all of them (warm per recommender
    and cold) and so has to come after every one of them."""
    from audiorec_assets.evaluation.audio_effect_plot import audio_effect_png, audio_effect_rows, twin_verdicts

    paths, settings = lake.paths(), lake.settings()
    k = settings.headline_k
    files = {table: paths.table_dir(table) / "all.parquet" for table in TWIN_TABLES}
    verdicts = [twin_verdicts(pd.read_parquet(f), TWIN_TABLES[t], tables.SIGNIFICANCE_METRIC)
                for t, f in files.items() if f.exists()]
    effect = audio_effect_rows(configured_rows(paths, settings, "metrics"), k, settings.encode.shuffled_base,
                               pd.concat(verdicts, ignore_index=True) if verdicts else None,
                               metric=tables.HEADLINE_METRIC)
    png = audio_effect_png(effect, k, metric=tables.HEADLINE_METRIC)
    plot_path = _write_plot(paths, "audio_effect", png)
    label = f"HitRate@{k}, each audio encoder vs its shuffled twin, warm and cold"
    return dg.MaterializeResult(data_version=dg.DataVersion(file_hash(plot_path)), metadata={
        "plot": dg.MetadataValue.md(_png_markdown(png, k, "test, test_cold", label)),
        "pairs": _table(effect.drop(columns=["k"])),
        "dagster/row_count": len(effect),
        "k": k,
        "path": dg.MetadataValue.path(str(plot_path)),
    })


# every table asset besides audiorec/leaderboard (definitions.py and the tables job take them all)
COMPARISON_ASSETS = [
    *(build_comparison_asset(name, rec) for name, rec in tables.COMPARISONS.items()),
    build_table_asset(
        "comparison_cold", COLD_SPLIT,
        lambda metrics, users, s: tables.comparison_cold(metrics, users, k=s.headline_k, seed=s.seed,
                                                         shuffled_base=s.encode.shuffled_base),
        "Cold start (test_cold): every encoder × recommender with cold rows @headline_k vs its shuffled twin "
        "(paired bootstrap of NDCG, Holm within each recommender; per-user values averaged over each cell's seeds)."),
    build_table_asset(
        "comparison_recommenders", "test",
        lambda metrics, users, s: tables.comparison_recommenders(
            users, k=s.headline_k, seed=s.seed, encoders=list(dict.fromkeys(e for e, _ in study_cells(s)))),
        "Per encoder, the recommenders against each other on the same test users (bert4rec vs shallow, "
        "shallow vs knn, bert4rec vs knn; paired bootstrap of NDCG@headline_k, Holm within each encoder; per-user "
        "values averaged over each cell's seeds)."),
    leaderboard_cold,
    audio_effect_plot,
]
TABLE_ASSETS = [leaderboard, *COMPARISON_ASSETS]
