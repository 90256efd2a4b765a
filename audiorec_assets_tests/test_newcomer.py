"""What a newcomer meets first (issue 17): help texts, the names they mistype, the default cell of `recommend`,
status's reasons, and descriptions the UI renders as Markdown. Fast: no Dagster run."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from audiorec_assets.cli import main
from audiorec_assets.guide import SQL_TABLES
from audiorec_assets.names import did_you_mean, unknown_name
from audiorec_assets.settings import LakePaths
from audiorec_assets.warehouse import write_table_file

COMMANDS = ["demo", "sql", "recommend", "similar", "materialize", "status", "mock-logs"]


def help_text(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as done:
        main([*args, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_help_is_plain_text_and_sql_help_lists_the_tables(capsys):
    for args in ([], *([c] for c in COMMANDS)):
        text = help_text(capsys, *args)
        assert "``" not in text and ":data:" not in text and ":class:" not in text, args
    assert "New here? Run audiorec demo" in help_text(capsys)
    sql_help = help_text(capsys, "sql")
    for name in SQL_TABLES:
        assert re.search(rf"^  {name}\s", sql_help, re.MULTILINE), name
    assert "unqualified names work" in sql_help and "SHOW" in sql_help
    for command in ("recommend", "similar"):
        text = help_text(capsys, command)
        assert "--columns NAMES" in text and "--all-columns" in text, command


def test_a_mistyped_name_gets_the_nearest_known_one():
    assert did_you_mean("musicn", ["mfcc", "musicnn", "random"]) == " (did you mean 'musicnn'?)"
    assert did_you_mean("zzz", ["mfcc", "musicnn"]) == ""
    assert unknown_name("encoder", "mfc", ["mfcc", "random", "mfcc"]) == \
        "unknown encoder 'mfc' (did you mean 'mfcc'?); known: mfcc, random"
    assert unknown_name("encoder", "x", []) == "unknown encoder 'x'; known: none yet"


def test_recommend_and_similar_name_the_nearest_encoder(lake, capsys):
    from audiorec_assets.queries import UnknownInput, _check_encoder_name, _check_recommender_name
    from audiorec_assets.settings import ExperimentSettings

    settings = ExperimentSettings(encoders=["mfcc", "random"])
    with pytest.raises(UnknownInput, match=r"unknown encoder 'mfc' \(did you mean 'mfcc'\?\); known: mfcc, random"):
        _check_encoder_name(LakePaths(lake), settings, "mfc")
    with pytest.raises(UnknownInput, match=r"unknown recommender 'kn' \(did you mean 'knn'\?\)"):
        _check_recommender_name("kn")


def board(*cells: tuple[str, str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"encoder": e, "recommender": r, "hitrate": h, "k": 10} for e, r, h in cells])


def test_recommend_defaults_to_the_best_cell_with_audio(lake):
    from audiorec_assets.queries import default_cell

    paths = LakePaths(lake)
    write_table_file(paths, "leaderboard", board(("none", "bert4rec", 0.4), ("none", "als", 0.35),
                                                 ("mfcc", "knn", 0.3), ("musicnn", "shallow", 0.2)))
    assert default_cell(paths) == ("mfcc", "knn")  # not none|bert4rec, which uses no audio
    assert default_cell(paths, recommender="shallow") == ("musicnn", "shallow")
    assert default_cell(paths, recommender="bert4rec") == ("none", "bert4rec")  # only there
    assert default_cell(paths, encoder="none") == ("none", "bert4rec")
    assert default_cell(paths, recommender="als") == ("none", "als")
    write_table_file(paths, "leaderboard", board(("none", "als", 0.35), ("none", "popularity", 0.2)))
    assert default_cell(paths) == ("none", "als")  # no audio cell at all: the best there is


def test_tracks_metadata_numbers_come_out_as_numbers():
    from audiorec_assets.queries import _metadata_columns, readable

    stored = pd.DataFrame({"track_id": ["0001", "0002"], "item_idx": [0, 1], "title": ["A", "B"],
                           "tempo_bpm": ["121.5", "103.3"], "track_number": ["1", ""], "isrc": ["007", "008"],
                           "new_release": ["False", "True"], "artist": ["x", "y"], "popularity": ["0.2", "x"]})
    tracks = _metadata_columns(stored)
    assert tracks["tempo_bpm"].tolist() == [121.5, 103.3]
    assert tracks["track_number"].iloc[0] == 1 and pd.isna(tracks["track_number"].iloc[1])
    assert tracks["new_release"].tolist() == [False, True]
    for text in ("track_id", "isrc", "title", "popularity"):  # ids, codes with a leading zero, mixed: text
        assert tracks[text].tolist() == stored[text].tolist()
    rows = tracks.assign(rank=[1, 2], score=[0.5, 0.4])
    assert list(readable(rows)) == ["rank", "track_id", "score", "title", "artist"]
    rows = rows.assign(style="s", genre="g", composer="c")  # at most three readable columns by default
    assert list(readable(rows)) == ["rank", "track_id", "score", "title", "artist", "composer"]


def test_status_table_says_why_for_every_layer(monkeypatch, capsys):
    from audiorec_assets import runner

    rows = [("ingest", "audiorec/tracks", "", "", "stale", "audiorec/raw/log has a new data version"),
            ("ingest", "audiorec/interactions", "", "", "materialized", ""),
            ("embeddings", "audiorec/embeddings", "mfcc", "", "failed", "run 1234abcd failed"),
            ("cell", "audiorec/metrics", "mfcc", "knn", "stale", "audiorec/settings/evaluate has a new data version"),
            ("cell", "audiorec/metrics", "random", "knn", "running", ""),
            ("tables", "audiorec/leaderboard", "", "", "stale", "audiorec/metrics[mfcc|knn] has a new data version")]
    frame = pd.DataFrame(rows, columns=["layer", "asset", "encoder", "recommender", "state", "detail"]).assign(
        command="")
    monkeypatch.setattr(runner, "status_frame", lambda lake_root, observe=True: (frame, "lake x"))
    runner.status(LakePaths("unused").root)
    out = capsys.readouterr().out
    why = out[out.index("\nwhy:"):]
    assert "audiorec/tracks: stale: audiorec/raw/log has a new data version" in why
    assert "embeddings mfcc: failed: run 1234abcd failed" in why
    assert "mfcc × knn: stale: audiorec/settings/evaluate has a new data version" in why
    assert "random × knn: running: no cause recorded" in why
    assert "audiorec/leaderboard: stale: audiorec/metrics[mfcc|knn] has a new data version" in why
    assert "interactions" not in why


def _descriptions(defs) -> dict[str, str]:
    graph = defs.resolve_asset_graph()
    texts = {key.to_user_string(): graph.get(key).description or "" for key in graph.get_all_asset_keys()}
    for assets_def in defs.assets or []:
        for spec in getattr(assets_def, "check_specs", []):
            texts[f"check {spec.key.to_user_string()}"] = spec.description or ""
    texts.update({f"sensor {s.name}": s.description or "" for s in defs.sensors or []})
    texts.update({f"job {j.name}": getattr(j, "description", None) or "" for j in defs.jobs or []})
    return texts


def test_descriptions_render_as_markdown_and_explain_the_grid(lake):
    """The UI renders descriptions as Markdown: a bare ``<lake>`` is an HTML tag there and vanishes."""
    from audiorec_assets.definitions import build_definitions
    from audiorec_assets.defs.partitions import GRID

    texts = _descriptions(build_definitions(lake))
    assert len(texts) > 30
    swallowed = {name: t for name, t in texts.items() if re.search(r"<[A-Za-z/]", re.sub(r"`[^`]*`", "", t))}
    assert not swallowed
    for key in ("audiorec/embeddings", "audiorec/models", "audiorec/leaderboard", "audiorec/leaderboard_plot"):
        assert GRID in texts[key], key
    assert "encoder × recommender" in GRID and "`none`" in GRID


def test_a_dagster_home_that_does_not_exist_yet_is_made(tmp_path, monkeypatch):
    """Dagster refuses a $DAGSTER_HOME folder that does not exist; `audiorec demo` used to find out only after minutes
    of data generation. The commands make the folder (a relative one taken from the working directory)."""
    from audiorec_assets import runner

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", "homes/new")
    inst = runner.instance()
    try:
        assert (tmp_path / "homes" / "new").is_dir()
        assert not inst.is_ephemeral
        assert Path(inst.root_directory) == tmp_path / "homes" / "new"
    finally:
        inst.dispose()
