"""Blocking asset checks: Great Expectations suites on the ingest tables.

A failed check stops the assets downstream of it in the same run, and its failures show in
the UI as check metadata.
"""


import dagster as dg
import pandas as pd

from audiorec_assets.data import quality
from audiorec_assets.defs.ingest import INTERACTIONS, TRACKS, ingest_file, split_windows_from_lake
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.warehouse import scratch_connection


def _check_result(result: quality.QualityResult, extra: dict[str, object] | None = None) -> dg.AssetCheckResult:
    metadata: dict[str, object] = {"expectations": result.evaluated, "failed": len(result.failures)}
    if result.failures:
        metadata["failures"] = dg.MetadataValue.json(result.failures)
        metadata["summary"] = dg.MetadataValue.md("```\n" + result.summary() + "\n```")
    metadata.update(extra or {})
    return dg.AssetCheckResult(passed=result.success, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata)


@dg.asset_check(asset=TRACKS, blocking=True, name="great_expectations",
                description="Unique ids, dense item_idx in sorted order, audio exists and its header and both ends "
                            "decode (the encoders name a file whose middle does not), duration > 0; truncated, NaN, "
                            "short or silent audio fails or warns (setting audio_checks). Verdicts are remembered by "
                            "file, size and mtime in <lake>/tmp/audio_verdicts.parquet: an unchanged file is not "
                            "probed again.")
def tracks_quality(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    # the run's own tracks (staged until the ingest publishes), else the published ones
    catalogue = pd.read_parquet(ingest_file(context, lake.paths(), "tracks"))
    # stored relative to the lake: check (and name) the files themselves
    catalogue["audio_path"] = [str(lake.paths().resolve(p)) for p in catalogue["audio_path"]]
    flags = quality.tracks_flags(catalogue, verdicts=lake.paths().audio_verdicts)
    result = quality.check_tracks(flags, lake.settings().audio_checks.model_dump())
    for warning in result.warnings:
        context.log.warning(f"{warning['count']} audio file(s) {warning['kind']} (audio_checks.{warning['kind']}: "
                            f"warn), e.g. {[e['audio_problem'] for e in warning['examples']]}")
    extra = {"warnings": dg.MetadataValue.json(result.warnings)} if result.warnings else None
    return _check_result(result, extra)


@dg.asset_check(asset=INTERACTIONS, blocking=True, name="great_expectations",
                description="Schema, nulls, split values (train, val, test, test_cold), windows, no train/eval leak, "
                            "warm start for val/test, cold tracks for test_cold, no duplicates.")
def interactions_quality(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    paths = lake.paths()
    windows = split_windows_from_lake(lake, ingest_file(context, paths, "split_info"))
    with scratch_connection(paths) as con:
        flags = quality.interactions_flags(con, ingest_file(context, paths, "interactions"), windows)
    return _check_result(quality.check_interactions(flags), {"rows_checked": flags.attrs["rows_checked"]})
