"""The classical catalogue (audiorec_assets.datasets.classical): tiny scores written here, rendered for real.

One module-scoped build renders a handful of tiny scores (a long tune, a string quartet with a drum part,
an awkwardly named file, a broken file, a FIFO that makes music21's parse hang) into a temporary lake;
most tests read what it left. Tests that render need FluidSynth and a GM soundfont and are skipped
without them; the render-timeout and refusal tests use a stand-in ``fluidsynth`` script instead.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("music21", reason="the classical catalogue needs music21 (pip install 'audiorec[classical]')")

from audiorec_assets.datasets.classical import (  # noqa: E402
    TRACK_COLUMNS,
    ClassicalError,
    ForeignRawError,
    build_classical_raw,
    file_work,
    slug,
)
from audiorec_assets.datasets.classical.catalogue import select_works  # noqa: E402
from audiorec_assets.datasets.classical.excerpt import _quarters_at, _seconds_at  # noqa: E402
from audiorec_assets.datasets.classical.instruments import (  # noqa: E402
    DRUM_CHANNEL,
    SCORINGS,
    assign_channels,
    part_programs,
)
from audiorec_assets.datasets.classical.render import SOUNDFONTS, RenderError, finish_clip  # noqa: E402
from audiorec_assets.datasets.classical.works import WorkSpec  # noqa: E402

HAVE_FLUIDSYNTH = shutil.which("fluidsynth") is not None and any(Path(p).is_file() for p in SOUNDFONTS)
needs_fluidsynth = pytest.mark.skipif(
    not HAVE_FLUIDSYNTH,
    reason="needs FluidSynth and a GM soundfont (Debian: apt-get install fluidsynth fluid-soundfont-gm)")

SR = 22050
EXCERPT_S = 3.0
AWKWARD_NAME = 'Für Élise\'s "draft", no. 1 (v2).abc'
AWKWARD_TITLE = 'Für Élise\'s "draft", no. 1 — with a comma, and "quotes"'

# 32 bars of 4/4 at 120 quarter notes a minute: 64 s; the 3-s excerpt needs its first two bars (4 s)
LONG_TUNE = "X:1\nT:Long tune\nM:4/4\nL:1/4\nQ:1/4=120\nK:G\n" + "G A B c | d e f g |\n" * 16
SHORT_TUNE = "X:1\nT:Short tune\nM:4/4\nL:1/4\nQ:1/4=90\nK:D\nD F A d | A F D2 |]\n"


def _quartet_with_drums(path: Path) -> None:
    """Four string parts named as in a quartet, plus a snare-drum part that must never sound."""
    from music21 import instrument, note, stream, tempo

    score = stream.Score()
    parts = [("Violin I", instrument.Violin(), "E5"), ("Violin II", instrument.Violin(), "C5"),
             ("Viola", instrument.Viola(), "G4"), ("Cello", instrument.Violoncello(), "C3")]
    for name, inst, pitch in parts:
        part = stream.Part()
        part.partName = name
        part.insert(0, inst)
        for number in range(1, 9):
            measure = stream.Measure(number=number)
            if number == 1 and name == "Violin I":
                measure.insert(0, tempo.MetronomeMark(number=120))
            measure.append(note.Note(pitch, quarterLength=4))
            part.append(measure)
        score.insert(0, part)
    drums = stream.Part()
    drums.partName = "Drums"
    drums.insert(0, instrument.SnareDrum())
    for number in range(1, 9):
        measure = stream.Measure(number=number)
        for _ in range(4):
            measure.append(note.Unpitched(displayName="C4", quarterLength=1))
        drums.append(measure)
    score.insert(0, drums)
    score.write("musicxml", fp=str(path))


@pytest.fixture(scope="module")
def scores(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scores")
    (folder / "long_tune.abc").write_text(LONG_TUNE)
    (folder / "short_tune.abc").write_text(SHORT_TUNE)
    (folder / AWKWARD_NAME).write_text(LONG_TUNE.replace("Long tune", "Awkward"))
    (folder / "broken.musicxml").write_text("<?xml version='1.0'?><score-partwise><part id='P1'><measure>oops")
    _quartet_with_drums(folder / "quartet.musicxml")
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "hangs.abc")  # opening it blocks: music21's parse never returns
    return folder


def _works(scores: Path) -> list[WorkSpec]:
    works = [
        file_work(scores / "long_tune.abc", title="Long tune", composer="Test Composer", era="Baroque",
                  form="reel", scoring="fiddle"),
        file_work(scores / "quartet.musicxml", title="Quartet", scoring="string_quartet", track_id="quartet"),
        file_work(scores / AWKWARD_NAME, title=AWKWARD_TITLE, scoring="flute"),
        file_work(scores / "short_tune.abc", title="Short tune", scoring="flute", track_id="short"),
        file_work(scores / "broken.musicxml", scoring="piano", track_id="broken"),
    ]
    if (scores / "hangs.abc").exists():
        works.insert(0, file_work(scores / "hangs.abc", scoring="flute", track_id="hangs"))
    return works


@pytest.fixture(scope="module")
def built(scores, tmp_path_factory):
    """One real build of the tiny scores (jobs=1: the hanging parse comes first, the rest after a restart)."""
    if not HAVE_FLUIDSYNTH:
        pytest.skip("needs FluidSynth and a GM soundfont (Debian: apt-get install fluidsynth fluid-soundfont-gm)")
    root = tmp_path_factory.mktemp("classical")
    messages: list[str] = []
    report = build_classical_raw(root / "lake" / "raw", root / "cache", works=_works(scores), excerpt_s=EXCERPT_S,
                                 jobs=1, parse_timeout_s=8.0, render_timeout_s=60.0,
                                 progress=lambda done, total, message: messages.append(f"{done}/{total} {message}"))
    return {"root": root, "raw": root / "lake" / "raw", "cache": root / "cache", "report": report,
            "messages": messages}


def _fake_fluidsynth(folder: Path, body: str) -> Path:
    """A stand-in `fluidsynth` (answers --version, then runs ``body``)."""
    script = folder / "fluidsynth"
    script.write_text("#!/bin/sh\nif [ \"$1\" = \"--version\" ]; then echo 'FluidSynth runtime version 0.0.1'; "
                      f"exit 0; fi\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def _tracks(raw: Path) -> pd.DataFrame:
    return pd.read_csv(raw / "tracks.csv", dtype=str, keep_default_na=False).set_index("track_id")


def _midi_programs(midi_path: Path) -> tuple[list[list[int]], set[int], float]:
    """Per part track: its program changes; every channel used; the last event's time (quarter notes)."""
    from music21 import midi

    mf = midi.MidiFile()
    mf.open(str(midi_path))
    mf.read()
    mf.close()
    programs, channels, last_tick = [], set(), 0
    for track in mf.tracks[1:]:
        ticks, changes = 0, []
        for event in track.events:
            if isinstance(event, midi.DeltaTime):
                ticks += event.time
                continue
            if event.channel is not None:
                channels.add(event.channel)
            if event.type == midi.ChannelVoiceMessages.PROGRAM_CHANGE:
                changes.append(event.data)
            if event.type == midi.ChannelVoiceMessages.NOTE_OFF:
                last_tick = max(last_tick, ticks)
        programs.append(sorted(set(changes)))
    return programs, channels, last_tick / mf.ticksPerQuarterNote


