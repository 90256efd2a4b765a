"""`audiorec recommend`, `audiorec similar` and `--format` on a small materialized lake: the answers agree
with the stored tables, and every error is one line with an exit code scripts can use."""

import io
import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from audiorec_assets.cli import main
from audiorec_assets.definitions import build_definitions
from audiorec_assets.settings import LakePaths
from audiorec_assets_tests.helpers import materialize_vectors, write_own
from audiorec_assets_tests.test_pipeline import CELL, REFERENCE, TABLES, run, small_log

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Ingest, embeddings mfcc and random, the cells mfcc|knn and random|knn, popularity, the tables."""
    lake = tmp_path_factory.mktemp("queries") / "lake"
    lake.mkdir()
    write_own(lake / "raw", small_log(n_new=4))
    (lake / "experiment.yaml").write_text(
        "encoders: [mfcc, random]\nrecommenders: [knn, popularity]\nencode: {shuffled_base: mfcc}\n"
        "ks: [5, 10]\ntop_n: 20\n")
    defs = build_definitions(lake)
    run(defs, dg.AssetSelection.groups("ingest"))
    for encoder in ("mfcc", "random"):
        assert materialize_vectors(defs, encoder).success
        run(defs, CELL, dg.MultiPartitionKey({"encoder": encoder, "recommender": "knn"}))
    run(defs, REFERENCE, "popularity")
    run(defs, TABLES)
    return lake


def table(lake: Path, name: str) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f) for f in sorted(LakePaths(lake).table_dir(name).glob("*.parquet"))],
                     ignore_index=True)


def cli(lake: Path, capsys, *args: str) -> tuple[str, str]:
    main(["--lake", str(lake), *args])
    captured = capsys.readouterr()
    return captured.out, captured.err


def rows_of(out: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(out), dtype={"track_id": str})


def fails(lake: Path, capsys, code: int, *args: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main(["--lake", str(lake), *args])
    assert stop.value.code == code
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err, err
    return err


@pytest.mark.parametrize("encoder, recommender", [("mfcc", "knn"), ("none", "popularity")])
def test_recommend_equals_the_stored_test_lists(built, capsys, encoder, recommender):
    recs = table(built, "recommendations")
    stored = recs[(recs.encoder == encoder) & (recs.recommender == recommender) & (recs.split == "test")]
    user = sorted(stored["user_id"].unique())[3]
    seed = int(stored["seed"].iloc[0])
    mine_rows = stored[(stored.user_id == user) & (stored.seed == seed) & (stored["rank"] <= 7)].sort_values("rank")
    out, err = cli(built, capsys, "recommend", "--user", user, "--encoder", encoder, "--recommender", recommender,
                   "-k", "7", "--format", "csv", "--all-columns")
    got = rows_of(out)
    assert f"seed {seed}" in err and f"{encoder}|{recommender}" in err
    assert got["track_id"].tolist() == mine_rows["track_id"].tolist()
    assert got["rank"].tolist() == mine_rows["rank"].tolist()
    np.testing.assert_allclose(got["score"], mine_rows["score"], rtol=1e-6, atol=1e-9)
    assert {"artist", "audio_path", "duration_s"} <= set(got.columns)  # metadata joined
    history = table(built, "interactions").query("split == 'train' and user_id == @user")["track_id"]
    assert not set(got["track_id"]) & set(history)


def test_recommend_defaults_to_the_best_cell_with_audio(built, capsys):
    board = table(built, "leaderboard")
    best = board[board["encoder"] != "none"].iloc[0]
    out, err = cli(built, capsys, "recommend", "--user", "u05")
    header = out.splitlines()[0]
    assert f"from {best['encoder']}|{best['recommender']}, seed 42" in header
    assert f"cell {best['encoder']}|{best['recommender']}: the leaderboard's best with audio" in err  # says which
    assert len(out.splitlines()) == 1 + 1 + 10  # header, column names, 10 rows
    # a few readable columns by default, numbers as numbers in json
    out, _ = cli(built, capsys, "recommend", "--user", "u05", "-k", "3", "--format", "json")
    rows = json.loads(out)
    assert list(rows[0]) == ["rank", "track_id", "score", "artist"]
    assert all(isinstance(r["rank"], int) and isinstance(r["score"], float) for r in rows)
    out, _ = cli(built, capsys, "recommend", "--user", "u05", "-k", "3", "--format", "json", "--all-columns")
    assert {"audio_path", "duration_s", "artist"} <= set(json.loads(out)[0])


def test_columns_chooses_and_orders_the_columns(built, capsys):
    out, _ = cli(built, capsys, "recommend", "--user", "u05", "-k", "3", "--format", "csv",
                 "--columns", "track_id, duration_s,rank")
    assert list(rows_of(out).columns) == ["track_id", "duration_s", "rank"]  # as asked, in that order
    out, _ = cli(built, capsys, "similar", "--track", "t01", "-k", "2", "--format", "csv", "--columns", "all")
    assert {"rank", "track_id", "similarity", "audio_path", "duration_s"} <= set(rows_of(out).columns)
    err = fails(built, capsys, 2, "recommend", "--user", "u05", "--columns", "rank,artsit")
    assert "unknown column 'artsit' (did you mean 'artist'?); known: rank, track_id, score, " in err
    assert err.endswith(", all.") and "audio_path" in err
    err = fails(built, capsys, 2, "similar", "--track", "t01", "--columns", "score")
    assert "unknown column 'score'" in err and "similarity" in err
    with pytest.raises(SystemExit) as both:  # --all-columns is the shortcut of --columns all, not both
        main(["--lake", str(built), "recommend", "--user", "u05", "--columns", "rank", "--all-columns"])
    assert both.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_similar_is_cosine_without_the_track_itself(built, capsys):
    tracks = table(built, "tracks").sort_values("item_idx")
    vectors = np.load(built / "embeddings" / "random.npy").astype(np.float64)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    track = tracks["track_id"].iloc[4]
    row = int(tracks["item_idx"].iloc[4])
    cosine = unit @ unit[row]
    out, _ = cli(built, capsys, "similar", "--track", track, "--encoder", "random", "-k", "6", "--format", "json")
    got = pd.DataFrame(json.loads(out))
    assert track not in set(got["track_id"]) and len(got) == 6
    expected = [tracks["track_id"].iloc[i] for i in np.argsort(-np.where(np.arange(len(cosine)) == row, -9, cosine),
                                                                  kind="stable")[:6]]
    assert got["track_id"].tolist() == expected
    np.testing.assert_allclose(got["similarity"], np.sort(np.delete(cosine, row))[::-1][:6], rtol=1e-9)
    assert got["similarity"].is_monotonic_decreasing and "artist" in got.columns
    # default encoder: the leaderboard's best cell with audio
    board = table(built, "leaderboard")
    best_audio = board[board.encoder != "none"]["encoder"].iloc[0]
    out, _ = cli(built, capsys, "similar", "--track", track)
    assert f"of {best_audio}.npy" in out.splitlines()[0]


def test_formats_parse_back(built, capsys):
    query = "SELECT encoder, recommender, hitrate FROM audiorec.leaderboard ORDER BY hitrate DESC"
    expected = table(built, "leaderboard")[["encoder", "recommender", "hitrate"]]
    out, _ = cli(built, capsys, "sql", query, "--format", "csv")
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(out)), expected.reset_index(drop=True), check_dtype=False)
    out, _ = cli(built, capsys, "sql", query, "--format", "json")
    assert [r["encoder"] for r in json.loads(out)] == expected["encoder"].tolist()
    out, _ = cli(built, capsys, "sql", query, "--format", "markdown")
    lines = out.strip().splitlines()
    assert lines[0].startswith("|") and "encoder" in lines[0] and set(lines[1]) <= set("|:- ")
    assert len(lines) == 2 + len(expected)
    out, _ = cli(built, capsys, "sql", query)  # table: as before
    assert out.split()[:3] == ["encoder", "recommender", "hitrate"]
    out, _ = cli(built, capsys, "recommend", "--user", "u01", "--format", "markdown", "-k", "3")
    assert out.splitlines()[0].startswith("[audiorec] top 3") and len(out.strip().splitlines()) == 1 + 2 + 3
    out, _ = cli(built, capsys, "similar", "--track", "t01", "--format", "json", "-k", "2")
    assert len(json.loads(out)) == 2


def test_errors_name_the_thing_and_exit_with_its_code(built, capsys, tmp_path):
    assert "'nobody'" in fails(built, capsys, 2, "recommend", "--user", "nobody")
    assert "'zzz'" in fails(built, capsys, 2, "recommend", "--user", "u01", "--encoder", "zzz", "--recommender", "knn")
    assert "'zzz'" in fails(built, capsys, 2, "recommend", "--user", "u01", "--recommender", "zzz")
    assert "none" in fails(built, capsys, 2, "recommend", "--user", "u01", "--encoder", "none", "--recommender", "knn")
    message = fails(built, capsys, 3, "recommend", "--user", "u01", "--encoder", "musicnn", "--recommender", "knn")
    assert "materialize audiorec/models partition musicnn|knn (audiorec demo, or the UI)" in message
    message = fails(built, capsys, 3, "recommend", "--user", "u01", "--recommender", "als")
    assert "audiorec/reference_models partition als" in message
    assert "'nope'" in fails(built, capsys, 2, "similar", "--track", "nope")
    assert "'zzz'" in fails(built, capsys, 2, "similar", "--track", "t01", "--encoder", "zzz")
    assert "embeddings partition shuffled" in fails(built, capsys, 3, "similar", "--track", "t01", "--encoder",
                                                    "shuffled")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "audiorec/leaderboard" in fails(empty, capsys, 3, "recommend", "--user", "u01")
    # the real command's exit status
    done = subprocess.run([sys.executable, "-m", "audiorec_assets.cli", "--lake", str(built), "similar", "--track",
                           "nope"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == "" and len(done.stderr.strip().splitlines()) == 1


def test_what_next_after_the_demo_runs_as_printed(built, capsys, monkeypatch):
    """The block `audiorec demo` ends with: each command works on this lake as printed, with its real ids."""
    import os
    import shlex

    from audiorec_assets.guide import next_steps, print_next_steps

    monkeypatch.delenv("AUDIOREC_LAKE", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    print_next_steps(LakePaths(built))
    block = capsys.readouterr().out
    lines = [line.strip() for line in block.splitlines()[2:]]
    assert block.startswith("\n[audiorec] What next") and lines == [s.strip() for s in next_steps(LakePaths(built))]
    commands = {shlex.split(line, comments=True)[3 if "--lake" in line else 1]: line for line in lines
                if " # " in line and "audiorec" in line.split(" # ")[0]}
    assert set(commands) == {"status", "recommend", "similar", "sql"}
    interactions = table(built, "interactions")
    user = shlex.split(commands["recommend"], comments=True)[-1]
    assert {"train", "test"} <= set(interactions[interactions.user_id == user]["split"])  # a real user
    assert shlex.split(commands["similar"], comments=True)[-1] in set(table(built, "tracks")["track_id"])
    env = {k: v for k, v in os.environ.items() if k not in ("AUDIOREC_LAKE", "DAGSTER_HOME")}
    for name, line in commands.items():
        assert f"--lake {built}" in line  # not the default lake: named
        done = subprocess.run(line, shell=True, cwd=os.getcwd(), env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (line, done.stderr[-2000:])
        assert done.stdout.strip(), line
    assert "leaderboard" not in done.stderr and "mfcc" in done.stdout  # the sql line: unqualified `leaderboard`
    ui = next(line for line in lines if "dagster dev" in line)
    assert f"AUDIOREC_LAKE={built}" in ui and 'DAGSTER_HOME="$PWD"' in ui
    assert any("throw-away instance" in line for line in lines)  # without DAGSTER_HOME: says what that means


def test_show_tables_lists_the_views_sql_help_names(built, capsys):
    from audiorec_assets.guide import SQL_TABLES

    out, _ = cli(built, capsys, "sql", "show tables", "--format", "csv")
    names = set(rows_of(out)["name"])
    assert {"tracks", "interactions", "recommendations", "metrics", "leaderboard"} <= names <= set(SQL_TABLES)
    out, _ = cli(built, capsys, "sql", "select encoder, recommender from leaderboard", "--format", "csv")
    assert len(rows_of(out)) == len(table(built, "leaderboard"))
