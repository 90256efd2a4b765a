"""The study plan (shared by the study sensor and `audiorec demo`) and the raw-data sensor."""

import time

import dagster as dg

from audiorec_assets.defs.automation import (
    embeddings_job, ingest_job, plan_study_runs, raw_data_sensor, recommend_job, tables_job,
)
from audiorec_assets.defs.embeddings import EMBEDDINGS
from audiorec_assets.defs.evaluation import LEADERBOARD
from audiorec_assets.defs.ingest import INTERACTIONS, TRACKS
from audiorec_assets.defs.models import METRICS
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.settings import ExperimentSettings

SETTINGS = ExperimentSettings(encoders=["mfcc", "shuffled"], recommenders=["knn"],
                              encode={"shuffled_base": "mfcc"})


def key(encoder, recommender="knn"):
    return dg.MultiPartitionKey({"encoder": encoder, "recommender": recommender})


def planner(state):
    return lambda asset, partition: state.get((asset, None if partition is None else str(partition)))


def jobs(planned):
    return [(p.job_name, None if p.partition_key is None else str(p.partition_key)) for p in planned]


def test_plan_walks_the_graph_layer_by_layer():
    state = {}
    assert jobs(plan_study_runs(SETTINGS, planner(state))) == [(ingest_job.name, None)]
    state[(TRACKS, None)] = state[(INTERACTIONS, None)] = 10.0
    # the control waits for its base encoder
    assert jobs(plan_study_runs(SETTINGS, planner(state))) == [(embeddings_job.name, "mfcc")]
    state[(EMBEDDINGS, "mfcc")] = 11.0
    assert jobs(plan_study_runs(SETTINGS, planner(state))) == [(embeddings_job.name, "shuffled"),
                                                               (recommend_job.name, str(key("mfcc")))]
    state[(EMBEDDINGS, "shuffled")] = 12.0
    state[(METRICS, str(key("mfcc")))] = 13.0
    assert jobs(plan_study_runs(SETTINGS, planner(state))) == [(recommend_job.name, str(key("shuffled")))]
    state[(METRICS, str(key("shuffled")))] = 14.0
    assert jobs(plan_study_runs(SETTINGS, planner(state))) == [(tables_job.name, None)]
    state[(LEADERBOARD, None)] = 15.0
    assert plan_study_runs(SETTINGS, planner(state)) == []


def test_new_data_makes_everything_downstream_stale_and_run_keys_change():
    state = {(TRACKS, None): 10.0, (INTERACTIONS, None): 10.0, (EMBEDDINGS, "mfcc"): 11.0,
             (EMBEDDINGS, "shuffled"): 12.0, (METRICS, str(key("mfcc"))): 13.0,
             (METRICS, str(key("shuffled"))): 14.0, (LEADERBOARD, None): 15.0}
    state[(TRACKS, None)] = state[(INTERACTIONS, None)] = 20.0
    first = plan_study_runs(SETTINGS, planner(state))
    assert jobs(first) == [(embeddings_job.name, "mfcc")]
    state[(TRACKS, None)] = 30.0
    assert plan_study_runs(SETTINGS, planner(state))[0].run_key != first[0].run_key


def test_raw_data_sensor_fires_once_per_change(lake):
    raw = lake / "raw"
    raw.mkdir()
    (raw / "listens.csv").write_text("user_id,track_id,timestamp\n")
    resource = LakeResource(root=str(lake))
    first = raw_data_sensor(dg.build_sensor_context(cursor=None, resources={"lake": resource}))
    assert len(first.run_requests) == 1
    again = raw_data_sensor(dg.build_sensor_context(cursor=first.cursor, resources={"lake": resource}))
    assert isinstance(again, dg.SkipReason)
    time.sleep(0.01)
    (raw / "listens.csv").write_text("user_id,track_id,timestamp\nu,t,2020-01-01 00:00:00\n")
    changed = raw_data_sensor(dg.build_sensor_context(cursor=first.cursor, resources={"lake": resource}))
    assert len(changed.run_requests) == 1 and changed.cursor != first.cursor
