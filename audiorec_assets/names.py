"""Error messages about names a person typed: the nearest known name and the list of known ones."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'mfcc'?)`` for the known name nearest ``name``, or ``""`` when none is near."""
    close = difflib.get_close_matches(name, list(dict.fromkeys(known)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> str:
    """``unknown encoder 'mfc' (did you mean 'mfcc'?); known: mfcc, musicnn, none``: one line, no full stop."""
    known = list(dict.fromkeys(known))
    return f"unknown {kind} {name!r}{did_you_mean(name, known)}; known: {', '.join(known) or 'none yet'}"
