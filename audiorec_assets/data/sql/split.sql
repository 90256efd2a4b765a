-- The Music4All-Onion split (docs/split.md). Parameters: $listens (Parquet path),
-- $train_start, $test_start, $test_end (half-open windows).
-- Inputs: temp table `catalogue(track_id)` = tracks with audio.
-- Outputs: pair_periods, train_users, train_tracks, train_pairs, eval_all, eval_pairs (warm val/test, before
-- the val/test cut), cold_tracks, cold_pairs (test_cold).

-- first-listen collapse, in one pass over the log: one row per user x track listened inside the windows, with
-- the first listen and the play count of each period (train before $test_start, eval from it on; 0 plays:
-- none in that period). Tracks outside the catalogue are found and their pairs deleted next (make_split).
CREATE OR REPLACE TEMP TABLE pair_periods AS
SELECT l.user_id, l.track_id,
       min(l.ts) FILTER (l.ts < $test_start) AS train_first_ts,
       count(*) FILTER (l.ts < $test_start)::INTEGER AS train_plays,
       min(l.ts) FILTER (l.ts >= $test_start) AS eval_first_ts,
       count(*) FILTER (l.ts >= $test_start)::INTEGER AS eval_plays
FROM read_parquet($listens) AS l
WHERE l.ts >= $train_start AND l.ts < $test_end
GROUP BY l.user_id, l.track_id;

-- listened tracks without audio (not in the catalogue), with their events in the windows
CREATE OR REPLACE TEMP TABLE listened_without_audio AS
SELECT p.track_id, sum(p.train_plays + p.eval_plays) AS events
FROM pair_periods AS p
ANTI JOIN catalogue AS c ON c.track_id = p.track_id
GROUP BY p.track_id;

-- the split is made of catalogue tracks only
DELETE FROM pair_periods WHERE track_id IN (SELECT track_id FROM listened_without_audio);

CREATE OR REPLACE TEMP VIEW train_pairs AS
SELECT user_id, track_id, train_first_ts AS first_ts, train_plays AS plays FROM pair_periods WHERE train_plays > 0;

CREATE OR REPLACE TEMP TABLE train_users AS SELECT DISTINCT user_id FROM train_pairs;

CREATE OR REPLACE TEMP TABLE train_tracks AS SELECT DISTINCT track_id FROM train_pairs;

-- evaluation pairs, before the filters (kept for the report); replayed: the pair has train plays too
CREATE OR REPLACE TEMP VIEW eval_all AS
SELECT user_id, track_id, eval_first_ts AS first_ts, eval_plays AS plays, train_plays > 0 AS replayed
FROM pair_periods WHERE eval_plays > 0;

-- new-to-user (never played in train) and warm start (user and track occur in train)
CREATE OR REPLACE TEMP TABLE eval_pairs AS
SELECT user_id, track_id, first_ts, plays
FROM eval_all
WHERE NOT replayed
  AND user_id IN (SELECT user_id FROM train_users)
  AND track_id IN (SELECT track_id FROM train_tracks);

-- cold tracks: catalogue tracks (audio present) without any train play, listened or not
CREATE OR REPLACE TEMP TABLE cold_tracks AS
SELECT DISTINCT c.track_id
FROM catalogue AS c
ANTI JOIN train_tracks AS t ON t.track_id = c.track_id;

-- test_cold: evaluation-window pairs (the whole window, both presets) of warm users on cold
-- tracks; a cold track has no train play, so every such pair is new to its user
CREATE OR REPLACE TEMP TABLE cold_pairs AS
SELECT e.user_id, e.track_id, e.first_ts, e.plays
FROM eval_all AS e
SEMI JOIN cold_tracks AS c ON c.track_id = e.track_id
WHERE e.user_id IN (SELECT user_id FROM train_users);
