"""Fail runs whose run worker process died without telling the instance (why: docs/automation.md, "Killed runs").
Only Dagster's public API is used.

A run's worker is the latest pid its event log records: run-level engine events with a ``pid`` metadata entry (the
launcher's "Started process for run", the in-process and multiprocess executors' own), else the process that
logged RUN_START (when it counts as dead: :func:`worker_gone`). Dagster does not record a run's host, so runs carry
:func:`host_tags` (why: docs/cluster.md, the paragraph "Killed workers")."""

from __future__ import annotations

import datetime as _dt
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

HOST_TAG = "audiorec/host"
ACTIVE_STATUSES = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)
# /proc start times are in clock ticks and the boot time in whole seconds: allow for both
_START_TIME_SLACK_S = 5.0


def host_tags() -> dict[str, str]:
    """Run tags recording this host, so that :func:`fail_dead_runs` elsewhere leaves the run alone."""
    return {HOST_TAG: socket.gethostname()}


@dataclass(frozen=True)
class _Worker:
    pid: int
    recorded_at: float  # timestamp of the event that recorded the pid


def _pid_of(entry) -> int | None:
    event = entry.dagster_event
    if event is not None and event.event_type == dg.DagsterEventType.RUN_START:
        return event.pid
    if event is None or event.event_type != dg.DagsterEventType.ENGINE_EVENT or event.step_key is not None:
        return None  # a step-level engine event is not the run worker's
    value = (getattr(event.event_specific_data, "metadata", None) or {}).get("pid")
    try:
        return int(str(getattr(value, "value", value)))
    except (TypeError, ValueError):
        return None


def _run_worker(instance: dg.DagsterInstance, run_id: str) -> _Worker | None:
    """The latest run-level pid the run's event log records, or None."""
    latest = {}  # event type → its latest worker
    for entry in instance.all_logs(run_id, of_type={dg.DagsterEventType.ENGINE_EVENT, dg.DagsterEventType.RUN_START}):
        pid = _pid_of(entry)
        if pid is not None:
            latest[entry.dagster_event.event_type] = _Worker(pid, float(entry.timestamp))
    return latest.get(dg.DagsterEventType.ENGINE_EVENT) or latest.get(dg.DagsterEventType.RUN_START)


def _linux_process(pid: int) -> tuple[str, float] | None:
    """(state letter, start time as a UNIX timestamp) of ``pid`` from /proc, or None where there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes().decode("ascii", "replace")
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_bytes().decode().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": comm may hold spaces
    return fields[0], boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def worker_gone(pid: int, recorded_at: float) -> str | None:
    """Why process ``pid`` (recorded alive at ``recorded_at``) is not that run worker any more; None if it may be."""
    if pid <= 0:
        return f"pid {pid} is not a process"
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"process {pid} no longer exists"
    except PermissionError:
        pass  # exists, another user's
    proc = _linux_process(pid)
    if proc is None:
        return None  # no /proc (not Linux) or it just exited: judged on the next call
    state, started = proc
    if state in ("Z", "X"):
        return f"process {pid} has exited (a zombie not yet reaped by its parent)"
    if started > recorded_at + _START_TIME_SLACK_S:
        return (f"pid {pid} now belongs to another process, started "
                f"{_when(started)}, after the run recorded it at {_when(recorded_at)}")
    return None


def _when(timestamp: float) -> str:
    return _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def fail_dead_runs(instance: dg.DagsterInstance, grace_s: float = 60.0, *, require_host_tag: bool = False,
                   now: float | None = None) -> list[str]:
    """Mark failed every STARTING/STARTED run of ``instance`` whose run worker on this host is dead; return their ids.
    A run whose event log records no worker pid yet is left alone while younger than ``grace_s`` seconds (from its
    start, or its creation while STARTING), and failed after that. Runs tagged with another host (:data:`HOST_TAG`)
    are left alone, and so are untagged runs when ``require_host_tag``."""
    now = time.time() if now is None else now
    host = socket.gethostname()
    failed: list[str] = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=list(ACTIVE_STATUSES))):
        run = record.dagster_run
        tagged_host = run.tags.get(HOST_TAG)
        if (tagged_host is None and require_host_tag) or (tagged_host is not None and tagged_host != host):
            continue
        worker = _run_worker(instance, run.run_id)
        if worker is None:
            created = record.create_timestamp
            if created.tzinfo is None:  # stored as UTC
                created = created.replace(tzinfo=_dt.timezone.utc)
            age = now - (record.start_time or created.timestamp())
            if age <= grace_s:
                continue
            why = (f"it has been {run.status.value} for {age:.0f} s and no run worker process ever recorded "
                   f"its pid (grace period {grace_s:.0f} s): the worker most likely died while starting")
        else:
            reason = worker_gone(worker.pid, worker.recorded_at)
            if reason is None:
                continue
            why = f"its run worker on {host} is gone: {reason} (killed, e.g. kill -9 or the OOM killer, or crashed)"
        latest = instance.get_run_by_id(run.run_id)
        if latest is None or latest.status not in ACTIVE_STATUSES:  # it ended meanwhile
            continue
        instance.report_run_failed(
            latest,
            f"Marked failed by audiorec's dead-run check at {_when(now)}: the run was still "
            f"{latest.status.value} but {why}, without reporting the end of the run. Its steps did not finish; "
            "re-run it.",
        )
        failed.append(run.run_id)
    return failed
