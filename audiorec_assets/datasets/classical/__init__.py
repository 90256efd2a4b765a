"""A real-music catalogue: excerpts of works from the music21 corpus, rendered with FluidSynth (no Dagster).

``build_classical_raw(raw_dir, cache_dir)`` writes ``raw/audio/<track_id>.flac`` and ``raw/tracks.csv`` (the
"own catalogue" layout); the listening log comes from ``audiorec mock-logs``. Requirements, what it renders, time:
docs/datasets.md, "The classical catalogue".

* :mod:`.catalogue` — which works (:mod:`.collections`, :mod:`.collection_works`; the corpus's metadata:
  :mod:`.bundle`); :mod:`.works` — one work;
* :mod:`.excerpt` — score → opening excerpt as MIDI (in :mod:`.worker`, a killable process; :mod:`.cut`,
  :mod:`.keys`, :mod:`.instruments`); :mod:`.render` — FluidSynth → the clip;
* :mod:`.build` — the build; :mod:`.cache` — its cache; :mod:`.publish` — publishing into ``raw/``.
"""

from audiorec_assets.datasets.classical.build import ClassicalReport, build_classical_raw
from audiorec_assets.datasets.classical.cache import default_cache_dir
from audiorec_assets.datasets.classical.publish import TRACK_COLUMNS, ForeignRawError, SkippedWork
from audiorec_assets.datasets.classical.render import RendererMissing, find_renderer
from audiorec_assets.datasets.classical.works import ClassicalError, WorkSpec, file_work, slug

__all__ = ["TRACK_COLUMNS", "ClassicalError", "ClassicalReport", "ForeignRawError", "RendererMissing", "SkippedWork",
           "WorkSpec", "build_classical_raw", "default_cache_dir", "file_work", "find_renderer", "slug"]
