"""Dagster decides what runs: data versions, automation conditions evaluated with Dagster's own
``evaluate_automation_conditions`` (no sleeping, no own planner), partitions that follow the lake,
one settings snapshot per run."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import soundfile as sf

from audiorec_assets.definitions import build_definitions
from audiorec_assets.defs import automation
from audiorec_assets.defs.execute import bring_up_to_date, execute, requested_runs, observe_sources
from audiorec_assets.defs.partitions import ENCODERS, lake_members, sync_partitions
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.settings import LakePaths, load_settings
from audiorec_assets_tests.helpers import write_own
from audiorec_assets_tests.test_pipeline import small_log

SETTINGS = "encoders: [mfcc, random]\nrecommenders: [knn, popularity]\nencode: {shuffled_base: mfcc}\nks: [5, 10]\ntop_n: 30\n"


@pytest.fixture
def study(lake, tmp_path):
    """A small own-catalogue lake, its definitions and a persistent instance with the lake's partitions."""
    write_own(lake / "raw", small_log(n_users=24, n_tracks=16))
    (lake / "experiment.yaml").write_text(SETTINGS)
    (tmp_path / "home").mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        sync_partitions(instance, lake_members(LakePaths(lake), load_settings(lake)))
        yield lake, build_definitions(lake), instance


def bring(lake: Path, defs: dg.Definitions, instance: dg.DagsterInstance) -> list[str]:
    """Run what Dagster's automation conditions request until nothing is; the runs, as 'asset[partition]'."""
    runs = bring_up_to_date(defs, instance, lake, lambda planned: execute(defs, instance, planned).success)
    assert all(ok for _, ok in runs), [p.label for p, ok in runs if not ok]
    return [f"{key.path[-1]}[{p.partition_key or ''}]" for p, _ in runs for key in p.keys]


@pytest.mark.slow  # ≈ 1.5 min: fills the study, then reruns after an audio change
def test_fills_the_study_then_reruns_exactly_what_changed(study):
    lake, defs, instance = study
    first = bring(lake, defs, instance)
    for step in ("listens[]", "embeddings[mfcc]", "embeddings[random]", "models[mfcc|knn]", "models[random|knn]",
                 "reference_models[popularity]", "metrics[mfcc|knn]", "leaderboard[]", "comparison_cold[]"):
        assert step in first
    # only the tables over every cell may run twice: early, from the metrics that exist while cells are still
    # queued, and again when the cells' metrics come (automation.across_cells)
    tables = {f"{k.path[-1]}[]" for k in dg.AssetSelection.groups("evaluation").resolve(defs.resolve_asset_graph())}
    assert not [s for s in set(first) if first.count(s) > 1 and s not in tables], "a step ran twice"
    assert bring(lake, defs, instance) == []  # up to date: nothing requested

    # identical data ingested again (a user clicking "Materialize" on the ingest): nothing downstream runs
    assert execute(defs, instance, requested_ingest(defs)).success
    assert bring(lake, defs, instance) == []

    # one audio file replaced by other sound of the same length: that encoder's chain, never random's
    audio = sorted((lake / "raw" / "audio").iterdir())[0]
    wave, rate = sf.read(audio)
    sf.write(audio, wave[::-1] * 0.5, rate)
    changed = bring(lake, defs, instance)
    assert {"embeddings[mfcc]", "models[mfcc|knn]", "metrics[mfcc|knn]", "leaderboard[]"} <= set(changed)
    # random's vectors are checked again (every embeddings partition reads all of audio_vectors), unchanged: its
    # cell and the references do not run
    rechecked = ("embeddings[random]", "encoders[random]")
    assert not [s for s in changed if ("random" in s or "popularity" in s) and s not in rechecked], changed
    assert bring(lake, defs, instance) == []

    # a setting of the evaluation only: the metrics (and the tables), no training, no encoding
    (lake / "experiment.yaml").write_text(SETTINGS.replace("ks: [5, 10]", "ks: [5, 10, 20]"))
    changed = bring(lake, defs, instance)
    assert {"metrics[mfcc|knn]", "metrics[random|knn]", "reference_metrics[popularity]", "leaderboard[]"} <= set(changed)
    assert not [s for s in changed if s.startswith(("models", "reference_models", "embeddings", "listens"))]


def requested_ingest(defs):
    from audiorec_assets.defs.execute import PlannedRun
    from audiorec_assets.defs.ingest import INTERACTIONS, LISTENS, SPLIT_INFO, TRACKS

    return PlannedRun("ingest_job", (LISTENS, TRACKS, INTERACTIONS, SPLIT_INFO), None)


