"""Per encoder × recommender: ``audiorec/models`` → ``recommendations`` → ``metrics`` + ``user_metrics``; the same
for the references without audio (``audiorec/reference_models`` → ..., one partition per recommender). Both
families write the same SQL tables (references as ``none__<recommender>.parquet``)."""

import time
import warnings
from collections.abc import Callable, Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from audiorec_assets.defs.automation import expensive, on_change
from audiorec_assets.cell_inputs import VectorFileError, load_interaction_data, load_item_vectors, vectors_for_models
from audiorec_assets.defs.embeddings import EMBEDDINGS
from audiorec_assets.defs.ingest import INTERACTIONS, TRACKS
from audiorec_assets.defs.progress_log import forwarded
from audiorec_assets.defs.partitions import CELLS, GRID, REFERENCES, cell_of, reference_audio
from audiorec_assets.defs.resources import TORCH_OP_TAGS, TORCH_POOL, LakeResource
from audiorec_assets.defs.sources import SETTINGS_EVALUATE, SETTINGS_MODEL, SETTINGS_RECOMMEND, SETTINGS_REFERENCE
from audiorec_assets.fingerprints import folder_fingerprint, table_fingerprint
from audiorec_assets.encoders import NO_AUDIO_ENCODER
from audiorec_assets.evaluation.protocol import RECOMMENDATION_COLUMNS, evaluate, recommend_all_splits
from audiorec_assets.lakeio import atomic_dir, process_staging
from audiorec_assets.recommenders import recommender_class
from audiorec_assets.recommenders.base import FitReport, Recommender
from audiorec_assets.recommenders.data import InteractionData
from audiorec_assets.study import CellError, check_cell
from audiorec_assets.settings import ExperimentSettings, LakePaths
from audiorec_assets.warehouse import refresh_views, write_table_file

MODELS = dg.AssetKey(["audiorec", "models"])
RECOMMENDATIONS = dg.AssetKey(["audiorec", "recommendations"])
METRICS = dg.AssetKey(["audiorec", "metrics"])
USER_METRICS = dg.AssetKey(["audiorec", "user_metrics"])
REFERENCE_METRICS = dg.AssetKey(["audiorec", "reference_metrics"])
REFERENCE_USER_METRICS = dg.AssetKey(["audiorec", "reference_user_metrics"])
CODE_VERSION = "1"  # bump when a change to the recommenders or the protocol changes their results
# audiorec/metrics alone (a re-scoring, no retraining): 2 = a cell of several seeds gets its interval over users and
# seeds (evaluation/seed_intervals.py)
METRICS_CODE_VERSION = "2"


def part_name(encoder: str, recommender: str) -> str:
    return f"{encoder}__{recommender}"


@dataclass(frozen=True)
class PartitionInputs:
    """What every step of one encoder × recommender partition reads."""

    encoder: str
    recommender: str
    paths: LakePaths
    settings: ExperimentSettings
    data: InteractionData
    vectors: np.ndarray  # what the recommenders see (z-scored when encode.standardize)
    connect: Callable  # opens the warehouse (the lake resource's DuckDBResource)

    @property
    def part(self) -> str:
        """The file name of this cell in each table (``<encoder>__<recommender>.parquet``)."""
        return part_name(self.encoder, self.recommender)

    def seeds(self) -> list[int]:
        """The seeds this cell runs under: every ``run_seeds`` for a trained model, one otherwise."""
        seeds = self.settings.run_seeds
        return seeds if recommender_class(self.recommender).seeded else seeds[:1]

    def model_dir(self, seed: int) -> Path:
        return self.paths.model_dir(self.encoder, self.recommender) / f"seed-{seed}"

    def require(self, path: Path, name: str) -> Path:
        """``path``, written by this cell's ``name`` asset; missing: a run selected a later asset of the cell alone."""
        if not path.exists():
            prefix = "reference_" if self.encoder == NO_AUDIO_ENCODER else ""
            raise dg.Failure(
                f"Partition {self.encoder}|{self.recommender}: audiorec/{prefix}{name} is not materialized "
                f"({path} missing). Materialize it first, or the whole cell together (its group, or `audiorec "
                f"materialize --encoders {self.encoder} --recommenders {self.recommender}`).")
        return path

    def load_model(self, seed: int) -> Recommender:
        self.require(self.model_dir(seed), "models")
        settings = self.settings.model_copy(update={"seed": seed})
        return recommender_class(self.recommender).load(self.model_dir(seed), settings, self.data, self.vectors)


