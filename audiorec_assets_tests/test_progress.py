"""Progress as data: the records the steps log, carried through the run's log to ``audiorec materialize``'s display."""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import pytest
import torch
from torch import nn

from audiorec_assets.defs.progress_log import LOGGERS, RunEvent, forwarded, listening, run_config_loggers
from audiorec_assets.live import LiveProgress
from audiorec_assets.progress import Progress, eta_seconds, log_progress, progress_of
from audiorec_assets.recommenders.training import train_with_early_stopping


def test_a_record_renders_its_line_for_the_run_log():
    encoded = Progress("shuffled_mfcc", 120, 300, "tracks", 30.0)
    assert encoded.detail == "4.00 tracks/s" and encoded.eta == pytest.approx(45.0)
    assert encoded.message() == "shuffled_mfcc: 120/300 tracks, 4.00 tracks/s, ETA 45 s"
    assert Progress("mfcc", 0, 300, "tracks", 0.0).message() == "mfcc: 0/300 tracks"  # no rate yet
    epoch = Progress("shallow[paper]", 3, 50, "epochs", losses={"train loss": 0.69, "val loss": 1.5e-3})
    assert epoch.message() == "shallow[paper]: 3/50 epochs, train loss 0.69000, val loss 0.00150"


@contextmanager
def _records(logger_name: str) -> Iterator[list[logging.LogRecord]]:
    """The records ``logger_name`` handles inside the block (pytest's caplog may be switched off)."""
    records: list[logging.LogRecord] = []
    handler, logger = logging.Handler(logging.INFO), logging.getLogger(logger_name)
    handler.emit = records.append  # type: ignore[method-assign]
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def test_a_logged_record_carries_the_progress_itself():
    progress = Progress("mfcc", 5, 10, "tracks", 1.0)
    with _records("audiorec_test") as records:
        log_progress(logging.getLogger("audiorec_test"), progress)
        logging.getLogger("audiorec_test").info("mfcc: 6/10 tracks, 4.00 tracks/s")  # words alone are no progress
    assert [progress_of(r) for r in records] == [progress, None]
    assert records[0].getMessage() == progress.message()


def _train_tiny(max_epochs: int) -> list[float]:
    torch.manual_seed(0)
    net = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(16, 2), torch.randn(16, 1)

    def train_epoch(_epoch: int) -> float:
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(net(x), y)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return train_with_early_stopping(net, optimizer, train_epoch=train_epoch, val_loss=None, max_epochs=max_epochs,
                                     patience=10, label="tiny").train_loss


def test_the_training_loop_logs_epochs_with_their_loss():
    with _records("audiorec_assets.recommenders.training") as records:
        train_loss = _train_tiny(max_epochs=4)
    reported = [progress_of(r) for r in records]
    assert [(p.what, p.done, p.total, p.unit) for p in reported] == [("tiny", e, 4, "epochs") for e in range(1, 5)]
    assert [p.losses for p in reported] == [{"train loss": loss} for loss in train_loss]


@dg.asset
def stepping(context) -> None:  # no annotation: it would be a string here (from __future__)
    log_progress(context.log, Progress("mfcc", 5, 10, "tracks", 2.0))  # as defs/embeddings.py reports
    with forwarded("audiorec_assets.recommenders", context.log):  # as defs/models.py trains
        _train_tiny(max_epochs=2)


def _displayed(instance: dg.DagsterInstance) -> list[RunEvent]:
    defs = dg.Definitions(assets=[stepping], jobs=[dg.define_asset_job("stepping_job")], loggers=LOGGERS)
    events: list[RunEvent] = []
    with listening(events.append):
        result = defs.resolve_job_def("stepping_job").execute_in_process(run_config=run_config_loggers(),
                                                                         instance=instance)
    assert result.success
    return [event for event in events if event.progress is not None]