def test_a_model_setting_reruns_only_that_recommender(study):
    lake, defs, instance = study
    (lake / "experiment.yaml").write_text(SETTINGS.replace("[knn, popularity]", "[knn, popularity, als]"))
    sync_partitions(instance, lake_members(LakePaths(lake), load_settings(lake)))
    bring(lake, defs, instance)
    (lake / "experiment.yaml").write_text(SETTINGS.replace("[knn, popularity]", "[knn, popularity, als]")
                                          + "als: {factors: 8}\n")
    changed = bring(lake, defs, instance)
    assert "reference_models[als]" in changed
    assert not [s for s in changed if s.startswith(("models", "embeddings")) or "popularity" in s], changed


@pytest.mark.slow  # ≈ 45 s: two real automation rounds around a failed check
def test_a_failed_check_holds_the_models_and_a_fixed_file_flows_through(study):
    lake, defs, instance = study
    bring(lake, defs, instance)
    mine = lake / "embeddings" / "mine.npy"
    np.save(mine, np.full((16, 4), np.nan, dtype=np.float32))  # NaN everywhere: fails the embeddings check
    sync_partitions(instance, lake_members(LakePaths(lake), load_settings(lake)))
    runs = bring_up_to_date(defs, instance, lake, lambda p: execute(defs, instance, p).success)
    labels = [p.label for p, _ in runs]
    assert any("embeddings" in label and "[mine]" in label for label in labels)
    assert not any("[mine|knn]" in label for label in labels), "a model trained on vectors that failed the check"
    assert bring(lake, defs, instance) == []  # a failed check is not retried until its input changes

    np.save(mine, np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32))
    fixed = bring(lake, defs, instance)
    assert "embeddings[mine]" in fixed and "models[mine|knn]" in fixed


def test_partitions_follow_the_lake_without_a_reload(study):
    lake, defs, instance = study
    (lake / "embeddings").mkdir(exist_ok=True)
    np.save(lake / "embeddings" / "mine.npy", np.ones((16, 4), dtype=np.float32))
    (lake / "experiment.yaml").write_text(SETTINGS.replace("[mfcc, random]", "[mfcc, random, mert, theirs]"))
    with dg.build_sensor_context(instance=instance, resources={"lake": LakeResource(root=str(lake))}) as context:
        result = automation.lake_partitions_sensor(context)
    added = {(r.partitions_def_name, k) for r in result.dynamic_partitions_requests
             if isinstance(r, dg.AddDynamicPartitionsRequest) for k in r.partition_keys}
    assert ("encoder", "mine") in added  # the dropped-in file
    assert ("encoder", "mert") not in added and ("encoder", "theirs") not in added  # no weights / no file
    wanted = lake_members(LakePaths(lake), load_settings(lake))
    assert "config.json" in wanted.left_out["mert"] or "weights" in wanted.left_out["mert"].lower()
    assert "theirs.npy does not exist" in wanted.left_out["theirs"]

    # removed from the settings: the partition goes (its history stays in the instance)
    (lake / "experiment.yaml").write_text(SETTINGS.replace("[mfcc, random]", "[mfcc]"))
    with dg.build_sensor_context(instance=instance, resources={"lake": LakeResource(root=str(lake))}) as context:
        result = automation.lake_partitions_sensor(context)
    deleted = {k for r in result.dynamic_partitions_requests if isinstance(r, dg.DeleteDynamicPartitionsRequest)
               for k in r.partition_keys}
    assert "random" in deleted


def test_automation_is_on_by_default_and_can_be_switched_off(monkeypatch):
    assert automation.automation_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert automation.lake_partitions_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert automation.observe_inputs_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    monkeypatch.setenv(automation.AUTOMATION_ENV, "off")
    assert automation.sensor_status() == dg.DefaultSensorStatus.STOPPED
    defs = build_definitions("/nonexistent-lake")  # nothing is read from the lake at load time
    assert {s.name for s in defs.sensors} == {"audiorec_automation", "lake_partitions_sensor",
                                              "observe_inputs_sensor", "lake_health_sensor"}


