"""The study plan (shared by the study sensor and `audiorec demo`) and the raw-data sensor."""

import time

import dagster as dg
import numpy as np
import pandas as pd

from audiorec_assets.defs import lineage
from audiorec_assets.defs.automation import (
    embeddings_job, ingest_job, plan_study_runs, raw_data_sensor, recommend_job, tables_job,
)
from audiorec_assets.defs.embeddings import EMBEDDINGS
from audiorec_assets.defs.evaluation import LEADERBOARD
from audiorec_assets.defs.ingest import INTERACTIONS, TRACKS
from audiorec_assets.defs.models import METRICS
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.settings import ExperimentSettings, LakePaths

SETTINGS = ExperimentSettings(encoders=["mfcc", "shuffled"], recommenders=["knn"], encode={"shuffled_base": "mfcc"})


def key(encoder, recommender="knn"):
    return str(dg.MultiPartitionKey({"encoder": encoder, "recommender": recommender}))


class FakeStudy:
    """An instance + lake stand-in: materialize() records what a real run would, files included."""

    def __init__(self, root):
        self.lake = LakePaths(root)
        self.meta: dict = {}
        self.checks: dict = {}
        self.encoder_keys = None

    def touch(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")

    def plan(self, settings=SETTINGS):
        plan = plan_study_runs(settings, self.lake, lambda k, p: self.meta.get((k, p)),
                               lambda k: self.checks.get(k, True), self.encoder_keys)
        return [(r.job_name, None if r.partition_key is None else str(r.partition_key)) for r in plan.runs], plan

    def ingest(self, settings=SETTINGS, data="v1"):
        for table in ("listens", "tracks", "interactions", "split_info"):
            self.touch(self.lake.table_dir(table) / "all.parquet")
        self.meta[(TRACKS, None)] = {lineage.FINGERPRINT: f"tracks-{data}"}
        built_from = lineage.ingest_built_from(settings, self.lake.root, lineage.raw_fingerprint(self.lake.raw),
                                               f"tracks-{data}")
        self.meta[(INTERACTIONS, None)] = {lineage.FINGERPRINT: f"inter-{data}", lineage.BUILT_FROM: built_from}

    def embed(self, encoder, built_from, valid=True):
        self.touch(self.lake.embedding_file(encoder))
        self.meta[(EMBEDDINGS, encoder)] = {lineage.FINGERPRINT: f"vec-{encoder}-{built_from}",
                                            lineage.BUILT_FROM: built_from, "vectors_valid": valid}

    def run_all(self, settings=SETTINGS, limit=20):
        """Execute plans until nothing is left; returns the jobs run, in order."""
        history = []
        for _ in range(limit):
            jobs, plan = self.plan(settings)
            if not jobs:
                return history
            for run in plan.runs:
                history.append((run.job_name, None if run.partition_key is None else str(run.partition_key)))
                built_from = run.run_key.rsplit(":", 1)[1]
                if run.job_name == ingest_job.name:
                    self.ingest(settings)
                elif run.job_name == embeddings_job.name:
                    self.embed(str(run.partition_key), built_from)
                elif run.job_name == recommend_job.name:
                    enc = run.partition_key.keys_by_dimension["encoder"]
                    rec = run.partition_key.keys_by_dimension["recommender"]
                    self.touch(self.lake.table_dir("metrics") / f"{enc}__{rec}.parquet")
                    self.meta[(METRICS, str(run.partition_key))] = {lineage.FINGERPRINT: f"m-{built_from}",
                                                                   lineage.BUILT_FROM: built_from}
                else:
                    self.touch(self.lake.table_dir("leaderboard") / "all.parquet")
                    self.meta[(LEADERBOARD, None)] = {lineage.BUILT_FROM: built_from}
        raise AssertionError("the plan did not converge")


def test_plan_walks_the_graph_layer_by_layer(tmp_path):
    study = FakeStudy(tmp_path)
    assert study.run_all() == [
        (ingest_job.name, None),
        (embeddings_job.name, "mfcc"),  # the control waits for its base encoder
        (embeddings_job.name, "shuffled"), (recommend_job.name, key("mfcc")),
        (recommend_job.name, key("shuffled")),
        (tables_job.name, None),
    ]
    assert study.run_all() == [], "nothing is stale after a full run"


def test_only_what_changed_reruns(tmp_path):
    settings = SETTINGS.with_overrides({"recommenders": ["knn", "shallow"]})
    study = FakeStudy(tmp_path)
    study.run_all(settings)
    # one recommender's settings: its partitions and the tables, nothing else
    tuned = settings.with_overrides({"shallow": {"max_epochs": 5}})
    assert study.run_all(tuned) == [(recommend_job.name, key("mfcc", "shallow")),
                                    (recommend_job.name, key("shuffled", "shallow")), (tables_job.name, None)]
    # K changes every partition's metrics
    assert len(study.run_all(tuned.with_overrides({"ks": [5, 10]}))) == 5
    tuned = tuned.with_overrides({"ks": [5, 10]})
    # re-ingesting identical data changes nothing; different data reruns everything downstream
    study.ingest(tuned, data="v1")
    assert study.run_all(tuned) == []
    study.ingest(tuned, data="v2")
    assert [job for job, _ in study.run_all(tuned)] == [embeddings_job.name, embeddings_job.name] + \
        [recommend_job.name] * 4 + [tables_job.name]
    # a split setting: ingest first
    assert study.plan(tuned.with_overrides({"preset": "paper_code"}))[0] == [(ingest_job.name, None)]


def test_a_change_under_raw_replans_the_ingest(tmp_path):
    study = FakeStudy(tmp_path)
    study.run_all()
    (study.lake.raw / "audio").mkdir(parents=True)
    (study.lake.raw / "audio" / "new.flac").write_bytes(b"x")
    assert study.plan()[0] == [(ingest_job.name, None)]


def test_shuffled_listed_before_its_base_still_runs(tmp_path):
    study = FakeStudy(tmp_path)
    settings = SETTINGS.with_overrides({"encoders": ["shuffled", "mfcc"]})
    history = study.run_all(settings)
    assert history.index((embeddings_job.name, "mfcc")) < history.index((embeddings_job.name, "shuffled"))
    assert (recommend_job.name, key("shuffled")) in history


def test_checks_in_progress_and_unknown_partitions_wait(tmp_path):
    study = FakeStudy(tmp_path)
    study.run_all()
    study.checks[TRACKS] = None  # the check of a running ingest
    jobs, plan = study.plan()
    assert jobs == [] and "have not finished" in plan.waiting[0]
    study.checks[TRACKS] = True
    study.lake.embeddings.mkdir(parents=True, exist_ok=True)
    np.save(study.lake.embedding_file("mine"), np.ones((3, 2), np.float32))
    study.encoder_keys = {"mfcc", "shuffled"}
    jobs, plan = study.plan(SETTINGS.with_overrides({"encoders": ["mfcc", "shuffled", "mine"]}))
    assert (embeddings_job.name, "mine") not in jobs and any("reload the code location" in w for w in plan.waiting)


def test_missing_files_failed_checks_and_invalid_vectors_hold_the_plan(tmp_path):
    study = FakeStudy(tmp_path)
    study.run_all()
    (study.lake.table_dir("metrics") / "mfcc__knn.parquet").unlink()
    assert study.plan()[0] == [(recommend_job.name, key("mfcc"))]
    study.run_all()
    study.checks[INTERACTIONS] = False
    jobs, plan = study.plan()
    assert jobs == [] and "failed its data-quality check" in plan.waiting[0]
    study.checks[INTERACTIONS] = True
    built = study.meta[(EMBEDDINGS, "mfcc")][lineage.BUILT_FROM]
    study.embed("mfcc", built, valid=False)
    jobs, plan = study.plan()
    assert jobs == [] and any("embeddings[mfcc] failed its check" in w for w in plan.waiting)


def test_unknown_encoder_is_reported_not_planned(tmp_path):
    study = FakeStudy(tmp_path)
    study.ingest()
    jobs, plan = study.plan(ExperimentSettings(encoders=["mine"], recommenders=["knn"]))
    assert jobs == [] and "neither built in nor a file" in plan.waiting[0]
    study.lake.embeddings.mkdir(parents=True, exist_ok=True)
    np.save(study.lake.embedding_file("mine"), np.ones((3, 2), np.float32))
    assert study.plan(ExperimentSettings(encoders=["mine"], recommenders=["knn"]))[0] == [(embeddings_job.name, "mine")]


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


def test_table_fingerprint_ignores_row_order_and_sees_content(tmp_path):
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    frame.to_parquet(tmp_path / "one.parquet")
    frame.iloc[::-1].to_parquet(tmp_path / "two.parquet")
    frame.assign(a=[1, 2, 4]).to_parquet(tmp_path / "three.parquet")
    fp = lineage.table_fingerprint
    assert fp(tmp_path / "one.parquet") == fp(tmp_path / "two.parquet") != fp(tmp_path / "three.parquet")


def test_the_lake_resource_device_and_run_overrides_layer_over_the_file(lake):
    (lake / "experiment.yaml").write_text("seed: 3\nencode: {device: cpu, batch_size: 4}\n")
    settings = LakeResource(root=str(lake), device="auto", overrides_yaml="{seed: 9}").settings()
    assert (settings.encode.device, settings.encode.batch_size, settings.seed) == ("auto", 4, 9)
    assert LakeResource(root=str(lake)).settings().encode.device == "cpu"


def test_every_shuffled_twin_waits_for_its_own_base(tmp_path):
    study = FakeStudy(tmp_path)
    settings = SETTINGS.with_overrides({"encoders": ["shuffled_random", "shuffled", "random", "mfcc"]})
    history = study.run_all(settings)
    embedded = [p for job, p in history if job == embeddings_job.name]
    assert embedded.index("random") < embedded.index("shuffled_random")
    assert embedded.index("mfcc") < embedded.index("shuffled")  # encode.shuffled_base = mfcc
    assert (recommend_job.name, key("shuffled_random")) in history
