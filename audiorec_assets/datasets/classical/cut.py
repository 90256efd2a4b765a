"""The measures of a score that cover its first seconds, at the score's tempo (runs in the worker process).

The tempo is the score's metronome marks as ``(offset, qpm)`` segments from the start (the work's ``default_qpm``
where no mark opens its first measure). A short piece's repeats can be expanded or a folk tune played again before
the cut; repeat signs left inside an excerpt are removed (it is played as cut).
"""

from __future__ import annotations

import copy


def _tempo_marks(score) -> list[tuple[float, float, bool]]:
    """``(offset, quarter notes per minute, playback_only)`` of every usable metronome mark, by offset (the
    first at an offset wins; marks without a number, e.g. text only, are skipped)."""
    from music21 import tempo

    found: dict[float, tuple[float, bool]] = {}
    for part in score.parts:
        for mark in part.recurse().getElementsByClass(tempo.MetronomeMark):
            qpm = mark.getQuarterBPM()
            if not qpm or qpm <= 0:
                continue
            offset = round(float(mark.getOffsetInHierarchy(part)), 6)
            found.setdefault(offset, (float(qpm), mark.number is None))
    return [(o, q, p) for o, (q, p) in sorted(found.items())]


def _tempo_segments(score, default_qpm: float):
    """The opening mark ``(offset, qpm, playback_only)`` or None, and the ``(offset, qpm)`` segments from 0."""
    marks = _tempo_marks(score)
    opening = marks[0] if marks and marks[0][0] <= _first_measure_end(score.parts[0]) else None
    start_qpm = opening[1] if opening else default_qpm
    later = [(o, q) for o, q, _ in marks if o > 0 and (opening is None or o > opening[0])]
    return opening, [(0.0, start_qpm), *later]


def _played_again(score, passes: int):
    """The score's measures ``passes`` times in a row (each part; a pickup bar comes again after the last)."""
    from music21 import stream

    out = stream.Score()
    out.metadata = score.metadata
    length = float(score.highestTime)
    for part in score.parts:
        again = stream.Part()
        again.partName = part.partName
        measures = list(part.getElementsByClass(stream.Measure))
        elements = measures or list(part.flatten().notesAndRests)
        site = part if measures else part.flatten()
        for i in range(passes):
            for element in elements:
                again.insert(i * length + float(element.getOffsetBySite(site)), copy.deepcopy(element))
        for inst in part.getElementsByClass("Instrument")[:1]:
            again.insert(0, copy.deepcopy(inst))
        out.insert(0, again)
    return out


def _has_repeats(score) -> bool:
    from music21 import bar, repeat

    return bool(score.parts[0].recurse().getElementsByClass((bar.Repeat, repeat.RepeatExpression)))


def _strip_repeats(excerpt) -> None:
    """Plain barlines instead of repeat signs, and no volta brackets or D.C./segno marks: the excerpt is
    played as cut (music21 would expand repeats for MIDI, and fails on a repeat the cut left open)."""
    from music21 import bar, repeat, spanner, stream

    for measure in excerpt.recurse().getElementsByClass(stream.Measure):
        if isinstance(measure.leftBarline, bar.Repeat):
            measure.leftBarline = None
        if isinstance(measure.rightBarline, bar.Repeat):
            measure.rightBarline = bar.Barline("regular")
    for element in list(excerpt.recurse().getElementsByClass((repeat.RepeatExpression, spanner.RepeatBracket))):
        site = element.activeSite
        if site is not None:
            site.remove(element)
    for bracket in list(excerpt.spannerBundle.getByClass(spanner.RepeatBracket)):
        excerpt.spannerBundle.remove(bracket)