def test_every_asset_has_a_condition_and_a_code_version_and_every_source_is_observed(study):
    lake, defs, instance = study
    sources = {d.key for d in defs.assets if isinstance(d, dg.SourceAsset)}
    for definition in defs.assets:
        if isinstance(definition, dg.AssetsDefinition) and definition.is_materializable:
            for spec in definition.specs:
                assert spec.automation_condition is not None and spec.code_version, spec.key
        elif isinstance(definition, dg.AssetsDefinition):
            sources |= set(definition.keys)
    # the observe sensor reports every source (partitioned ones per partition), and only what changed
    def observe():
        with dg.build_sensor_context(instance=instance, resources={"lake": LakeResource(root=str(lake))}) as context:
            return automation.observe_inputs_sensor(context)

    first = observe()
    assert {e.asset_key for e in first.asset_events} == sources
    assert {e.partition for e in first.asset_events if e.asset_key.path[-1] == "encoder_inputs"} == {"mfcc"}
    assert {e.partition for e in first.asset_events if e.asset_key.path[-1] == "embedding_inputs"} == {"mfcc", "random"}
    for event in first.asset_events:
        instance.report_runless_asset_event(event)
    assert observe().skip_reason is not None  # nothing changed since
    (lake / "experiment.yaml").write_text(SETTINGS.replace("top_n: 30", "top_n: 40"))
    changed = {e.asset_key.to_user_string() for e in observe().asset_events}
    assert changed == {"audiorec/settings/recommend", "audiorec/settings/evaluate"}


def test_one_settings_snapshot_per_run(lake, tmp_path):
    (lake / "experiment.yaml").write_text("top_n: 60\n")
    seen = []

    @dg.asset
    def first(lake: LakeResource) -> None:
        seen.append(lake.settings().top_n)
        (Path(lake.root) / "experiment.yaml").write_text("top_n: 99\n")  # edited while the run goes on

    @dg.asset(deps=[first])
    def second(lake: LakeResource) -> None:
        seen.append(lake.settings().top_n)

    (tmp_path / "home").mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        assert dg.materialize([first, second], resources={"lake": LakeResource(root=str(lake))},
                              instance=instance).success
    assert seen == [60, 60]
    assert LakeResource(root=str(lake)).settings().top_n == 99  # the next run sees the edit


def test_launchpad_overrides_are_typed_and_name_the_field(lake):
    @dg.asset
    def reads(lake: LakeResource) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"max_epochs": lake.settings().shallow.max_epochs})

    resources = {"lake": LakeResource(root=str(lake))}
    ok = dg.materialize([reads], resources=resources, run_config={
        "resources": {"lake": {"config": {"overrides": {"shallow": {"max_epochs": 3}, "preset": "paper_code"}}}}})
    assert ok.asset_materializations_for_node("reads")[0].metadata["max_epochs"].value == 3
    with pytest.raises(dg.DagsterInvalidConfigError, match="max_epoch"):
        dg.materialize([reads], resources=resources, run_config={
            "resources": {"lake": {"config": {"overrides": {"shallow": {"max_epoch": 3}}}}}})
    with pytest.raises(dg.DagsterInvalidConfigError, match="preset"):
        dg.materialize([reads], resources=resources, run_config={
            "resources": {"lake": {"config": {"overrides": {"preset": "papercode"}}}}})


def test_no_dagster_internals_and_no_own_planner():
    root = Path(__file__).resolve().parents[1]
    files = [*root.joinpath("audiorec_assets").rglob("*.py"), *root.joinpath("audiorec_assets_tests").rglob("*.py"),
             *root.joinpath("bench").rglob("*.py")]
    internal = re.compile(r"^\s*(from|import)\s+dagster\._", re.MULTILINE)
    # the only places that need Dagster's internals, each saying why in its docstring: the stale status the UI
    # shows (no public API), an executor built on dagster-dask's, and validating instance settings offline
    allowed = {"audiorec_assets/defs/status.py", "audiorec_assets/defs/dask_executor.py",
               "audiorec_assets_tests/test_cluster.py"}
    using = {str(f.relative_to(root)) for f in files if internal.search(f.read_text())}
    assert using == allowed
    assert not root.joinpath("audiorec_assets", "defs", "lineage.py").exists()
    assert "plan_study_runs" not in root.joinpath("audiorec_assets", "defs", "automation.py").read_text()


def test_requested_runs_group_one_job_and_partition_upstream_first(study):
    lake, defs, instance = study
    observe_sources(lake, instance)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    runs = requested_runs(defs, result)
    assert [r.job for r in runs] == ["ingest_job"]  # nothing else can run before the ingest exists
    assert set(ENCODERS.get_partition_keys(dynamic_partitions_store=instance)) == {"mfcc", "random"}


def test_settings_snapshots_of_finished_and_unknown_old_runs_are_swept(tmp_path):
    import os
    import time

    from audiorec_assets.defs.health import UNKNOWN_RUN_SNAPSHOT_DAYS, sweep_run_snapshots

    paths = LakePaths(tmp_path / "lake")
    for run_id in ("over", "going", "unknown-new", "unknown-old", "mine"):
        (paths.staging / f"run-{run_id}").mkdir(parents=True)
    old = time.time() - (UNKNOWN_RUN_SNAPSHOT_DAYS + 1) * 86400
    os.utime(paths.staging / "run-unknown-old", (old, old))
    states = {"over": False, "going": True, "mine": True}
    removed = sweep_run_snapshots(paths, lambda run_id: states.get(run_id), keep="mine")
    assert sorted(p.name for p in removed) == ["run-over", "run-unknown-old"]
    assert sorted(p.name for p in paths.staging.iterdir()) == ["run-going", "run-mine", "run-unknown-new"]


