"""Progress inside long steps, in words a person reads in the Dagster UI's run log and that
``audiorec materialize`` reads back for its live display (no Dagster here).

The producers log these lines (encoding: ``defs/embeddings.py``; training: ``recommenders/training.py``);
:func:`parse_progress` is their one reader, so a change of wording is caught by ``test_progress.py``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf"


def encoded_message(name: str, done: int, total: int, seconds: float) -> str:
    """``mfcc: 120/300 tracks encoded, 4.10 tracks/s, ETA 44 s``."""
    rate = done / seconds if seconds > 0 else 0.0
    eta = (total - done) / rate if rate else float("nan")
    return f"{name}: {done}/{total} tracks encoded, {rate:.2f} tracks/s, ETA {eta:.0f} s"


def epoch_message(label: str, epoch: int, max_epochs: int, train_loss: float, monitored_name: str,
                  monitored: float) -> str:
    """``shallow on mfcc epoch 3/50: train loss 0.69310, val loss 0.70100`` (``epoch`` is 0-based)."""
    return (f"{label} epoch {epoch + 1}/{max_epochs}: train loss {train_loss:.5f}, "
            f"{monitored_name} {monitored:.5f}")


_ENCODED = re.compile(rf"^(?P<what>.+?): (?P<done>\d+)/(?P<total>\d+) tracks encoded, (?P<rate>{_NUMBER}) tracks/s")
_EPOCH = re.compile(rf"^(?P<what>.+?) epoch (?P<done>\d+)/(?P<total>\d+): train loss (?P<loss>{_NUMBER}), "
                    rf"(?P<monitored_name>val loss|monitored) (?P<monitored>{_NUMBER})")


@dataclass(frozen=True)
class InnerProgress:
    """How far one step has come: ``done`` of ``total`` ``unit`` (tracks, epochs), and a detail (the loss)."""

    what: str
    done: int
    total: int
    unit: str
    detail: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


def parse_progress(message: str) -> InnerProgress | None:
    """The progress a log line reports, or None for any other line."""
    match = _ENCODED.match(message)
    if match:
        return InnerProgress(match["what"], int(match["done"]), int(match["total"]), "tracks",
                             f"{float(match['rate']):.2f} tracks/s")
    match = _EPOCH.match(message)
    if match:
        return InnerProgress(match["what"], int(match["done"]), int(match["total"]), "epochs",
                             f"loss {float(match['loss']):.4f}, {match['monitored_name']} "
                             f"{float(match['monitored']):.4f}")
    return None


def eta_seconds(done_steps: int, total_steps: int, elapsed_done_s: float, inner: InnerProgress | None,
                inner_elapsed_s: float) -> float | None:
    """A rough time left: the current step's own rate for its remainder, and the mean time of the steps
    done so far for each step still to come. None until there is something to go by."""
    left = 0.0
    known = False
    if inner is not None and inner.done > 0 and inner_elapsed_s > 0:
        left += inner_elapsed_s / inner.done * (inner.total - inner.done)
        known = True
    still = total_steps - done_steps - (1 if inner is not None else 0)
    if done_steps > 0 and still > 0:
        left += elapsed_done_s / done_steps * still
        known = True
    return left if known and math.isfinite(left) else None
