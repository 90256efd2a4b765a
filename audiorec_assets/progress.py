"""Progress inside long steps as data: a :class:`Progress` record (tracks encoded, epochs with their losses) that
rides on the log record of the line a person reads in the UI's run log (no Dagster here). Python's ``logging``
carries any object beside a message (``extra``) and Dagster hands a step's records, extras included, to the run's
loggers; so ``audiorec materialize``'s display reads fields, never wording (a JSON payload in the message would be
parsing again; an ``AssetObservation`` per epoch would fill the asset's history)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

PROGRESS_ATTR = "audiorec_progress"  # the log record's attribute that holds the Progress


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` ``unit`` (tracks, epochs) of ``what`` (an encoder, a model), ``seconds`` after it
    began, with the losses of the latest epoch where there are some."""

    what: str
    done: int
    total: int
    unit: str
    seconds: float | None = None
    losses: Mapping[str, float] = field(default_factory=dict)

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far (for epochs: at most, early stopping may end sooner)."""
        return self.seconds / self.done * (self.total - self.done) if self.seconds and self.done else None

    @property
    def detail(self) -> str:
        """``train loss 0.69310, val loss 0.70100``, else the rate: ``4.00 tracks/s``."""
        if self.losses:
            return ", ".join(f"{name} {value:.5f}" for name, value in self.losses.items())
        return f"{self.done / self.seconds:.2f} {self.unit}/s" if self.seconds else ""

    def message(self) -> str:
        """The run log's line: ``mfcc: 120/300 tracks, 4.00 tracks/s, ETA 45 s``."""
        parts = (f"{self.what}: {self.done}/{self.total} {self.unit}", self.detail,
                 f"ETA {self.eta:.0f} s" if self.eta is not None else "")
        return ", ".join(part for part in parts if part)


def log_progress(logger: logging.Logger, progress: Progress, level: int = logging.INFO) -> None:
    """Log ``progress``'s message with the record itself attached (a step's ``context.log`` is a Logger too)."""
    logger.log(level, progress.message(), extra={PROGRESS_ATTR: progress})


def progress_of(record: logging.LogRecord) -> Progress | None:
    """The progress a log record carries, or None."""
    return getattr(record, PROGRESS_ATTR, None)


def eta_seconds(done_steps: int, total_steps: int, elapsed_done_s: float, inner: Progress | None,
                inner_elapsed_s: float) -> float | None:
    """A rough time left: the current step's own rate for its remainder, and the mean time of the steps
    done so far for each step still to come. None until there is something to go by."""
    parts = []
    if inner is not None and inner.done > 0 and inner_elapsed_s > 0:
        parts.append(inner_elapsed_s / inner.done * (inner.total - inner.done))
    still = total_steps - done_steps - (1 if inner is not None else 0)
    if done_steps > 0 and still > 0:
        parts.append(elapsed_done_s / done_steps * still)
    return sum(parts) if parts and math.isfinite(sum(parts)) else None
