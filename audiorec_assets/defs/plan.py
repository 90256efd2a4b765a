"""What ``audiorec materialize`` runs: the one planner, :func:`~audiorec_assets.defs.execute.bring_up_to_date`,
restricted to a :class:`Scope` plus :attr:`Plan.asked`, or with ``--select`` exactly the selected assets (what each
holds: docs/architecture.md, "One planner")."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from audiorec_assets.defs.execute import PlannedRun, Wanted, add_partition_members, runs_for
from audiorec_assets.defs.jobs import job_of_keys
from audiorec_assets.defs.partitions import (AUDIO_ENCODER_SET, CELLS, ENCODERS, REFERENCES, LakeMembers, audio_roots,
                                             lake_members)
from audiorec_assets.defs.status import (INGEST_TARGETS, NEEDS_RUN, RUNNING, TABLES_TARGET, StatusReader, Target,
                                         audio_target, cell_target, embeddings_target)
from audiorec_assets.encoders import BUILTIN_ENCODERS, NO_AUDIO_ENCODER, is_twin
from audiorec_assets.names import unknown_name
from audiorec_assets.recommenders import RECOMMENDERS as RECOMMENDER_KEYS
from audiorec_assets.settings import ExperimentSettings, LakePaths
from audiorec_assets.study import is_valid_cell, study_cells


class PlanError(ValueError):
    """A choice that names nothing the study can run here; ``str(err)`` is one line."""


@dataclass(frozen=True)
class Scope:
    """The asset partitions a command may run: these keys of each partitions definition, every unpartitioned
    asset. Called as the planner's ``scope``."""

    graph: object  # the definitions' asset graph
    keys: tuple[tuple[dg.PartitionsDefinition, frozenset[str]], ...]

    def partitions(self, key: dg.AssetKey) -> set[str | None]:
        """The partitions of ``key`` in scope (``{None}`` for an unpartitioned asset)."""
        partitions_def = self.graph.get(key).partitions_def
        return {None} if partitions_def is None else {k for d, ks in self.keys if d == partitions_def for k in ks}

    def __call__(self, key: dg.AssetKey, partition: str | None) -> bool:
        return partition is None or partition in self.partitions(key)


@dataclass(frozen=True)
class Plan:
    scope: Scope
    asked: Wanted = field(default_factory=dict)  # what runs whatever the automation conditions say
    selected: list[PlannedRun] | None = None  # --select: exactly these runs, no automation


def chosen_cells(settings: ExperimentSettings, members: LakeMembers, encoders: list[str] | None,
                 recommenders: list[str] | None) -> list[tuple[str, str]]:
    """The cells of ``encoders`` × ``recommenders`` (default: the settings' own cells); a name the lake cannot
    run, or a choice with no cell, is a :class:`PlanError`."""
    offered = members.members[ENCODERS.name]
    for name in encoders or []:
        if name in members.left_out and (name in BUILTIN_ENCODERS or is_twin(name)):
            raise PlanError(f"encoder {name!r} cannot run here: {members.left_out[name]}")
        if name != NO_AUDIO_ENCODER and name not in offered:  # a typo, or vectors not dropped in (yet)
            known = [*offered, NO_AUDIO_ENCODER, *BUILTIN_ENCODERS]
            own = members.left_out.get(name) or f"drop them in as <lake>/embeddings/{name}.npy"
            raise PlanError(f"{unknown_name('encoder', name, known)}; or your own vectors: {own}")
    for name in recommenders or []:
        if name not in RECOMMENDER_KEYS:
            raise PlanError(unknown_name("recommender", name, sorted(RECOMMENDER_KEYS)))
    default = study_cells(settings)
    if encoders is None and recommenders is None:
        return default
    chosen_encoders = encoders or list(dict.fromkeys(e for e, _ in default))
    chosen_recommenders = recommenders or list(dict.fromkeys(settings.recommenders))
    cells = [(e, r) for e in chosen_encoders for r in chosen_recommenders if is_valid_cell(e, r)]
    if not cells:
        raise PlanError(f"no cell of encoders {chosen_encoders} × recommenders {chosen_recommenders}: a recommender "
                        f"without audio (popularity, als) runs under encoder 'none'")
    return cells