def _unshare_marks(excerpt) -> None:
    """Give every time/key signature and tempo mark its own object: expanded repeats can leave one object in
    two measures, and music21's MIDI writer refuses to put it in its conductor track twice."""
    from music21 import key, meter, tempo

    classes = (meter.TimeSignature, key.KeySignature, tempo.MetronomeMark)
    seen: set[int] = set()
    containers = [s for s in excerpt.recurse(streamsOnly=True, includeSelf=True)]
    for container in containers:  # each container's own elements, so the object is replaced where it sits
        for element in list(container.getElementsByClass(classes)):
            if id(element) in seen:
                container.replace(element, copy.deepcopy(element))
            else:
                seen.add(id(element))


def _first_measure_end(part) -> float:
    from music21 import stream

    first = part.getElementsByClass(stream.Measure).first()
    return float(first.offset + first.duration.quarterLength) if first is not None else 0.0


def _quarters_at(segments: list[tuple[float, float]], seconds: float) -> float:
    """The offset (quarter notes) reached after ``seconds`` at the tempo ``segments`` (offset, qpm) give."""
    elapsed = 0.0
    for (start, qpm), (end, _) in zip(segments, [*segments[1:], (float("inf"), 0.0)]):
        span = (end - start) * 60.0 / qpm
        if elapsed + span >= seconds:
            return start + (seconds - elapsed) * qpm / 60.0
        elapsed += span
    return float("inf")


def _seconds_at(segments: list[tuple[float, float]], offset: float) -> float:
    elapsed = 0.0
    for (start, qpm), (end, _) in zip(segments, [*segments[1:], (float("inf"), 0.0)]):
        if offset <= end:
            return elapsed + (offset - start) * 60.0 / qpm
        elapsed += (end - start) * 60.0 / qpm
    return elapsed


def _cut(score, end_ql: float):
    """The measures that start before ``end_ql`` — per part, by each part's own measure offsets (parts of one
    score can bar differently: a resting voice written in double-length bars) — as a new score; with the
    offset where the excerpt ends and the first part's number of bars."""
    from music21 import stream

    excerpt = stream.Score()
    excerpt.metadata = score.metadata
    end, bars = 0.0, 0
    for i, part in enumerate(score.parts):
        measures = list(part.getElementsByClass(stream.Measure))
        if measures:
            last = max(j for j, m in enumerate(measures) if j == 0 or float(m.offset) < end_ql - 1e-9)
            cut = part.measures(0, last + 1, indicesNotNumbers=True)  # indices: the end is exclusive
            part_end = float(measures[last].offset + measures[last].duration.quarterLength)
            bars = last + 1 if i == 0 else bars
        else:
            cut, part_end = _cut_by_offset(part, end_ql), min(end_ql, float(part.highestTime))
        cut.partName = part.partName
        excerpt.insert(0, cut)
        end = max(end, part_end)
    return excerpt, end, bars


def _cut_by_offset(part, end_ql: float):
    """A part of the elements that start before ``end_ql`` (for parts without measures)."""
    from music21 import stream

    flat = part.flatten()
    cut = stream.Part()
    for element in flat.getElementsByOffset(0, end_ql, includeEndBoundary=False):
        cut.insert(element.getOffsetBySite(flat), copy.deepcopy(element))
    return cut


def _write_tempo_map(excerpt, segments: list[tuple[float, float]], end_ql: float) -> None:
    """Replace every metronome mark of the excerpt with the tempo map the cut was computed from, written in
    the first part (music21's MIDI writer would otherwise keep only some parts' marks, or none)."""
    from music21 import stream, tempo

    for part in excerpt.parts:
        for mark in list(part.recurse().getElementsByClass(tempo.MetronomeMark)):
            if mark.activeSite is not None:
                mark.activeSite.remove(mark)
    first = excerpt.parts[0]
    measures = list(first.getElementsByClass(stream.Measure))
    for offset, qpm in segments:
        if offset >= end_ql and offset > 0:
            break
        mark = tempo.MetronomeMark(number=round(qpm, 3), referent=1.0)
        home = next((m for m in measures
                     if float(m.offset) <= offset < float(m.offset + m.duration.quarterLength)), None)
        if home is not None:
            home.insert(offset - float(home.offset), mark)
        else:
            first.insert(offset, mark)
