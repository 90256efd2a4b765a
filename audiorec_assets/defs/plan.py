"""What ``audiorec materialize`` runs: the chosen cells, and what they need that is not up to date.

Without ``--select``: every layer the chosen cells stand on (the ingest, their encoders' vectors, a shuffled
twin's base) runs when Dagster's instance calls it missing, stale or failed (``defs/status.py``); the cells
themselves too, or always with ``force``; the tables after any cell ran. With ``--select`` (Dagster's asset
selection syntax, e.g. ``key:audiorec/leaderboard`` or ``group:recommenders``) exactly the selected assets run,
for the chosen partitions, as ``dagster asset materialize --select`` would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from audiorec_assets.defs.execute import PlannedRun, add_partition_members
from audiorec_assets.defs.jobs import CELLS as CELLS_JOB, EMBEDDINGS_JOB, INGEST, REFERENCES as REFERENCES_JOB, TABLES
from audiorec_assets.defs.partitions import CELLS, ENCODERS, REFERENCES, LakeMembers, lake_members
from audiorec_assets.defs.status import (INGEST_TARGETS, NEEDS_RUN, TABLES_TARGET, RUNNING, StatusReader, Target,
                                         cell_target, embeddings_target)
from audiorec_assets.encoders import NO_AUDIO_ENCODER, twin_chain, twin_order
from audiorec_assets.recommenders import RECOMMENDERS as RECOMMENDER_KEYS
from audiorec_assets.settings import ExperimentSettings, LakePaths
from audiorec_assets.study import is_valid_cell, study_cells


class PlanError(ValueError):
    """A choice that names nothing the study can run here; ``str(err)`` is one line."""


@dataclass(frozen=True)
class Plan:
    runs: list[PlannedRun]
    cells: list[tuple[str, str]]
    skipped: list[str]  # what was up to date, in words


def chosen_cells(settings: ExperimentSettings, members: LakeMembers, encoders: list[str] | None,
                 recommenders: list[str] | None) -> list[tuple[str, str]]:
    """The cells of ``encoders`` × ``recommenders`` (default: the settings' own cells); a name the lake cannot
    run, or a choice with no cell, is a :class:`PlanError`."""
    offered = members.members[ENCODERS.name]
    for name in encoders or []:
        if name in members.left_out:
            raise PlanError(f"encoder {name!r} cannot run here: {members.left_out[name]}")
        if name != NO_AUDIO_ENCODER and name not in offered:
            raise PlanError(f"unknown encoder {name!r}: this lake offers {sorted(offered + [NO_AUDIO_ENCODER])} "
                            f"(settings `encoders`, or <lake>/embeddings/<name>.npy)")
    for name in recommenders or []:
        if name not in RECOMMENDER_KEYS:
            raise PlanError(f"unknown recommender {name!r}: known {sorted(RECOMMENDER_KEYS)}")
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
    """The runs, upstream first, that bring the chosen cells up to date (see the module's docstring)."""
    # the encoders named on the command line are judged as if the settings listed them
    asked = settings.model_copy(update={"encoders": list(dict.fromkeys([*settings.encoders, *(encoders or [])]))})
    members = lake_members(LakePaths(lake_root), asked)
    cells = chosen_cells(settings, members, encoders, recommenders)
    audio = list(dict.fromkeys(e for e, _ in cells if e != NO_AUDIO_ENCODER))
    # a twin (shuffled, hybrid) is computed from its base's stored vectors: the bases run first
    encoders_needed = sorted({b for e in audio for b in twin_chain(e, settings.encode.shuffled_base)}, key=twin_order)
    bases = [e for e in encoders_needed if e not in audio]
    for encoder, recommender in cells:  # a partition named on the command line exists in the instance
        if encoder == NO_AUDIO_ENCODER:
            add_partition_members(instance, REFERENCES, recommender)
        else:
            add_partition_members(instance, CELLS, dg.MultiPartitionKey({"encoder": encoder, "recommender": recommender}))
    for encoder in bases:
        add_partition_members(instance, ENCODERS, encoder)
    layers: list[tuple[dg.UnresolvedAssetJobDefinition, list[Target], bool]] = [
        (INGEST, list(INGEST_TARGETS), False),
        (EMBEDDINGS_JOB, [embeddings_target(e) for e in encoders_needed], False),
        (CELLS_JOB, [cell_target(e, r) for e, r in cells if e != NO_AUDIO_ENCODER], True),
        (REFERENCES_JOB, [cell_target(e, r) for e, r in cells if e == NO_AUDIO_ENCODER], True),
    ]
    selected = _selected_keys(defs, select)
    reader = StatusReader(defs, instance)
    runs, skipped, cells_run = [], [], False
    for job, targets, is_cell in layers:
        keys = _job_keys(defs, job, selected)
        if not keys:
            continue
        partitioned = any(t.partition for t in targets)
        for partition in dict.fromkeys(t.partition for t in targets):
            states = [reader.state(t) for t in targets if t.partition == partition]
            busy = [s for s in states if s.state == RUNNING]
            if busy:
                raise PlanError(f"{busy[0].target.label} is being materialized by another run now: wait for it "
                                f"(audiorec status)")
            wanted = selected is not None or (force and is_cell) or any(s.state in NEEDS_RUN for s in states)
            if wanted:
                runs.append(PlannedRun(job.name, keys, partition if partitioned else None))
                cells_run = cells_run or is_cell
            else:
                skipped.append(", ".join(s.target.label for s in states) + " is up to date")
    table_keys = _job_keys(defs, TABLES, selected)
    if table_keys and (selected is not None or cells_run or reader.state(TABLES_TARGET).state in NEEDS_RUN):
        runs.append(PlannedRun(TABLES.name, table_keys, None))
    return Plan(runs, cells, skipped)


def _selected_keys(defs: dg.Definitions, select: str | None) -> set[dg.AssetKey] | None:
    if select is None:
        return None
    try:
        selection = dg.AssetSelection.from_string(select)
        keys = selection.resolve(defs.resolve_asset_graph())
    except Exception as err:
        raise PlanError(f"--select {select!r}: {str(err).splitlines()[0]}") from None
    if not keys:
        raise PlanError(f"--select {select!r} selects no asset (try `key:audiorec/leaderboard` or "
                        f"`group:recommenders`)")
    return set(keys)


def _job_keys(defs: dg.Definitions, job: dg.UnresolvedAssetJobDefinition,
              selected: set[dg.AssetKey] | None) -> tuple[dg.AssetKey, ...]:
    """The materializable keys of ``job`` (in its definitions' order), within ``selected`` when given."""
    graph = defs.resolve_asset_graph()
    keys = job.selection.resolve(graph)
    ordered = [k for k in graph.toposorted_asset_keys if k in keys and graph.get(k).is_materializable]
    return tuple(k for k in ordered if selected is None or k in selected)
