"""Ingest assets: raw files → ``audiorec.listens``, ``audiorec.tracks``, ``audiorec.interactions``.

The four tables of an ingest (listens, tracks, interactions, split_info) are published together or
not at all: each step writes its table into the run's staging set (``<lake>/tmp/staging/set-<run id>/``),
later steps of the run read the staged files, and the last ingest step the run selected (normally
``interactions``) renames them all into ``tables/`` in one short journaled sequence. A run that fails
or is killed before that leaves the previous complete set in place.
"""


import time
from pathlib import Path

import dagster as dg
import pandas as pd

from audiorec_assets.data import splits, sources
from audiorec_assets.data.tracks import build_tracks
from audiorec_assets.defs.automation import on_change
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.defs.sources import RAW_AUDIO, RAW_LOG, SETTINGS_INGEST
from audiorec_assets.fingerprints import combine, table_fingerprint
from audiorec_assets.settings import LakePaths
from audiorec_assets.warehouse import StagedTables, scratch_connection, sweep_lake

LISTENS = dg.AssetKey(["audiorec", "listens"])
TRACKS = dg.AssetKey(["audiorec", "tracks"])
INTERACTIONS = dg.AssetKey(["audiorec", "interactions"])
SPLIT_INFO = dg.AssetKey(["audiorec", "split_info"])
CODE_VERSION = "2"  # bump when a change to this module changes what the ingest tables hold (2: split_info.synthetic)
# the ingest steps in order, and the tables each one writes
INGEST_TABLES = {LISTENS: ["listens"], TRACKS: ["tracks"], INTERACTIONS: ["interactions", "split_info"]}
PRODUCER = {table: key for key, tables in INGEST_TABLES.items() for table in tables}
SINGLE_PROCESS_EXECUTORS = {"execute_in_process_executor", "in_process"}


def run_alive(instance: dg.DagsterInstance):
    """For :func:`sweep_lake`: whether the run that staged a set is still going, as far as this instance knows."""
    def alive(run_id: str) -> bool | None:
        try:
            run = instance.get_run_by_id(run_id)
        except Exception:  # a malformed id, or storage trouble: no opinion
            return None
        return None if run is None else not run.is_finished
    return alive


def sweep(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, paths: LakePaths) -> None:
    """The start of a step: mark runs whose process died as failed, complete interrupted publishes, drop
    staging folders (and settings snapshots) of runs that are over."""
    from audiorec_assets.run_health import fail_dead_runs

    dead = fail_dead_runs(context.instance)  # runs killed without a word: failed now, so their staging goes
    if dead:
        context.log.warning(f"marked {len(dead)} run(s) failed whose process is gone: {dead}")
    alive = run_alive(context.instance)
    removed = sweep_lake(paths, alive, keep={context.run.run_id})
    removed += sweep_run_snapshots(paths, alive, keep=context.run.run_id)
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


def ingest_staging(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
                   paths: LakePaths, connect=None) -> StagedTables:
    """This run's staged ingest tables (``connect``: how publishing opens the warehouse for new views)."""
    execution = str(context.run.run_config.get("execution", ""))
    single = context.job_def.executor_def.name in SINGLE_PROCESS_EXECUTORS or "in_process" in execution
    return StagedTables(paths, context.run.run_id, single_process=single, connect=connect)


def ingest_file(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, paths: LakePaths,
                table: str) -> Path:
    """The file of an ingest ``table`` this step reads: the one this run staged, until the run publishes it;
    otherwise (published, or not written by this run) the table's own."""
    staged = ingest_staging(context, paths)
    if staged.has(table):
        return staged.path(table)
    if PRODUCER[table] in context.job_def.asset_layer.selected_asset_keys and not staged.published:
        raise FileNotFoundError(
            f"{staged.staged.dir} has no {table} although this run wrote it: the run's staging folder was removed "
            f"while the run was going. Run the ingest again (nothing was published).")
    return paths.table_dir(table) / "all.parquet"


def publish_if_last(context: dg.AssetExecutionContext, staged: StagedTables, step: dg.AssetKey) -> dict[str, object]:
    """After the run's last selected ingest step: publish every table the run staged; metadata saying so."""
    order = list(INGEST_TABLES)
    selected = context.job_def.asset_layer.selected_asset_keys
    later = [k for k in order[order.index(step) + 1:] if k in selected]
    if later:
        return {"published": f"staged; published with {later[-1].to_user_string()} at the end of this run"}
    tables = staged.publish([t for key in order if key in selected for t in INGEST_TABLES[key]])
    return {"published": f"published together: {', '.join(tables)}"}


