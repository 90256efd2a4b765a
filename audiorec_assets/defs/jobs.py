"""Asset jobs, one per partitioning: what ``audiorec demo`` (and a user in the launchpad) runs a selection in.
Automation launches runs by itself; these jobs name the layers of the study for people and tools."""

from __future__ import annotations

import dagster as dg

from audiorec_assets.defs.audio_vectors import AUDIO_VECTORS
from audiorec_assets.defs.embeddings import EMBEDDINGS, ENCODERS_TABLE
from audiorec_assets.run_health import host_tags

INGEST = dg.define_asset_job("ingest_job", tags=host_tags(), selection=dg.AssetSelection.groups("ingest"),
                             description="Raw files → listens, tracks, interactions, split_info (+ blocking checks).")
ENCODING = dg.define_asset_job("encoding_job", tags=host_tags(), selection=dg.AssetSelection.assets(AUDIO_VECTORS),
                               description="The audio through one audio encoder (partition of audio_encoder).")
EMBEDDINGS_JOB = dg.define_asset_job("embeddings_job", tags=host_tags(), selection=dg.AssetSelection.assets(EMBEDDINGS, ENCODERS_TABLE),
                                     description="Item vectors of one encoder partition, checked (a twin's computed).")
CELLS = dg.define_asset_job("cells_job", tags=host_tags(), selection=dg.AssetSelection.groups("recommenders"),
                            description="Train, recommend and evaluate one encoder × recommender cell.")
REFERENCES = dg.define_asset_job("references_job", tags=host_tags(), selection=dg.AssetSelection.groups("references"),
                                 description="Train, recommend and evaluate one reference recommender (no audio).")
TABLES = dg.define_asset_job("tables_job", tags=host_tags(), selection=dg.AssetSelection.groups("evaluation"),
                             description="Leaderboards, plots and comparison tables over every cell.")
JOBS = [INGEST, ENCODING, EMBEDDINGS_JOB, CELLS, REFERENCES, TABLES]


def job_of_keys(defs: dg.Definitions) -> dict[dg.AssetKey, str]:
    """The job each materializable asset key belongs to."""
    assets = [a for a in defs.assets or [] if isinstance(a, (dg.AssetsDefinition, dg.SourceAsset))]
    return {key: job.name for job in JOBS for key in job.selection.resolve(assets)}
