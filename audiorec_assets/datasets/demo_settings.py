"""The settings a demo data set runs with: ``<dataset>_experiment.yaml`` beside this module, written into a lake
that has none."""

from __future__ import annotations

from importlib import resources

from audiorec_assets.data.sources import holds_data
from audiorec_assets.lakeio import atomic_path, process_staging
from audiorec_assets.settings import SETTINGS_FILE, LakePaths


def write_demo_settings(lake: LakePaths, dataset: str = "demo") -> bool:
    """Write the settings of ``dataset`` (``demo``, ``classical``) as ``<lake>/experiment.yaml`` when its data will
    be generated (``raw/`` empty) and the lake has no settings yet; never overwrites a user's file. Returns whether
    it wrote."""
    target = lake.root / SETTINGS_FILE
    if target.exists() or holds_data(lake.raw):
        return False
    text = resources.files("audiorec_assets.datasets").joinpath(f"{dataset}_experiment.yaml").read_text()
    with atomic_path(target, staging=process_staging(lake.staging)) as tmp:
        tmp.write_text(text)
    print(f"[audiorec] wrote the demo's settings to {target} (sized for the demo; see the comments in it)", flush=True)
    return True
