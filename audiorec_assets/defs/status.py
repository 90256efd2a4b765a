"""Where the study stands, as Dagster's instance sees it (``audiorec status``, ``audiorec materialize``; where each
state comes from: docs/architecture.md, "One planner"). The stale-status resolver lives in ``dagster._core`` (no
public API gives a partition's stale status; the UI reads it over GraphQL), so this module is the one place that
touches it, and ``test_automation.py`` keeps it that way."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from audiorec_assets.defs.audio_vectors import AUDIO_VECTORS
from audiorec_assets.defs.embeddings import EMBEDDINGS
from audiorec_assets.defs.evaluation import LEADERBOARD
from audiorec_assets.defs.ingest import INTERACTIONS, TRACKS
from audiorec_assets.defs.models import METRICS, REFERENCE_METRICS
from audiorec_assets.defs.partitions import LakeMembers, lake_members
from audiorec_assets.encoders import NO_AUDIO_ENCODER
from audiorec_assets.settings import ExperimentSettings, LakePaths
from audiorec_assets.study import is_valid_cell, study_cells

MATERIALIZED, STALE, FAILED, RUNNING, MISSING, NOT_RUNNABLE = (
    "materialized", "stale", "failed", "running", "missing", "not runnable")
NEEDS_RUN = (STALE, FAILED, MISSING)  # what `audiorec materialize` runs without --force


@dataclass(frozen=True)
class Target:
    """One asset partition of the study: an input layer, an encoder's vectors, a cell, or the tables."""

    key: dg.AssetKey
    partition: str | None = None  # the partition key as Dagster spells it (``encoder|recommender`` for cells)
    encoder: str | None = None
    recommender: str | None = None

    @property
    def label(self) -> str:
        return f"{self.key.to_user_string()}[{self.partition}]" if self.partition else self.key.to_user_string()


@dataclass(frozen=True)
class State:
    target: Target
    state: str
    detail: str = ""


def cell_target(encoder: str, recommender: str) -> Target:
    """The metrics partition that stands for a cell (the references' own asset for ``none``)."""
    if encoder == NO_AUDIO_ENCODER:
        return Target(REFERENCE_METRICS, recommender, encoder, recommender)
    key = dg.MultiPartitionKey({"encoder": encoder, "recommender": recommender})
    return Target(METRICS, str(key), encoder, recommender)


def embeddings_target(encoder: str) -> Target:
    return Target(EMBEDDINGS, encoder, encoder)


def audio_target(encoder: str) -> Target:
    return Target(AUDIO_VECTORS, encoder, encoder)


INGEST_TARGETS = (Target(TRACKS), Target(INTERACTIONS))
TABLES_TARGET = Target(LEADERBOARD)


def grid_cells(settings: ExperimentSettings, members: LakeMembers) -> list[tuple[str, str]]:
    """Every cell of the settings, plus the cells of a user's dropped-in vectors and of encoders left out."""
    cells = list(study_cells(settings))
    encoders = list(dict.fromkeys([e for e, _ in cells if e != NO_AUDIO_ENCODER]
                                  + members.members["encoder"] + list(members.left_out)))
    recommenders = list(dict.fromkeys(settings.recommenders))
    extra = [(e, r) for e in encoders for r in recommenders if (e, r) not in cells and is_valid_cell(e, r)]
    audio = [c for c in cells if c[0] != NO_AUDIO_ENCODER] + extra
    return sorted(audio, key=lambda c: (encoders.index(c[0]), recommenders.index(c[1]))) + [
        c for c in cells if c[0] == NO_AUDIO_ENCODER]