def partition_inputs(context: dg.AssetExecutionContext, lake: LakeResource, encoder: str,
                     recommender: str) -> PartitionInputs:
    try:
        check_cell(encoder, recommender)
    except CellError as err:
        raise CellError(f"Partition {encoder}|{recommender}: {err}.") from None
    paths, settings = lake.paths(), lake.settings()
    refresh_views(paths)
    data, stored = _loaded(paths, encoder)
    return PartitionInputs(encoder, recommender, paths, settings, data, vectors_for_models(stored, settings),
                           lake.connect)


_LAST_LOADED: dict[tuple, tuple[InteractionData, np.ndarray]] = {}  # at most one cell's inputs


def _loaded(paths: LakePaths, encoder: str) -> tuple[InteractionData, np.ndarray]:
    """The split and the encoder's stored vectors; a cell's two steps in one process (the in-process executor of
    the ``audiorec`` commands) read them once. Kept for one cell only: the next cell's load lets it go first, so
    two cells' vectors (1 GB each at 4 800-d) are never held at once."""
    vectors_file = paths.embedding_file(encoder)
    stamp = vectors_file.stat() if encoder != NO_AUDIO_ENCODER and vectors_file.exists() else None
    key = (str(paths.ingest.resolve()), encoder, stamp and (stamp.st_size, stamp.st_mtime_ns, stamp.st_ino))
    if key in _LAST_LOADED:
        return _LAST_LOADED[key]
    _LAST_LOADED.clear()
    data = load_interaction_data(paths)
    stored = (np.zeros((data.n_items, 0), dtype=np.float32) if encoder == NO_AUDIO_ENCODER  # references: no vectors
              else load_item_vectors(paths, encoder, data.n_items))
    _LAST_LOADED[key] = (data, stored)
    return data, stored


@dataclass(frozen=True)
class Family:
    """One set of model assets: the audio cells (encoder × recommender) or the references (no audio)."""

    prefix: str  # "" or "reference_"
    partitions_def: dg.PartitionsDefinition
    cell: Callable[[dg.AssetExecutionContext], tuple[str, str]]
    vector_deps: list[dg.AssetDep]
    settings_dep: dg.AssetDep
    group: str

    def key(self, name: str) -> dg.AssetKey:
        return dg.AssetKey(["audiorec", f"{self.prefix}{name}"])


def families() -> list[Family]:
    with warnings.catch_warnings():  # beta in 1.13, and the documented way to map encoder x recommender → encoder
        warnings.simplefilter("ignore", dg.BetaWarning)
        by_encoder = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="encoder")
        by_recommender = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="recommender")
    return [
        Family("", CELLS, lambda context: cell_of(context.partition_key),
               [dg.AssetDep(EMBEDDINGS, partition_mapping=by_encoder)],
               dg.AssetDep(SETTINGS_MODEL, partition_mapping=by_recommender), "recommenders"),
        Family("reference_", REFERENCES, lambda context: (NO_AUDIO_ENCODER, context.partition_key), [],
               dg.AssetDep(SETTINGS_REFERENCE), "references"),
    ]


