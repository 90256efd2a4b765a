"""Running the graph in-process (``audiorec demo``, ``materialize``, tests): what the automation sensor does, step by
step, in :func:`bring_up_to_date` (docs/automation.md, "One planner: `audiorec demo` and `audiorec materialize`")."""

from __future__ import annotations

import graphlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from audiorec_assets.lakeio import atomic_path
from audiorec_assets.run_health import host_tags


def _assets_defs(defs: dg.Definitions) -> list[dg.AssetsDefinition]:
    return [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]


def everything(defs: dg.Definitions) -> list:
    """What ``dg.materialize`` needs to see to run any selection of ``defs``: every asset, source and check."""
    return list(defs.assets or []) + list(defs.asset_checks or [])


def add_partition_members(instance: dg.DagsterInstance, partitions_def: dg.PartitionsDefinition | None,
                          partition_key: str | dg.MultiPartitionKey | None) -> None:
    """Make ``partition_key`` exist in the instance's dynamic partition sets it belongs to."""
    if partition_key is None or partitions_def is None:
        return
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        parts = (partition_key.keys_by_dimension if isinstance(partition_key, dg.MultiPartitionKey)
                 else dict(zip(partitions_def.partition_dimension_names, str(partition_key).split("|"))))
        for dimension in partitions_def.partitions_defs:
            add_partition_members(instance, dimension.partitions_def, parts[dimension.name])
    elif (isinstance(partitions_def, dg.DynamicPartitionsDefinition)
          and not instance.has_dynamic_partition(partitions_def.name, str(partition_key))):
        instance.add_dynamic_partitions(partitions_def.name, [str(partition_key)])


def materialize(assets: list, selection=None, partition_key=None, instance: dg.DagsterInstance | None = None,
                **kwargs) -> dg.ExecuteInProcessResult:
    """``dg.materialize`` that first adds ``partition_key`` to the dynamic partition sets of the selected assets
    (what the lake-partitions sensor does for a lake's own encoders)."""
    instance = instance or dg.DagsterInstance.ephemeral()
    if partition_key is not None:
        chosen = dg.AssetSelection.all() if selection is None else (
            selection if isinstance(selection, dg.AssetSelection) else dg.AssetSelection.assets(*selection))
        keys = chosen.resolve([a for a in assets if isinstance(a, (dg.AssetsDefinition, dg.SourceAsset))])
        owner = next((a for a in assets if isinstance(a, dg.AssetsDefinition) and set(a.keys) & set(keys)), None)
        add_partition_members(instance, None if owner is None else owner.partitions_def, partition_key)
    return dg.materialize(assets, selection=selection, partition_key=partition_key, instance=instance, **kwargs)


def observe_sources(lake_root: Path, instance: dg.DagsterInstance) -> int:
    """Record what the observe-inputs sensor would (a new data version for each input that changed), without a
    run; returns how many changed."""
    from audiorec_assets.defs.resources import LakeResource
    from audiorec_assets.defs.sources import changed_observations, input_observations

    changed = changed_observations(instance, input_observations(LakeResource(root=str(lake_root)), instance))
    for observation in changed:
        instance.report_runless_asset_event(observation)
    return len(changed)


@dataclass(frozen=True)
class PlannedRun:
    """One in-process run: asset keys of one job (``defs/jobs.py``), for one partition (or none)."""

    job: str
    keys: tuple[dg.AssetKey, ...]
    partition_key: str | None

    @property
    def label(self) -> str:
        names = ", ".join(k.path[-1] for k in self.keys)
        return f"{names}[{self.partition_key}]" if self.partition_key else names


Wanted = dict[dg.AssetKey, set[str | None]]  # asset partitions to materialize: key → partition keys (None: all)
Scope = Callable[[dg.AssetKey, "str | None"], bool]  # whether a command may run this asset partition


def runs_for(defs: dg.Definitions, wanted: Wanted) -> list[PlannedRun]:
    """``wanted`` as runs: one per job (``defs/jobs.py``) and partition, upstream first (the asset graph's order)."""
    by_def = {a: a for a in _assets_defs(defs) if a.is_materializable}
    owner = {key: a for a in by_def for key in a.keys}
    graph = graphlib.TopologicalSorter()
    for definition in by_def:
        upstream = {owner[d.asset_key] for spec in definition.specs for d in spec.deps if d.asset_key in owner}
        graph.add(definition, *(u for u in upstream if u is not definition))
    from audiorec_assets.defs.jobs import job_of_keys

    job_of = job_of_keys(defs)
    # one run per job and partition key, in order of first need
    runs: dict[tuple[str, str | None], list[dg.AssetKey]] = {}
    for definition in graph.static_order():
        for key in [spec.key for spec in definition.specs]:  # in the order they are declared
            for partition in sorted(wanted.get(key, ()), key=str):
                runs.setdefault((job_of[key], partition), []).append(key)
    return [PlannedRun(job, tuple(keys), partition) for (job, partition), keys in runs.items()]


