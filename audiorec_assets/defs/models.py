"""Per encoder × recommender: ``audiorec/models`` → ``audiorec/recommendations`` → ``audiorec/metrics``."""

import json
import time
import warnings
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pandas as pd

from audiorec_assets.defs import lineage
from audiorec_assets.defs.embeddings import EMBEDDINGS
from audiorec_assets.defs.ingest import INTERACTIONS, TRACKS
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.evaluation.metrics import per_user_metrics, summarise
from audiorec_assets.evaluation.tables import ranked_matrix, recommendations_frame
from audiorec_assets.lakeio import atomic_dir
from audiorec_assets.recommenders import recommender_class
from audiorec_assets.recommenders.data import InteractionData
from audiorec_assets.settings import ExperimentSettings, LakePaths
from audiorec_assets.warehouse import write_table_file

MODELS = dg.AssetKey(["audiorec", "models"])
RECOMMENDATIONS = dg.AssetKey(["audiorec", "recommendations"])
METRICS = dg.AssetKey(["audiorec", "metrics"])
EVAL_SPLITS = ("val", "test")


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


def load_item_vectors(paths: LakePaths, encoder: str, n_items: int) -> np.ndarray:
    path = paths.embedding_file(encoder)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: materialize audiorec/embeddings partition '{encoder}' first.")
    vectors = np.load(path)
    if len(vectors) != n_items:
        raise ValueError(f"{path} has {len(vectors)} rows but audiorec.tracks has {n_items}: re-materialize it.")
    return vectors.astype(np.float32, copy=False)


@dataclass(frozen=True)
class PartitionInputs:
    """What every step of one encoder × recommender partition reads."""

    encoder: str
    recommender: str
    paths: LakePaths
    settings: ExperimentSettings
    data: InteractionData
    vectors: np.ndarray


def partition_inputs(context: dg.AssetExecutionContext, lake: LakeResource) -> PartitionInputs:
    encoder, recommender = partition(context)
    paths, settings = lake.paths(), lake.settings()
    data = load_interaction_data(paths)
    return PartitionInputs(encoder, recommender, paths, settings, data, load_item_vectors(paths, encoder, data.n_items))


