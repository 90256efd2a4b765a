"""The live display of ``audiorec materialize``: steps done / total, the current step, its own progress (from the
:class:`~audiorec_assets.progress.Progress` a run event carries) and an ETA. Drawn with ``rich`` on a terminal;
elsewhere a plain line when a step starts or ends, and at most every :data:`PLAIN_EVERY_S` seconds within one."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import IO

from audiorec_assets.progress import Progress, eta_seconds

PLAIN_EVERY_S = 5.0


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


@dataclass
class _State:
    total_steps: int
    done_steps: int = 0
    done_seconds: float = 0.0  # the time the finished steps took
    run_label: str = ""
    step: str | None = None
    step_started: float = 0.0
    inner: Progress | None = None
    failed: list[str] = field(default_factory=list)


class LiveProgress:
    """Call it with each :class:`RunEvent`; :meth:`start_run` before each run, :meth:`close` at the end."""

    def __init__(self, total_steps: int, out: IO[str] | None = None, rich: bool | None = None,
                 clock=time.monotonic):
        self.out = out or sys.stdout
        self.clock = clock
        self.state = _State(total_steps)
        self.use_rich = self.out.isatty() if rich is None else rich
        self._last_plain = -float("inf")
        self._live = None
        if self.use_rich:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(file=self.out), refresh_per_second=4, transient=False,
                              get_renderable=self._renderable)
            self._live.start()

    def start_run(self, label: str, n_steps: int, planned_steps: int) -> None:
        """A run of ``n_steps`` steps begins; ``planned_steps`` was counted for it in ``total_steps``."""
        self.state.total_steps += n_steps - planned_steps
        self.state.run_label = label

    def __call__(self, event) -> None:
        state, now = self.state, self.clock()
        if event.kind == "STEP_START":
            state.step, state.step_started, state.inner = event.step_key, now, None
            self._plain(f"step {state.done_steps + 1}/{state.total_steps} {state.run_label}: {event.step_key} ...",
                        force=True)
        elif event.kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            state.done_steps += 1
            state.done_seconds += now - state.step_started if state.step else 0.0
            took = now - state.step_started
            if event.kind == "STEP_FAILURE":
                state.failed.append(event.step_key or "?")
            word = {"STEP_SUCCESS": "done", "STEP_FAILURE": "FAILED", "STEP_SKIPPED": "skipped"}[event.kind]
            state.step, state.inner = None, None
            self._plain(f"step {state.done_steps}/{state.total_steps} {event.step_key} {word} in {took:.1f} s, "
                        f"ETA {_clock(self.eta())}", force=True)
        elif event.progress is not None and event.step_key:
            state.inner = inner = event.progress
            self._plain(f"  {event.step_key}: {inner.what} {inner.done}/{inner.total} {inner.unit} "
                        f"({inner.detail}), ETA {_clock(self.eta())}", force=inner.done == inner.total)
        if self._live is not None:
            self._live.refresh()

    def eta(self) -> float | None:
        state = self.state
        return eta_seconds(state.done_steps, state.total_steps, state.done_seconds, state.inner if state.step else None,
                           self.clock() - state.step_started)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _plain(self, line: str, force: bool = False) -> None:
        now = self.clock()
        if not self.use_rich and (force or now - self._last_plain >= PLAIN_EVERY_S):
            self._last_plain = now
            print(f"[audiorec] {line}", file=self.out, flush=True)

    def _renderable(self):
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        state = self.state
        table = Table.grid(padding=(0, 1))
        table.add_row(f"[bold]steps {state.done_steps}/{state.total_steps}[/]",
                      ProgressBar(total=max(state.total_steps, 1), completed=state.done_steps, width=30),
                      f"ETA {_clock(self.eta())}", state.run_label)
        if state.step:
            elapsed = self.clock() - state.step_started
            inner = state.inner
            if inner is not None:
                table.add_row(f"  {state.step}", ProgressBar(total=max(inner.total, 1), completed=inner.done, width=30),
                              f"{inner.done}/{inner.total} {inner.unit}", f"{inner.detail}  ({_clock(elapsed)})")
            else:
                table.add_row(f"  {state.step}", "", _clock(elapsed), "")
        if state.failed:
            table.add_row(f"[red]failed: {', '.join(state.failed)}[/]", "", "", "")
        return table
