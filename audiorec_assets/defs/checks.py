"""Blocking asset checks: Great Expectations suites on the ingest tables, ``check_specs`` of the ingest
(``defs/ingest.py``) evaluated on its freshly written files before anything is published (docs/lake.md,
"Data-quality checks")."""

from pathlib import Path

import dagster as dg
import pandas as pd

from audiorec_assets.data import quality
from audiorec_assets.data.ingest import read_windows, table_file
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.warehouse import scratch_connection

CHECK_NAME = "great_expectations"
TRACKS_DESCRIPTION = (
    "Unique ids, dense item_idx in sorted order, audio exists and its header and both ends decode (the encoders "
    "name a file whose middle does not), duration > 0; truncated, NaN, short or silent audio fails or warns "
    "(setting audio_checks). Verdicts are remembered by file, size and mtime in `<lake>/tmp/audio_verdicts.parquet`: "
    "the ingest probes a new or changed file once, while it builds the tracks table (its duration from the same "
    "read), and an unchanged file is not probed again.")
INTERACTIONS_DESCRIPTION = (
    "Schema, nulls, split values (train, val, test, test_cold), windows, no train/eval leak, warm start for "
    "val/test, cold tracks for test_cold, no duplicates.")


def check_specs(tracks: dg.AssetKey, interactions: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(CHECK_NAME, asset=tracks, blocking=True, description=TRACKS_DESCRIPTION),
            dg.AssetCheckSpec(CHECK_NAME, asset=interactions, blocking=True, description=INTERACTIONS_DESCRIPTION)]


def _check_result(key: dg.AssetKey, result: quality.QualityResult,
                  extra: dict[str, object] | None = None) -> dg.AssetCheckResult:
    metadata: dict[str, object] = {"expectations": result.evaluated, "failed": len(result.failures)}
    if result.failures:
        metadata["failures"] = dg.MetadataValue.json(result.failures)
        metadata["summary"] = dg.MetadataValue.md("```\n" + result.summary() + "\n```")
    metadata.update(extra or {})
    return dg.AssetCheckResult(asset_key=key, check_name=CHECK_NAME, passed=result.success,
                               severity=dg.AssetCheckSeverity.ERROR, metadata=metadata)


def tracks_quality(key: dg.AssetKey, context: dg.AssetExecutionContext, lake: LakeResource,
                   folder: Path) -> dg.AssetCheckResult:
    """The tracks suite on the tracks table an ingest wrote under ``folder``."""
    catalogue = pd.read_parquet(table_file(folder, "tracks"))
    paths = lake.paths()
    # stored relative to the lake: check (and name) the files themselves; the ingest probed them while building
    # the table, so their verdicts are remembered
    catalogue["audio_path"] = [str(paths.resolve(p)) for p in catalogue["audio_path"]]
    flags = quality.tracks_flags(catalogue, verdicts=paths.audio_verdicts)
    result = quality.check_tracks(flags, lake.settings().audio_checks.model_dump())
    for warning in result.warnings:
        context.log.warning(f"{warning['count']} audio file(s) {warning['kind']} (audio_checks.{warning['kind']}: "
                            f"warn), e.g. {[e['audio_problem'] for e in warning['examples']]}")
    extra = {"warnings": dg.MetadataValue.json(result.warnings)} if result.warnings else None
    return _check_result(key, result, extra)


def interactions_quality(key: dg.AssetKey, lake: LakeResource, folder: Path) -> dg.AssetCheckResult:
    """The interactions suite on the split an ingest wrote under ``folder``, in the windows it used."""
    windows = read_windows(table_file(folder, "split_info"))
    with scratch_connection(lake.paths()) as con:
        flags = quality.interactions_flags(con, table_file(folder, "interactions"), windows)
    return _check_result(key, quality.check_interactions(flags), {"rows_checked": flags.attrs["rows_checked"]})