def build_model_assets(partitions_def: dg.MultiPartitionsDefinition) -> list[dg.AssetsDefinition]:
    with warnings.catch_warnings():  # beta in 1.13, and the documented way to map encoder x recommender → encoder
        warnings.simplefilter("ignore", dg.BetaWarning)
        by_encoder = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="encoder")

    @dg.asset(key=MODELS, partitions_def=partitions_def, group_name="recommenders", kinds={"pytorch", "faiss"},
              deps=[INTERACTIONS, TRACKS, dg.AssetDep(EMBEDDINGS, partition_mapping=by_encoder)],
              description="A recommender trained on the train split over frozen item vectors (no pickles).")
    def models(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        inputs = partition_inputs(context, lake)
        encoder, recommender, paths, settings = inputs.encoder, inputs.recommender, inputs.paths, inputs.settings
        data, vectors = inputs.data, inputs.vectors
        model = recommender_class(recommender)(settings)
        report = model.fit(data, vectors)
        with atomic_dir(paths.model_dir(encoder, recommender)) as tmp:
            model.save(tmp)
            # what this model was trained on, for the metrics step's lineage (files may change meanwhile)
            (tmp / lineage.MODEL_LINEAGE_FILE).write_text(json.dumps({
                "interactions": lineage.table_fingerprint(paths.table_dir("interactions") / "all.parquet"),
                "vectors": lineage.array_fingerprint(vectors),
            }))
        curve = pd.DataFrame({"epoch": range(1, len(report.train_loss) + 1), "train_loss": report.train_loss,
                              "val_loss": report.val_loss + [np.nan] * (len(report.train_loss) - len(report.val_loss))})
        metadata = {
            "preset": settings.preset, "seed": settings.seed, "users": data.n_users, "items": data.n_items,
            "dim": int(vectors.shape[1]), "seconds": round(report.seconds, 2),
            "params": dg.MetadataValue.json({k: _jsonable(v) for k, v in report.params.items()}),
            "path": dg.MetadataValue.path(str(paths.model_dir(encoder, recommender))),
        }
        if len(curve):
            metadata["best_epoch"] = report.best_epoch
            metadata["training_curve"] = dg.MetadataValue.md(curve.to_markdown(index=False, floatfmt=".5f"))
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset(key=RECOMMENDATIONS, partitions_def=partitions_def, deps=[MODELS], group_name="recommenders",
              kinds={"duckdb", "parquet"},
              description="Top-N per val/test user (train history excluded) → audiorec.recommendations.")
    def recommendations(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        inputs = partition_inputs(context, lake)
        encoder, recommender, paths, settings = inputs.encoder, inputs.recommender, inputs.paths, inputs.settings
        data, vectors = inputs.data, inputs.vectors
        started = time.perf_counter()
        model = recommender_class(recommender).load(paths.model_dir(encoder, recommender), settings, data, vectors)
        frames = []
        for split in EVAL_SPLITS:
            top = model.recommend(data.eval_users(split), settings.top_n)
            frame = recommendations_frame(top.users, top.items, top.scores, data.user_ids, data.track_ids)
            frames.append(frame.assign(split=split))
        rows = pd.concat(frames, ignore_index=True).assign(encoder=encoder, recommender=recommender)
        rows = rows[["encoder", "recommender", "split", "user_id", "rank", "track_id", "score"]]
        write_table_file(paths, "recommendations", rows, part=part_name(encoder, recommender))
        return dg.MaterializeResult(metadata={
            "dagster/row_count": len(rows), "top_n": settings.top_n, "seconds": round(time.perf_counter() - started, 2),
            "users": dg.MetadataValue.json({s: int(len(data.eval_users(s))) for s in EVAL_SPLITS}),
            "preview": dg.MetadataValue.md(rows.head(10).to_markdown(index=False)),
        })

    @dg.asset(key=METRICS, partitions_def=partitions_def, deps=[RECOMMENDATIONS], group_name="evaluation",
              kinds={"duckdb", "parquet"},
              description="HitRate, Recall, Precision, NDCG, MRR @K with 95 % CIs on val and test → audiorec.metrics.")
    def metrics(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        inputs = partition_inputs(context, lake)
        encoder, recommender, paths, settings = inputs.encoder, inputs.recommender, inputs.paths, inputs.settings
        data = inputs.data
        rows = pd.read_parquet(paths.table_dir("recommendations") / f"{part_name(encoder, recommender)}.parquet")
        item_of = pd.Series(np.arange(data.n_items), index=data.track_ids)
        summaries, per_user_rows = [], []
        for split in EVAL_SPLITS:
            users = data.eval_users(split)
            ranked = ranked_matrix(rows[rows["split"] == split], data.user_ids[users], item_of, settings.top_n)
            per_user = per_user_metrics(ranked, data.split(split), settings.ks, users=users)
            summaries.append(summarise(per_user).assign(split=split))
            per_user_rows += [pd.DataFrame({"split": split, "user_id": data.user_ids[users], "metric": metric,
                                            "k": k, "value": values}) for (metric, k), values in per_user.items()]
        summary = pd.concat(summaries, ignore_index=True).assign(encoder=encoder, recommender=recommender,
                                                                  preset=settings.preset)
        summary = summary[["encoder", "recommender", "split", "metric", "k", "value", "ci_low", "ci_high",
                           "n_users", "preset"]]
        user_metrics = pd.concat(per_user_rows, ignore_index=True).assign(encoder=encoder, recommender=recommender)
        summary = summary.astype({"k": "int32", "n_users": "int32"})  # INTEGER in the contract
        metrics_file = write_table_file(paths, "metrics", summary, part=part_name(encoder, recommender))
        write_table_file(paths, "user_metrics", user_metrics, part=part_name(encoder, recommender))
        k_main = 50 if 50 in settings.ks else max(settings.ks)
        test = summary[(summary["split"] == "test") & (summary["k"] == k_main)].set_index("metric")["value"]
        trained_on = json.loads((paths.model_dir(encoder, recommender) / lineage.MODEL_LINEAGE_FILE).read_text())
        built_from = lineage.metrics_built_from(settings, recommender, trained_on["interactions"], trained_on["vectors"])
        return dg.MaterializeResult(metadata={
            lineage.FINGERPRINT: lineage.table_fingerprint(metrics_file),
            lineage.BUILT_FROM: built_from,
            **{f"test_{m}@{k_main}": float(v) for m, v in test.items()},
            "table": dg.MetadataValue.md(summary.drop(columns=["encoder", "recommender"]).to_markdown(
                index=False, floatfmt=".4f")),
        })

    return [models, recommendations, metrics]


def _jsonable(value: object) -> object:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)
