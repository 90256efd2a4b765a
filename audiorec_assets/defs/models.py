"""Per encoder × recommender: ``audiorec/models`` → ``audiorec/recommendations`` → ``audiorec/metrics``."""

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from audiorec_assets.defs import lineage
from audiorec_assets.defs.embeddings import EMBEDDINGS, VALID_CHECK
from audiorec_assets.defs.ingest import INTERACTIONS, TRACKS, sweep
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.encoders import BUILTIN_ENCODERS, NO_AUDIO_ENCODER, SHUFFLED_PREFIX
from audiorec_assets.encoders.run import embedding_problems
from audiorec_assets.encoders.standardize import zscore_columns
from audiorec_assets.evaluation.protocol import RECOMMENDATION_COLUMNS, evaluate, recommend_all_splits
from audiorec_assets.lakeio import atomic_dir, process_staging
from audiorec_assets.recommenders import recommender_class
from audiorec_assets.recommenders.base import FitReport, Recommender
from audiorec_assets.recommenders.data import InteractionData
from audiorec_assets.study import CellError, check_cell
from audiorec_assets.settings import ExperimentSettings, LakePaths
from audiorec_assets.warehouse import write_table_file

MODELS = dg.AssetKey(["audiorec", "models"])
RECOMMENDATIONS = dg.AssetKey(["audiorec", "recommendations"])
METRICS = dg.AssetKey(["audiorec", "metrics"])


def partition(context: dg.AssetExecutionContext) -> tuple[str, str]:
    key = context.partition_key.keys_by_dimension  # type: ignore[union-attr]
    return key["encoder"], key["recommender"]


def part_name(encoder: str, recommender: str) -> str:
    return f"{encoder}__{recommender}"


def load_interaction_data(paths: LakePaths) -> InteractionData:
    return InteractionData.from_frames(
        pd.read_parquet(paths.table_dir("interactions") / "all.parquet"),
        pd.read_parquet(paths.table_dir("tracks") / "all.parquet", columns=["track_id", "item_idx"]),
    )


class VectorFileError(ValueError):
    """An encoder's ``.npy`` fails the embeddings check; the message names the file, the problem and the fix."""


def load_item_vectors(paths: LakePaths, encoder: str, n_items: int) -> np.ndarray:
    """The encoder's item vectors, refused unless they pass the embeddings check (whatever run checked them:
    a file dropped in or changed after its check, or whose check failed in another run, stops here)."""
    path = paths.embedding_file(encoder)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: materialize audiorec/embeddings partition '{encoder}' first.")
    builtin = encoder in BUILTIN_ENCODERS or encoder.startswith(SHUFFLED_PREFIX)  # computed by audiorec
    fix = (f"materialize audiorec/embeddings partition '{encoder}' again (the tracks may have changed since)"
           if builtin else
           "replace the file with a float32 array of one finite, non-zero row per track of audiorec.tracks in "
           f"item_idx order, then materialize audiorec/embeddings partition '{encoder}'")
    try:
        vectors = np.load(path)
    except (ValueError, OSError, EOFError) as err:
        raise VectorFileError(f"{path} cannot be read as a .npy array ({err}): {fix}.") from None
    problems = embedding_problems(vectors, n_items, no_audio=encoder == NO_AUDIO_ENCODER)
    if problems:
        raise VectorFileError(f"{path} fails the embeddings check ({VALID_CHECK}): {'; '.join(problems)}. "
                              f"Refusing to train on it: {fix}.")
    return vectors


def vectors_for_models(vectors: np.ndarray, settings: ExperimentSettings) -> np.ndarray:
    """What the recommenders see: the stored vectors, z-scored per feature when ``encode.standardize``."""
    return zscore_columns(vectors) if settings.encode.standardize else vectors