def test_the_torch_pool_holds_encoding_and_training_only():
    """Encoding and training take the one-at-a-time ``torch`` pool; scoring and metrics of other cells do not wait
    for it."""
    from audiorec_assets.definitions import build_definitions
    from audiorec_assets.defs.resources import TORCH_POOL

    assets = [a for a in build_definitions().assets if isinstance(a, dg.AssetsDefinition) and a.is_executable]
    pooled = {a.node_def.name for a in assets if a.node_def.pool == TORCH_POOL}
    assert pooled == {"audio_vectors", "models", "reference_models"}
    graph = build_definitions().resolve_asset_graph()
    evaluation = {k.path[-1] for a in assets if a.node_def.name == "evaluation" for k in a.keys}
    assert evaluation == {"recommendations", "metrics", "user_metrics"}
    assert dg.AssetKey(["audiorec", "models"]) in graph.get(dg.AssetKey(["audiorec", "recommendations"])).parent_keys


def test_filling_a_study_runs_each_twin_once_after_its_base_encoding_and_never_retries(study):
    """The twins' dependency on their base is an edge of the graph: the conditions hold them until the base's
    encoding is written, so no run fails, waits or is retried, and none runs twice."""
    from audiorec_assets.defs.embeddings import EMBEDDINGS

    lake, _, instance = study
    (lake / "experiment.yaml").write_text(SETTINGS.replace("[mfcc, random]", "[shuffled_mfcc, shuffled, mfcc]"))
    sync_partitions(instance, lake_members(LakePaths(lake), load_settings(lake)))
    defs = build_definitions(lake)
    vectors_only = {"listens", "tracks", "interactions", "split_info", "audio_vectors", "embeddings", "encoders"}
    runs = bring_up_to_date(defs, instance, lake, lambda p: execute(defs, instance, p).success,
                            scope=lambda key, partition: key.path[-1] in vectors_only)
    labels = [p.label for p, ok in runs if ok]
    assert len(labels) == len(runs) and len(labels) == len(set(labels))
    encoded = labels.index("audio_vectors[mfcc]")
    for twin in ("shuffled_mfcc", "shuffled"):
        assert labels.index(f"embeddings, encoders[{twin}]") > encoded
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=EMBEDDINGS, asset_partitions=[twin]),
                                                  limit=5).records
        assert len(records) == 1, twin
    assert not instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    assert not [e for run in instance.get_runs()
                for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)]


@pytest.mark.slow  # ≈ 20 s: three automation rounds around a failed encoding
def test_a_failed_encoding_holds_only_its_own_vectors(study, monkeypatch):
    """Every embeddings partition reads all of audio_vectors, yet an encoding whose run failed does not hold the
    other encoders back: they run, that encoder's own partitions fail naming it, and nothing is retried."""
    from audiorec_assets.defs import audio_vectors

    lake, defs, instance = study
    (lake / "experiment.yaml").write_text(SETTINGS.replace("[mfcc, random]", "[mfcc, shuffled_mfcc, random]"))
    sync_partitions(instance, lake_members(LakePaths(lake), load_settings(lake)))

    def broken(name, context):
        raise RuntimeError(f"weights of {name} are unreadable")

    monkeypatch.setattr(audio_vectors, "make_audio_encoder", broken)
    vectors_only = {"listens", "tracks", "interactions", "split_info", "audio_vectors", "embeddings", "encoders"}
    scope = lambda key, partition: key.path[-1] in vectors_only  # noqa: E731
    runs = bring_up_to_date(defs, instance, lake, lambda p: execute(defs, instance, p).success, scope=scope)
    outcome = {p.label: ok for p, ok in runs}
    assert outcome["audio_vectors[mfcc]"] is False and outcome["embeddings, encoders[random]"] is True
    assert outcome["embeddings, encoders[mfcc]"] is False and outcome["embeddings, encoders[shuffled_mfcc]"] is False
    failed = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE],
                                             tags={"dagster/partition": "shuffled_mfcc"}))
    errors = [e.dagster_event.step_failure_data.error for e in instance.all_logs(failed[0].run_id)
              if e.dagster_event and e.dagster_event.is_step_failure]
    assert "materialize audiorec/audio_vectors partition 'mfcc' first" in str(errors)
    assert bring_up_to_date(defs, instance, lake, lambda p: execute(defs, instance, p).success, scope=scope) == []
