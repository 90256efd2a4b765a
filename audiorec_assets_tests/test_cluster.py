"""The study on a cluster by configuration alone: the Dask executor on a real ``distributed.LocalCluster``, and the
SLURM and Kubernetes settings of ``deploy/`` loaded as Dagster and dask-jobqueue would load them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from audiorec_assets.definitions import build_definitions
from audiorec_assets.defs.execute import everything, materialize
from audiorec_assets.defs.executors import (EXECUTOR_CONFIG_ENV, EXECUTOR_ENV, ExecutorSettingError,
                                            selected_executor)
from audiorec_assets_tests.helpers import materialize_vectors, write_own
from audiorec_assets_tests.test_pipeline import small_log

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
CELLS = ("mfcc|knn", "random|knn")


def _use(monkeypatch, executor: str, config: Path | None) -> dg.JobDefinition:
    monkeypatch.setenv(EXECUTOR_ENV, executor)
    if config is None:
        monkeypatch.delenv(EXECUTOR_CONFIG_ENV, raising=False)
    else:
        monkeypatch.setenv(EXECUTOR_CONFIG_ENV, str(config))
    return build_definitions(REPO / "data_lake").resolve_job_def("cells_job")


@pytest.mark.parametrize("config", ["dask/local.yaml", "dask/existing.yaml", "slurm/executor.yaml"])
def test_the_dask_settings_load_and_validate(monkeypatch, config):
    job = _use(monkeypatch, "dask", DEPLOY / config)
    assert job.executor_def.name == "dask"
    assert dg.validate_run_config(job, {})  # the file's config is the executor's default, and valid


def test_the_slurm_settings_make_a_gpu_job_script_with_the_torch_resource(monkeypatch):
    from dask_jobqueue import SLURMCluster

    settings = yaml.safe_load((DEPLOY / "slurm" / "executor.yaml").read_text())["cluster"]["slurm"]
    assert settings.pop("n_workers") >= 1  # (how many jobs the run submits: the one thing left out here)
    with SLURMCluster(**settings, scheduler_options={"host": "127.0.0.1"}) as cluster:  # sbatch is never called
        script = cluster.job_script()
    assert "#SBATCH --gres=gpu:1" in script and "#SBATCH -p gpu" in script and "#SBATCH --cpus-per-task=8" in script
    assert "--nthreads 1 " in script and "--resources torch=1" in script
    assert "export AUDIOREC_LAKE=/shared/audiorec/lake AUDIOREC_DEVICE=cuda" in script


def test_the_kubernetes_settings_load(monkeypatch, tmp_path):
    from dagster._config import process_config  # Dagster checks instance settings only internally (offline)
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.instance.ref import InstanceRef
    from dagster_k8s import K8sRunLauncher
    from dagster_postgres import PostgresRunStorage

    job = _use(monkeypatch, "k8s", DEPLOY / "k8s" / "executor.yaml")
    assert job.executor_def.name == "k8s" and dg.validate_run_config(job, {})
    shutil.copy(DEPLOY / "k8s" / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "secret")
    dagster_instance_config(str(tmp_path))  # the instance settings validate (no Postgres, no cluster needed)
    ref = InstanceRef.from_dir(str(tmp_path))
    for data, cls in ((ref.run_storage_data, PostgresRunStorage), (ref.run_launcher_data, K8sRunLauncher)):
        assert (data.module_name, data.class_name) == (cls.__module__.split(".")[0], cls.__name__)
        assert process_config(cls.config_type(), yaml.safe_load(data.config_yaml)).success


def test_no_setting_keeps_dagsters_default_and_a_wrong_one_names_itself(monkeypatch, tmp_path):
    assert _use(monkeypatch, "", None).executor_def.name == "multi_or_in_process_executor"
    with pytest.raises(ExecutorSettingError, match="AUDIOREC_EXECUTOR='spark'.*multiprocess, in_process, dask, k8s"):
        selected_executor({EXECUTOR_ENV: "spark"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster:\n  nowhere: {}\n")
    with pytest.raises(ExecutorSettingError, match=r"executor dask config \(.*bad.yaml\).*nowhere"):
        selected_executor({EXECUTOR_ENV: "dask", EXECUTOR_CONFIG_ENV: str(bad)})
    with pytest.raises(ExecutorSettingError, match="cannot read"):
        selected_executor({EXECUTOR_ENV: "dask", EXECUTOR_CONFIG_ENV: str(tmp_path / "absent.yaml")})


def test_distributed_still_walks_dagster_records():
    """Why ``defs/dask_executor.py`` seals the step's arguments: when this starts failing, distributed (or
    Dagster) has changed, and the stock ``dagster_dask.dask_executor`` may work again."""
    task_spec = pytest.importorskip("dask._task_spec")
    with pytest.raises(Exception, match="Iteration is not allowed"):
        task_spec.parse_input((dg.AssetKey(["audiorec", "metrics"]),))


def _metrics(lake: Path) -> pd.DataFrame:
    frames = [pd.read_parquet(lake / "tables" / "metrics" / f"{cell.replace('|', '__')}.parquet") for cell in CELLS]
    return pd.concat(frames).sort_values(["encoder", "split", "metric", "k"], ignore_index=True)


@pytest.mark.slow
def test_two_cells_on_a_two_worker_local_cluster_equal_a_local_run(tmp_path, lake, dagster_home, monkeypatch):
    from distributed import Client, LocalCluster

    write_own(lake / "raw", small_log(n_new=4))
    (lake / "experiment.yaml").write_text("encoders: [mfcc, random]\nrecommenders: [knn]\nks: [5, 10]\ntop_n: 30\n"
                                          "encode: {shuffled_base: mfcc}\n")
    instance = dg.DagsterInstance.get()
    defs = build_definitions(lake)
    assert dg.materialize(everything(defs), selection=dg.AssetSelection.groups("ingest"), resources=defs.resources,
                          instance=instance).success
    for encoder in ("mfcc", "random"):
        assert materialize_vectors(defs, encoder, instance=instance).success
    for cell in CELLS:  # the local run, in-process
        assert materialize(everything(defs), selection=dg.AssetSelection.groups("recommenders"), partition_key=cell,
                           resources=defs.resources, instance=instance).success
    local = _metrics(lake)
    for cell in CELLS:  # what the Dask runs must write again
        (lake / "tables" / "metrics" / f"{cell.replace('|', '__')}.parquet").unlink()

    monkeypatch.setenv("AUDIOREC_EXECUTOR", "dask")  # the workers inherit the environment: the same lake
    with LocalCluster(n_workers=2, threads_per_worker=1, resources={"torch": 1}, host="127.0.0.1") as cluster, \
            Client(cluster) as client:
        workers = set(client.run(os.getpid).values())
        config = tmp_path / "existing.yaml"
        config.write_text(yaml.safe_dump({"cluster": {"existing": {"address": cluster.scheduler_address}}}))
        env = {**os.environ, EXECUTOR_CONFIG_ENV: str(config)}
        procs = [subprocess.Popen([sys.executable, "-m", "dagster", "asset", "materialize", "-m",
                                   "audiorec_assets.definitions", "--select", "group:recommenders", "--partition", cell],
                                  cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for cell in CELLS]  # both at once: two runs, one worker each
        outputs = [p.communicate(timeout=400)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    runs = [r for r in instance.get_runs() if r.tags.get("dagster/partition") in CELLS and r.job_name == "__ASSET_JOB"]
    assert sorted(r.tags["dagster/partition"] for r in runs) == sorted(CELLS)
    for run in runs:
        assert run.status == dg.DagsterRunStatus.SUCCESS
        events = instance.all_logs(run.run_id)
        step_pids = {e.dagster_event.pid for e in events if e.dagster_event and e.dagster_event.is_step_start}
        assert step_pids and step_pids <= workers, (f"steps ran in {step_pids}, not on the Dask workers {workers}: "
                                                    f"{[(e.dagster_event_type, e.dagster_event and e.dagster_event.pid) for e in events]}")
    pd.testing.assert_frame_equal(_metrics(lake), local)
