"""Declarative automation: each asset's :class:`~dagster.AutomationCondition` and the sensors that keep the lake,
its partitions and its inputs in step (conditions in words, sensors, ``AUDIOREC_AUTOMATION`` and
``AUDIOREC_EXPENSIVE_CRON``: docs/automation.md, "Sensors: nothing has to be switched on")."""

from __future__ import annotations

import os

import dagster as dg

from audiorec_assets.defs.partitions import lake_members, partition_requests
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.defs.sources import SOURCE_KEYS, changed_observations, input_observations
from audiorec_assets.run_health import host_tags
from audiorec_assets.settings import SettingsError

AUTOMATION_ENV = "AUDIOREC_AUTOMATION"  # "off": the sensors start stopped
EXPENSIVE_CRON_ENV = "AUDIOREC_EXPENSIVE_CRON"
AC = dg.AutomationCondition


def _needed() -> dg.AutomationCondition:
    """When an asset is due (each clause labelled). Plain missing counts: ``eager`` reacts to *newly* missing only,
    so a lake started without results would never be filled. A source's change counts even when the asset was
    written in the same tick (a run that started before the observation read the old files). ``will_be_requested``
    holds within one partitioning (a cell's assets run in one go); across partitionings the daemon orders such a
    request as a backfill."""
    changed = AC.any_deps_match(AC.data_version_changed()) | AC.code_version_changed()
    source_changed = AC.any_deps_match(AC.data_version_changed()).allow(dg.AssetSelection.assets(*SOURCE_KEYS))
    return ((AC.missing() & ~AC.execution_failed()).with_label("missing, not failed")
            | source_changed.with_label("a source changed")
            | (AC.newly_missing() | changed).since_last_handled().with_label("an input or the code changed")
            | AC.any_deps_match(AC.will_be_requested()).with_label("an input will be materialized"))


def on_change() -> dg.AutomationCondition:
    """:func:`_needed`, once every input exists and none is being written."""
    return (_needed() & ~AC.any_deps_missing() & ~AC.any_deps_in_progress() & ~AC.in_progress()
            ).with_label("on_change")


def after_encodings(encodings: dg.AssetKey) -> dg.AutomationCondition:
    """For the embeddings, which read every partition of ``encodings`` (``audiorec/audio_vectors``): like
    :func:`on_change`, but an encoding whose last run failed does not hold the other encoders' vectors back (that
    encoder's own partition fails, naming it); one not run yet, or being written, does."""
    audio = dg.AssetSelection.assets(encodings)
    unwritten = AC.any_deps_match(AC.missing() & ~AC.execution_failed()).allow(audio)
    return (_needed() & ~AC.any_deps_missing().ignore(audio) & ~unwritten & ~AC.any_deps_in_progress()
            & ~AC.in_progress() & AC.all_deps_blocking_checks_passed()).with_label("after_encodings")


def across_cells(inputs: list[dg.AssetKey]) -> dg.AutomationCondition:
    """For a table over every cell: like :func:`on_change`, but it waits only until none of its inputs is being
    written and at least one of ``inputs`` (the metrics) exists, not for missing cells (why: docs/automation.md)."""
    some_input = AC.any_deps_match(~AC.missing()).allow(dg.AssetSelection.assets(*inputs))
    return (_needed()
            & ~AC.any_deps_match(AC.will_be_requested()) & ~AC.any_deps_in_progress() & ~AC.in_progress()
            & some_input).with_label("across_cells")


def with_tables(inputs: list[dg.AssetKey]) -> dg.AutomationCondition:
    """For a figure over other tables of the same job (the audio-effect plot over the comparison tables): like
    :func:`across_cells`, but requested in the same evaluation as those tables when they are requested — one run,
    its steps in the graph's order — rather than in a round of its own after them."""
    some_input = AC.any_deps_match(~AC.missing() | AC.will_be_requested()).allow(dg.AssetSelection.assets(*inputs))
    return (_needed() & ~AC.any_deps_in_progress() & ~AC.in_progress() & some_input).with_label("with_tables")


def expensive() -> dg.AutomationCondition:
    """:func:`on_change` once the inputs' blocking checks passed; with a cron, only after its tick."""
    cron = os.environ.get(EXPENSIVE_CRON_ENV)
    condition = on_change() & AC.all_deps_blocking_checks_passed()
    if cron:
        condition = condition & AC.cron_tick_passed(cron).since_last_handled()
    return condition.with_label("on_change, checks passed" + (f", after {cron}" if cron else ""))


def sensor_status() -> dg.DefaultSensorStatus:
    """Whether the sensors start running (default) or stopped (``AUDIOREC_AUTOMATION=off``)."""
    off = os.environ.get(AUTOMATION_ENV, "").lower() in ("off", "0", "false")
    return dg.DefaultSensorStatus.STOPPED if off else dg.DefaultSensorStatus.RUNNING


automation_sensor = dg.AutomationConditionSensorDefinition(
    "audiorec_automation", target=dg.AssetSelection.all(include_sources=True), default_status=sensor_status(),
    minimum_interval_seconds=30, run_tags=host_tags(),
    description="Evaluates every audiorec automation condition: keeps the study up to date.")


@dg.sensor(minimum_interval_seconds=30, default_status=sensor_status(),
           description="Adds and removes encoder / recommender / reference partitions as the lake and "
                       "experiment.yaml change (a dropped-in `<lake>/embeddings/<name>.npy` becomes an encoder).")
def lake_partitions_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    try:
        wanted = lake_members(lake.paths(), lake.resolve_settings())
    except SettingsError as err:
        return dg.SensorResult(skip_reason=str(err))
    requests = partition_requests(context.instance, wanted)
    left_out = "; ".join(f"{name}: {why}" for name, why in wanted.left_out.items())
    if not requests:
        return dg.SensorResult(skip_reason="partitions match the lake" + (f" (cannot run here: {left_out})"
                                                                          if left_out else ""))
    if left_out:
        context.log.warning(f"encoders that cannot run here: {left_out}")
    return dg.SensorResult(dynamic_partitions_requests=requests)


@dg.sensor(minimum_interval_seconds=60, default_status=sensor_status(),
           description="Observes the raw files and settings every minute and records a new data version when one "
                       "changed (no run is launched for that); the automation sensor then reruns what depends on it.")
def observe_inputs_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    try:
        observed = input_observations(lake, context.instance)
    except Exception as err:  # bad settings, unreadable files: say so on the tick, keep the old versions
        return dg.SensorResult(skip_reason=f"cannot observe the inputs: {err}")
    changed = changed_observations(context.instance, observed)
    if not changed:
        return dg.SensorResult(skip_reason="no input changed")
    return dg.SensorResult(asset_events=changed)
