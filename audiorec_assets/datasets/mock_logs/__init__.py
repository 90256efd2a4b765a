"""Mock listening logs for a catalogue that has none (the guide's "Extending to Your Dataset", step 3).

``mock_listens(tracks, config)`` turns a catalogue (``track_id`` plus metadata columns, as in ``tracks.csv``) into
a listening log ``user_id, track_id, timestamp``; ``write_mock_logs(raw_dir, config)`` does it for a lake's
``raw/`` folder and marks the log synthetic, so the ingest labels every table built from it. What the listeners
do (all randomness from ``MockLogConfig.seed``): docs/datasets.md, "Mock listening logs". None of it is real
behaviour: the log measures what an encoder recovers of these assumptions.

:mod:`.config` (:class:`MockLogConfig`), :mod:`.tastes` (each track's tastes and each user's), :mod:`.index` (the
catalogue as the simulator walks it), :mod:`.sessions` (releases, popularity, session times, picks, repeats),
:mod:`.simulation` (the whole log from one seed), :mod:`.catalogue` (a lake's ``raw/`` folder), :mod:`.writer`
(:func:`write_mock_logs`: the log, its marker and a :class:`MockLogReport`).
"""

from audiorec_assets.datasets.mock_logs.catalogue import read_catalogue
from audiorec_assets.datasets.mock_logs.config import MockLogConfig, default_sessions_per_month
from audiorec_assets.datasets.mock_logs.index import AUTO_SEQUENCE_COLUMNS
from audiorec_assets.datasets.mock_logs.simulation import MockLog, mock_listens, mock_model
from audiorec_assets.datasets.mock_logs.tastes import AUTO_TASTE_COLUMNS
from audiorec_assets.datasets.mock_logs.writer import MOCK_LOG_FILE, MOCK_LOG_VERSION, MockLogReport, write_mock_logs

__all__ = ["AUTO_SEQUENCE_COLUMNS", "AUTO_TASTE_COLUMNS", "MOCK_LOG_FILE", "MOCK_LOG_VERSION", "MockLog",
           "MockLogConfig", "MockLogReport", "default_sessions_per_month", "mock_listens", "mock_model",
           "read_catalogue", "write_mock_logs"]
