"""Mock listening logs for a catalogue that has none (the guide's "Extending to Your Dataset", step 3).

``mock_listens(tracks, config)`` turns a catalogue (``track_id`` plus metadata columns, as in
``tracks.csv``) into a listening log ``user_id, track_id, timestamp`` that the study's split can use;
``write_mock_logs(raw_dir, config)`` does it for a lake's ``raw/`` folder and marks the log synthetic
(:data:`~audiorec_assets.data.synthetic.SYNTHETIC_MARKER`), so the ingest labels every table built from
it (``audiorec.split_info.synthetic``).

The listeners (all randomness from ``MockLogConfig.seed``):

* **tastes** — each user prefers 1 to ``values_per_taste`` values of every taste column (metadata
  columns such as composer or instrumentation; values with more tracks find more fans) and/or of
  the audio clusters (k-means of given item vectors; random clusters of works/albums when there is
  nothing else). A share ``taste_strength`` of the picks start from one preferred value (tracks that
  also match the user's other tastes weigh :data:`TASTE_BONUS` × more); the others from the whole
  catalogue by popularity;
* **popularity** — Zipf-like (exponent ``popularity_skew``) over works/albums, with per-track noise;
* **sessions** — evening-heavy, a little more frequent as the log goes on (``sessions_per_month``;
  by default fewer for a small catalogue, so users still discover tracks in the evaluation month);
  a session plays a work or album (``sequence_column``) in order, mostly from its first track, then
  moves on to another pick; without a sequence column every track is a pick of its own;
* **repeat listens** — a share ``repeat_prob`` of the picks return to a track the user played
  (weighted by plays); new picks weigh tracks already heard :data:`NOVELTY` × less;
* **releases** — ``late_share`` of the tracks (whole works/albums) come out in the log's last
  month, which the derived split evaluates: nobody plays them before, so they are the cold tracks
  of ``test_cold``; ``release_share`` more come out at random times before it (new arrivals that
  the train window sees). Fresh releases are boosted for a couple of weeks;
* **history** — every user has at least ``min_train_sessions`` sessions inside the train window of
  the derived split (the year before the last month), so every user is warm; a fifth of the users
  join later than the start.

None of it is real behaviour: the log measures what an encoder recovers of these assumptions.

* :mod:`.config` — :class:`MockLogConfig` and its validation;
* :mod:`.tastes` — each track's tastes (metadata columns, audio or random clusters) and each user's;
* :mod:`.index` — the catalogue as the simulator walks it (checked ids, works / albums in play order);
* :mod:`.sessions` — releases, popularity, session times, picks, repeats, time stamps;
* :mod:`.simulation` — :func:`mock_model` / :func:`mock_listens`, the whole log from one seed;
* :mod:`.catalogue` — the catalogue of a lake's ``raw/`` folder;
* :mod:`.writer` — :func:`write_mock_logs`: the log, its marker and a :class:`MockLogReport`.
"""

from audiorec_assets.datasets.mock_logs.catalogue import read_catalogue
from audiorec_assets.datasets.mock_logs.config import MockLogConfig, default_sessions_per_month
from audiorec_assets.datasets.mock_logs.index import AUTO_SEQUENCE_COLUMNS
from audiorec_assets.datasets.mock_logs.simulation import MockLog, mock_listens, mock_model
from audiorec_assets.datasets.mock_logs.tastes import AUTO_TASTE_COLUMNS
from audiorec_assets.datasets.mock_logs.writer import MOCK_LOG_FILE, MOCK_LOG_VERSION, MockLogReport, write_mock_logs

__all__ = [
    "AUTO_SEQUENCE_COLUMNS",
    "AUTO_TASTE_COLUMNS",
    "MOCK_LOG_FILE",
    "MOCK_LOG_VERSION",
    "MockLog",
    "MockLogConfig",
    "MockLogReport",
    "default_sessions_per_month",
    "mock_listens",
    "mock_model",
    "read_catalogue",
    "write_mock_logs",
]
