"""Publishing a build into a lake's ``raw/`` folder, each file by an atomic rename from ``<lake>/tmp/staging``::

    raw/audio/<track_id>.flac   mono 16-bit FLAC, 22 050 Hz, exactly ``excerpt_s`` seconds
    raw/tracks.csv              track_id, title, composer, era, form, instrumentation, key, tempo_bpm, ...
    raw/CLASSICAL.md            what was built, with which settings, and what was skipped
    raw/classical.json          the manifest: the files this builder owns

Only files the manifest names are ever replaced or removed. A ``raw/`` folder holding anything else and no
manifest is refused, and so is one where a new file would land on a file the builder did not write.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from audiorec_assets.datasets.classical.cache import read_json
from audiorec_assets.datasets.classical.instruments import SCORINGS, program_names
from audiorec_assets.datasets.classical.works import ClassicalError, WorkSpec
from audiorec_assets.lakeio import atomic_path, process_staging, publish_lock

MANIFEST = "classical.json"
NOTE = "CLASSICAL.md"
TRACKS_CSV = "tracks.csv"
AUDIO_DIR = "audio"
# raw/classical.json says the builder owns raw/ by this exact string: it keeps the module path it was first written
# with (data/classical/, now datasets/classical/), or every classical lake built before would be refused as foreign
GENERATOR = "audiorec classical (audiorec_assets.data.classical)"

TRACK_COLUMNS: tuple[str, ...] = (
    "track_id", "title", "composer", "era", "form", "instrumentation", "key", "tempo_bpm", "n_parts", "work",
    "movement", "collection", "region", "corpus_path", "key_source", "render_qpm", "gm_programs",
    "excerpt_measures", "excerpt_music_s",
)


class ForeignRawError(ClassicalError, FileExistsError):
    """``raw/`` holds files the classical builder did not write: nothing was changed."""


@dataclass(frozen=True)
class SkippedWork:
    """A selected work that is not in the catalogue, and why."""

    track_id: str
    title: str
    corpus_path: str
    stage: str  # "parse" (music21: parse, cut, MIDI) or "render" (FluidSynth, finishing the clip)
    reason: str


@dataclass
class Outcome:
    """One work of a build: its excerpt's metadata and cached clip, or why it was skipped."""

    spec: WorkSpec
    meta: dict | None = None
    clip: Path | None = None
    skipped: SkippedWork | None = None
    parsed: bool = False
    rendered: bool = False


def owned_by_builder(raw_dir: Path) -> dict | None:
    """The manifest of an earlier build in ``raw_dir``, None for an empty or missing folder;
    :class:`ForeignRawError` when the folder holds files and no manifest."""
    if not raw_dir.exists():
        return None
    if not raw_dir.is_dir():
        raise ForeignRawError(f"{raw_dir} is a file, not a folder: pick another lake.")
    manifest_path = raw_dir / MANIFEST
    if manifest_path.exists():
        manifest = read_json(manifest_path)
        if not isinstance(manifest, dict) or manifest.get("generator") != GENERATOR:
            raise ForeignRawError(f"{manifest_path} is not a manifest of the classical builder: nothing was "
                                  f"changed; build into an empty raw/ folder (another lake via AUDIOREC_LAKE).")
        return manifest
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in raw_dir.iterdir()
                   if not (p.name == AUDIO_DIR and p.is_dir() and not any(p.iterdir())))
    if found:
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        raise ForeignRawError(f"{raw_dir} already holds another catalogue ({shown}) that the classical builder "
                              f"did not write: nothing was changed; build into an empty raw/ folder (another "
                              f"lake via AUDIOREC_LAKE) or move those files away.")
    return None


def publish(raw_dir: Path, kept: list[Outcome], skipped: list[SkippedWork], settings: dict,
            music21_version: str) -> list[str]:
    """Move the clips, tracks.csv, the note and the manifest into ``raw_dir``; return the files removed."""
    staging_root = raw_dir.parent / "tmp" / "staging"
    raw_dir.mkdir(parents=True, exist_ok=True)
    with publish_lock(staging_root):
        previous = owned_by_builder(raw_dir)  # again: another process may have written meanwhile
        owned = set(previous.get("files", [])) if previous else set()
        new_files = [f"{AUDIO_DIR}/{o.spec.track_id}.flac" for o in kept]
        check_collisions(raw_dir, [o.spec.track_id for o in kept], owned)
        staging = process_staging(staging_root)
        listed = sorted(set(new_files) | {TRACKS_CSV, NOTE})
        _write_manifest(raw_dir, staging, "publishing", sorted(owned | set(listed)), settings, len(kept), skipped)
        (raw_dir / AUDIO_DIR).mkdir(exist_ok=True)
        earlier_clips = previous.get("clips", {}) if previous else {}
        clips = {}
        for outcome, name in zip(kept, new_files):
            assert outcome.clip is not None
            clips[name] = outcome.clip.name
            target = raw_dir / name
            if (earlier_clips.get(name) == outcome.clip.name and target.is_file()
                    and target.stat().st_size == outcome.clip.stat().st_size):
                continue  # the same clip is already in place (a rebuild from the cache)
            with atomic_path(target, staging=staging) as tmp:
                shutil.copyfile(outcome.clip, tmp)
        with atomic_path(raw_dir / TRACKS_CSV, staging=staging) as tmp:
            _tracks_table(kept, music21_version).to_csv(tmp, index=False, lineterminator="\n")
        with atomic_path(raw_dir / NOTE, staging=staging) as tmp:
            tmp.write_text(_note(kept, skipped, settings), encoding="utf-8")
        removed = []
        for name in sorted(owned - set(listed)):
            target = raw_dir / name
            if target.is_file():
                target.unlink()
                removed.append(name)
        _write_manifest(raw_dir, staging, "complete", listed, settings, len(kept), skipped, clips)
    return removed