def requested_runs(defs: dg.Definitions, result: dg.EvaluateAutomationConditionsResult,
                   scope: Scope | None = None) -> list[PlannedRun]:
    """The materializations ``result`` requests (within ``scope``), as runs."""
    return runs_for(defs, requested(defs, result, scope))


def requested(defs: dg.Definitions, result: dg.EvaluateAutomationConditionsResult,
              scope: Scope | None = None) -> Wanted:
    wanted = {key: {p for p in result.get_requested_partitions(key) if scope is None or scope(key, p)}
              for definition in _assets_defs(defs) for key in definition.keys}
    return {key: partitions for key, partitions in wanted.items() if partitions}


def execute(defs: dg.Definitions, instance: dg.DagsterInstance, planned: PlannedRun,
            **kwargs) -> dg.ExecuteInProcessResult:
    """Run ``planned`` in-process through its job, so the run records its asset selection as a launched run does
    (the automation conditions read it)."""
    job = defs.resolve_job_def(planned.job)
    return job.execute_in_process(asset_selection=list(planned.keys), partition_key=planned.partition_key,
                                  instance=instance, raise_on_error=False, tags=host_tags(), **kwargs)


def cursor_file(instance: dg.DagsterInstance, lake_root: Path) -> Path | None:
    """Where the automation cursor of ``lake_root`` lives: in the instance's folder (None: no folder)."""
    try:
        root = Path(instance.root_directory)
    except Exception:  # an instance without a directory: keep the cursor in memory
        return None
    return root / "audiorec" / f"automation-{hashlib.sha1(str(lake_root).encode()).hexdigest()[:12]}.json"


def _load_cursor(path: Path | None):
    if path is None or not path.exists():
        return None
    try:
        return dg.deserialize_value(path.read_text())
    except Exception:  # unreadable (another Dagster version): start afresh
        return None


def _save_cursor(path: Path | None, cursor) -> None:
    if path is None:
        return
    with atomic_path(path, staging=path.parent) as tmp:
        tmp.write_text(dg.serialize_value(cursor))


RunFn = Callable[[PlannedRun], bool]  # run one planned run; True when it succeeded


def bring_up_to_date(defs: dg.Definitions, instance: dg.DagsterInstance, lake_root: Path, run: RunFn,
                     scope: Scope | None = None, asked: Wanted | None = None, keep_cursor: bool = True,
                     max_rounds: int = 20) -> list[tuple[PlannedRun, bool]]:
    """Observe, evaluate the automation conditions, run what they request, until nothing is requested; returns
    every run made and whether it succeeded (docs/automation.md, "One planner"). ``keep_cursor``: keep the cursor
    between commands, as the sensor does, else for this command's rounds only. ``asked``: what a person asked for on
    top of the conditions, run once they request nothing more in ``scope``, unless a round already ran it."""
    cursor_path = cursor_file(instance, lake_root) if keep_cursor else None
    cursor = _load_cursor(cursor_file(instance, lake_root))
    pending: Wanted = {key: set(parts) for key, parts in (asked or {}).items()}
    done: list[tuple[PlannedRun, bool]] = []
    for _ in range(max_rounds):
        wanted, pending, result = _round(defs, instance, lake_root, cursor, scope, pending)
        planned = runs_for(defs, wanted)
        done += [(p, run(p)) for p in planned]
        # only now: a process killed during the runs evaluates from the old cursor again (nothing is lost)
        cursor = result.cursor
        _save_cursor(cursor_path, cursor)
        if not planned:
            return done
    raise RuntimeError(f"the study was still requesting runs after {max_rounds} rounds of automation: "
                       f"last {[p.label for p in planned]}")


def _round(defs: dg.Definitions, instance: dg.DagsterInstance, lake_root: Path, cursor, scope: Scope | None,
           pending: Wanted) -> tuple[Wanted, Wanted, dg.EvaluateAutomationConditionsResult]:
    """One round of :func:`bring_up_to_date`: what runs now, what stays asked for, and the evaluation."""
    observe_sources(lake_root, instance)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    wanted = requested(defs, result, scope)
    if not wanted and pending:
        wanted, pending = pending, {}
    for key, partitions in wanted.items():  # what runs now is not asked for again
        pending.get(key, set()).difference_update(partitions)
    return wanted, {key: parts for key, parts in pending.items() if parts}, result


def next_round(defs: dg.Definitions, instance: dg.DagsterInstance, lake_root: Path, scope: Scope | None = None,
               asked: Wanted | None = None) -> list[PlannedRun]:
    """The runs the first round of :func:`bring_up_to_date` would make now (``--dry-run``); no run is made."""
    wanted, _, _ = _round(defs, instance, lake_root, _load_cursor(cursor_file(instance, lake_root)), scope,
                          {key: set(parts) for key, parts in (asked or {}).items()})
    return runs_for(defs, wanted)
