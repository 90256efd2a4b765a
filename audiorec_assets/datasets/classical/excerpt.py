"""Score → the MIDI file of its opening excerpt, plus what the score says (runs in the worker process).

Heavy and possibly slow (a large MusicXML file takes tens of seconds to parse): the build runs it in a worker
process it can kill (:mod:`.worker`).
"""

from __future__ import annotations

import math
from contextlib import suppress
from pathlib import Path

# the package's own helpers (tests import some from here)
from audiorec_assets.datasets.classical.cut import (_cut, _has_repeats, _played_again, _quarters_at, _seconds_at,
                                                    _strip_repeats, _tempo_segments, _unshare_marks, _write_tempo_map)
from audiorec_assets.datasets.classical.instruments import SCORINGS, assign_channels, part_programs
from audiorec_assets.datasets.classical.keys import estimated_key, given_key
from audiorec_assets.lakeio import atomic_path

# a playback-only tempo (MusicXML <sound tempo>, no printed mark) of exactly this is the notation
# program's default, not the editor's choice: it counts as "no tempo marked" for tracks.csv
NOTATION_DEFAULT_QPM = 120.0


class ExcerptError(ValueError):
    """The score cannot be turned into an excerpt (the message says why): deterministic, so cached."""


def prepare_excerpt(spec: dict, excerpt_s: float, midi_path: str, key_timeout_s: float = 15.0) -> dict:
    """Write the excerpt of ``spec`` (a :class:`~.works.WorkSpec` as a dict) to ``midi_path``; return metadata:
    ``n_parts, part_names, programs, channels, tempo_bpm, render_qpm, key, key_source, first_measure,
    last_measure, bars, excerpt_music_s, passes, repeats_played, score_title``."""
    from music21 import stream

    score = _load(spec)
    _drop_percussion(score)
    for part in list(score.parts):  # e.g. the empty voice headers music21 makes of some multi-voice ABC tunes
        if not part.recurse().notes:
            score.remove(part)
    parts = list(score.parts)
    if not parts:
        raise ExcerptError("the score has no pitched parts")
    default_qpm = float(spec.get("default_qpm") or 100.0)
    opening, segments = _tempo_segments(score, default_qpm)
    repeats_played = False
    if _seconds_at(segments, float(score.highestTime)) < excerpt_s and _has_repeats(score):
        # a short tune with repeats: play them, as a performance would, rather than pad with silence (badly formed
        # repeats: the tune as written)
        with suppress(Exception):
            score = score.expandRepeats()
            opening, segments = _tempo_segments(score, default_qpm)
            repeats_played = True
    passes = 1
    tune_s = _seconds_at(segments, float(score.highestTime))
    if spec.get("loop_to_fill") and 0 < tune_s < excerpt_s:
        passes = math.ceil(excerpt_s / tune_s)
        score = _played_again(score, passes)
        opening, segments = _tempo_segments(score, default_qpm)
    start_qpm = segments[0][1]
    end_ql = _quarters_at(segments, excerpt_s)

    excerpt, excerpt_ql, bars = _cut(score, end_ql)
    if not list(excerpt.recurse().notes):
        raise ExcerptError("the excerpt holds no notes")
    first_measures = list(excerpt.parts[0].getElementsByClass(stream.Measure))
    first_number = first_measures[0].number if first_measures else None
    last_number = first_measures[-1].number if first_measures else None
    _strip_repeats(excerpt)
    _unshare_marks(excerpt)
    _write_tempo_map(excerpt, segments, excerpt_ql)

    names = [_part_names(p) for p in excerpt.parts]
    programs = part_programs(SCORINGS[spec["scoring"]], names)
    channels = assign_channels(programs)
    music_s = _write_midi(excerpt, programs, channels, Path(midi_path))

    key_text, key_source = given_key(score, spec["path"])
    if not key_text:
        key_text = estimated_key(excerpt, key_timeout_s)
        key_source = "estimated" if key_text else ""
    tempo_bpm = None
    if opening is not None and not (opening[2] and abs(opening[1] - NOTATION_DEFAULT_QPM) < 1e-6):
        tempo_bpm = round(opening[1], 1)
    return {
        "n_parts": len(parts), "part_names": [n[0] or n[1] for n in names], "programs": programs,
        "channels": channels, "tempo_bpm": tempo_bpm, "render_qpm": round(start_qpm, 2), "key": key_text,
        "key_source": key_source, "first_measure": first_number, "last_measure": last_number,
        "excerpt_music_s": round(music_s, 2),  # when the MIDI's last note ends
        "bars": bars, "passes": passes, "repeats_played": repeats_played, "score_title": _score_title(score),
    }


