"""The progress lines the steps log, read back by ``audiorec materialize``'s display."""

from __future__ import annotations

import io
import logging

import pytest
import torch
from torch import nn

from audiorec_assets.defs.progress_log import RunEvent
from audiorec_assets.live import LiveProgress
from audiorec_assets.progress import encoded_message, epoch_message, eta_seconds, parse_progress
from audiorec_assets.recommenders.training import train_with_early_stopping


def test_encoded_lines_parse_back():
    parsed = parse_progress(encoded_message("shuffled_mfcc", 120, 300, 30.0))
    assert (parsed.what, parsed.done, parsed.total, parsed.unit) == ("shuffled_mfcc", 120, 300, "tracks")
    assert parsed.detail == "4.00 tracks/s"
    assert parse_progress(encoded_message("mfcc", 0, 300, 0.0)).done == 0  # no rate yet: still a progress line


def test_epoch_lines_parse_back():
    parsed = parse_progress(epoch_message("shallow on mfcc", 2, 50, 0.69, "val loss", 1.5e-3))
    assert (parsed.what, parsed.done, parsed.total, parsed.unit) == ("shallow on mfcc", 3, 50, "epochs")
    assert parsed.detail == "loss 0.6900, val loss 0.0015"


@pytest.mark.parametrize("line", ["staging area: removed 1 folder(s)", "mfcc: done", "epoch 3: nothing",
                                  "als on none, seed 42: fitted in 1.0 s"])
def test_other_lines_are_not_progress(line):
    assert parse_progress(line) is None


def test_the_training_loop_logs_lines_the_display_reads(caplog):
    torch.manual_seed(0)
    net = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(16, 2), torch.randn(16, 1)

    def train_epoch(_epoch: int) -> float:
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(net(x), y)
        loss.backward()
        optimizer.step()
        return float(loss)

    with caplog.at_level(logging.INFO, logger="audiorec_assets.recommenders.training"):
        history = train_with_early_stopping(net, optimizer, train_epoch=train_epoch, val_loss=None, max_epochs=4,
                                            patience=10, label="tiny")
    parsed = [parse_progress(r.getMessage()) for r in caplog.records]
    assert [(p.done, p.total) for p in parsed] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert parsed[-1].detail.startswith(f"loss {history.train_loss[-1]:.4f}")


def test_eta_uses_the_step_rate_and_the_mean_step_time():
    inner = parse_progress(encoded_message("mfcc", 25, 100, 10.0))
    # 10 s for 25 tracks → 30 s for the 75 left; 2 steps done in 8 s → 4 s for each of the 2 still to come
    assert eta_seconds(2, 5, 8.0, inner, 10.0) == pytest.approx(30 + 8)
    assert eta_seconds(0, 5, 0.0, None, 0.0) is None  # nothing to go by yet


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_plain_display_reports_steps_inner_progress_and_failures():
    out, clock = io.StringIO(), FakeClock()
    display = LiveProgress(3, out=out, rich=False, clock=clock)
    display.start_run("embeddings[mfcc]", 1, 1)
    display(RunEvent("STEP_START", "r1", "embeddings", "Started"))
    for done in range(10, 101, 10):
        clock.now += 1.0  # a line every second: the plain display prints at most every 5 s
        display(RunEvent("MESSAGE", "r1", "embeddings", encoded_message("mfcc", done, 100, clock.now)))
    display(RunEvent("STEP_SUCCESS", "r1", "embeddings", "Finished"))
    display.start_run("models, metrics[mfcc|knn]", 2, 2)
    display(RunEvent("STEP_START", "r2", "models", "Started"))
    clock.now += 4.0
    display(RunEvent("STEP_FAILURE", "r2", "models", "boom"))
    display.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "[audiorec] step 1/3 embeddings[mfcc]: embeddings ..."
    inner = [line for line in lines if "tracks" in line]
    assert 2 <= len(inner) <= 4 and inner[-1].startswith("[audiorec]   embeddings: mfcc 100/100 tracks")
    assert "[audiorec] step 1/3 embeddings done in 10.0 s, ETA 0:20" in lines, lines  # 2 more steps, 10 s each
    assert lines[-1].startswith("[audiorec] step 2/3 models FAILED in 4.0 s")
    assert display.state.failed == ["models"]


def test_the_rich_display_draws_without_a_terminal():
    out = io.StringIO()
    display = LiveProgress(2, out=out, rich=True)
    display.start_run("embeddings[mfcc]", 1, 1)
    display(RunEvent("STEP_START", "r1", "embeddings", "Started"))
    display(RunEvent("MESSAGE", "r1", "embeddings", encoded_message("mfcc", 5, 10, 1.0)))
    display.close()
    text = out.getvalue()
    assert "steps 0/2" in text and "5/10 tracks" in text
