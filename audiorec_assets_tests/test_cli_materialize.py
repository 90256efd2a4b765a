"""``audiorec materialize`` and ``audiorec status`` on a small own-catalogue lake with a persistent instance: the
grid as Dagster sees it (missing, not runnable, materialized, stale, failed), the runs ``materialize`` makes for
a part of the study, its progress lines, and its one-line errors with exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audiorec_assets.cli import main
from audiorec_assets.defs.plan import PlanError, chosen_cells
from audiorec_assets.defs.partitions import LakeMembers
from audiorec_assets.defs.status import State, cell_target, fill_command
from audiorec_assets.settings import ExperimentSettings
from audiorec_assets_tests.helpers import write_own
from audiorec_assets_tests.test_pipeline import small_log

SETTINGS = ("encoders: [mfcc, random, mert]\nrecommenders: [knn, popularity]\nks: [5, 10]\ntop_n: 30\n"
            "encode: {shuffled_base: mfcc, models_dir: %s}\n")


def status(lake, capsys) -> dict[tuple[str, str], dict]:
    main(["--lake", str(lake), "status", "--format", "json"])
    return {(r["encoder"], r["recommender"] or r["asset"]): r for r in json.loads(capsys.readouterr().out)}


def materialize(lake, capsys, *args: str) -> str:
    main(["--lake", str(lake), "materialize", "--plain", *args])
    return capsys.readouterr().out


def test_status_and_materialize_follow_the_study(lake, dagster_home, tmp_path, capsys):
    write_own(lake / "raw", small_log(n_new=4))
    (lake / "experiment.yaml").write_text(SETTINGS % (tmp_path / "no-weights"))

    before = status(lake, capsys)
    cells = {k: v["state"] for k, v in before.items() if v["layer"] == "cell"}
    assert cells == {("mfcc", "knn"): "missing", ("random", "knn"): "missing", ("mert", "knn"): "not runnable",
                     ("none", "popularity"): "missing"}
    assert "weights" in before[("mert", "knn")]["detail"] and before[("mert", "knn")]["command"] == ""
    assert before[("mfcc", "knn")]["command"] == "audiorec materialize --encoders mfcc --recommenders knn"

    out = materialize(lake, capsys, "--encoders", "mfcc", "--recommenders", "knn")
    # the ingest, mfcc's encoding, its vectors, the cell, the tables: round after round
    assert "done: 5 run(s)" in out
    # the total grows as each round's runs start (the planner evaluates again after each round)
    assert "[audiorec] step 1/1 ingest_job: " in out and "[audiorec] step 14/14 " in out  # the ingest: one op
    assert out.index("ingest_job") < out.index("encoding_job[mfcc]") < out.index("embeddings_job[mfcc]") \
        < out.index("cells_job[mfcc|knn]") < out.index("tables_job")
    assert "step 4/5 cells_job[mfcc|knn]: models ..." in out
    assert "[audiorec]   audio_vectors: mfcc " in out and " tracks (" in out  # the encoder's progress, from its log
    after = status(lake, capsys)
    assert after[("mfcc", "knn")]["state"] == "materialized" and after[("random", "knn")]["state"] == "missing"
    assert after[("", "audiorec/tracks")]["state"] == "materialized" and after[("", "audiorec/leaderboard")]["state"] \
        == "materialized"

    again = materialize(lake, capsys, "--encoders", "mfcc", "--recommenders", "knn")
    assert "nothing to run" in again and "are up to date" in again

    # a setting of the recommendations changed: the cell is stale (not its vectors) and only it runs again
    (lake / "experiment.yaml").write_text((SETTINGS % (tmp_path / "no-weights")).replace("top_n: 30", "top_n: 25"))
    stale = status(lake, capsys)
    assert stale[("mfcc", "knn")]["state"] == "stale"
    assert stale[("mfcc", "knn")]["detail"] == "audiorec/settings/evaluate has a new data version"  # top_n is read there
    assert stale[("mfcc", "audiorec/embeddings")]["state"] == "materialized"  # the vectors do not read top_n
    rerun = materialize(lake, capsys, "--encoders", "mfcc", "--recommenders", "knn", "--dry-run")
    planned = rerun.split("run(s)")[1]  # the cell first (the tables in the next round): not the vectors, not the ingest
    assert "would run 1 run(s)" in rerun and "user_metrics[mfcc|knn]" in planned and "embeddings" not in planned
    assert "random" not in planned  # another encoder's missing cell is out of the command's scope

    # vectors that break the gate: the cell's run fails, status says failed, the exit code says so
    materialize(lake, capsys, "--encoders", "random", "--recommenders", "knn")
    # one asset of a cell selected alone, its upstream file gone: the failure names what to materialize
    (lake / "tables" / "recommendations" / "random__knn.parquet").unlink()
    with pytest.raises(SystemExit):
        materialize(lake, capsys, "--encoders", "random", "--recommenders", "knn", "--select", "key:audiorec/metrics")
    assert "audiorec/recommendations is not materialized" in capsys.readouterr().err
    vectors = np.load(lake / "embeddings" / "random.npy")
    vectors[0, 0] = np.nan
    np.save(lake / "embeddings" / "random.npy", vectors)
    with pytest.raises(SystemExit) as failed:
        materialize(lake, capsys, "--encoders", "random", "--recommenders", "knn", "--force", "--select",
                    "group:recommenders")
    assert failed.value.code == 1
    assert "vectors" in capsys.readouterr().err
    assert status(lake, capsys)[("random", "knn")]["state"] == "failed"


@pytest.mark.parametrize("args, message", [
    (["--encoders", "mfccc"], "unknown encoder 'mfccc' (did you mean 'mfcc'?); known: mfcc, random, none, "),
    (["--encoders", "mfccc"], "or your own vectors: not built in, and"),
    (["--recommenders", "knnn"], "unknown recommender 'knnn' (did you mean 'knn'?); known: "),
    (["--encoders", "mfcc", "--recommenders", "popularity"], "no cell of encoders ['mfcc'] × recommenders"),
    (["--select", "key:audiorec/nothing"], "selects no asset"),
])
def test_materialize_names_what_it_cannot_run(lake, dagster_home, tmp_path, capsys, args, message):
    write_own(lake / "raw", small_log())
    (lake / "experiment.yaml").write_text(SETTINGS % (tmp_path / "no-weights"))
    with pytest.raises(SystemExit) as stopped:
        main(["--lake", str(lake), "materialize", *args])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_chosen_cells_pair_encoders_and_recommenders_as_the_study_does():
    settings = ExperimentSettings(encoders=["mfcc", "random"], recommenders=["knn", "popularity"])
    members = LakeMembers({"encoder": ["mfcc", "random"], "recommender": ["knn"], "reference": ["popularity"]},
                          {"mert": "no weights"})
    assert chosen_cells(settings, members, None, None) == [("mfcc", "knn"), ("random", "knn"), ("none", "popularity")]
    assert chosen_cells(settings, members, ["random"], None) == [("random", "knn")]
    assert chosen_cells(settings, members, ["none"], ["popularity"]) == [("none", "popularity")]
    with pytest.raises(PlanError, match="'mert' cannot run here: no weights"):
        chosen_cells(settings, members, ["mert"], None)
    # a typo: the nearest name, every known one, and how to bring one's own vectors
    with pytest.raises(PlanError) as typo:
        chosen_cells(settings, members, ["musicn"], None)
    message = str(typo.value)
    assert message.startswith("unknown encoder 'musicn' (did you mean 'musicnn'?); known: mfcc, random, none, ")
    assert "music2vec" in message and "<lake>/embeddings/musicn.npy" in message
    with pytest.raises(PlanError, match=r"unknown recommender 'shalow' \(did you mean 'shallow'\?\)"):
        chosen_cells(settings, members, None, ["shalow"])


def test_fill_command_names_the_cells_that_need_a_run():
    states = [State(cell_target("mfcc", "knn"), "missing"), State(cell_target("random", "knn"), "materialized"),
              State(cell_target("none", "als"), "stale")]
    assert fill_command(states[:2]) == "audiorec materialize --encoders mfcc --recommenders knn"
    assert fill_command(states[2:]) == "audiorec materialize --encoders none --recommenders als"
    assert fill_command(states[1:2]) is None


def test_status_names_the_run_that_holds_a_cell_and_materialize_leaves_it(lake, dagster_home, tmp_path, capsys):
    import dagster as dg

    from audiorec_assets.definitions import build_definitions

    write_own(lake / "raw", small_log(n_new=4))
    (lake / "experiment.yaml").write_text(SETTINGS % (tmp_path / "no-weights"))
    materialize(lake, capsys, "--encoders", "mfcc", "--recommenders", "knn")
    # a run of the cell that has been launched and not finished (as another process's, or the daemon's, would be)
    job = build_definitions(lake).resolve_job_def("cells_job")
    partition = dg.MultiPartitionKey({"encoder": "mfcc", "recommender": "knn"})
    keys = job.asset_layer.selected_asset_keys
    with dg.DagsterInstance.get() as instance:
        run = instance.create_run_for_job(job, asset_selection=frozenset(keys),
                                          tags={"dagster/partition": str(partition), "dagster/partition/encoder": "mfcc",
                                                "dagster/partition/recommender": "knn"})
    row = status(lake, capsys)[("mfcc", "knn")]
    assert row["state"] == "running" and row["detail"] == f"run {run.run_id[:8]} is materializing it"
    assert row["command"] == ""  # no clashing materialize proposed
    with pytest.raises(SystemExit) as refused:
        materialize(lake, capsys, "--encoders", "mfcc", "--recommenders", "knn", "--force")
    assert refused.value.code == 2
    assert f"run {run.run_id[:8]} is materializing it" in capsys.readouterr().err


def test_metrics_computed_another_way_are_rescored_not_retrained(lake, dagster_home, tmp_path, capsys, monkeypatch):
    """A new code version of audiorec/metrics alone (how they are computed changed) makes the cell stale; materialize
    runs the metrics again and leaves the model, its recommendations and its per-user values as they are."""
    from audiorec_assets.defs import models

    write_own(lake / "raw", small_log(n_new=4))
    (lake / "experiment.yaml").write_text(SETTINGS % (tmp_path / "no-weights"))
    materialize(lake, capsys, "--encoders", "mfcc", "--recommenders", "knn")
    monkeypatch.setattr(models, "METRICS_CODE_VERSION", "rescored")
    assert status(lake, capsys)[("mfcc", "knn")]["state"] == "stale"
    out = materialize(lake, capsys, "--encoders", "mfcc", "--recommenders", "knn")
    steps = [line for line in out.splitlines() if "cells_job[mfcc|knn]: " in line and line.endswith(" ...")]
    assert steps and all(line.endswith(": evaluation ...") for line in steps), out
    assert "models ..." not in out, out
    assert status(lake, capsys)[("mfcc", "knn")]["state"] == "materialized"


def test_tables_stale_after_a_setting_of_theirs_are_made_again(lake, dagster_home, tmp_path, capsys):
    """The order of the encoders feeds only the tables (their rows' order): status calls them stale and materialize
    runs them (it said 'nothing to run' while status said stale: the tables were not among the targets it asked
    Dagster about)."""
    write_own(lake / "raw", small_log(n_new=4))
    (lake / "experiment.yaml").write_text(SETTINGS % (tmp_path / "no-weights"))
    materialize(lake, capsys, "--encoders", "mfcc", "--recommenders", "knn")
    (lake / "experiment.yaml").write_text((SETTINGS % (tmp_path / "no-weights")).replace("[mfcc, random, mert]",
                                                                                          "[random, mfcc, mert]"))
    assert status(lake, capsys)[("", "audiorec/leaderboard")]["state"] == "stale"
    out = materialize(lake, capsys, "--encoders", "mfcc", "--recommenders", "knn")
    assert "tables_job" in out and "cells_job" not in out, out
    assert status(lake, capsys)[("", "audiorec/leaderboard")]["state"] == "materialized"