# ----------------------------------------------------------------------------- the build


@needs_fluidsynth
def test_excerpt_is_cut_before_rendering_and_clip_has_the_excerpt_length(built):
    import soundfile as sf

    raw = built["raw"]
    y, sr = sf.read(raw / "audio" / "long-tune.flac")
    assert sr == SR and y.ndim == 1 and len(y) == int(EXCERPT_S * SR)  # mono, exactly the excerpt
    row = _tracks(raw).loc["long-tune"]
    first, last = (int(n) for n in row["excerpt_measures"].split("-"))
    assert last - first == 1  # the two bars that cover 3 s at 120 qpm, not all 32 (music21 numbers ABC from 0)
    assert float(row["excerpt_music_s"]) == pytest.approx(4.0)
    midi_path = next((built["cache"] / "excerpts").glob("long-tune.*.mid"))
    assert _midi_programs(midi_path)[2] <= 8.0  # the MIDI that was rendered holds only those bars
    y_short, _ = sf.read(raw / "audio" / "short.flac")  # 8 beats at 90 qpm = 5.3 s: cut to 3 s as well
    assert len(y_short) == int(EXCERPT_S * SR)
    level = np.sqrt(np.mean(np.square(y)))
    assert 0.05 < level < 0.2 and np.max(np.abs(y)) <= 0.99  # normalised loudness, no clipping


