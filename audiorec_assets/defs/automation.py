"""Automation: jobs, a raw-data sensor with a cursor, a reconciling study sensor and a schedule.

The study sensor asks one question each tick — what is missing, or was built from other
inputs or settings than the current ones (``defs/lineage.py``)? — and requests exactly those
runs, in dependency order (a control encoder waits for its base, a model for its
embeddings, nothing for data that failed its checks). ``audiorec demo`` runs the same plan
in-process. A failed run is not retried by the sensor until its inputs or settings change
(its run key stays the same); re-run it from the UI.
"""

from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from audiorec_assets.defs import lineage
from audiorec_assets.defs.embeddings import EMBEDDINGS
from audiorec_assets.defs.evaluation import COMPARISON_ASSETS, LEADERBOARD
from audiorec_assets.defs.ingest import INTERACTIONS, TRACKS
from audiorec_assets.defs.models import METRICS, MODELS, RECOMMENDATIONS
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.encoders import BUILTIN_ENCODERS, shuffled_base_of
from audiorec_assets.settings import ExperimentSettings, LakePaths
from audiorec_assets.study import study_cells, study_encoders

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

Metadata = Callable[[dg.AssetKey, str | None], dict | None]  # latest materialization metadata, None = never
CheckOk = Callable[[dg.AssetKey], bool | None]  # latest blocking check on an asset passed? None = never ran


@dataclass(frozen=True)
class PlannedRun:
    """One run the study still needs: which job, which partition, and a key that changes with its inputs."""

    job_name: str
    partition_key: str | dg.MultiPartitionKey | None
    run_key: str
    label: str


@dataclass
class StudyPlan:
    """The runs to request now, and why other parts of the study wait."""

    runs: list[PlannedRun]
    waiting: list[str]


def plan_study_runs(settings: ExperimentSettings, lake: LakePaths, meta: Metadata, check_ok: CheckOk,
                    encoder_keys: set[str] | None = None) -> StudyPlan:
    """Runs whose output is missing, or was built from other inputs or settings than the current ones.

    Only runs whose inputs exist and passed their checks are planned; call again after they
    finish for the next layer. ``waiting`` says what is held back and why. ``encoder_keys``:
    the encoder partitions the loaded definitions know (a newly dropped ``.npy`` needs a reload).
    """
    waiting: list[str] = []
    interactions, tracks = meta(INTERACTIONS, None), meta(TRACKS, None)
    ingest_files = [lake.table_dir(t) / "all.parquet" for t in ("listens", "tracks", "interactions", "split_info")]
    raw_fp = lineage.raw_fingerprint(lake.raw)
    ingest_expected = lineage.ingest_built_from(settings, lake.root, raw_fp,
                                                (tracks or {}).get(lineage.FINGERPRINT, "none"))
    checks = {asset: check_ok(asset) for asset in (TRACKS, INTERACTIONS)}
    if None in checks.values() and interactions is not None:
        # a check that is planned or running: wait for it rather than starting the ingest again
        waiting.append("the ingest checks have not finished")
        return StudyPlan([], waiting)
    if (interactions is None or tracks is None or interactions.get(lineage.BUILT_FROM) != ingest_expected
            or not all(f.exists() for f in ingest_files)):
        return StudyPlan([_run(ingest_job.name, None, ingest_expected, "ingest + split + checks")], waiting)
    failed = [asset.to_user_string() for asset, ok in checks.items() if ok is False]
    if failed:
        waiting.append(f"{', '.join(failed)} failed its data-quality check: fix the data under raw/ "
                       "(a change there re-plans the ingest)")
        return StudyPlan([], waiting)

    runs, vectors_fp = _plan_embeddings(settings, lake, meta, tracks[lineage.FINGERPRINT], waiting, encoder_keys)
    for encoder, recommender in study_cells(settings):
        if encoder not in vectors_fp:
            continue
        key = dg.MultiPartitionKey({"encoder": encoder, "recommender": recommender})
        expected = lineage.metrics_built_from(settings, recommender, interactions[lineage.FINGERPRINT],
                                              vectors_fp[encoder])
        built = meta(METRICS, str(key))
        stored = lake.table_dir("metrics") / f"{encoder}__{recommender}.parquet"
        if built is None or built.get(lineage.BUILT_FROM) != expected or not stored.exists():
            runs.append(_run(recommend_job.name, key, expected, f"{recommender} on {encoder}"))
    if runs:
        return StudyPlan(runs, waiting)
    # the tables cover every configured partition whose metrics exist (defs/evaluation.py does the same)
    metrics_fps = []
    for encoder, recommender in study_cells(settings):
        built = meta(METRICS, str(dg.MultiPartitionKey({"encoder": encoder, "recommender": recommender})))
        if built is not None and (lake.table_dir("metrics") / f"{encoder}__{recommender}.parquet").exists():
            metrics_fps.append(built[lineage.FINGERPRINT])
    expected = lineage.tables_built_from(settings, metrics_fps)
    board = meta(LEADERBOARD, None)
    if metrics_fps and (board is None or board.get(lineage.BUILT_FROM) != expected
                        or not (lake.table_dir("leaderboard") / "all.parquet").exists()):
        runs.append(_run(tables_job.name, None, expected, "leaderboard + comparison tables"))
    return StudyPlan(runs, waiting)


