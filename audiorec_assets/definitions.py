"""The one ``Definitions`` of audiorec (loaded by ``workspace.yaml``)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from audiorec_assets.defs import automation, checks, evaluation, ingest
from audiorec_assets.defs.embeddings import build_embeddings_asset
from audiorec_assets.defs.models import build_model_assets
from audiorec_assets.defs.partitions import encoder_partitions, model_partitions
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.settings import LakePaths, default_lake

DEVICE_ENV = "AUDIOREC_DEVICE"  # cpu | cuda | auto: the compute device of this deployment


def build_definitions(lake_root: Path | str | None = None) -> dg.Definitions:
    """Assemble every asset, check, resource and automation for the lake at ``lake_root``.

    The lake is read at load time only to list the encoder partitions (vectors a user dropped
    into ``<lake>/embeddings/``); reload the code location after adding one.
    """
    paths = LakePaths(lake_root) if lake_root else LakePaths(default_lake())
    return dg.Definitions(
        assets=[
            ingest.listens, ingest.tracks, ingest.interactions,
            build_embeddings_asset(encoder_partitions(paths)),
            *build_model_assets(model_partitions(paths)),
            evaluation.leaderboard, *evaluation.COMPARISON_ASSETS,
        ],
        asset_checks=[checks.tracks_quality, checks.interactions_quality],
        resources={"lake": LakeResource(root=str(paths.root), device=os.environ.get(DEVICE_ENV, ""))},
        jobs=[automation.ingest_job, automation.embeddings_job, automation.recommend_job, automation.tables_job],
        sensors=[automation.raw_data_sensor, automation.study_sensor],
        schedules=[automation.nightly_ingest_schedule],
    )


defs = build_definitions()