def check_collisions(raw_dir: Path, track_ids: list[str], owned: set[str]) -> None:
    """:class:`ForeignRawError` when a file of the build (tracks.csv, the note, a clip of ``track_ids``) would
    land on a file in ``raw_dir`` that is not among the builder's ``owned`` files."""
    audio_dir = raw_dir / AUDIO_DIR
    for name in (TRACKS_CSV, NOTE):
        if (raw_dir / name).exists() and name not in owned:
            raise ForeignRawError(f"{raw_dir / name} was not written by the classical builder: nothing was "
                                  f"changed; move it away or build into another lake.")
    if not audio_dir.is_dir():
        return
    wanted = set(track_ids)
    for path in audio_dir.iterdir():
        if path.stem in wanted and f"{AUDIO_DIR}/{path.name}" not in owned:
            raise ForeignRawError(f"{path} was not written by the classical builder and has the track id of a "
                                  f"work it would add: nothing was changed; move it away or build into another "
                                  f"lake.")


def _write_manifest(raw_dir: Path, staging: Path, state: str, files: list[str], settings: dict, n_tracks: int,
                    skipped: list[SkippedWork], clips: dict[str, str] | None = None) -> None:
    """``classical.json``: the files the builder owns (``state`` "publishing" while it moves them in: they are
    the old and the new files then) and, once complete, the cached clip each audio file is a copy of."""
    manifest = {"generator": GENERATOR, "state": state, "written": datetime.now(timezone.utc).isoformat(),
                "tracks": n_tracks, "files": files, "clips": clips or {}, "settings": settings,
                "skipped": [asdict(s) for s in skipped]}
    with atomic_path(raw_dir / MANIFEST, staging=staging) as tmp:
        tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")


def _tracks_table(kept: list[Outcome], music21_version: str):
    import pandas as pd  # here: the music21 worker imports this module and needs no pandas

    rows = []
    for outcome in kept:
        spec, meta = outcome.spec, outcome.meta or {}
        measures = ""
        if meta.get("passes", 1) > 1:
            measures = f"whole piece, {meta['passes']} passes"
        elif meta.get("repeats_played"):
            measures = f"{meta['bars']} bars, repeats played"
        elif meta.get("first_measure") is not None:
            measures = f"{meta['first_measure']}-{meta['last_measure']}"
        rows.append({
            "track_id": spec.track_id, "title": spec.title or meta.get("score_title", ""), "composer": spec.composer,
            "era": spec.era, "form": spec.form, "instrumentation": SCORINGS[spec.scoring].label,
            "key": meta.get("key", ""), "tempo_bpm": meta.get("tempo_bpm"), "n_parts": meta.get("n_parts"),
            "work": spec.work or spec.track_id, "movement": spec.movement, "collection": spec.collection,
            "region": spec.region,
            "corpus_path": spec.provenance if spec.source == "corpus" else f"file:{spec.provenance}",
            "key_source": meta.get("key_source", ""), "render_qpm": meta.get("render_qpm"),
            "gm_programs": program_names(meta.get("programs", [])), "excerpt_measures": measures,
            "excerpt_music_s": meta.get("excerpt_music_s"),
        })
    table = pd.DataFrame(rows, columns=list(TRACK_COLUMNS))
    for column in ("n_parts", "movement"):  # whole numbers; empty where unknown (not 3.0 / NaN)
        table[column] = table[column].astype("Int64")
    return table


def _note(kept: list[Outcome], skipped: list[SkippedWork], settings: dict) -> str:
    by_era = Counter(o.spec.era or "unknown" for o in kept)
    by_composer = Counter(o.spec.composer or "unknown" for o in kept)
    skipped_lines = "\n".join(f"- `{s.track_id}` ({s.corpus_path}), {s.stage}: {s.reason}" for s in skipped) or "- none"
    renderer = settings["renderer"]
    return f"""# Classical catalogue (generated)

This folder was written by `audiorec_assets.datasets.classical.build_classical_raw` (`audiorec demo --dataset
classical`): {len(kept)} excerpts of works from the music21 corpus (music21 {settings['music21']}), each the
opening {settings['excerpt_s']:g} s of the score, rendered from MIDI with FluidSynth {renderer['fluidsynth']}
and the soundfont `{renderer['soundfont']}` as mono {settings['sample_rate']} Hz FLAC, loudness-normalised.
A piece shorter than that plays its written repeats; a folk tune still shorter is played through again
(`excerpt_measures`: "whole piece, 2 passes"); anything else ends in silence (`excerpt_music_s`: when its
last note ends). The music is real; the performance is a General MIDI synthesiser's. `tracks.csv` lists title, composer,
era, form, instrumentation, key (`key_source`: given in the score, or estimated by music21), the marked
tempo (`tempo_bpm`, quarter notes per minute; empty when the score marks none), the number of parts, the
work a movement belongs to, the corpus file, and how the excerpt was made.

Only the files listed in `classical.json` belong to the builder; anything else here (a `listens.csv`
from `audiorec mock-logs`) is left alone by a rebuild. A rebuild with other settings can drop tracks that
such a log names: write the log again after it.

Eras: {", ".join(f"{k} {v}" for k, v in by_era.most_common())}.

Composers: {", ".join(f"{k} {v}" for k, v in by_composer.most_common())}.

Skipped works:

{skipped_lines}
"""