@needs_fluidsynth
def test_parse_timeout_and_broken_score_are_skipped_with_reasons(built, scores):
    report = built["report"]
    skipped = {s.track_id: s for s in report.skipped}
    assert skipped["broken"].stage == "parse" and skipped["broken"].reason
    assert "broken" not in report.tracks
    if (scores / "hangs.abc").exists():
        assert skipped["hangs"].stage == "parse" and "timed out after 8 s" in skipped["hangs"].reason
    assert set(report.tracks) == {"long-tune", "quartet", "fur-elise-s-draft-no-1-v2", "short"}  # the rest after
    assert report.n_selected == len(_works(scores))
    note = (built["raw"] / "CLASSICAL.md").read_text()
    assert "`broken`" in note and all(f"`{s}`" in note for s in skipped)
    assert any("broken: skipped (parse" in m for m in built["messages"])
    assert not (built["raw"] / "audio" / "broken.flac").exists()


@needs_fluidsynth
def test_second_build_renders_nothing(built, scores, tmp_path):
    works = [w for w in _works(scores) if w.track_id not in ("hangs",)]  # a timeout is not cached: leave it out
    clips = {p: p.stat().st_mtime_ns for p in (built["cache"] / "audio").glob("*.flac")}
    counter = tmp_path / "calls"
    wrapper = _fake_fluidsynth(tmp_path, f'echo x >> "{counter}"\nexec "{shutil.which("fluidsynth")}" "$@"')
    again = build_classical_raw(built["raw"], built["cache"], works=works, excerpt_s=EXCERPT_S, jobs=1)
    assert again.parsed == 0 and again.rendered == 0 and again.cached == len(again.tracks) == 4
    assert {p: p.stat().st_mtime_ns for p in (built["cache"] / "audio").glob("*.flac")} == clips
    assert [s.track_id for s in again.skipped] == ["broken"]  # the broken score's failure is remembered
    # a renderer that counts its calls: same identity (version, soundfont) would be needed to hit the cache,
    # so a different version string means a fresh render, counted once per track
    fresh = build_classical_raw(tmp_path / "lake" / "raw", built["cache"], works=works[:1], excerpt_s=EXCERPT_S,
                                jobs=1, fluidsynth=wrapper)
    assert fresh.rendered == 1 and fresh.parsed == 0 and counter.read_text().count("x") == 1
    twice = build_classical_raw(tmp_path / "lake" / "raw", built["cache"], works=works[:1], excerpt_s=EXCERPT_S,
                                jobs=1, fluidsynth=wrapper)
    assert twice.rendered == 0 and counter.read_text().count("x") == 1


@needs_fluidsynth
def test_parts_get_their_programs_and_drums_never_sound(built):
    row = _tracks(built["raw"]).loc["quartet"]
    assert row["n_parts"] == "4"  # the drum part is dropped
    assert row["gm_programs"] == "Violin|Violin|Viola|Cello"
    assert row["instrumentation"] == "string quartet"
    midi_path = next((built["cache"] / "excerpts").glob("quartet.*.mid"))
    programs, channels, _ = _midi_programs(midi_path)
    assert programs == [[40], [40], [41], [42]]
    assert DRUM_CHANNEL not in channels and len(channels) == 4


