"""Resources: where the lake is and which experiment settings a run uses."""

from __future__ import annotations

import yaml
from dagster import ConfigurableResource
from pydantic import Field

from audiorec_assets.settings import ExperimentSettings, LakePaths, SettingsError, default_lake, load_settings


class LakeResource(ConfigurableResource):
    """The data lake and the experiment settings (``<lake>/experiment.yaml``, then run overrides).

    Set ``overrides_yaml`` in the launchpad to change settings for one run, e.g.
    ``preset: paper_code`` or ``{split: {val_fraction: 0.3}, seed: 7}``. ``device`` picks the
    compute device for a deployment (``build_definitions`` reads ``$AUDIOREC_DEVICE``).
    """

    root: str = Field("", description="Lake directory; empty = $AUDIOREC_LAKE or ./data_lake")
    device: str = Field("", description="Compute device for encoders and torch models (cpu, cuda, auto); "
                                        "empty = encode.device of experiment.yaml")
    overrides_yaml: str = Field("", description="YAML merged over experiment.yaml for this run")

    def paths(self) -> LakePaths:
        return LakePaths(self.root) if self.root else LakePaths(default_lake())

    def settings(self) -> ExperimentSettings:
        settings = load_settings(self.paths().root)
        if self.device:  # per deployment (a GPU machine), without editing the experiment file
            settings = settings.with_overrides({"encode": {"device": self.device}})
        if not self.overrides_yaml.strip():
            return settings
        try:
            overrides = yaml.safe_load(self.overrides_yaml) or {}
        except yaml.YAMLError as err:
            raise SettingsError(f"resources.lake.config.overrides_yaml is not valid YAML: {err}") from None
        if not isinstance(overrides, dict):
            raise SettingsError("resources.lake.config.overrides_yaml must be a YAML mapping")
        return settings.with_overrides(overrides)