def _load(spec: dict):
    from music21 import converter, corpus, stream

    if spec.get("source", "corpus") == "corpus":
        path = corpus.getWork(spec["path"])
        if isinstance(path, list):
            path = path[0] if path else None
        if not path:
            raise ExcerptError(f"{spec['path']} is not in the installed music21 corpus")
    else:
        path = Path(spec["path"])
        if not path.exists():
            raise ExcerptError(f"{path} does not exist")
    # forceSource: parse the file itself, and write no pickle into music21's scratch folder
    parsed = converter.parse(str(path), number=spec.get("number"), forceSource=True)
    if isinstance(parsed, stream.Opus):
        scores = list(parsed.scores)
        if not scores:
            raise ExcerptError("the file holds no score")
        parsed = parsed.mergeScores() if spec.get("merge_opus") and len(scores) > 1 else scores[0]
    if isinstance(parsed, stream.Score):
        return parsed
    if isinstance(parsed, stream.Stream):  # a bare part or measure stream
        score = stream.Score()
        score.insert(0, parsed if isinstance(parsed, stream.Part) else _as_part(parsed))
        return score
    raise ExcerptError(f"music21 read {type(parsed).__name__}, not a score")


def _as_part(s):
    from music21 import stream

    part = stream.Part()
    for element in s.flatten().notesAndRests:
        part.insert(element.getOffsetBySite(s.flatten()), element)
    return part


def _drop_percussion(score) -> None:
    """Remove parts of unpitched percussion: GM renders them on the drum channel, which no part gets here."""
    from music21 import instrument, note, percussion

    for part in list(score.parts):
        unpitched = any(isinstance(i, instrument.UnpitchedPercussion) for i in part.getInstruments(recurse=True))
        unpitched = unpitched or any(isinstance(n, (note.Unpitched, percussion.PercussionChord))
                                     for n in part.recurse().notes)
        if unpitched:
            score.remove(part)


def _part_names(part) -> tuple[str, str]:
    inst = part.getInstrument(returnDefault=False)
    return (part.partName or "").strip(), ((inst.instrumentName or "") if inst is not None else "").strip()


def _score_title(score) -> str:
    for name in ("title", "movementName"):
        value = getattr(score.metadata, name, None)  # None without metadata
        if value:
            return " ".join(str(value).split())
    return ""


def _write_midi(excerpt, programs: list[int], channels: list[int], path: Path) -> float:
    """The excerpt as a MIDI file: track i + 1 = part i, on ``channels[i]`` with ``programs[i]`` from the start
    (every program change music21 writes is set to the part's program, every channel event to its channel).
    Returns when, in seconds, its last note ends."""
    from music21 import midi

    mf = midi.translate.streamToMidiFile(excerpt)
    part_tracks = mf.tracks[1:] if len(mf.tracks) == len(programs) + 1 else mf.tracks
    if len(part_tracks) != len(programs):
        raise ExcerptError(f"music21 wrote {len(mf.tracks)} MIDI tracks for {len(programs)} parts")
    for track, program, channel in zip(part_tracks, programs, channels):
        for event in track.events:
            if isinstance(event, midi.MidiEvent) and event.channel is not None:
                event.channel = channel
                if event.type == midi.ChannelVoiceMessages.PROGRAM_CHANGE:
                    event.data = program
        change = midi.MidiEvent(track, type=midi.ChannelVoiceMessages.PROGRAM_CHANGE, channel=channel)
        change.data = program
        track.events[0:0] = [midi.DeltaTime(track, time=0, channel=None), change]
        # End with "all notes off", then "all sound off" a few beats later: a note left hanging (two voices of
        # a part on one pitch) on a looped sample (violin, organ) would otherwise keep FluidSynth's fast
        # render going for ever, since it runs until every voice is silent.
        end = max(i for i, e in enumerate(track.events) if isinstance(e, midi.DeltaTime))
        closing = []
        for wait, controller in ((0, 123), (4 * mf.ticksPerQuarterNote, 120)):
            event = midi.MidiEvent(track, type=midi.ChannelVoiceMessages.CONTROLLER_CHANGE, channel=channel)
            event.parameter1, event.parameter2 = controller, 0
            closing += [midi.DeltaTime(track, time=wait, channel=None), event]
        track.events[end:end] = closing
    with atomic_path(path) as tmp:
        mf.open(str(tmp), "wb")
        try:
            mf.write()
        finally:
            mf.close()
    return midi_seconds(mf)


def midi_seconds(mf) -> float:
    """When the last note of a music21 ``MidiFile`` ends, in seconds (its tempo events; 120 qpm before any)."""
    from music21 import midi

    tempos: list[tuple[int, float]] = []  # (tick, microseconds per quarter note)
    last_off = 0
    for track in mf.tracks:
        tick = 0
        for event in track.events:
            if isinstance(event, midi.DeltaTime):
                tick += event.time or 0
            elif event.type == midi.MetaEvents.SET_TEMPO:
                tempos.append((tick, float(int.from_bytes(event.data, "big"))))
            elif event.type in (midi.ChannelVoiceMessages.NOTE_OFF, midi.ChannelVoiceMessages.NOTE_ON):
                last_off = max(last_off, tick)
    tempos.sort()
    if not tempos or tempos[0][0] > 0:
        tempos.insert(0, (0, 500_000.0))
    seconds, previous_tick, per_quarter = 0.0, 0, tempos[0][1]
    for tick, value in tempos[1:] + [(last_off, None)]:
        tick = min(tick, last_off)
        seconds += (tick - previous_tick) / mf.ticksPerQuarterNote * per_quarter / 1e6
        previous_tick = tick
        if value is None or tick >= last_off:
            break
        per_quarter = value
    return seconds