@needs_fluidsynth
def test_tracks_csv_columns_and_values(built):
    raw = built["raw"]
    table = pd.read_csv(raw / "tracks.csv", dtype=str, keep_default_na=False)
    assert tuple(table.columns) == TRACK_COLUMNS
    assert set(table["track_id"]) == {p.stem for p in (raw / "audio").iterdir()}
    row = table.set_index("track_id").loc["long-tune"]
    assert (row["title"], row["composer"], row["era"], row["form"]) == ("Long tune", "Test Composer", "Baroque", "reel")
    assert (row["key"], row["key_source"]) == ("G major", "score")  # ABC's K: field is taken as given
    assert float(row["tempo_bpm"]) == 120.0 and row["n_parts"] == "1" and row["work"] == "long-tune"
    assert row["region"] == "" and row["movement"] == ""  # unknown stays empty
    assert row["corpus_path"].startswith("file:") and row["corpus_path"].endswith("long_tune.abc")
    quartet = table.set_index("track_id").loc["quartet"]
    assert quartet["key_source"] in ("estimated", "")  # MusicXML: estimated (or none when analysis gives up)
    manifest = json.loads((raw / "classical.json").read_text())
    assert manifest["state"] == "complete" and "tracks.csv" in manifest["files"]


@needs_fluidsynth
def test_awkward_file_names_and_titles(built):
    raw = built["raw"]
    assert (raw / "audio" / "fur-elise-s-draft-no-1-v2.flac").is_file()
    assert _tracks(raw).loc["fur-elise-s-draft-no-1-v2", "title"] == AWKWARD_TITLE  # quotes, commas: round trip


def test_render_timeout_is_skipped_with_reason(scores, tmp_path):
    """A renderer that never finishes (a stand-in that sleeps) is killed after render_timeout_s."""
    fake = _fake_fluidsynth(tmp_path, "exec sleep 30")
    soundfont = tmp_path / "any.sf2"
    soundfont.write_bytes(b"not read by the stand-in")
    works = [file_work(scores / "short_tune.abc", scoring="flute", track_id="short")]
    report = build_classical_raw(tmp_path / "lake" / "raw", tmp_path / "cache", works=works, excerpt_s=EXCERPT_S,
                                 jobs=1, render_timeout_s=1.0, fluidsynth=fake, soundfont=soundfont)
    assert report.tracks == () and report.seconds < 25
    (skip,) = report.skipped
    assert (skip.track_id, skip.stage) == ("short", "render") and "within 1 s" in skip.reason
    assert not list((tmp_path / "lake" / "raw" / "audio").glob("*"))


def test_missing_fluidsynth_or_soundfont_fails_in_one_line(tmp_path):
    with pytest.raises(ClassicalError) as missing:
        build_classical_raw(tmp_path / "raw", tmp_path / "cache", fluidsynth=tmp_path / "no-such-fluidsynth")
    message = str(missing.value)
    assert "fluidsynth fluid-soundfont-gm" in message and "\n" not in message
    fake = _fake_fluidsynth(tmp_path, "exit 0")
    with pytest.raises(ClassicalError, match="fluidsynth fluid-soundfont-gm"):
        build_classical_raw(tmp_path / "raw", tmp_path / "cache", fluidsynth=fake, soundfont=tmp_path / "none.sf2")
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize("foreign", ["listens.csv", "tracks.csv", "DEMO.md", "audio/mine.wav"])
def test_refuses_a_raw_folder_holding_another_catalogue(tmp_path, foreign):
    raw = tmp_path / "lake" / "raw"
    (raw / foreign).parent.mkdir(parents=True, exist_ok=True)
    (raw / foreign).write_text("someone's data")
    fake = _fake_fluidsynth(tmp_path, "exit 1")
    soundfont = tmp_path / "any.sf2"
    soundfont.write_bytes(b"x")
    before = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*"))
    with pytest.raises(ForeignRawError, match="another catalogue"):
        build_classical_raw(raw, tmp_path / "cache", works=[], fluidsynth=fake, soundfont=soundfont)
    assert sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*")) == before
    assert (raw / foreign).read_text() == "someone's data"


