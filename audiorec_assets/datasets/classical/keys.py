"""The key of a score: as written in ABC (``K:``) and Humdrum (``*G:``) files; estimated for MusicXML, whose
mode notation programs often fill in by default (runs in the worker process).
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager

GIVEN_KEY_FORMATS = (".abc", ".krn")


def key_name(k) -> str:
    """``Eb major``, ``c# minor`` → ``C# minor``, ``A dorian``: music21's tonic with ``b`` for flats."""
    tonic = k.tonic.name.replace("-", "b")
    return f"{tonic[0].upper()}{tonic[1:]} {k.mode}"


def given_key(score, path: str) -> tuple[str, str]:
    """``(key, "score")`` as the first part's first key signature gives it, for the formats that write a key
    (:data:`GIVEN_KEY_FORMATS`); ``("", "")`` otherwise."""
    from music21 import key

    if not str(path).lower().endswith(GIVEN_KEY_FORMATS):
        return "", ""
    for element in score.parts[0].recurse().getElementsByClass(key.KeySignature):
        return (key_name(element), "score") if isinstance(element, key.Key) else ("", "")
    return "", ""


class _TimeUp(Exception):
    pass


@contextmanager
def _time_limit(seconds: float):
    """Raise :class:`_TimeUp` in the main thread after ``seconds`` (SIGALRM; no limit where there is none)."""
    if (seconds <= 0 or not hasattr(signal, "setitimer") or os.name != "posix"
            or threading.current_thread() is not threading.main_thread()):
        yield
        return

    def _alarm(signum, frame):
        raise _TimeUp()

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def estimated_key(excerpt, timeout_s: float) -> str:
    """music21's estimate of the excerpt's key, or ``""`` when it runs out of time or cannot analyse it."""
    try:
        with _time_limit(timeout_s):
            return key_name(excerpt.analyze("key"))
    except Exception:  # out of time (_TimeUp), or an excerpt music21 cannot analyse (no pitches): no key, not a skip
        return ""
