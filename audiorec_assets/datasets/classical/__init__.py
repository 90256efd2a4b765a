"""A real-music catalogue: excerpts of works from the music21 corpus, rendered with FluidSynth (no Dagster).

``build_classical_raw(raw_dir, cache_dir)`` writes ``raw/audio/<track_id>.flac`` and ``raw/tracks.csv`` (the
"own catalogue" layout, docs/lake.md "Input layouts"); the listening log comes from ``audiorec mock-logs``.
Needs music21 (``pip install 'audiorec[classical]'``) and the Debian packages ``fluidsynth`` and
``fluid-soundfont-gm``.

* :mod:`.catalogue` — which works: every work of the collections, a capped round-robin selection;
  :mod:`.collections` — which collections of the corpus, with their composers and eras
  (:mod:`.collection_works`: how a collection's files become works); :mod:`.bundle` — the corpus's metadata;
* :mod:`.excerpt` — score → opening excerpt as MIDI, tempo, key (runs in :mod:`.worker`, a killable process);
  :mod:`.cut` — the measures covering the excerpt, repeats, the tempo map; :mod:`.keys` — the key;
* :mod:`.instruments` — GM programs and channels per part;
* :mod:`.render` — FluidSynth → a fixed-length, loudness-normalised mono clip;
* :mod:`.build` — the build: threads, timeouts, skips, the report; :mod:`.cache` — its cache keys and
  folders; :mod:`.publish` — publishing into ``raw/`` (and refusing a ``raw/`` that is not the builder's).
"""

from audiorec_assets.datasets.classical.build import ClassicalReport, build_classical_raw
from audiorec_assets.datasets.classical.cache import default_cache_dir
from audiorec_assets.datasets.classical.publish import TRACK_COLUMNS, ForeignRawError, SkippedWork
from audiorec_assets.datasets.classical.render import RendererMissing, find_renderer
from audiorec_assets.datasets.classical.works import ClassicalError, WorkSpec, file_work, slug

__all__ = [
    "TRACK_COLUMNS",
    "ClassicalError",
    "ClassicalReport",
    "ForeignRawError",
    "RendererMissing",
    "SkippedWork",
    "WorkSpec",
    "build_classical_raw",
    "default_cache_dir",
    "file_work",
    "find_renderer",
    "slug",
]