@dataclass(frozen=True)
class PartitionInputs:
    """What every step of one encoder × recommender partition reads."""

    encoder: str
    recommender: str
    paths: LakePaths
    settings: ExperimentSettings
    data: InteractionData
    vectors: np.ndarray  # what the recommenders see (z-scored when encode.standardize)
    stored_vectors: np.ndarray  # the embeddings partition as stored: what its fingerprint (lineage) is of

    def seeds(self) -> list[int]:
        """The seeds this cell runs under: every ``run_seeds`` for a trained model, one otherwise."""
        seeds = self.settings.run_seeds
        return seeds if recommender_class(self.recommender).seeded else seeds[:1]

    def model_dir(self, seed: int) -> Path:
        return self.paths.model_dir(self.encoder, self.recommender) / f"seed-{seed}"

    def load_model(self, seed: int) -> Recommender:
        settings = self.settings.model_copy(update={"seed": seed})
        return recommender_class(self.recommender).load(self.model_dir(seed), settings, self.data, self.vectors)


def partition_inputs(context: dg.AssetExecutionContext, lake: LakeResource) -> PartitionInputs:
    encoder, recommender = partition(context)
    try:
        check_cell(encoder, recommender)
    except CellError as err:
        raise CellError(f"Partition {encoder}|{recommender}: {err}.") from None
    paths, settings = lake.paths(), lake.settings()
    sweep(context, paths)
    data = load_interaction_data(paths)
    stored = load_item_vectors(paths, encoder, data.n_items)
    return PartitionInputs(encoder, recommender, paths, settings, data, vectors_for_models(stored, settings), stored)


