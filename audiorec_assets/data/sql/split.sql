-- The Music4All-Onion split (README.md, "The split"). Parameters: $listens (Parquet path),
-- $train_start, $test_start, $test_end (half-open windows).
-- Inputs: temp table `catalogue(track_id)` = tracks with audio.
-- Outputs: train_pairs, eval_pairs (warm val/test, before the val/test cut), cold_tracks, cold_pairs (test_cold).

-- events inside the windows, on catalogue tracks
CREATE OR REPLACE TEMP TABLE windowed AS
SELECT l.user_id, l.track_id, l.ts,
       CASE WHEN l.ts < $test_start THEN 'train' ELSE 'eval' END AS period
FROM read_parquet($listens) AS l
SEMI JOIN catalogue AS c ON c.track_id = l.track_id
WHERE l.ts >= $train_start AND l.ts < $test_end;

-- first-listen collapse: one row per user x track x period, with the play count
CREATE OR REPLACE TEMP TABLE pairs AS
SELECT user_id, track_id, period, min(ts) AS first_ts, count(*)::INTEGER AS plays
FROM windowed
GROUP BY user_id, track_id, period;

CREATE OR REPLACE TEMP TABLE train_pairs AS
SELECT user_id, track_id, first_ts, plays FROM pairs WHERE period = 'train';

-- evaluation pairs, before the filters (kept for the report)
CREATE OR REPLACE TEMP TABLE eval_all AS
SELECT user_id, track_id, first_ts, plays FROM pairs WHERE period = 'eval';

-- new-to-user (never played in train) and warm start (user and track occur in train)
CREATE OR REPLACE TEMP TABLE eval_pairs AS
SELECT e.*
FROM eval_all AS e
ANTI JOIN train_pairs AS t ON t.user_id = e.user_id AND t.track_id = e.track_id
WHERE e.user_id IN (SELECT DISTINCT user_id FROM train_pairs)
  AND e.track_id IN (SELECT DISTINCT track_id FROM train_pairs);

-- cold tracks: catalogue tracks (audio present) without any train play, listened or not
CREATE OR REPLACE TEMP TABLE cold_tracks AS
SELECT DISTINCT c.track_id
FROM catalogue AS c
ANTI JOIN train_pairs AS t ON t.track_id = c.track_id;

-- test_cold: evaluation-window pairs (the whole window, both presets) of warm users on cold
-- tracks; a cold track has no train play, so every such pair is new to its user
CREATE OR REPLACE TEMP TABLE cold_pairs AS
SELECT e.*
FROM eval_all AS e
SEMI JOIN cold_tracks AS c ON c.track_id = e.track_id
WHERE e.user_id IN (SELECT DISTINCT user_id FROM train_pairs);
