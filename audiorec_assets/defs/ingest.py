"""The ingest: raw files → ``audiorec.listens``, ``tracks``, ``interactions`` and ``split_info``, in one op.

The four tables are one multi-asset that cannot be split (``can_subset=False``): selecting any of them runs the
ingest. It writes the four tables into a fresh folder of its process's staging area
(:func:`audiorec_assets.data.ingest.run_ingest`), runs the two blocking Great Expectations checks on those files,
and only when both pass publishes them by one atomic switch of the symlink ``tables/ingest`` to the new set
(:func:`audiorec_assets.warehouse.publish_ingest`). A failed check, a failure, or a kill at any moment leaves the
previous complete set where every reader looks; there is nothing to complete or roll back afterwards. One op
replaces three steps that had to hand staged files to each other and publish them from whichever ran last.
"""


import time
from pathlib import Path

import dagster as dg

from audiorec_assets.data.ingest import IngestReport, run_ingest
from audiorec_assets.defs import checks
from audiorec_assets.defs.automation import on_change
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.defs.sources import RAW_AUDIO, RAW_LOG, SETTINGS_INGEST
from audiorec_assets.fingerprints import combine
from audiorec_assets.lakeio import process_staging, staged_dir
from audiorec_assets.settings import LakePaths
from audiorec_assets.warehouse import publish_ingest, sweep_lake

LISTENS = dg.AssetKey(["audiorec", "listens"])
TRACKS = dg.AssetKey(["audiorec", "tracks"])
INTERACTIONS = dg.AssetKey(["audiorec", "interactions"])
SPLIT_INFO = dg.AssetKey(["audiorec", "split_info"])
# bump when a change to the ingest changes what its tables hold. 2: split_info.synthetic. 3: one op whose blocking
# checks pass before anything is published (under 2 a set whose interactions check failed was published all the same)
CODE_VERSION = "3"


def run_alive(instance: dg.DagsterInstance):
    """Whether a run is still going, as far as this instance knows (None: it does not know the run)."""
    def alive(run_id: str) -> bool | None:
        try:
            run = instance.get_run_by_id(run_id)
        except Exception:  # a malformed id, or storage trouble: no opinion
            return None
        return None if run is None else not run.is_finished
    return alive


def sweep(context: dg.AssetExecutionContext, paths: LakePaths) -> None:
    """The start of a step: mark runs whose process died as failed, drop staging folders of processes that are
    gone (and settings snapshots of runs that are over), bring the views up to date."""
    from audiorec_assets.run_health import fail_dead_runs

    dead = fail_dead_runs(context.instance)  # runs killed without a word: failed now, so their staging goes
    if dead:
        context.log.warning(f"marked {len(dead)} run(s) failed whose process is gone: {dead}")
    removed = sweep_lake(paths)
    removed += sweep_run_snapshots(paths, run_alive(context.instance), keep=context.run.run_id)
    if removed:
        context.log.info(f"staging area: removed {len(removed)} folder(s) or temporaries of earlier runs, "
                         f"e.g. {removed[0]}")


UNKNOWN_RUN_SNAPSHOT_DAYS = 2  # a snapshot of a run this instance does not know (a throw-away instance's)


