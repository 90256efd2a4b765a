"""SIGINT (Ctrl-C) and SIGTERM end a command that launches runs, as a whole (no Dagster here).

During a run Dagster owns both signals (``dagster._utils.interrupts``): it interrupts the step, marks the run failed
and returns it as failed, without telling that a signal came. But Python writes the number of every signal it
handles to the wakeup fd (:func:`signal.set_wakeup_fd`), whichever handler runs: so the command asks
:func:`received` after each run, and between runs this module's own handler stops at once. Either way
:class:`Stopped` unwinds the command, which exits with 128 + the signal's number (130, 143), as a shell would."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(BaseException):
    """A stop signal arrived; a ``BaseException`` like ``KeyboardInterrupt``, so ``except Exception`` lets it by."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Watch:
    read_fd: int | None = None  # the wakeup pipe's read end, while stop_on_signals is active
    signum: int | None = None  # the signal that ends the command, once one came


def received() -> int | None:
    """The stop signal that came since :func:`stop_on_signals` began, during a run too; None if none (or outside)."""
    if _Watch.read_fd is None or _Watch.signum is not None:
        return _Watch.signum
    try:
        while _Watch.signum is None and (chunk := os.read(_Watch.read_fd, 512)):
            _Watch.signum = next((s for s in chunk if s in STOP_SIGNALS), None)  # one byte per signal: its number
    except BlockingIOError:  # nothing more in the pipe
        pass
    return _Watch.signum


def _on_signal(signum: int, _frame) -> None:
    if _Watch.signum is None:  # a second signal while the command unwinds changes nothing
        _Watch.signum = signum
        raise Stopped(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within: SIGINT or SIGTERM ends the command with exit status 128 + its number (the caller raises :class:`Stopped`
    after a run when :func:`received` says so). Off the main thread, which alone gets signals, it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_fd, write_fd = os.pipe()
    for fd in (read_fd, write_fd):
        os.set_blocking(fd, False)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    previous = {s: signal.signal(s, _on_signal) for s in STOP_SIGNALS}
    _Watch.read_fd, _Watch.signum = read_fd, None
    try:
        yield
    except Stopped as stop:
        print(f"[audiorec] stopped by {signal.Signals(stop.signum).name}: no further run was started", file=sys.stderr,
              flush=True)
        raise SystemExit(128 + stop.signum) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        signal.set_wakeup_fd(previous_fd)
        _Watch.read_fd, _Watch.signum = None, None
        os.close(read_fd)
        os.close(write_fd)
