"""Where the steps run, chosen by configuration alone: ``$AUDIOREC_EXECUTOR`` and ``$AUDIOREC_EXECUTOR_CONFIG``
(docs/cluster.md). On Dask, steps tagged :data:`~audiorec_assets.defs.resources.TORCH_OP_TAGS` need a worker with
the resource ``torch``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import yaml

from audiorec_assets.defs.resources import TORCH_POOL as DASK_TORCH_RESOURCE

EXECUTOR_ENV = "AUDIOREC_EXECUTOR"
EXECUTOR_CONFIG_ENV = "AUDIOREC_EXECUTOR_CONFIG"
# without a config file: a LocalCluster of two single-threaded worker processes, each able to run one torch step
DEFAULT_DASK_CONFIG = {"cluster": {"local": {"n_workers": 2, "resources": {DASK_TORCH_RESOURCE: 1}}}}
# name → (module, attribute, default config) of each executor that can be chosen
EXECUTORS: dict[str, tuple[str, str, dict | None]] = {
    "multiprocess": ("dagster", "multiprocess_executor", None),
    "in_process": ("dagster", "in_process_executor", None),
    "dask": ("audiorec_assets.defs.dask_executor", "sealed_dask_executor", DEFAULT_DASK_CONFIG),
    "k8s": ("dagster_k8s", "k8s_job_executor", None),
}


class ExecutorSettingError(ValueError):
    """``$AUDIOREC_EXECUTOR`` or its config file is wrong; ``str(err)`` names which and why."""


def executor_config(path: Path) -> dict:
    """The executor config in the YAML file ``path`` (a mapping; ``execution: config:`` around it is allowed)."""
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise ExecutorSettingError(f"{EXECUTOR_CONFIG_ENV}={path}: cannot read it ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise ExecutorSettingError(f"{EXECUTOR_CONFIG_ENV}={path}: not YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise ExecutorSettingError(f"{EXECUTOR_CONFIG_ENV}={path}: expected a mapping, got {type(config).__name__}")
    if set(config) == {"execution"}:
        config = (config["execution"] or {}).get("config", {}) or {}
    return config


def selected_executor(env: Mapping[str, str] | None = None) -> dg.ExecutorDefinition | None:
    """The executor ``env`` chooses (None: Dagster's default), with its config applied and validated."""
    env = os.environ if env is None else env
    name = (env.get(EXECUTOR_ENV) or "").strip() or "multiprocess"
    if name not in EXECUTORS:
        raise ExecutorSettingError(f"{EXECUTOR_ENV}={name!r}: choose one of {', '.join(EXECUTORS)}")
    module, attribute, default = EXECUTORS[name]
    config_file = env.get(EXECUTOR_CONFIG_ENV)
    config = executor_config(Path(config_file)) if config_file else default
    if name == "multiprocess" and config is None:
        return None
    try:
        executor = getattr(__import__(module, fromlist=[attribute]), attribute)
    except ImportError as err:
        raise ExecutorSettingError(f"{EXECUTOR_ENV}={name}: {err.name} is not installed "
                                   f"(pip install -e '.[cluster]')") from None
    if config is None:
        return executor
    _validate(name, executor, config, config_file)
    return executor.configured(config, name=executor.name)


def _validate(name: str, executor: dg.ExecutorDefinition, config: dict, config_file: str | None) -> None:
    """Check ``config`` against the executor's schema now, not when the first run starts (Dagster's own run-config
    validation, on a one-op job that uses the executor)."""

    @dg.op
    def _noop() -> None:
        return None

    @dg.job(executor_def=executor)
    def _probe() -> None:
        _noop()

    try:
        dg.validate_run_config(_probe, {"execution": {"config": config}})
    except dg.DagsterInvalidConfigError as err:
        problems = "; ".join(e.message for e in err.errors)
        raise ExecutorSettingError(f"executor {name} config ({config_file or 'default'}): {problems}") from None