def build_model_assets(family: Family) -> list[dg.AssetsDefinition]:
    """One family's two ops: ``models`` (training, in the ``torch`` pool) and ``evaluation`` (recommendations →
    metrics + user_metrics, subsettable, outside the pool, so one cell is scored while another trains)."""
    models_key, recs_key = family.key("models"), family.key("recommendations")
    metrics_key, users_key = family.key("metrics"), family.key("user_metrics")
    what = "a reference recommender (no audio)" if family.prefix else "a recommender on frozen item vectors"
    common = {"group_name": family.group, "code_version": CODE_VERSION}
    models_spec = dg.AssetSpec(
        models_key, deps=[INTERACTIONS, TRACKS, *family.vector_deps, family.settings_dep], kinds={"pytorch"},
        automation_condition=expensive(), **common,
        description=f"{what.capitalize()}, trained on the train split once per seed (no pickles). {GRID}")
    evaluation_specs = [
        dg.AssetSpec(recs_key, deps=[models_key, INTERACTIONS, SETTINGS_RECOMMEND], kinds={"duckdb", "parquet"},
                     automation_condition=on_change(), **common,
                     description="Top-N per val/test user among the train vocabulary, and per test_cold user among "
                                 "the cold tracks (models that can score them), train history excluded → "
                                 "audiorec.recommendations."),
        dg.AssetSpec(metrics_key, deps=[recs_key, INTERACTIONS, SETTINGS_EVALUATE], kinds={"duckdb", "parquet"},
                     automation_condition=on_change(), **{**common, "code_version": METRICS_CODE_VERSION},
                     description="HitRate, Recall, Precision, NDCG, MRR @K with 95 % CIs on val, test and test_cold "
                                 "(several seeds: the seed mean, seed_sd, and a CI over users and seeds) "
                                 "→ audiorec.metrics."),
        dg.AssetSpec(users_key, deps=[recs_key, INTERACTIONS, SETTINGS_EVALUATE], kinds={"duckdb", "parquet"},
                     automation_condition=on_change(), **common,
                     description="The per-user metric values behind audiorec.metrics (what the paired tests "
                                 "read) → audiorec.user_metrics."),
    ]

    @dg.multi_asset(specs=[models_spec], partitions_def=family.partitions_def, pool=TORCH_POOL,
                    op_tags=TORCH_OP_TAGS, name=f"{family.prefix}models")
    def _models(context: dg.AssetExecutionContext, lake: LakeResource):
        yield train(context, partition_inputs(context, lake, *family.cell(context)), models_key)

    @dg.multi_asset(specs=evaluation_specs, partitions_def=family.partitions_def, can_subset=True,
                    name=f"{family.prefix}evaluation")
    def _evaluation(context: dg.AssetExecutionContext, lake: LakeResource):
        inputs = partition_inputs(context, lake, *family.cell(context))
        selected = context.selected_asset_keys
        if recs_key in selected:
            yield recommend(inputs, recs_key)
        if metrics_key in selected or users_key in selected:
            yield from evaluate_cell(inputs, metrics_key, users_key, selected)

    return [_models, _evaluation]


def train(context: dg.AssetExecutionContext, inputs: PartitionInputs, key: dg.AssetKey) -> dg.MaterializeResult:
    encoder, recommender, paths, settings = inputs.encoder, inputs.recommender, inputs.paths, inputs.settings
    data, vectors = inputs.data, inputs.vectors
    reports: dict[int, FitReport] = {}
    with atomic_dir(paths.model_dir(encoder, recommender), staging=process_staging(paths.staging)) as tmp:
        for seed in inputs.seeds():
            model = recommender_class(recommender)(settings.model_copy(update={"seed": seed}))
            with forwarded("audiorec_assets.recommenders", context.log):  # the epochs, into the run's log
                report = reports[seed] = model.fit(data, vectors)
            model.save(tmp / f"seed-{seed}")
            epochs = (f" (best_epoch {report.best_epoch}, epochs_run {len(report.train_loss)})"
                      if report.train_loss else "")
            context.log.info(f"{recommender} on {encoder}, seed {seed}: fitted in {report.seconds:.1f} s{epochs}")
        version = folder_fingerprint(tmp)
    first = reports[inputs.seeds()[0]]  # the metadata shows the first seed's fit
    metadata = {
        "preset": settings.preset, "seeds": dg.MetadataValue.json(list(reports)), "users": data.n_users,
        "items": data.n_items, "train_vocabulary": int(len(data.train_items)), "dim": int(vectors.shape[1]),
        "audio": reference_audio(recommender) if encoder == NO_AUDIO_ENCODER else (
            "standardized (z-score per feature)" if settings.encode.standardize else "raw vectors"),
        "seconds": round(sum(r.seconds for r in reports.values()), 2),
        "params": dg.MetadataValue.json({k: _jsonable(v) for k, v in first.params.items()}),
        "path": dg.MetadataValue.path(str(paths.model_dir(encoder, recommender))),
    }
    if first.train_loss:
        metadata["best_epoch"] = first.best_epoch
        metadata["epochs_run"] = len(first.train_loss)
        metadata["best_epoch_per_seed"] = dg.MetadataValue.json({str(s): r.best_epoch for s, r in reports.items()})
        metadata["epochs_run_per_seed"] = dg.MetadataValue.json({str(s): len(r.train_loss) for s, r in reports.items()})
        metadata["training_curve"] = dg.MetadataValue.md(_curve(first).to_markdown(index=False, floatfmt=".5f"))
    return dg.MaterializeResult(asset_key=key, data_version=dg.DataVersion(version), metadata=metadata)


