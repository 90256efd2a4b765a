"""Runs that died and what they left behind (docs/automation.md, "Killed runs"), handled beside the runs, never
inside a step: :func:`tidy` also removes the settings snapshots of runs that are over."""

from __future__ import annotations

import shutil
import time
from functools import partial
from pathlib import Path

import dagster as dg

from audiorec_assets.defs.automation import sensor_status
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.run_health import fail_dead_runs
from audiorec_assets.settings import LakePaths
from audiorec_assets.warehouse import sweep_lake


def run_alive(instance: dg.DagsterInstance, run_id: str) -> bool | None:
    """Whether run ``run_id`` is still going, as far as ``instance`` knows (None: it does not know the run)."""
    try:
        run = instance.get_run_by_id(run_id)
    except Exception:  # a malformed id, or storage trouble: no opinion
        return None
    return None if run is None else not run.is_finished


UNKNOWN_RUN_SNAPSHOT_DAYS = 2  # a snapshot of a run this instance does not know (a throw-away instance's)


def sweep_run_snapshots(paths: LakePaths, alive, keep: str, now: float | None = None) -> list[Path]:
    """Remove the settings snapshots ``<lake>/tmp/staging/run-<id>/`` of runs known to be over, and of runs the instance
    does not know (no ``DAGSTER_HOME``) once :data:`UNKNOWN_RUN_SNAPSHOT_DAYS` days old."""
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


def tidy(instance: dg.DagsterInstance, paths: LakePaths) -> tuple[list[str], list[Path]]:
    """Mark the runs whose process died as failed, then remove what processes and runs that are over left in the
    lake's staging area; returns the failed run ids and the removed paths."""
    dead = fail_dead_runs(instance)  # first: their staging then counts as left behind
    removed = sweep_lake(paths) + sweep_run_snapshots(paths, partial(run_alive, instance), keep="")
    return dead, removed


@dg.sensor(minimum_interval_seconds=60, default_status=sensor_status(),
           description="Marks runs whose process died as failed and removes what they left in the lake's staging "
                       "area (no step does this).")
def lake_health_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SkipReason:
    dead, removed = tidy(context.instance, lake.paths())
    if dead:
        context.log.warning(f"marked {len(dead)} run(s) failed whose process is gone: {dead}")
    return dg.SkipReason(f"{len(dead)} dead run(s) marked failed, {len(removed)} leftover(s) removed"
                         + (f", e.g. {removed[0]}" if removed else ""))
