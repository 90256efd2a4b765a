"""The run's events, handed to a live display in the same process (``audiorec materialize``), and science modules'
Python logs forwarded into a step's Dagster log (:func:`forwarded`). The ``audiorec_progress`` logger of
:data:`LOGGERS` is off unless a run's config names it, so ``dagster dev``'s runs are untouched."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import dagster as dg

from audiorec_assets.progress import PROGRESS_ATTR, Progress, progress_of

PROGRESS_LOGGER = "audiorec_progress"


@dataclass(frozen=True)
class RunEvent:
    """One record of a run: a Dagster event (``STEP_START``, ``STEP_SUCCESS``, ``STEP_FAILURE``, ``RUN_SUCCESS``,
    ...; ``MESSAGE`` for a plain log line) with its step, message and the progress it reports, if any."""

    kind: str
    run_id: str
    step_key: str | None
    message: str
    level: int = logging.INFO
    progress: Progress | None = None


Listener = Callable[[RunEvent], None]
_LISTENERS: list[Listener] = []


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Hand every record of the in-process runs started inside the block to ``listener``."""
    _LISTENERS.append(listener)
    try:
        yield
    finally:
        _LISTENERS.remove(listener)


class _ToListeners(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        dagster_event = meta.get("dagster_event")
        kind = dagster_event.event_type_value if dagster_event is not None else "MESSAGE"
        kind = {"PIPELINE_START": "RUN_START", "PIPELINE_SUCCESS": "RUN_SUCCESS",
                "PIPELINE_FAILURE": "RUN_FAILURE"}.get(kind, kind)
        event = RunEvent(kind, meta.get("run_id", ""), meta.get("step_key"),
                         str(meta.get("orig_message", record.getMessage())), record.levelno, progress_of(record))
        for listener in list(_LISTENERS):
            with suppress(Exception):  # a display must never break a run
                listener(event)


@dg.logger(description="Hands the run's records to a live display in the same process (audiorec materialize).")
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger(PROGRESS_LOGGER, level=logging.DEBUG)
    logger.addHandler(_ToListeners())
    return logger


LOGGERS = {"console": dg.colored_console_logger, PROGRESS_LOGGER: progress_logger}


def run_config_loggers(console_level: str = "WARNING") -> dict:
    """The ``loggers`` part of an in-process run's config: the display's logger on, the console quieter."""
    return {"loggers": {PROGRESS_LOGGER: {}, "console": {"config": {"log_level": console_level}}}}


class _ToDagsterLog(logging.Handler):
    def __init__(self, log: dg.DagsterLogManager, level: int):
        super().__init__(level)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        self.log.log(record.levelno, record.getMessage(), extra={PROGRESS_ATTR: progress_of(record)})


@contextmanager
def forwarded(logger_name: str, log: dg.DagsterLogManager, level: int = logging.INFO) -> Iterator[None]:
    """Inside the block, ``logger_name``'s records at ``level`` or above also go to ``log``."""
    logger = logging.getLogger(logger_name)
    handler = _ToDagsterLog(log, level)
    old_level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
