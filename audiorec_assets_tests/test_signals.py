"""SIGINT (Ctrl-C, sent to the process group as a terminal does) and SIGTERM end ``audiorec demo`` and ``audiorec
materialize`` as a whole: exit status 130 / 143 within seconds, the run in progress failed or canceled in the
instance (never left running), no run started after the signal, no temporary visible in the lake."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from audiorec_assets.stopping import Stopped, received, stop_on_signals
from audiorec_assets_tests.helpers import write_own
from audiorec_assets_tests.test_pipeline import small_log

AUDIOREC = Path(sys.executable).parent / "audiorec"
SETTINGS = "encoders: [mfcc, random]\nrecommenders: [knn, popularity]\nencode: {shuffled_base: mfcc}\nks: [5, 10]\n"
ENDED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def test_a_signal_between_runs_stops_at_once():
    before = signal.getsignal(signal.SIGINT)  # whatever the test session installed
    with pytest.raises(SystemExit) as stop:
        with stop_on_signals():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises before this ends
    assert stop.value.code == 130
    assert signal.getsignal(signal.SIGINT) is before  # the handlers are put back


def test_a_signal_that_dagsters_handler_took_is_still_received():
    with pytest.raises(SystemExit) as stop:
        with stop_on_signals():
            with pytest.raises(dg.DagsterExecutionInterruptedError):
                with dg.raise_execution_interrupts():  # Dagster's handlers, as around a step of a run
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)
            assert received() == signal.SIGTERM
            raise Stopped(received())
    assert stop.value.code == 143
    assert received() is None  # outside stop_on_signals


def interrupt(tmp_path: Path, command: list[str], sig: signal.Signals, to_group: bool) -> tuple[int, str]:
    """Start ``audiorec <command>`` on a small lake with a persistent instance, send ``sig`` while a run is going,
    check what the instance and the lake hold after it ended; return the exit status and stderr."""
    lake, home = tmp_path / "lake", tmp_path / "dagster_home"
    write_own(lake / "raw", small_log(n_new=4))
    (lake / "experiment.yaml").write_text(SETTINGS)
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with open(tmp_path / "stderr.log", "w+") as stderr:
        proc = subprocess.Popen([str(AUDIOREC), "--lake", str(lake), *command], env=env, stdout=subprocess.DEVNULL,
                                stderr=stderr, start_new_session=True)
        try:
            instance = dg.DagsterInstance.from_config(str(home))
            deadline = time.monotonic() + 180
            while not (going := instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))):
                assert proc.poll() is None and time.monotonic() < deadline, "no run started"
                time.sleep(0.05)
            runs_at_signal = len(instance.get_runs())
            if to_group:  # what a terminal does on Ctrl-C
                os.killpg(proc.pid, sig)
            else:  # kill, timeout, a CI cancel
                os.kill(proc.pid, sig)
            code = proc.wait(60)  # raises if it is still running then
        finally:
            try:  # the command, if still there, and whatever it started
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        stderr.seek(0)
        printed = stderr.read()
    runs = instance.get_runs()
    assert len(runs) == runs_at_signal, f"a run was started after {sig.name}: {[r.asset_selection for r in runs]}"
    assert {r.status for r in runs} <= ENDED, [(r.run_id, r.status) for r in runs]
    assert instance.get_run_by_id(going[0].run_id).status in (dg.DagsterRunStatus.FAILURE,
                                                               dg.DagsterRunStatus.CANCELED)
    temporaries = [p for p in (lake / "tables").rglob("*") if p.is_file() and (p.suffix != ".parquet"
                                                                                or p.name.startswith("."))]
    assert temporaries == []
    return code, printed


def test_ctrl_c_stops_demo(tmp_path):
    code, stderr = interrupt(tmp_path, ["demo"], signal.SIGINT, to_group=True)
    assert code == 130 and "[audiorec] stopped by SIGINT: no further run was started" in stderr


def test_sigterm_stops_demo(tmp_path):
    code, stderr = interrupt(tmp_path, ["demo"], signal.SIGTERM, to_group=False)
    assert code == 143 and "[audiorec] stopped by SIGTERM" in stderr


def test_ctrl_c_stops_materialize(tmp_path):
    code, stderr = interrupt(tmp_path, ["materialize", "--plain", "--encoders", "mfcc", "--recommenders", "knn"],
                             signal.SIGINT, to_group=True)
    assert code == 130 and "[audiorec] stopped by SIGINT" in stderr