def recommend(inputs: PartitionInputs, key: dg.AssetKey) -> dg.MaterializeResult:
    settings = inputs.settings
    started = time.perf_counter()
    frames = [recommend_all_splits(inputs.load_model(seed), inputs.data, settings.top_n).assign(seed=seed)
              for seed in inputs.seeds()]
    rows = pd.concat(frames, ignore_index=True).assign(encoder=inputs.encoder, recommender=inputs.recommender)
    rows = rows[RECOMMENDATION_COLUMNS].astype({"seed": "int64"})
    written = write_table_file(inputs.paths, "recommendations", rows, part=inputs.part, connect=inputs.connect)
    users = rows.groupby("split", observed=True)["user_id"].nunique()
    return dg.MaterializeResult(asset_key=key, data_version=dg.DataVersion(table_fingerprint(written)), metadata={
        "dagster/row_count": len(rows), "top_n": settings.top_n, "seconds": round(time.perf_counter() - started, 2),
        "users": dg.MetadataValue.json({s: int(n) for s, n in users.items()}),
        "preview": dg.MetadataValue.md(rows.head(10).to_markdown(index=False)),
    })


def evaluate_cell(inputs: PartitionInputs, metrics_key: dg.AssetKey, users_key: dg.AssetKey,
                  selected: AbstractSet[dg.AssetKey]):
    encoder, recommender, paths, settings = inputs.encoder, inputs.recommender, inputs.paths, inputs.settings
    rows = pd.read_parquet(inputs.require(paths.table_dir("recommendations") / f"{inputs.part}.parquet",
                                          "recommendations"))
    summary, user_metrics = evaluate(rows, inputs.data, settings.ks, settings.top_n)
    summary = summary.assign(encoder=encoder, recommender=recommender, preset=settings.preset)
    summary = summary[["encoder", "recommender", "split", "metric", "k", "value", "ci_low", "ci_high",
                       "n_users", "preset", "n_seeds", "seed_sd"]]
    summary = summary.astype({"k": "int32", "n_users": "int32", "n_seeds": "int32"})  # INTEGER in the contract
    if metrics_key in selected:
        metrics_file = write_table_file(paths, "metrics", summary, part=inputs.part, connect=inputs.connect)
        k_main = settings.headline_k
        headline = summary[summary["k"] == k_main].set_index(["split", "metric"])["value"]
        yield dg.MaterializeResult(asset_key=metrics_key, data_version=dg.DataVersion(table_fingerprint(metrics_file)),
                                   metadata={
            "dagster/row_count": len(summary),
            **{f"{split}_{m}@{k_main}": float(v) for (split, m), v in headline.items() if split != "val"},
            "table": dg.MetadataValue.md(summary.drop(columns=["encoder", "recommender"]).to_markdown(
                index=False, floatfmt=".4f")),
        })
    if users_key in selected:
        users_file = write_table_file(paths, "user_metrics", user_metrics.assign(encoder=encoder,
                                                                                 recommender=recommender),
                                      part=inputs.part, connect=inputs.connect)
        yield dg.MaterializeResult(asset_key=users_key, data_version=dg.DataVersion(table_fingerprint(users_file)),
                                   metadata={"dagster/row_count": len(user_metrics)})


def _curve(report: FitReport) -> pd.DataFrame:
    padded_val = report.val_loss + [np.nan] * (len(report.train_loss) - len(report.val_loss))
    return pd.DataFrame({"epoch": range(1, len(report.train_loss) + 1), "train_loss": report.train_loss,
                         "val_loss": padded_val})


def _jsonable(value: object) -> object:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)