class StatusReader:
    """The state of asset partitions in one instance, read once per command (the resolver caches)."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance):
        from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
        from dagster._core.definitions.data_version import CachingStaleStatusResolver
        from dagster._time import get_current_datetime

        self.instance = instance
        self.graph = defs.resolve_asset_graph()
        view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                              instance=instance, asset_graph=self.graph)
        self._stale = CachingStaleStatusResolver(instance=instance, asset_graph=self.graph, loading_context=view)

    def state(self, target: Target) -> State:
        run_state = self._run_state(target)
        if run_state is not None:
            return run_state
        from dagster._core.definitions.data_version import StaleStatus

        try:
            status = self._stale.get_status(target.key, target.partition)
        except Exception as err:  # a partition the instance does not list (yet): nothing stored for it
            return State(target, MISSING, f"not a partition of this instance yet ({type(err).__name__})")
        if status == StaleStatus.MISSING:
            return State(target, MISSING)
        if status == StaleStatus.STALE:
            causes = self._stale.get_stale_root_causes(target.key, target.partition)
            return State(target, STALE, "; ".join(sorted({_cause(c) for c in causes}))[:300])
        return State(target, MATERIALIZED)

    def _run_state(self, target: Target) -> State | None:
        """``running`` or ``failed`` when the instance says so for the partition (else None)."""
        if target.partition is not None:
            partitions_def = self.graph.get(target.key).partitions_def
            try:
                by_key = self.instance.get_status_by_partition(target.key, [target.partition], partitions_def) or {}
            except Exception:  # the partition set does not hold this key: nothing has run for it
                return None
            status = by_key.get(target.partition)
            if status == dg.AssetPartitionStatus.IN_PROGRESS:
                return State(target, RUNNING, self._holding_run(target))
            if status == dg.AssetPartitionStatus.FAILED:
                return State(target, FAILED, self._last_failed_run(target))
            return None
        records = self.instance.get_asset_records([target.key])
        if not records:
            return None
        entry = records[0].asset_entry
        materialized = entry.last_materialization_record.storage_id if entry.last_materialization_record else -1
        planned_run = entry.last_planned_materialization_run_id
        if planned_run and (entry.last_planned_materialization_storage_id or -1) > materialized:
            run = self.instance.get_run_by_id(planned_run)
            if run is not None and not run.is_finished:
                return State(target, RUNNING, f"run {planned_run[:8]} is materializing it")
        failed = entry.last_failed_to_materialize_record
        if failed is not None and failed.storage_id > materialized:
            return State(target, FAILED, f"run {failed.run_id[:8]} failed")
        return None

    def _holding_run(self, target: Target) -> str:
        """Which run is materializing the partition now, in words (status shows it instead of a command)."""
        going = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                 dg.DagsterRunStatus.STARTED]
        runs = self.instance.get_runs(dg.RunsFilter(statuses=going, tags={"dagster/partition": target.partition}))
        holding = [r for r in runs if target.key in (r.asset_selection or ())]
        return f"run {holding[0].run_id[:8]} is materializing it" if holding else "a run is materializing it"

    def _last_failed_run(self, target: Target) -> str:
        runs = self.instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE],
                                                   tags={"dagster/partition": target.partition}), limit=1)
        return f"run {runs[0].run_id[:8]} failed" if runs else "the last run failed"


def _cause(cause) -> str:
    """A stale cause in words: what changed, upstream of what."""
    what = cause.key.asset_key.to_user_string()
    partition = f"[{cause.key.partition_key}]" if cause.key.partition_key else ""
    return f"{what}{partition} {cause.reason}"


@dataclass(frozen=True)
class StudyStatus:
    ingest: list[State]
    embeddings: list[State]
    cells: list[State]
    tables: State


def study_status(defs: dg.Definitions, instance: dg.DagsterInstance, lake_root: Path,
                 settings: ExperimentSettings) -> StudyStatus:
    """Every layer of the study in ``instance``: the ingest, each encoder's vectors, each cell, the tables."""
    members = lake_members(LakePaths(lake_root), settings)
    reader = StatusReader(defs, instance)

    def unrunnable(target: Target) -> State | None:
        why = members.left_out.get(target.encoder or "")
        return State(target, NOT_RUNNABLE, why) if why else None

    encoders = list(dict.fromkeys(members.members["encoder"] + list(members.left_out)))
    encoded = set(members.members["audio_encoder"])

    def vectors(encoder: str) -> State:
        """The embeddings' state; an audio encoder's encoding when that is not materialized and up to date."""
        target = embeddings_target(encoder)
        if encoder in encoded and (state := reader.state(audio_target(encoder))).state != MATERIALIZED:
            return State(target, state.state, f"audio_vectors: {state.detail}" if state.detail else "audio_vectors")
        return reader.state(target)

    embeddings = [unrunnable(embeddings_target(e)) or vectors(e) for e in encoders]
    cells = [unrunnable(t) or reader.state(t) for t in (cell_target(e, r) for e, r in grid_cells(settings, members))]
    return StudyStatus([reader.state(t) for t in INGEST_TARGETS], embeddings, cells, reader.state(TABLES_TARGET))


def fill_command(states: Iterable[State]) -> str | None:
    """The ``audiorec materialize`` line that would bring the cells among ``states`` that need it up to date."""
    todo = [s.target for s in states if s.state in NEEDS_RUN and s.target.recommender]
    if not todo:
        return None
    encoders = list(dict.fromkeys(t.encoder for t in todo))
    recommenders = list(dict.fromkeys(t.recommender for t in todo))
    return f"audiorec materialize --encoders {' '.join(encoders)} --recommenders {' '.join(recommenders)}"