def sweep_run_snapshots(paths: LakePaths, alive, keep: str, now: float | None = None) -> list[Path]:
    """Remove ``<lake>/tmp/staging/run-<id>/`` (a run's settings snapshot) of runs known to be over, and of runs
    the instance does not know (``audiorec demo`` without ``DAGSTER_HOME``) once they are
    :data:`UNKNOWN_RUN_SNAPSHOT_DAYS` days old."""
    import shutil

    now = time.time() if now is None else now
    removed = []
    folders = sorted(paths.staging.glob("run-*")) if paths.staging.exists() else []
    for folder in folders:
        run_id = folder.name.removeprefix("run-")
        state = alive(run_id)
        stale_unknown = state is None and now - folder.stat().st_mtime > UNKNOWN_RUN_SNAPSHOT_DAYS * 86400
        if run_id != keep and (state is False or stale_unknown):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _spec(key: dg.AssetKey, deps: list, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(key, deps=deps, group_name="ingest", kinds={"duckdb", "parquet"}, code_version=CODE_VERSION,
                        automation_condition=on_change(), description=description)


@dg.multi_asset(
    specs=[
        _spec(LISTENS, [RAW_LOG, SETTINGS_INGEST],
              "Every listening event of the raw log, typed and validated (user_id, track_id, ts)."),
        _spec(TRACKS, [LISTENS, RAW_LOG, RAW_AUDIO, SETTINGS_INGEST],
              "The catalogue: one row per track with audio; item_idx = rank of the sorted track id."),
        _spec(INTERACTIONS, [LISTENS, TRACKS, SETTINGS_INGEST],
              "The Music4All-Onion split: one row per user x track x split after the first-listen collapse; split is "
              "train, val, test (warm) or test_cold (warm users on tracks without train plays)."),
        _spec(SPLIT_INFO, [LISTENS, TRACKS, SETTINGS_INGEST],
              "The windows and settings of the split (one row): train start, test start, val end, test end, preset, "
              "seed, layout, and synthetic (the log was generated by audiorec demo or audiorec mock-logs, not real "
              "behaviour)."),
    ],
    check_specs=checks.check_specs(TRACKS, INTERACTIONS),
    can_subset=False,
    name="ingest",
)
def ingest(context: dg.AssetExecutionContext, lake: LakeResource):
    paths = lake.paths()
    sweep(context, paths)
    with staged_dir(process_staging(paths.staging), "ingest") as folder:
        report = run_ingest(paths, lake.settings(), folder, context.log.warning)
        evaluations = [checks.tracks_quality(TRACKS, context, lake, folder),
                       checks.interactions_quality(INTERACTIONS, lake, folder)]
        failed = [e for e in evaluations if not e.passed]
        if failed:
            yield from failed
            assets = ", ".join(e.asset_key.to_user_string() for e in failed)
            raise dg.Failure(f"the blocking check(s) {checks.CHECK_NAME} of {assets} failed on the new tables (their "
                             f"metadata names the rows): nothing was published, the previous tables in {paths.ingest} "
                             f"stay.", allow_retries=False)
        version = publish_ingest(paths, folder, report.version, lake.connect)
    yield from materializations(report, lake, f"with the other ingest tables, in one switch of {paths.ingest} "
                                              f"to {version.name}")
    yield from evaluations


def materializations(report: IngestReport, lake: LakeResource, published: str) -> list[dg.MaterializeResult]:
    """The four tables' results: data version = content fingerprint (listens: also whether the log is synthetic,
    so that marking or unmarking it makes split_info stale), and their metadata."""
    settings, source, read, split = lake.settings(), report.source, report.listens, report.split
    versions = {key: report.fingerprints[key.path[-1]] for key in (LISTENS, TRACKS, INTERACTIONS, SPLIT_INFO)}
    if report.synthetic:
        versions[LISTENS] = combine(versions[LISTENS], "synthetic")
    windows = dg.MetadataValue.json({k: str(v) for k, v in vars(report.windows).items()})
    metadata = {
        LISTENS: {
            "layout": source.layout.value, "synthetic_log": report.synthetic, "duplicate_events": read.duplicates,
            "duplicates": settings.duplicates, "source_file": dg.MetadataValue.path(str(source.log_path)),
            "dagster/row_count": read.events, "users": read.users, "tracks": read.tracks,
            "first_event": str(read.first_ts), "last_event": str(read.last_ts),
            "seconds": round(report.listens_seconds, 2)},
        TRACKS: {
            "dagster/row_count": len(report.catalogue), "audio_dir": dg.MetadataValue.path(str(source.audio_dir)),
            "total_hours": round(float(report.catalogue["duration_s"].sum()) / 3600, 2),
            "listened_without_audio": report.tracks.listened_without_audio,
            "audio_without_listens": report.tracks.audio_without_listens,
            "preview": dg.MetadataValue.md(report.catalogue.head(10).to_markdown(index=False))},
        INTERACTIONS: {
            **report.dropped,
            "dagster/row_count": split.train_pairs + split.val_pairs + split.test_pairs + split.test_cold_pairs,
            "preset": settings.preset, "synthetic_log": report.synthetic, "test_cold_pairs": split.test_cold_pairs,
            "test_cold_users": split.test_cold_users, "cold_tracks": split.cold_tracks, "windows": windows,
            "per_split": dg.MetadataValue.md(report.per_split.to_markdown(index=False)),
            "filters": dg.MetadataValue.json(split.as_dict())},
        SPLIT_INFO: {
            "dagster/row_count": 1, "preset": settings.preset, "layout": source.layout.value,
            "synthetic_log": report.synthetic, "windows": windows},
    }
    return [dg.MaterializeResult(asset_key=key, data_version=dg.DataVersion(versions[key]),
                                 metadata={"published": published, **metadata[key]})
            for key in (LISTENS, TRACKS, INTERACTIONS, SPLIT_INFO)]
