"""The build's cache: each excerpt, clip and selection is keyed by what makes it (the score, the settings, the
music21 / FluidSynth / soundfont versions), so a second build renders nothing::

    <cache>/excerpts/<track_id>.<key>.mid|.json   the excerpt and what the score says (or why it failed)
    <cache>/audio/<track_id>.<key>.flac           the finished clip
    <cache>/selection/<key>.json                  the selection (a second build does not read the corpus)
    <cache>/logs/worker-<n>.log                   what music21 printed
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path

from audiorec_assets.datasets.classical.instruments import SCORINGS
from audiorec_assets.datasets.classical.render import Renderer
from audiorec_assets.datasets.classical.works import WorkSpec
from audiorec_assets.fingerprints import file_hash
from audiorec_assets.lakeio import atomic_path

EXCERPT_VERSION = 2  # bump when the same score and settings give another excerpt
AUDIO_VERSION = 1  # bump when the same excerpt and settings give another clip


def default_cache_dir() -> Path:
    """A cache folder outside any lake: ``$XDG_CACHE_HOME/audiorec/classical`` (else ``~/.cache/...``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "audiorec" / "classical"


def cached_selection(cache_dir: Path, n_works: int, max_per_composer: int, music21_version: str) -> list[WorkSpec]:
    """The corpus selection, cached: a second build does not load music21's metadata bundle."""
    from audiorec_assets.datasets.classical import bundle, catalogue, collection_works, collections, works

    modules = (bundle, catalogue, collection_works, collections, works)
    code = [file_hash(Path(module.__file__)) for module in modules]  # a changed catalogue selects anew
    key = digest({"n": n_works, "cap": max_per_composer, "music21": music21_version, "code": code})
    path = cache_dir / "selection" / f"{key}.json"
    if path.exists():
        with suppress(ValueError, TypeError):  # an older or damaged file: select again
            return [WorkSpec(**w) for w in json.loads(path.read_text(encoding="utf-8"))]
    specs = catalogue.select_works(n_works, max_per_composer)
    write_text(path, json.dumps([s.to_json() for s in specs], ensure_ascii=False, indent=1))
    return specs


def excerpt_paths(cache_dir: Path, spec: WorkSpec, excerpt_s: float, music21_version: str) -> tuple[Path, Path]:
    """Where the excerpt of ``spec`` is cached: its MIDI file and its metadata (what the score says, or why it
    failed)."""
    key = digest(_excerpt_identity(spec, excerpt_s, music21_version))
    folder = cache_dir / "excerpts"
    return folder / f"{spec.track_id}.{key}.mid", folder / f"{spec.track_id}.{key}.json"


def _excerpt_identity(spec: WorkSpec, excerpt_s: float, music21_version: str) -> dict:
    """What the excerpt depends on (titles and other metadata do not change it; nor do the time limits)."""
    identity = {"path": spec.path, "number": spec.number, "merge_opus": spec.merge_opus, "source": spec.source,
                "scoring": asdict(SCORINGS[spec.scoring]), "default_qpm": spec.default_qpm,
                "excerpt_s": excerpt_s, "music21": music21_version, "v": EXCERPT_VERSION}
    if spec.source == "file":
        path = Path(spec.path)
        identity["sha1"] = file_hash(path) if path.is_file() else "missing"
    return identity


def clip_path(cache_dir: Path, spec: WorkSpec, midi_path: Path, excerpt_s: float, renderer: Renderer) -> Path:
    """Where the clip rendered from the excerpt ``midi_path`` is cached (keyed by the MIDI file's bytes)."""
    key = digest({"midi": file_hash(midi_path), "excerpt_s": excerpt_s, "renderer": renderer.identity(),
                  "v": AUDIO_VERSION})
    return cache_dir / "audio" / f"{spec.track_id}.{key}.flac"


def digest(obj: object) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