def test_the_display_receives_the_records_not_the_wording(monkeypatch):
    with dg.DagsterInstance.ephemeral() as instance:
        displayed = _displayed(instance)
        run_log = [entry.user_message for entry in instance.all_logs(displayed[0].run_id)]
        monkeypatch.setattr(Progress, "message", lambda self: f"reworded: {self.what} is getting on")
        reworded = _displayed(instance)
    assert [(e.step_key, e.progress.what, e.progress.done, e.progress.unit) for e in displayed] == [
        ("stepping", "mfcc", 5, "tracks"), ("stepping", "tiny", 1, "epochs"), ("stepping", "tiny", 2, "epochs")]
    assert displayed[1].progress.losses["train loss"] > 0
    assert displayed[0].message in run_log  # the UI's run log shows the line rendered from the record
    assert [e.message for e in reworded][0] == "reworded: mfcc is getting on"

    def timeless(events: list[RunEvent]) -> list[Progress]:
        return [dataclasses.replace(e.progress, seconds=None) for e in events]

    assert timeless(reworded) == timeless(displayed)


def test_eta_uses_the_step_rate_and_the_mean_step_time():
    inner = Progress("mfcc", 25, 100, "tracks", 10.0)
    # 10 s for 25 tracks → 30 s for the 75 left; 2 steps done in 8 s → 4 s for each of the 2 still to come
    assert eta_seconds(2, 5, 8.0, inner, 10.0) == pytest.approx(30 + 8)
    assert eta_seconds(0, 5, 0.0, None, 0.0) is None  # nothing to go by yet


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _progress_event(run_id: str, step: str, progress: Progress) -> RunEvent:
    return RunEvent("MESSAGE", run_id, step, "words the display never reads", progress=progress)


def test_the_plain_display_reports_steps_inner_progress_and_failures():
    out, clock = io.StringIO(), FakeClock()
    display = LiveProgress(3, out=out, rich=False, clock=clock)
    display.start_run("embeddings[mfcc]", 1, 1)
    display(RunEvent("STEP_START", "r1", "embeddings", "Started"))
    for done in range(10, 101, 10):
        clock.now += 1.0  # a record every second: the plain display prints at most every 5 s
        display(_progress_event("r1", "embeddings", Progress("mfcc", done, 100, "tracks", clock.now)))
    display(RunEvent("STEP_SUCCESS", "r1", "embeddings", "Finished"))
    display.start_run("models, metrics[mfcc|shallow]", 2, 2)
    display(RunEvent("STEP_START", "r2", "models", "Started"))
    clock.now += 4.0
    display(_progress_event("r2", "models", Progress("shallow[paper]", 50, 50, "epochs", 4.0, {"train loss": 0.25})))
    display(RunEvent("STEP_FAILURE", "r2", "models", "boom"))
    display.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "[audiorec] step 1/3 embeddings[mfcc]: embeddings ..."
    inner = [line for line in lines if "tracks" in line]
    assert 2 <= len(inner) <= 4 and inner[-1].startswith("[audiorec]   embeddings: mfcc 100/100 tracks (")
    assert "[audiorec] step 1/3 embeddings done in 10.0 s, ETA 0:20" in lines, lines  # 2 more steps, 10 s each
    assert "[audiorec]   models: shallow[paper] 50/50 epochs (train loss 0.25000), ETA 0:10" in lines, lines
    assert lines[-1].startswith("[audiorec] step 2/3 models FAILED in 4.0 s")
    assert display.state.failed == ["models"]


def test_the_display_ignores_messages_without_a_record():
    out = io.StringIO()
    display = LiveProgress(1, out=out, rich=False)
    display(RunEvent("STEP_START", "r1", "embeddings", "Started"))
    display(RunEvent("MESSAGE", "r1", "embeddings", Progress("mfcc", 5, 10, "tracks", 1.0).message()))
    assert display.state.inner is None and "5/10" not in out.getvalue()


def test_the_rich_display_draws_without_a_terminal():
    out = io.StringIO()
    display = LiveProgress(2, out=out, rich=True)
    display.start_run("embeddings[mfcc]", 1, 1)
    display(RunEvent("STEP_START", "r1", "embeddings", "Started"))
    display(_progress_event("r1", "embeddings", Progress("mfcc", 5, 10, "tracks", 1.0)))
    display.close()
    text = out.getvalue()
    assert "steps 0/2" in text and "5/10 tracks" in text and "5.00 tracks/s" in text
