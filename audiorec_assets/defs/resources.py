"""Resources: where the lake is, which settings a run uses (one snapshot per run: docs/automation.md, "Concurrency,
device, settings"), and the warehouse connection."""

from __future__ import annotations

import datetime
import enum
import json
import types
import typing
from typing import Any, Literal, Optional, Union

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, create_model

from audiorec_assets.settings import ExperimentSettings, LakePaths, SettingsError, default_lake, load_settings

SNAPSHOT_FILE = "settings.json"
TORCH_POOL = "torch"  # encoding and training steps: limit in dagster.yaml (concurrency: pools)
# on a Dask cluster the pool is a worker resource: a torch step runs on a worker started with
# `--resources torch=1` (defs/executors.py); other executors ignore the tag
TORCH_OP_TAGS = {"dagster-dask/resource_requirements": json.dumps({TORCH_POOL: 1})}


def _config_type(annotation: Any, name: str) -> Any:
    """The Dagster config type of a settings field (Literal → Enum, datetime → str, sections → nested Config)."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return enum.Enum(name, {str(v): v for v in typing.get_args(annotation)}, type=str)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _config_type(args[0], name)
    if origin is list:
        return list[_config_type(typing.get_args(annotation)[0], name)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return overrides_config(annotation, name)
    if annotation is datetime.datetime:
        return str  # ISO date or datetime, validated by the settings model
    return annotation


def overrides_config(model: type[BaseModel], name: str = "SettingsOverrides") -> type[dg.Config]:
    """A Dagster ``Config`` class with every field of ``model`` optional: the typed run overrides."""
    fields = {
        field: (Optional[_config_type(info.annotation, f"{name}_{field}")], Field(None, description=info.description))
        for field, info in model.model_fields.items()
    }
    return create_model(name, __base__=dg.Config, **fields)


SettingsOverrides = overrides_config(ExperimentSettings)


class LakeResource(dg.ConfigurableResource):
    """The data lake and the experiment settings of a run (``<lake>/experiment.yaml``, then ``overrides``).

    ``overrides`` are typed like ``experiment.yaml`` (the launchpad completes and checks them), e.g.
    ``{preset: paper_code, shallow: {max_epochs: 5}}``. ``device`` picks the compute device of a
    deployment (``$AUDIOREC_DEVICE`` through ``dg.EnvVar``).
    """

    root: str = Field("", description="Lake directory; empty = $AUDIOREC_LAKE or ./data_lake")
    device: str = Field("", description="Compute device for encoders and torch models (cpu, cuda, auto); "
                                        "empty = encode.device of experiment.yaml")
    overrides: SettingsOverrides = Field(default_factory=SettingsOverrides,  # type: ignore[valid-type]
                                         description="Settings for this run only, over experiment.yaml")
    warehouse: Optional[DuckDBResource] = Field(
        None, description="The SQL catalogue (dagster-duckdb); empty = `<lake>/warehouse.duckdb`")
    _run_id: str | None = PrivateAttr(None)
    _settings: ExperimentSettings | None = PrivateAttr(None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run_id = context.run_id

    def paths(self) -> LakePaths:
        return LakePaths(self.root) if self.root else LakePaths(default_lake())

    def connect(self):
        """A writable connection to the warehouse, through ``dagster-duckdb``'s :class:`DuckDBResource` (a context
        manager; it retries while another writer holds the file). What table writes create their views with."""
        warehouse = self.warehouse or DuckDBResource(database=str(self.paths().warehouse))
        return warehouse.get_connection()

    def resolve_settings(self) -> ExperimentSettings:
        """The file's settings with this resource's device and overrides (no snapshot)."""
        settings = load_settings(self.paths().root)
        if self.device:  # per deployment (a GPU machine), without editing the experiment file
            settings = settings.with_overrides({"encode": {"device": self.device}})
        overrides = self.overrides.model_dump(exclude_none=True, mode="json") if self.overrides else {}
        if not overrides:
            return settings
        try:
            return settings.with_overrides(overrides)
        except (ValidationError, SettingsError, ValueError) as err:
            raise SettingsError(f"resources.lake.config.overrides: {err}") from None

    def settings(self) -> ExperimentSettings:
        """This run's settings: resolved by its first step, then read from the run's snapshot."""
        if self._settings is not None:
            return self._settings
        if self._run_id is None:  # outside a run (tests, the CLI): no snapshot
            return self.resolve_settings()
        snapshot = self.paths().staging / f"run-{self._run_id}" / SNAPSHOT_FILE
        if snapshot.exists():
            self._settings = ExperimentSettings.model_validate(json.loads(snapshot.read_text()))
            return self._settings
        import os
        import tempfile

        resolved = self.resolve_settings()
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=snapshot.parent, prefix=".settings-")
        try:
            with os.fdopen(handle, "w") as out:
                out.write(resolved.model_dump_json())
            os.link(tmp, snapshot)  # only the first step of the run creates it; the others read that one
            self._settings = resolved
        except FileExistsError:
            self._settings = ExperimentSettings.model_validate(json.loads(snapshot.read_text()))
        finally:
            os.unlink(tmp)
        return self._settings