@needs_fluidsynth
def test_rebuild_keeps_files_it_does_not_own_and_refuses_to_overwrite_them(built, scores, tmp_path):
    raw = tmp_path / "lake" / "raw"
    shutil.copytree(built["raw"], raw)
    (raw / "listens.csv").write_text("user_id,track_id,timestamp\n")  # as `audiorec mock-logs` would add
    works = [w for w in _works(scores) if w.track_id in ("long-tune", "short")]
    report = build_classical_raw(raw, built["cache"], works=works, excerpt_s=EXCERPT_S, jobs=1)
    assert (raw / "listens.csv").read_text() == "user_id,track_id,timestamp\n"
    assert sorted(p.stem for p in (raw / "audio").iterdir()) == ["long-tune", "short"]  # its own old files go
    assert "audio/quartet.flac" in report.removed
    (raw / "audio" / "quartet.wav").write_bytes(b"a user's file")  # lands where a new track would
    with pytest.raises(ForeignRawError, match="quartet.wav"):
        build_classical_raw(raw, built["cache"], works=_works(scores)[1:3], excerpt_s=EXCERPT_S, jobs=1)
    assert (raw / "audio" / "quartet.wav").read_bytes() == b"a user's file"


# ----------------------------------------------------------------------------- the parts, without rendering


def test_programs_per_part():
    quartet = SCORINGS["string_quartet"]
    assert part_programs(quartet, ["Violin I", "Violin II", "Viola", "Violoncello"]) == [40, 40, 41, 42]
    assert part_programs(quartet, ["a", "b", "c", "d", "e"]) == [40, 40, 41, 42, 42]  # the last repeats
    song = SCORINGS["voice_piano"]
    assert part_programs(song, [("MusicXML Part", "Choir Aahs"), "Piano", "Piano"]) == [53, 0, 0]
    assert part_programs(SCORINGS["chorale_organ"], ["Soprano", "Alto", "Tenor", "Bass"]) == [19] * 4
    assert part_programs(SCORINGS["chorale_organ"], ["Soprano", "Violino 1"]) == [19, 40]  # an obbligato part
    assert part_programs(SCORINGS["trio_sonata"], ["Violino I.", "Violino II.", "Violone e Organo"]) == [40, 40, 42]
    assert part_programs(SCORINGS["clarinet_piano"], ["Bb Clarinet", "Piano", "Piano"]) == [71, 0, 0]
    assert part_programs(SCORINGS["fiddle"], [""]) == [110]
    channels = assign_channels([40] * 20)
    assert DRUM_CHANNEL not in channels and len(set(channels[:15])) == 15


def test_tempo_segments_give_the_cut():
    assert _quarters_at([(0.0, 120.0)], 30.0) == pytest.approx(60.0)
    segments = [(0.0, 60.0), (10.0, 120.0)]  # 10 quarters at 60 (10 s), then 120 qpm
    assert _quarters_at(segments, 15.0) == pytest.approx(20.0)
    assert _seconds_at(segments, 20.0) == pytest.approx(15.0)


def test_cut_follows_each_parts_barring_and_keeps_one_tempo_map(tmp_path):
    """Parts may bar differently (a resting voice in double-length bars) and carry the tempo in a part other
    than the first: the excerpt still covers the same time in every part, at the tempo the cut assumed."""
    from music21 import note, stream, tempo

    from audiorec_assets.datasets.classical.excerpt import _cut, _tempo_segments, _write_midi, _write_tempo_map

    score = stream.Score()
    resting = stream.Part()
    for number in range(1, 5):  # 8-quarter bars of rests
        bar = stream.Measure(number=number)
        bar.append(note.Rest(quarterLength=8))
        resting.append(bar)
    singing = stream.Part()
    for number in range(1, 9):  # 4-quarter bars of notes; the tempo (60) only here
        bar = stream.Measure(number=number)
        if number == 1:
            bar.insert(0, tempo.MetronomeMark(number=60))
        bar.append(note.Note("C3", quarterLength=4))
        singing.append(bar)
    score.insert(0, resting)
    score.insert(0, singing)
    opening, segments = _tempo_segments(score, default_qpm=100.0)
    assert segments == [(0.0, 60.0)] and opening is not None
    excerpt, end, bars = _cut(score, 6.0)  # 6 s at 60 qpm
    assert end == 8.0 and bars == 1 and len(excerpt.parts[1].getElementsByClass(stream.Measure)) == 2
    _write_tempo_map(excerpt, segments, end)
    seconds = _write_midi(excerpt, [53, 53], [1, 2], tmp_path / "cut.mid")
    assert seconds == pytest.approx(8.0)  # both bars of the singing part, at 60 qpm


