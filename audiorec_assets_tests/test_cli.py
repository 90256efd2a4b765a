"""`audiorec demo` and `audiorec sql` on a fresh lake, with a persistent Dagster instance."""

import json
import shlex
from pathlib import Path

import pytest

from audiorec_assets.cli import main


README = Path(__file__).resolve().parents[1] / "README.md"
README_COMMANDS = ("recommend", "similar", "sql", "status")


def readme_commands() -> list[list[str]]:
    """Every README line that runs ``audiorec recommend|similar|sql|status`` (also as ``.venv/bin/audiorec``),
    shell-split, its comment dropped: what README promises works on the demo's lake."""
    commands = []
    for line in README.read_text().splitlines():
        line = line.strip().removeprefix(".venv/bin/")
        if line.startswith(tuple(f"audiorec {command}" for command in README_COMMANDS)):
            commands.append(shlex.split(line, comments=True)[1:])
    return commands


def cell_states(lake, capsys) -> dict[tuple[str, str], str]:
    """``audiorec status --format json``: the state of each encoder × recommender cell."""
    main(["--lake", str(lake), "status", "--format", "json"])
    rows = json.loads(capsys.readouterr().out)
    return {(r["encoder"], r["recommender"]): r["state"] for r in rows if r["layer"] == "cell"}


@pytest.mark.slow  # ≈ 2 min: the whole demo three times
def test_demo_runs_the_study_then_finds_it_up_to_date(lake, dagster_home, capsys):
    (lake / "experiment.yaml").write_text(
        "encoders: [mfcc, random]\nrecommenders: [knn, popularity]\nencode: {shuffled_base: mfcc}\n")
    main(["--lake", str(lake), "demo"])
    out = capsys.readouterr().out
    assert (lake / "raw" / "DEMO.md").exists()
    for step in ("listens, tracks, interactions, split_info", "embeddings, encoders[mfcc]",
                 "models, recommendations, metrics, user_metrics[random|knn]", "leaderboard, leaderboard_plot"):
        assert f"[audiorec] {step}" in out and f"{step} failed" not in out
    board = out.split("Leaderboard")[1]
    assert all(f"{e}" in board for e in ("mfcc", "random")) and "popularity" in board
    what_next = out.split("[audiorec] What next")[1]  # after the leaderboard: commands with the lake's own ids
    assert f"--lake {lake} recommend --user u0" in what_next and f"--lake {lake} similar --track t0" in what_next
    assert "dagster dev" in what_next and "throw-away" not in what_next  # DAGSTER_HOME is set here

    main(["--lake", str(lake), "demo"])
    again = capsys.readouterr().out
    assert "everything is up to date" in again and "done in" not in again
    assert cell_states(lake, capsys) == {("mfcc", "knn"): "materialized", ("random", "knn"): "materialized",
                                         ("none", "popularity"): "materialized"}  # every configured cell

    # a model setting changed: only the models and tables run again
    (lake / "experiment.yaml").write_text(
        "encoders: [mfcc, random]\nrecommenders: [knn, popularity]\nencode: {shuffled_base: mfcc}\ntop_n: 60\n")
    assert set(cell_states(lake, capsys).values()) == {"stale"}  # what Dagster's UI would say, before anything runs
    main(["--lake", str(lake), "demo"])
    third = capsys.readouterr().out
    assert "recommendations, metrics, user_metrics[mfcc|knn]" in third
    assert "models" not in third.replace("reference_models", "") and "embeddings" not in third and "listens" not in third

    main(["--lake", str(lake), "sql", "SELECT count(*) AS n FROM audiorec.metrics WHERE split <> 'test_cold'"])
    # cells knn on mfcc, knn on random, popularity once under none: x 2 warm splits x 5 metrics x 3 ks
    assert capsys.readouterr().out.split()[-1] == "90"
    main(["--lake", str(lake), "sql", "SELECT DISTINCT recommender FROM audiorec.metrics WHERE split = 'test_cold'"])
    assert capsys.readouterr().out.split()[1:] == ["knn"]  # popularity knows no audio: no cold rows

    # every recommend / similar / sql / status line of README exits 0 on the demo's lake, as printed there
    commands = readme_commands()
    assert {c[0] for c in commands} == set(README_COMMANDS) and len(commands) >= 8
    failed = []
    for args in commands:
        try:
            main(["--lake", str(lake), *args])
            code = 0
        except SystemExit as stop:
            code = stop.code
        captured = capsys.readouterr()
        if code not in (0, None):
            failed.append(f"audiorec {shlex.join(args)} -> {code}: {captured.err.strip()[-300:]}")
    assert not failed, "README lines that fail on the demo:\n" + "\n".join(failed)


def test_demo_reports_bad_settings(lake, capsys):
    (lake / "experiment.yaml").write_text("ks: [10, 500]\n")
    with pytest.raises(Exception, match="top_n"):
        main(["--lake", str(lake), "demo"])


@pytest.mark.slow
def test_on_the_demo_real_encoders_beat_the_controls_under_knn(lake, capsys):
    """The README's demo result: under KNN, mfcc/musicnn lie above shuffled and random with non-overlapping
    95 % CIs on NDCG@10 for warm tracks, and on HitRate@10 and NDCG@10 for cold tracks."""
    import duckdb

    (lake / "experiment.yaml").write_text("recommenders: [knn]\nheadline_k: 10\n")
    main(["--lake", str(lake), "demo"])
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql("""SELECT encoder, split, metric, value, ci_low, ci_high FROM audiorec.metrics
                          WHERE recommender = 'knn' AND k = 10 AND split IN ('test', 'test_cold')
                            AND metric IN ('ndcg', 'hitrate')""").df()
    for split, metrics in (("test", ["ndcg"]), ("test_cold", ["ndcg", "hitrate"])):
        for metric in metrics:
            by = rows[(rows.metric == metric) & (rows.split == split)].set_index("encoder")
            for real in ("mfcc", "musicnn"):
                for control in ("shuffled", "random"):
                    assert by.loc[real, "ci_low"] > by.loc[control, "ci_high"], (split, metric, real, control, by)