@dg.asset(key=LISTENS, group_name="ingest", kinds={"duckdb", "parquet"}, deps=[RAW_LOG, SETTINGS_INGEST],
          code_version=CODE_VERSION, automation_condition=on_change(),
          description="Every listening event of the raw log, typed and validated (user_id, track_id, ts).")
def listens(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    paths = lake.paths()
    started = time.perf_counter()
    sweep(context, paths)
    # what raw/ holds, never written here: an empty raw/ (a failed mount, say) fails naming it (audiorec demo fills it)
    source = sources.detect_source(paths.raw)
    synthetic = sources.log_is_synthetic(source)  # the demo's or a mock log (its marker says so): not real behaviour
    staged = ingest_staging(context, paths, lake.connect)
    target = staged.path("listens")
    policy = lake.settings().duplicates
    with scratch_connection(paths) as con:
        read = sources.read_listens(con, source, target, paths.tmp, duplicates=policy)  # one read of the log
    if read.duplicates:
        context.log.warning(
            f"{source.log_path}: {read.duplicates} event(s) repeat an earlier (user_id, track_id, timestamp): "
            + ("dropped (duplicates: drop)." if policy == "drop" else
               "kept, each counted as a play (duplicates: keep); set duplicates: drop to drop them."))
    version = table_fingerprint(target)  # before publishing moves the file
    # a synthetic log's events are not real behaviour: marking or unmarking it must make split_info stale
    version = dg.DataVersion(combine(version, "synthetic") if synthetic else version)
    published = publish_if_last(context, staged, LISTENS)
    return dg.MaterializeResult(data_version=version, metadata={
        **published,
        "layout": source.layout.value,
        "synthetic_log": synthetic,
        "duplicate_events": read.duplicates,
        "duplicates": policy,
        "source_file": dg.MetadataValue.path(str(source.log_path)),
        "dagster/row_count": read.events,
        "users": read.users,
        "tracks": read.tracks,
        "first_event": str(read.first_ts),
        "last_event": str(read.last_ts),
        "seconds": round(time.perf_counter() - started, 2),
    })


@dg.asset(key=TRACKS, deps=[LISTENS, RAW_LOG, RAW_AUDIO, SETTINGS_INGEST], group_name="ingest",
          kinds={"duckdb", "parquet"}, code_version=CODE_VERSION, automation_condition=on_change(),
          description="The catalogue: one row per track with audio; item_idx = rank of the sorted track id.")
def tracks(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    paths = lake.paths()
    sweep(context, paths)
    source = sources.detect_source(paths.raw)
    staged = ingest_staging(context, paths, lake.connect)
    with scratch_connection(paths) as con:
        catalogue, report = build_tracks(con, source, ingest_file(context, paths, "listens"), paths)
    tracks_file = staged.write("tracks", catalogue)
    unreadable = catalogue.loc[catalogue["duration_s"].isna(), "track_id"].tolist()
    if unreadable:
        context.log.warning(f"{len(unreadable)} audio file(s) cannot be read, e.g. {unreadable[:5]}: "
                            "the tracks check will fail until they are fixed or removed.")
    if report.listened_without_audio:
        context.log.warning(
            f"{report.listened_without_audio} listened track(s) have no audio in {source.audio_dir}, "
            f"e.g. {report.examples_without_audio}; setting missing_audio decides what the split does."
        )
    version = dg.DataVersion(table_fingerprint(tracks_file))  # before publishing moves the file
    published = publish_if_last(context, staged, TRACKS)
    return dg.MaterializeResult(data_version=version, metadata={
        **published,
        "dagster/row_count": len(catalogue),
        "audio_dir": dg.MetadataValue.path(str(source.audio_dir)),
        "total_hours": round(float(catalogue["duration_s"].sum()) / 3600, 2),
        "listened_without_audio": report.listened_without_audio,
        "audio_without_listens": report.audio_without_listens,
        "preview": dg.MetadataValue.md(catalogue.head(10).to_markdown(index=False)),
    })


@dg.multi_asset(
    specs=[
        dg.AssetSpec(INTERACTIONS, deps=[LISTENS, TRACKS, SETTINGS_INGEST], group_name="ingest",
                     kinds={"duckdb", "parquet"}, code_version=CODE_VERSION, automation_condition=on_change(),
                     description="The Music4All-Onion split: one row per user x track x split after the first-listen "
                                 "collapse; split is train, val, test (warm) or test_cold (warm users on tracks "
                                 "without train plays)."),
        dg.AssetSpec(SPLIT_INFO, deps=[LISTENS, TRACKS, SETTINGS_INGEST], group_name="ingest",
                     kinds={"duckdb", "parquet"}, code_version=CODE_VERSION, automation_condition=on_change(),
                     description="The windows and settings of the split (one row): train start, test start, "
                                 "val end, test end, preset, seed, layout, and synthetic (the log was generated by "
                                 "audiorec demo or audiorec mock-logs, not real behaviour)."),
    ],
    name="interactions",
)
def interactions(context: dg.AssetExecutionContext, lake: LakeResource):
    paths = lake.paths()
    settings = lake.settings()
    sweep(context, paths)
    source = sources.detect_source(paths.raw)
    synthetic = sources.log_is_synthetic(source)
    staged = ingest_staging(context, paths, lake.connect)
    listens_file, tracks_file = ingest_file(context, paths, "listens"), ingest_file(context, paths, "tracks")
    interactions_file = staged.path("interactions")
    catalogue = pd.read_parquet(tracks_file, columns=["track_id"])["track_id"].tolist()
    with scratch_connection(paths) as con:
        windows = splits.resolve_windows(con, listens_file, source.layout, settings)
        dropped: dict[str, int] = {}
        report = splits.make_split(con, listens_file, catalogue, windows, settings, interactions_file,
                                   missing_audio=missing_audio_policy(settings.missing_audio, context, dropped))
        table = splits.split_summary(con)  # every split gets a row, an empty one (e.g. no test_cold pairs) zeros
    split_info_file = staged.write("split_info", pd.DataFrame([{
        "preset": settings.preset, "seed": settings.seed, "layout": source.layout.value,
        "train_start": windows.train_start, "test_start": windows.test_start,
        "val_end": windows.val_end, "test_end": windows.test_end,
        "val_fraction": settings.split.val_fraction, "synthetic": synthetic,
    }]))
    counts = report.as_dict()
    versions = {key: table_fingerprint(f) for key, f in ((INTERACTIONS, interactions_file),
                                                         (SPLIT_INFO, split_info_file))}
    published = publish_if_last(context, staged, INTERACTIONS)  # the last step: listens, tracks, interactions, split_info
    yield dg.MaterializeResult(asset_key=SPLIT_INFO, data_version=dg.DataVersion(versions[SPLIT_INFO]), metadata={
        **published, "dagster/row_count": 1, "preset": settings.preset, "layout": source.layout.value,
        "synthetic_log": synthetic, "windows": dg.MetadataValue.json({k: str(v) for k, v in vars(windows).items()})})
    yield dg.MaterializeResult(asset_key=INTERACTIONS, data_version=dg.DataVersion(versions[INTERACTIONS]), metadata={
        **published, **dropped,
        "dagster/row_count": report.train_pairs + report.val_pairs + report.test_pairs + report.test_cold_pairs,
        "preset": settings.preset,
        "synthetic_log": synthetic,
        "test_cold_pairs": report.test_cold_pairs,
        "test_cold_users": report.test_cold_users,
        "cold_tracks": report.cold_tracks,
        "windows": dg.MetadataValue.json({k: str(v) for k, v in vars(windows).items()}),
        "per_split": dg.MetadataValue.md(table.to_markdown(index=False)),
        "filters": dg.MetadataValue.json(counts),
    })


def missing_audio_policy(policy: str, context: dg.AssetExecutionContext, dropped: dict[str, int]
                         ) -> splits.MissingAudio:
    """For :func:`splits.make_split`: fail (``missing_audio: fail``) or report the drop, into ``dropped``, when
    listens inside the split's windows name tracks without audio."""
    def apply(missing: list[str], n_events: int) -> None:
        message = f"{len(missing)} listened track(s) ({n_events} events) have no audio file, e.g. {missing[:5]}"
        if policy == "fail":
            raise sources.SourceError(
                f"{message}. Add the audio files, or set missing_audio: drop in experiment.yaml to drop those listens."
            )
        context.log.warning(f"{message}: dropped (missing_audio: drop)")
        dropped.update(dropped_tracks_without_audio=len(missing), dropped_events_without_audio=n_events)
    return apply


def split_windows_from_lake(lake: LakeResource, split_info_file: Path | None = None) -> splits.SplitWindows:
    """The windows the last ``interactions`` run used (from ``audiorec.split_info``, or ``split_info_file``)."""
    info = pd.read_parquet(split_info_file or lake.paths().table_dir("split_info") / "all.parquet").iloc[0]
    val_end = info["val_end"]
    return splits.SplitWindows(
        train_start=info["train_start"].to_pydatetime(),
        test_start=info["test_start"].to_pydatetime(),
        test_end=info["test_end"].to_pydatetime(),
        val_end=None if pd.isna(val_end) else pd.Timestamp(val_end).to_pydatetime(),
    )