def test_finish_clip_length_loudness_and_silence():
    sr = 1000
    long = np.sin(np.linspace(0, 400 * np.pi, 5 * sr))[:, None].repeat(2, axis=1) * 0.01
    clip, gain_db = finish_clip(long, sr, 3.0)
    assert len(clip) == 3 * sr and gain_db > 0 and clip[-1] == pytest.approx(0.0, abs=1e-6)  # faded at the cut
    short, _ = finish_clip(long[: sr], sr, 3.0)
    assert len(short) == 3 * sr and not short[sr:].any()  # padded with silence
    with pytest.raises(RenderError, match="silent"):
        finish_clip(np.zeros((sr, 2), np.float32), sr, 1.0)


def test_slugs_are_file_name_safe_and_stable():
    assert slug(AWKWARD_NAME.removesuffix(".abc")) == "fur-elise-s-draft-no-1-v2"
    assert slug("") == "work" and slug("Ünïcödé  ÷ §") == "unicode"
    long = slug("x" * 50 + " and more " * 10)
    assert len(long) <= 64 and long == slug("x" * 50 + " and more " * 10) != slug("x" * 50 + " and less " * 10)
    with pytest.raises(ValueError, match="lower-case"):
        WorkSpec(track_id="Bad Id", path="p", title="t", scoring="piano")


def test_selection_is_deterministic_capped_and_nested():
    def spec(i: int, composer: str, work: str, movement: int | None = None) -> WorkSpec:
        return WorkSpec(track_id=f"{composer.lower()}-{i}", path=f"{composer}/{i}.mxl", title=str(i), scoring="piano",
                        composer=composer, work=work, movement=movement, group=composer)

    candidates = {
        "bach": [spec(i, "Bach", f"b{i}") for i in range(40)],
        "haydn": [spec(i, "Haydn", "op1", movement=5 - i) for i in range(5)],  # one work, five movements
        "essen": [spec(i, "Essen", f"e{i}") for i in range(40)],  # a folk collection: half the cap
        "mine": [spec(i, "Mine", f"m{i}") for i in range(40)],  # a collection the catalogue does not know
    }
    picked = select_works(30, max_per_composer=12, candidates=candidates)
    assert len(picked) == 30 and len({s.track_id for s in picked}) == 30
    by = {c: [s for s in picked if s.composer == c] for c in ("Bach", "Haydn", "Essen", "Mine")}
    assert len(by["Essen"]) == 6 and max(len(v) for v in by.values()) <= 12 and len(by["Haydn"]) == 5
    assert [s.movement for s in by["Haydn"]] == [1, 2, 3, 4, 5]  # a work comes whole, in movement order
    assert select_works(30, max_per_composer=12, candidates=candidates) == picked
    assert select_works(10, max_per_composer=12, candidates=candidates) == picked[:10]


@pytest.mark.slow  # reads music21's metadata bundle (~10 s)
def test_the_installed_corpus_has_the_collections():
    from audiorec_assets.datasets.classical.catalogue import COLLECTIONS, candidate_works

    candidates = candidate_works()
    assert all(candidates[c.key] for c in COLLECTIONS), [c.key for c in COLLECTIONS if not candidates[c.key]]
    picked = select_works(300)
    assert len(picked) == 300 and len({s.track_id for s in picked}) == 300
    composers = pd.Series([s.group for s in picked]).value_counts()
    assert composers.max() <= 30 and len(composers) >= 20
    assert {"Baroque", "Classical", "Renaissance", "Medieval", "Romantic", "Modern", "Traditional"} <= \
        {s.era for s in picked}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
