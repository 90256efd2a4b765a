"""``dagster-dask``'s executor, with the step's arguments sealed so that ``distributed`` does not look inside them.

``distributed`` walks every namedtuple among a task's arguments to find futures in it; Dagster's ``@record``
classes (``AssetKey``, inside the run and the known state) are namedtuples that forbid iteration, so
``dagster_dask.DaskExecutor`` fails before the first step ("Iteration is not allowed on `@record` AssetKey"; seen
with dagster-dask 0.29.27 and distributed 2024.10 to 2026.8; ``test_cluster.py`` pins that it still does).
:class:`SealedDaskExecutor` is the same executor, but the arguments travel in :class:`_Sealed` (the futures of the
step's dependencies stay outside, so Dask still orders the steps), and the task key holds the run id (see
:meth:`~SealedDaskExecutor.execute`; the two-cells test catches its absence)."""

from __future__ import annotations

import importlib

import dagster as dg
import dask.distributed
from dagster._core.errors import raise_execution_interrupts
from dagster._utils import iterate_with_context
from dagster_dask.executor import DaskExecutor, dask_executor, get_dask_resource_requirements, query_on_dask_worker

CLUSTERS = {  # cluster type of the config → where its class lives (as dagster-dask has them)
    "local": ("dask.distributed", "LocalCluster"), "ssh": ("dask.distributed", "SSHCluster"),
    "yarn": ("dask_yarn", "YarnCluster"), "kube": ("dask_kubernetes", "KubeCluster"),
    **{kind: ("dask_jobqueue", f"{kind.upper() if kind != 'moab' else 'Moab'}Cluster")
       for kind in ("pbs", "moab", "sge", "lsf", "slurm", "oar")},
}


class _Sealed:
    """Carries a value past ``distributed``'s argument walk (it is neither a tuple, list, set nor dict)."""

    def __init__(self, value: tuple):
        self.value = value


def _on_worker(dependencies: list, sealed: _Sealed) -> _Sealed:
    """``dependencies`` (the upstream steps' futures) only make Dask wait for them; the step's events go back
    sealed too (``distributed`` would size them by walking them)."""
    return _Sealed(tuple(query_on_dask_worker(dependencies, *sealed.value)))


class SealedDaskExecutor(DaskExecutor):
    def cluster(self, job_name: str):
        """The cluster of the config (``existing``: the scheduler's address)."""
        if self.cluster_type == "existing":
            return self.cluster_configuration["address"]
        module, name = CLUSTERS[self.cluster_type]
        return getattr(importlib.import_module(module), name)(**self.build_dict(job_name))

    def execute(self, plan_context, execution_plan):
        if not plan_context.instance.is_persistent:
            raise dg.DagsterInvariantViolationError("Dask execution requires a persistent DagsterInstance "
                                                    "(set DAGSTER_HOME)")
        instance, job_name = plan_context.instance, plan_context.job_name
        with dask.distributed.Client(self.cluster(job_name)) as client:
            by_step = {}
            for level in execution_plan.get_steps_to_execute_by_level():
                for step in level:
                    dependencies = [by_step[key] for step_input in step.step_inputs
                                    for key in step_input.dependency_keys]
                    sealed = _Sealed((plan_context.reconstructable_job, plan_context.dagster_run,
                                      plan_context.run_config, [step.key], instance.get_ref(),
                                      execution_plan.known_state))
                    # the run id in the key (dagster-dask's has job and step only): Dask takes a task with a key it
                    # already holds for the same task, so two runs of one job at once (two partitions) shared a result
                    key = f"{job_name}.{plan_context.dagster_run.run_id}.{step.key}"
                    by_step[step.key] = client.submit(_on_worker, dependencies, sealed, key=key,
                                                      resources=get_dask_resource_requirements(step.tags))
            done = dask.distributed.as_completed(list(by_step.values()), with_results=True)
            for _future, events in iterate_with_context(raise_execution_interrupts, done):
                yield from events.value


@dg.executor(name="dask", config_schema=dask_executor.config_schema,
             requirements=dg.multiple_process_executor_requirements())
def sealed_dask_executor(init_context: dg.InitExecutorContext) -> SealedDaskExecutor:
    """``dagster-dask``'s ``dask_executor`` (same config), whose steps' arguments reach the workers sealed."""
    ((cluster_type, cluster_configuration),) = init_context.executor_config["cluster"].items()
    return SealedDaskExecutor(cluster_type, cluster_configuration)