def _plan_embeddings(settings: ExperimentSettings, lake: LakePaths, meta: Metadata, tracks_fp: str,
                     waiting: list[str], encoder_keys: set[str] | None) -> tuple[list[PlannedRun], dict[str, str]]:
    """Embedding runs still needed, and the fingerprints of the up-to-date, valid vectors."""
    wanted = study_encoders(settings)
    bases = {e: shuffled_base_of(e, settings.encode.shuffled_base) for e in wanted}
    # a shuffled control needs its base's vectors first: bases, then the rest, then the controls
    first = list(dict.fromkeys(b for b in bases.values() if b))
    encoders = first + [e for e in wanted if e not in first and not bases[e]] + [e for e in wanted if bases[e]]
    runs: list[PlannedRun] = []
    vectors_fp: dict[str, str] = {}
    for encoder in encoders:
        if encoder_keys is not None and encoder not in encoder_keys:
            waiting.append(f"encoder {encoder!r} is not a partition of the loaded code: reload the code location")
            continue
        base_fp = user_file = None
        base = shuffled_base_of(encoder, settings.encode.shuffled_base)
        if base:
            if base not in vectors_fp:
                waiting.append(f"embeddings[{encoder}] waits for embeddings[{base}]")
                continue
            base_fp = vectors_fp[base]
        elif encoder not in BUILTIN_ENCODERS:
            if not lake.embedding_file(encoder).exists():
                waiting.append(f"encoder {encoder!r} is neither built in nor a file {lake.embedding_file(encoder)}")
                continue
            user_file = lineage.file_stamp(lake.embedding_file(encoder))
        expected = lineage.embeddings_built_from(settings, tracks_fp, base_fp, user_file)
        built = meta(EMBEDDINGS, encoder)
        if built is None or built.get(lineage.BUILT_FROM) != expected or not lake.embedding_file(encoder).exists():
            runs.append(_run(embeddings_job.name, encoder, expected, f"embeddings[{encoder}]"))
        elif not built.get("vectors_valid", True):
            waiting.append(f"embeddings[{encoder}] failed its check (see its metadata)")
        else:
            vectors_fp[encoder] = built[lineage.FINGERPRINT]
    return runs, vectors_fp


def _run(job: str, partition: str | dg.MultiPartitionKey | None, built_from: str, label: str) -> PlannedRun:
    return PlannedRun(job, partition, f"{job}:{partition}:{built_from}", label)


def instance_metadata(instance: dg.DagsterInstance) -> Metadata:
    """Latest materialization metadata of an asset (partition) in ``instance``, as plain values."""

    def latest(key: dg.AssetKey, partition: str | None) -> dict | None:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=None if partition is None else [str(partition)]),
            limit=1)
        if not records.records:
            return None
        materialization = records.records[0].asset_materialization
        return {k: v.value for k, v in (materialization.metadata if materialization else {}).items()}

    return latest


def instance_check_ok(instance: dg.DagsterInstance) -> CheckOk:
    """Whether the latest evaluation of the blocking check on ``key`` passed (None: never evaluated).

    Statuses are compared by their value (PLANNED, SUCCEEDED, FAILED, SKIPPED), so no Dagster-internal module
    is imported."""

    def ok(key: dg.AssetKey) -> bool | None:
        check = dg.AssetCheckKey(key, "great_expectations")
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check]).get(check)
        if record is None:
            return True  # never planned: nothing to wait for (the ingest plan decides)
        status = getattr(record.status, "value", str(record.status))
        if status == "SUCCEEDED":
            return True
        if status == "FAILED":
            return False
        if status == "PLANNED":  # planned or running, or its run died before the check
            run = instance.get_run_by_id(record.run_id)
            return None if run is not None and not run.is_finished else True
        return True  # SKIPPED: the asset itself failed, and the ingest plan will ask for it again

    return ok


@dg.sensor(jobs=[ingest_job, embeddings_job, recommend_job, tables_job], minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.STOPPED,
           description="Keeps the study up to date: requests whatever is missing or built from other inputs.")
def study_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult | dg.SkipReason:
    embeddings_def = context.repository_def.assets_defs_by_key[EMBEDDINGS]
    plan = plan_study_runs(lake.settings(), lake.paths(), instance_metadata(context.instance),
                           instance_check_ok(context.instance),
                           set(embeddings_def.partitions_def.get_partition_keys()))
    if not plan.runs:
        return dg.SkipReason("; ".join(plan.waiting) or "the study is up to date")
    return dg.SensorResult(run_requests=[
        dg.RunRequest(run_key=p.run_key, job_name=p.job_name, partition_key=p.partition_key,
                      tags={"audiorec/step": p.label})
        for p in plan.runs
    ])


@dg.sensor(job=ingest_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Re-ingests when files under <lake>/raw/ change (cursor = fingerprint of names, sizes, mtimes).")
def raw_data_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult | dg.SkipReason:
    fingerprint = lineage.raw_fingerprint(lake.paths().raw)
    if fingerprint == context.cursor:
        return dg.SkipReason("raw/ unchanged")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"raw:{fingerprint}")], cursor=fingerprint)


nightly_ingest_schedule = dg.ScheduleDefinition(
    job=ingest_job, cron_schedule="0 3 * * *", default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Re-ingest every night at 03:00 (for raw data replaced in place by another process).",
)
