"""fail_dead_runs: a run whose worker was killed (kill -9) is marked failed; a live one is not."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg
import pytest

from audiorec_assets.run_health import HOST_TAG, fail_dead_runs, host_tags, worker_gone

# a real run worker: materialises one asset that sleeps, against the instance in $DAGSTER_HOME
WORKER = textwrap.dedent("""
    import time
    import dagster as dg

    @dg.asset
    def slow_asset():
        time.sleep(120)

    dg.materialize([slow_asset], instance=dg.DagsterInstance.get())
""")


@pytest.fixture
def instance(dagster_home):
    with dg.DagsterInstance.get() as inst:
        yield inst


@pytest.fixture
def worker(instance):
    """A run worker process whose run is STARTED and has logged its pid: (process, run id)."""
    proc = subprocess.Popen([sys.executable, "-c", WORKER], env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"the worker exited early: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "the run did not start within 60 s"
            records = instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
            if records:
                run_id = records[0].dagster_run.run_id
                logs = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
                if logs:  # the op is running (sleeping): the pid events are written by now
                    break
            time.sleep(0.1)
        yield proc, run_id
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()


def status(instance, run_id):
    return instance.get_run_by_id(run_id).status


def test_a_killed_run_worker_is_marked_failed_and_says_why(instance, worker):
    proc, run_id = worker
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert status(instance, run_id) == dg.DagsterRunStatus.STARTED  # Dagster alone never notices
    assert fail_dead_runs(instance) == [run_id]
    assert status(instance, run_id) == dg.DagsterRunStatus.FAILURE
    failure = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[-1]
    message = failure.dagster_event.message
    assert f"process {proc.pid} no longer exists" in message and "run worker" in message, message
    assert fail_dead_runs(instance) == []  # only once


def test_a_live_run_worker_is_left_alone(instance, worker):
    proc, run_id = worker
    assert fail_dead_runs(instance) == []
    assert fail_dead_runs(instance, grace_s=0) == []  # the grace period is only for runs without a pid
    assert status(instance, run_id) == dg.DagsterRunStatus.STARTED and proc.poll() is None


def test_a_zombie_or_reused_pid_is_not_the_worker():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert worker_gone(proc.pid, recorded_at=time.time()) is None
        if sys.platform.startswith("linux"):
            # the pid was recorded an hour before this process started: it was reused
            assert "now belongs to another process" in worker_gone(proc.pid, recorded_at=time.time() - 3600)
        proc.kill()  # killed but not reaped (Popen reaps only on wait()): a zombie, which os.kill(pid, 0) still finds
        deadline = time.monotonic() + 10
        while (reason := worker_gone(proc.pid, recorded_at=time.time())) is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert "zombie" in reason or not sys.platform.startswith("linux")
    finally:
        proc.kill()
        proc.wait()


@dg.op
def noop():
    pass


@dg.job
def noop_job():
    noop()


def test_a_run_that_never_recorded_a_worker_fails_only_after_the_grace_period(instance):
    young = instance.create_run_for_job(noop_job, status=dg.DagsterRunStatus.STARTING, tags=host_tags())
    elsewhere = instance.create_run_for_job(noop_job, status=dg.DagsterRunStatus.STARTING,
                                            tags={HOST_TAG: "another-host.invalid"})
    assert fail_dead_runs(instance, grace_s=60) == []
    later = time.time() + 120
    assert fail_dead_runs(instance, grace_s=60, now=later) == [young.run_id]
    assert status(instance, young.run_id) == dg.DagsterRunStatus.FAILURE
    message = instance.all_logs(young.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[-1].dagster_event.message
    assert "no run worker process ever recorded its pid" in message
    assert status(instance, elsewhere.run_id) == dg.DagsterRunStatus.STARTING  # another host's run
    untagged = instance.create_run_for_job(noop_job, status=dg.DagsterRunStatus.STARTING)
    assert fail_dead_runs(instance, now=later, require_host_tag=True) == []
    assert fail_dead_runs(instance, now=later) == [untagged.run_id]


def test_the_health_sensor_fails_a_killed_run_and_removes_what_its_process_left(instance, worker, tmp_path):
    """Dead runs are handled beside the runs (lake_health_sensor; every command at its start), not in steps."""
    from audiorec_assets.defs.health import lake_health_sensor
    from audiorec_assets.defs.resources import LakeResource
    from audiorec_assets.lakeio import PROC_PREFIX
    from audiorec_assets.settings import LakePaths

    proc, run_id = worker
    lake = LakePaths(tmp_path / "lake")
    left = lake.staging / f"{PROC_PREFIX}{proc.pid}"  # what a step of the killed process would have left
    left.mkdir(parents=True)
    (left / "half.parquet").write_bytes(b"PAR1")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with dg.build_sensor_context(instance=instance, resources={"lake": LakeResource(root=str(lake.root))}) as context:
        result = lake_health_sensor(context)
    assert status(instance, run_id) == dg.DagsterRunStatus.FAILURE
    assert not left.exists()
    assert "1 dead run(s) marked failed" in result.skip_message


def test_no_step_body_handles_dead_runs():
    """fail_dead_runs is called by the health module only (the sensor, the commands), never inside an asset."""
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "audiorec_assets"
    callers = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                     if "fail_dead_runs(" in p.read_text() and p.name != "run_health.py")
    assert callers == ["defs/health.py"]