def build_model_assets(partitions_def: dg.MultiPartitionsDefinition) -> list[dg.AssetsDefinition]:
    with warnings.catch_warnings():  # beta in 1.13, and the documented way to map encoder x recommender → encoder
        warnings.simplefilter("ignore", dg.BetaWarning)
        by_encoder = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="encoder")

    @dg.asset(key=MODELS, partitions_def=partitions_def, group_name="recommenders", kinds={"pytorch", "faiss"},
              deps=[INTERACTIONS, TRACKS, dg.AssetDep(EMBEDDINGS, partition_mapping=by_encoder)],
              description="A recommender trained on the train split over frozen item vectors, once per seed "
                          "(no pickles).")
    def models(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        inputs = partition_inputs(context, lake)
        encoder, recommender, paths, settings = inputs.encoder, inputs.recommender, inputs.paths, inputs.settings
        data, vectors = inputs.data, inputs.vectors
        reports: dict[int, FitReport] = {}
        with atomic_dir(paths.model_dir(encoder, recommender), staging=process_staging(paths.staging)) as tmp:
            for seed in inputs.seeds():
                model = recommender_class(recommender)(settings.model_copy(update={"seed": seed}))
                reports[seed] = model.fit(data, vectors)
                model.save(tmp / f"seed-{seed}")
                context.log.info(f"{recommender} on {encoder}, seed {seed}: fitted in {reports[seed].seconds:.1f} s")
            # what this model was trained on, for the metrics step's lineage (files may change meanwhile)
            (tmp / lineage.MODEL_LINEAGE_FILE).write_text(json.dumps({
                "interactions": lineage.table_fingerprint(paths.table_dir("interactions") / "all.parquet"),
                # the stored vectors' fingerprint, as the embeddings asset records it (standardize is a setting
                # of the model's lineage, not a different input)
                "vectors": lineage.array_fingerprint(inputs.stored_vectors),
            }))
        first = reports[inputs.seeds()[0]]  # the metadata shows the first seed's fit
        metadata = {
            "preset": settings.preset, "seeds": dg.MetadataValue.json(list(reports)), "users": data.n_users,
            "items": data.n_items, "train_vocabulary": int(len(data.train_items)), "dim": int(vectors.shape[1]),
            "audio": "none: learned item ids or no item vectors" if vectors.shape[1] == 0 else (
                "standardized (z-score per feature)" if settings.encode.standardize else "raw vectors"),
            "seconds": round(sum(r.seconds for r in reports.values()), 2),
            "params": dg.MetadataValue.json({k: _jsonable(v) for k, v in first.params.items()}),
            "path": dg.MetadataValue.path(str(paths.model_dir(encoder, recommender))),
        }
        if first.train_loss:
            metadata["best_epoch"] = first.best_epoch
            metadata["epochs_run"] = len(first.train_loss)
            metadata["training_curve"] = dg.MetadataValue.md(_curve(first).to_markdown(index=False, floatfmt=".5f"))
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset(key=RECOMMENDATIONS, partitions_def=partitions_def, deps=[MODELS], group_name="recommenders",
              kinds={"duckdb", "parquet"},
              description="Top-N per val/test user among the train vocabulary, and per test_cold user among the "
                          "cold tracks (models that can score them), train history excluded → "
                          "audiorec.recommendations.")
    def recommendations(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        inputs = partition_inputs(context, lake)
        settings = inputs.settings
        started = time.perf_counter()
        frames = [recommend_all_splits(inputs.load_model(seed), inputs.data, settings.top_n).assign(seed=seed)
                  for seed in inputs.seeds()]
        rows = pd.concat(frames, ignore_index=True).assign(encoder=inputs.encoder, recommender=inputs.recommender)
        rows = rows[RECOMMENDATION_COLUMNS].astype({"seed": "int64"})
        write_table_file(inputs.paths, "recommendations", rows, part=part_name(inputs.encoder, inputs.recommender))
        users = rows.groupby("split")["user_id"].nunique()
        return dg.MaterializeResult(metadata={
            "dagster/row_count": len(rows), "top_n": settings.top_n, "seconds": round(time.perf_counter() - started, 2),
            "users": dg.MetadataValue.json({s: int(n) for s, n in users.items()}),
            "preview": dg.MetadataValue.md(rows.head(10).to_markdown(index=False)),
        })

    @dg.asset(key=METRICS, partitions_def=partitions_def, deps=[RECOMMENDATIONS], group_name="evaluation",
              kinds={"duckdb", "parquet"},
              description="HitRate, Recall, Precision, NDCG, MRR @K with 95 % CIs on val, test and test_cold "
                          "→ audiorec.metrics.")
    def metrics(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        inputs = partition_inputs(context, lake)
        encoder, recommender, paths, settings = inputs.encoder, inputs.recommender, inputs.paths, inputs.settings
        part = part_name(encoder, recommender)
        rows = pd.read_parquet(paths.table_dir("recommendations") / f"{part}.parquet")
        summary, user_metrics = evaluate(rows, inputs.data, settings.ks, settings.top_n)
        summary = summary.assign(encoder=encoder, recommender=recommender, preset=settings.preset)
        summary = summary[["encoder", "recommender", "split", "metric", "k", "value", "ci_low", "ci_high",
                           "n_users", "preset", "n_seeds", "seed_sd"]]
        summary = summary.astype({"k": "int32", "n_users": "int32", "n_seeds": "int32"})  # INTEGER in the contract
        user_metrics = user_metrics.assign(encoder=encoder, recommender=recommender)
        metrics_file = write_table_file(paths, "metrics", summary, part=part)
        write_table_file(paths, "user_metrics", user_metrics, part=part)
        k_main = settings.headline_k
        headline = summary[summary["k"] == k_main].set_index(["split", "metric"])["value"]
        trained_on = json.loads((paths.model_dir(encoder, recommender) / lineage.MODEL_LINEAGE_FILE).read_text())
        built_from = lineage.metrics_built_from(settings, recommender, trained_on["interactions"], trained_on["vectors"])
        return dg.MaterializeResult(metadata={
            lineage.FINGERPRINT: lineage.table_fingerprint(metrics_file),
            lineage.BUILT_FROM: built_from,
            **{f"{split}_{m}@{k_main}": float(v) for (split, m), v in headline.items() if split != "val"},
            "table": dg.MetadataValue.md(summary.drop(columns=["encoder", "recommender"]).to_markdown(
                index=False, floatfmt=".4f")),
        })

    return [models, recommendations, metrics]


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
