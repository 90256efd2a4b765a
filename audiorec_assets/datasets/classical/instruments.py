"""General MIDI programs per part: what each voice of a score is rendered with.

Programs are 0-based GM numbers (0 = Acoustic Grand Piano). Percussion never sounds: parts of unpitched
percussion are dropped before rendering (:mod:`.excerpt`), and :data:`MIDI_CHANNELS` leaves out channel 10.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# GM program numbers (0-based) used here, with their GM names (tracks.csv lists the names)
GM_PROGRAMS: dict[int, str] = {
    0: "Acoustic Grand Piano", 6: "Harpsichord", 19: "Church Organ", 24: "Acoustic Guitar (nylon)", 40: "Violin",
    41: "Viola", 42: "Cello", 43: "Contrabass", 46: "Orchestral Harp", 47: "Timpani", 48: "String Ensemble 1",
    52: "Choir Aahs", 53: "Voice Oohs", 56: "Trumpet", 57: "Trombone", 60: "French Horn", 68: "Oboe", 70: "Bassoon",
    71: "Clarinet", 72: "Piccolo", 73: "Flute", 74: "Recorder", 109: "Bagpipe", 110: "Fiddle",
}

# 1-based MIDI channels (music21's numbering) a part may use: channel 10 is GM percussion
MIDI_CHANNELS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16)
DRUM_CHANNEL = 10

VOICE = -1  # classify(): a sung part


@dataclass(frozen=True)
class Scoring:
    """How a collection's parts are rendered.

    ``programs``: GM programs by part position (part i gets ``programs[min(i, len - 1)]``). With ``by_name``,
    a part whose name names an instrument gets that instrument, and a sung part (Voice, Soprano, Canto, ...)
    gets ``voice_program`` (unset: its positional program)."""

    label: str  # the instrumentation column of tracks.csv
    programs: tuple[int, ...]
    by_name: bool = False
    voice_program: int | None = None

    def __post_init__(self) -> None:
        unknown = [p for p in (*self.programs, self.voice_program) if p is not None and p not in GM_PROGRAMS]
        if not self.programs or unknown:
            raise ValueError(f"scoring {self.label!r}: programs must be listed in GM_PROGRAMS (got {unknown})")


SCORINGS: dict[str, Scoring] = {
    "string_quartet": Scoring("string quartet", (40, 40, 41, 42)),
    "chorale_organ": Scoring("organ (four-part chorale)", (19,), by_name=True, voice_program=19),
    "choir": Scoring("a cappella choir", (52,)),
    "vocal_ensemble": Scoring("vocal ensemble", (53,)),
    "piano": Scoring("piano", (0,)),
    "harpsichord": Scoring("harpsichord", (6,)),
    "voice_piano": Scoring("voice and piano", (53, 0), by_name=True, voice_program=53),
    "voices_piano": Scoring("voices and piano", (52, 0), by_name=True, voice_program=52),
    "voice_strings": Scoring("voice and strings", (53, 48, 42), by_name=True, voice_program=53),
    "voice_clarinet": Scoring("voice and clarinet", (53, 71), by_name=True, voice_program=53),
    "trio_sonata": Scoring("two violins and continuo", (40, 40, 42), by_name=True),
    "piano_trio": Scoring("piano trio", (40, 42, 0), by_name=True),
    "clarinet_piano": Scoring("clarinet and piano", (71, 0), by_name=True),
    "flute": Scoring("flute", (73,)),
    "fiddle": Scoring("fiddle", (110,)),
    "piccolo": Scoring("fife (piccolo)", (72,)),
    "bagpipe": Scoring("pipes", (109,)),
}

# part name → program; first match wins (so "contrabass" before "bass", "viola da gamba" before "viola")
_NAME_RULES: tuple[tuple[str, int], ...] = (
    (r"contra\s*bass|kontrabass|double\s*bass", 43),
    (r"viola da gamba|gamba|violone", 42),  # the bass violin of continuo parts: a cello's sound
    (r"violon\s*cello|cello|\bvc\b|violoncell", 42),
    (r"viola|\bvla\b|bratsche", 41),
    (r"violin|violino|\bvl\b|\bvln\b|geige|fiddle", 40),
    (r"piccolo|fife", 72),
    (r"flute|flauto|fl[oö]te|traverso", 73),
    (r"recorder|flauto dolce|blockfl", 74),
    (r"oboe|hautbois", 68),
    (r"clarinet|klarinette|clarinetto", 71),
    (r"bassoon|fagott|fagotto", 70),
    (r"horn|corno", 60),
    (r"trumpet|tromba|trompete", 56),
    (r"trombone|posaune", 57),
    (r"timpani|pauken", 47),
    (r"harpsichord|cembalo|clavecin", 6),
    (r"organ|organo|orgel", 19),
    (r"piano|klavier|keyboard|clavier", 0),
    (r"harp\b|arpa|harfe", 46),
    (r"guitar|gitarre|lute|liuto|laute", 24),
    (r"voice|vocal|voce|voix|stimme|singstimme|sopran|soprano|mezzo|alto|altus|contralto|tenor|tenore|"
     r"baritone?|bass|basso|bassus|canto|cantus|quinto|quintus|sextus|superius|discantus|triplum|motetus|"
     r"contratenor|chorus|choir|coro", VOICE),
)


def classify(name: str) -> int | None:
    """The GM program a part name stands for, :data:`VOICE` for a sung part, None when it names nothing."""
    return next((program for pattern, program in _NAME_RULES if re.search(pattern, name.lower())), None)


def part_programs(scoring: Scoring, part_names: Sequence[str | Sequence[str]]) -> list[int]:
    """One GM program per part, in score order. A part's names are tried in turn (its part name, then its
    instrument's name: notation programs often leave "MusicXML Part" as the part name)."""
    programs = []
    for i, names in enumerate(part_names):
        positional = scoring.programs[min(i, len(scoring.programs) - 1)]
        named = None
        if scoring.by_name:
            for name in ([names] if isinstance(names, str) else names):
                named = classify(name or "")
                if named is not None:
                    break
        if named == VOICE:
            named = scoring.voice_program
        programs.append(positional if named is None else named)
    return programs


def assign_channels(programs: list[int]) -> list[int]:
    """A MIDI channel per part, never :data:`DRUM_CHANNEL`: each part its own while channels last; beyond 15
    parts, a part shares the channel of an earlier part with its program (else the last channel)."""
    channels: list[int] = []
    by_program: dict[int, int] = {}
    for i, program in enumerate(programs):
        channel = MIDI_CHANNELS[i] if i < len(MIDI_CHANNELS) else by_program.get(program, MIDI_CHANNELS[-1])
        by_program.setdefault(program, channel)
        channels.append(channel)
    return channels


def program_names(programs: list[int]) -> str:
    """``Violin|Violin|Viola|Cello``: the tracks.csv ``gm_programs`` cell."""
    return "|".join(GM_PROGRAMS.get(p, f"program {p}") for p in programs)
