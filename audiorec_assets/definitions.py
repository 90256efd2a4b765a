"""The one ``Definitions`` of audiorec (loaded by ``workspace.yaml``)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dagster as dg

from audiorec_assets.settings import LAKE_ENV, LakePaths, default_lake

DEVICE_ENV = "AUDIOREC_DEVICE"  # cpu | cuda | auto: the compute device of this deployment


def _lake_resource(lake_root: Path | str | None):
    """The lake and device from the arguments, else from ``$AUDIOREC_LAKE`` / ``$AUDIOREC_DEVICE`` (``dg.EnvVar``:
    read when a run starts, shown as such in the UI), else ``./data_lake`` and the settings' device."""
    from dagster_duckdb import DuckDBResource

    from audiorec_assets.defs.resources import LakeResource

    # the warehouse's path as the lake is now (the UI shows it); a lake moved later reads its own
    # warehouse.duckdb only after a reload
    lake_now = LakePaths(default_lake() if lake_root is None else lake_root)
    root = dg.EnvVar(LAKE_ENV) if lake_root is None and os.environ.get(LAKE_ENV) else str(lake_now.root)
    device = dg.EnvVar(DEVICE_ENV) if os.environ.get(DEVICE_ENV) else ""
    return LakeResource(root=root, device=device, warehouse=DuckDBResource(database=str(lake_now.warehouse)))


def build_definitions(lake_root: Path | str | None = None) -> dg.Definitions:
    """Every asset, check, source, sensor and resource, for the lake at ``lake_root`` (default: see
    :func:`_lake_resource`). Nothing is read from the lake here: its encoders arrive as dynamic partitions."""
    with warnings.catch_warnings():  # beta / preview APIs used as documented (multi observable sources, pools)
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        from audiorec_assets.defs import automation, evaluation, health, ingest
        from audiorec_assets.defs.jobs import JOBS
        from audiorec_assets.defs.progress_log import LOGGERS
        from audiorec_assets.defs.executors import selected_executor
        from audiorec_assets.defs.audio_vectors import audio_vectors
        from audiorec_assets.defs.embeddings import embeddings
        from audiorec_assets.defs.models import build_model_assets, families
        from audiorec_assets.defs.sources import SOURCES

        return dg.Definitions(
            assets=[
                *SOURCES,
                ingest.ingest,
                audio_vectors,
                embeddings,
                *(ops for f in families() for ops in build_model_assets(f)),
                evaluation.leaderboard, *evaluation.COMPARISON_ASSETS,
            ],
            asset_checks=[],  # the ingest's and the embeddings' checks are check_specs of their ops
            resources={"lake": _lake_resource(lake_root)},
            jobs=JOBS,
            sensors=[automation.automation_sensor, automation.lake_partitions_sensor, automation.observe_inputs_sensor,
                     health.lake_health_sensor],
            loggers=LOGGERS,
            executor=selected_executor(),
        )


defs = build_definitions()
