"""Automation: jobs, a raw-data sensor with a cursor, a reconciling study sensor and a schedule.

The study sensor asks one question each tick — what is missing or older than what it was
built from? — and requests exactly those runs, in dependency order (a control encoder waits
for its base, a model for its embeddings). ``audiorec demo`` runs the same plan in-process.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from audiorec_assets.defs.embeddings import EMBEDDINGS
from audiorec_assets.defs.evaluation import COMPARISON_ASSETS, LEADERBOARD
from audiorec_assets.defs.ingest import INTERACTIONS, TRACKS
from audiorec_assets.defs.models import METRICS, MODELS, RECOMMENDATIONS
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.settings import ExperimentSettings

CONTROLS = ("shuffled", "random")
INGEST_SELECTION = dg.AssetSelection.groups("ingest")
EMBEDDINGS_SELECTION = dg.AssetSelection.assets(EMBEDDINGS)
RECOMMEND_SELECTION = dg.AssetSelection.assets(MODELS, RECOMMENDATIONS, METRICS)
TABLES_SELECTION = dg.AssetSelection.assets(LEADERBOARD, *[a.key for a in COMPARISON_ASSETS])

ingest_job = dg.define_asset_job("ingest_job", selection=INGEST_SELECTION,
                                 description="Raw files → listens, tracks, interactions (+ blocking checks).")
embeddings_job = dg.define_asset_job("embeddings_job", selection=EMBEDDINGS_SELECTION,
                                     description="Item vectors for one encoder partition.")
recommend_job = dg.define_asset_job("recommend_job", selection=RECOMMEND_SELECTION,
                                    description="Train, recommend and evaluate one encoder × recommender partition.")
tables_job = dg.define_asset_job("tables_job", selection=TABLES_SELECTION,
                                 description="Leaderboard and comparison tables from every metrics partition.")

JOB_SELECTIONS: dict[str, dg.AssetSelection] = {
    ingest_job.name: INGEST_SELECTION, embeddings_job.name: EMBEDDINGS_SELECTION,
    recommend_job.name: RECOMMEND_SELECTION, tables_job.name: TABLES_SELECTION,
}

Timestamp = Callable[[dg.AssetKey, str | None], float | None]  # latest materialization time, None = never


@dataclass(frozen=True)
class PlannedRun:
    """One run the study still needs: which job, which partition, and a key that changes with its inputs."""

    job_name: str
    partition_key: str | dg.MultiPartitionKey | None
    run_key: str
    label: str


def plan_study_runs(settings: ExperimentSettings, latest: Timestamp) -> list[PlannedRun]:
    """Runs whose outputs are missing or older than their inputs, for the configured encoders × recommenders.

    Only runs whose inputs all exist are planned; call again after they finish for the next layer.
    """
    tracks_at, interactions_at = latest(TRACKS, None), latest(INTERACTIONS, None)
    if tracks_at is None or interactions_at is None:
        return [PlannedRun(ingest_job.name, None, "ingest:initial", "ingest + split + checks")]
    planned: list[PlannedRun] = []
    base = settings.encode.shuffled_base
    for encoder in settings.encoders:
        inputs = [tracks_at]
        if encoder == "shuffled":
            base_at = latest(EMBEDDINGS, base)
            if base_at is None or base_at < tracks_at:
                continue  # wait for the base encoder
            inputs.append(base_at)
        built = latest(EMBEDDINGS, encoder)
        if built is None or built < max(inputs):
            planned.append(_run(embeddings_job.name, encoder, max(inputs), f"embeddings[{encoder}]"))
    newest_metrics = 0.0
    for encoder in settings.encoders:
        vectors_at = latest(EMBEDDINGS, encoder)
        if vectors_at is None or vectors_at < tracks_at:
            continue
        for recommender in settings.recommenders:
            key = dg.MultiPartitionKey({"encoder": encoder, "recommender": recommender})
            metrics_at = latest(METRICS, key)
            inputs_at = max(vectors_at, interactions_at)
            if metrics_at is None or metrics_at < inputs_at:
                planned.append(_run(recommend_job.name, key, inputs_at, f"{recommender} on {encoder}"))
            else:
                newest_metrics = max(newest_metrics, metrics_at)
    tables_at = latest(LEADERBOARD, None)
    if not planned and newest_metrics and (tables_at is None or tables_at < newest_metrics):
        planned.append(_run(tables_job.name, None, newest_metrics, "leaderboard + comparison tables"))
    return planned


def _run(job: str, partition: str | dg.MultiPartitionKey | None, inputs_at: float, label: str) -> PlannedRun:
    return PlannedRun(job, partition, f"{job}:{partition}:{inputs_at:.6f}", label)


def instance_timestamps(instance: dg.DagsterInstance) -> Timestamp:
    """Latest materialization time of an asset (partition) in ``instance``."""

    def latest(key: dg.AssetKey, partition: str | None) -> float | None:
        event = instance.get_latest_materialization_event(key) if partition is None else None
        if partition is not None:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[str(partition)]), limit=1)
            event = records.records[0].event_log_entry if records.records else None
        return event.timestamp if event else None

    return latest


@dg.sensor(jobs=[ingest_job, embeddings_job, recommend_job, tables_job], minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.STOPPED,
           description="Keeps the study up to date: requests whatever is missing or stale, layer by layer.")
def study_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    planned = plan_study_runs(lake.settings(), instance_timestamps(context.instance))
    return dg.SensorResult(run_requests=[
        dg.RunRequest(run_key=p.run_key, job_name=p.job_name, partition_key=p.partition_key,
                      tags={"audiorec/step": p.label})
        for p in planned
    ])


def raw_fingerprint(lake: LakeResource) -> str:
    """Changes whenever a raw file or ``experiment.yaml`` is added, removed, resized or touched."""
    paths = lake.paths()
    digest = hashlib.sha1()
    candidates = [paths.root / "experiment.yaml"]
    if paths.raw.exists():
        candidates += sorted(p for p in paths.raw.rglob("*") if p.is_file())
    for path in candidates:
        if path.exists():
            stat = path.stat()
            digest.update(f"{path.relative_to(paths.root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@dg.sensor(job=ingest_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Re-ingests when files under <lake>/raw/ or experiment.yaml change (cursor = fingerprint).")
def raw_data_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult | dg.SkipReason:
    fingerprint = raw_fingerprint(lake)
    if fingerprint == context.cursor:
        return dg.SkipReason("raw/ and experiment.yaml unchanged")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"raw:{fingerprint}")], cursor=fingerprint)


nightly_ingest_schedule = dg.ScheduleDefinition(
    job=ingest_job, cron_schedule="0 3 * * *", default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Re-ingest every night at 03:00 (for raw data replaced in place by another process).",
)