def plan(defs: dg.Definitions, instance: dg.DagsterInstance, lake_root: Path, settings: ExperimentSettings,
         encoders: list[str] | None = None, recommenders: list[str] | None = None, select: str | None = None,
         force: bool = False) -> Plan:
    """The scope and the requests of ``audiorec materialize`` (see the module's docstring). The partitions the
    chosen cells need are registered in ``instance`` first."""
    # the encoders named on the command line are judged as if the settings listed them
    asked_settings = settings.model_copy(
        update={"encoders": list(dict.fromkeys([*settings.encoders, *(encoders or [])]))})
    members = lake_members(LakePaths(lake_root), asked_settings)
    cells = chosen_cells(settings, members, encoders, recommenders)
    audio_cells = [(e, r) for e, r in cells if e != NO_AUDIO_ENCODER]
    references = [r for e, r in cells if e == NO_AUDIO_ENCODER]
    vectors = list(dict.fromkeys(e for e, _ in audio_cells))
    audio = audio_roots(vectors, settings)  # the encodings they are, or are computed from
    cell_keys = [str(dg.MultiPartitionKey({"encoder": e, "recommender": r})) for e, r in audio_cells]
    chosen_keys = ((AUDIO_ENCODER_SET, audio), (ENCODERS, vectors), (CELLS, cell_keys), (REFERENCES, references))
    for partitions_def, keys in chosen_keys:
        for key in keys:
            add_partition_members(instance, partitions_def, key)
    scope = Scope(defs.resolve_asset_graph(), tuple((d, frozenset(keys)) for d, keys in chosen_keys))
    if select is not None:
        wanted = {key: chosen for key in _selected_keys(defs, select) if (chosen := scope.partitions(key))}
        return Plan(scope, selected=runs_for(defs, wanted))
    reader = StatusReader(defs, instance)
    targets = [*INGEST_TARGETS, *map(audio_target, audio), *map(embeddings_target, vectors), *(cell_target(e, r) for e, r in cells), TABLES_TARGET]
    states = [reader.state(t) for t in targets]
    busy = [s for s in states if s.state == RUNNING]
    if busy:
        raise PlanError(f"{busy[0].target.label}: {busy[0].detail or 'a run is materializing it'} now; wait for it "
                        f"(audiorec status)")
    # the conditions react to changes as they are observed (edge-triggered); Dagster's stale status (the UI's
    # badge) holds until a run: what it calls missing, stale or failed in scope is asked for too
    again = [s.target for s in states if s.state in NEEDS_RUN]
    asked = _runs_of(defs, again, reader, whole=False)
    for key, partitions in _runs_of(defs, [cell_target(e, r) for e, r in cells] if force else [], reader).items():
        asked.setdefault(key, set()).update(partitions)
    return Plan(scope, asked=asked)


def _runs_of(defs: dg.Definitions, targets: list[Target], reader: StatusReader, whole: bool = True) -> Wanted:
    """The assets of each target's run (its job), for the target's partition: every one (``whole``: ``--force``), or
    those Dagster calls missing, stale or failed themselves, with the multi-asset siblings they cannot run without
    (a cell whose metrics alone are stale, after a change to how they are computed, is re-scored, not retrained;
    what they feed runs in the rounds after them, when the conditions see the new data versions)."""
    job_of, graph = job_of_keys(defs), defs.resolve_asset_graph()
    wanted: Wanted = {}
    for target in targets:
        keys = {k for k, job in job_of.items() if job == job_of[target.key]}
        if not whole:
            due = {k for k in keys if reader.state(Target(k, target.partition)).state in NEEDS_RUN}
            keys = dg.AssetSelection.assets(*due).required_multi_asset_neighbors().resolve(graph) if due else {target.key}
        for key in keys:
            wanted.setdefault(key, set()).add(target.partition)
    return wanted


def _selected_keys(defs: dg.Definitions, select: str) -> set[dg.AssetKey]:
    """The materializable keys ``select`` names, with the multi-asset siblings they cannot be run without."""
    graph = defs.resolve_asset_graph()
    try:
        selection = dg.AssetSelection.from_string(select)
        named = selection.resolve(graph)
        keys = selection.required_multi_asset_neighbors().resolve(graph) if named else set()
    except Exception as err:
        raise PlanError(f"--select {select!r}: {str(err).splitlines()[0]}") from None
    keys = {k for k in keys if graph.get(k).is_materializable}
    if not keys:
        raise PlanError(f"--select {select!r} selects no asset (try `key:audiorec/leaderboard` or "
                        f"`group:recommenders`)")
    return keys
