"""Texts that show a newcomer the way: the tables ``audiorec sql --help`` lists, and the "what next" block
``audiorec demo`` ends with — commands that work on that lake as printed, with ids read from it."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from audiorec_assets.settings import LAKE_ENV, LakePaths, default_lake

REPO_ROOT = Path(__file__).resolve().parents[1]  # where workspace.yaml is: `dagster dev` starts there
UI_ADDRESS = "http://127.0.0.1:3000"

# schema audiorec of <lake>/warehouse.duckdb (docs/sql.md): every view an asset writes
SQL_TABLES: dict[str, str] = {
    "listens": "every event of the raw log: user_id, track_id, ts",
    "tracks": "one row per track with audio: track_id, item_idx, audio_path, duration_s (+ tracks.csv columns)",
    "interactions": "user × track × split after the first-listen collapse: first_ts, plays, split "
                    "(train, val, test, test_cold)",
    "split_info": "the split's preset, seed and windows; synthetic (demo or mock-logs data)",
    "encoders": "one row per materialized encoder: dimension, tracks, timing, vector statistics",
    "recommendations": "top-N per user, cell and split: encoder, recommender, seed, split, user_id, rank, "
                       "track_id, score",
    "metrics": "HitRate, Recall, Precision, NDCG, MRR @K per cell and split, with 95 % CIs",
    "user_metrics": "the per-user values behind metrics (for paired tests)",
    "leaderboard": "one row per encoder × recommender cell: test metrics @headline_k, best first",
    "leaderboard_cold": "the same on test_cold (tracks without train plays)",
    "comparison_cosine": "knn per encoder vs its shuffled twin, the best encoder, the best reference",
    "comparison_shallow": "the same for shallow",
    "comparison_bert": "the same for bert4rec",
    "comparison_sasrec": "the same for sasrec (empty unless it runs)",
    "comparison_cold": "cells with test_cold rows vs their shuffled twins",
    "comparison_recommenders": "per encoder, the recommenders against each other on the same users",
}


def sql_tables_help() -> str:
    """The epilog of ``audiorec sql --help``: every table, one line each."""
    width = max(map(len, SQL_TABLES))
    lines = [f"  {name:<{width}}  {what}" for name, what in SQL_TABLES.items()]
    return ("tables (schema audiorec; unqualified names work, `show tables` lists those that hold data):\n"
            + "\n".join(lines) + "\n\nexample: audiorec sql \"select encoder, recommender, hitrate from leaderboard\"")


def _program(name: str, absolute: bool = False) -> str:
    """How to call this installation's ``name`` (audiorec, dagster): the bare name when that is what the shell
    finds, else its path in the virtual environment (relative to here, unless ``absolute``)."""
    beside = Path(sys.executable).parent / name
    found = shutil.which(name)
    if not beside.exists() or (found and Path(found).resolve() == beside.resolve()):
        return name
    if not absolute:
        try:
            return str(beside.relative_to(Path.cwd()))
        except ValueError:
            pass
    return str(beside)


def _ids(lake: LakePaths) -> tuple[str | None, str | None]:
    """A user with train plays and test rows (else any with train plays), and the track with the most train
    plays: ids ``recommend`` and ``similar`` know."""
    import duckdb

    from audiorec_assets.warehouse import table_files

    interactions = [str(f) for f in table_files(lake, "interactions")]
    tracks = [str(f) for f in table_files(lake, "tracks")]
    if not interactions or not tracks:
        return None, None
    with duckdb.connect() as con:
        user = con.execute(
            "SELECT user_id FROM read_parquet($f) GROUP BY user_id HAVING bool_or(split = 'train') "
            "ORDER BY bool_or(split = 'test') DESC, user_id LIMIT 1", {"f": interactions}).fetchone()
        track = con.execute(
            "SELECT t.track_id FROM read_parquet($t) t LEFT JOIN (SELECT track_id, count(*) AS n FROM "
            "read_parquet($f) WHERE split = 'train' GROUP BY track_id) p USING (track_id) "
            "ORDER BY p.n DESC NULLS LAST, t.track_id LIMIT 1", {"t": tracks, "f": interactions}).fetchone()
    return (str(user[0]) if user else None), (str(track[0]) if track else None)


def next_steps(lake: LakePaths) -> list[str]:
    """Shell lines to try next on ``lake``, each with a ``#`` comment: they run as printed from here (``--lake``
    named unless the lake is the default one; ``dagster dev`` from the repo with the instance the runs went to)."""
    from audiorec_assets.queries import DEFAULT_K, NotMaterialized, default_encoder

    # the lake named unless it is ./data_lake with no $AUDIOREC_LAKE (which `VAR=x audiorec demo` may have set once)
    own_lake = bool(os.environ.get(LAKE_ENV)) or lake.root.resolve() != default_lake().resolve()
    audiorec = _program("audiorec") + (f" --lake {shlex.quote(str(lake.root))}" if own_lake else "")
    user, track = _ids(lake)
    lines = [(f"{audiorec} status", "the encoder × recommender grid: done, stale (and why), failed")]
    if user is not None:
        lines.append((f"{audiorec} recommend --user {shlex.quote(user)}",
                      f"a user's top {DEFAULT_K}, from the best cell with audio"))
    try:
        encoder = default_encoder(lake)
    except NotMaterialized:
        encoder = None
    if track is not None and encoder is not None:
        lines.append((f"{audiorec} similar --track {shlex.quote(track)}",
                      f"the tracks that sound most alike ({encoder} vectors)"))
    lines.append((f"{audiorec} sql \"select encoder, recommender, hitrate from leaderboard\"",
                  "read-only SQL; sql --help lists the tables"))
    env = [f"AUDIOREC_LAKE={shlex.quote(str(lake.root))}"] if own_lake else []
    home = os.environ.get("DAGSTER_HOME")
    env.append(f"DAGSTER_HOME={shlex.quote(home)}" if home else 'DAGSTER_HOME="$PWD"')
    elsewhere = (REPO_ROOT / "workspace.yaml").exists() and Path.cwd().resolve() != REPO_ROOT
    ui = " ".join([*env, _program("dagster", absolute=elsewhere), "dev"])
    lines.append(((f"cd {shlex.quote(str(REPO_ROOT))} && " if elsewhere else "") + ui,
                  f"the UI on {UI_ADDRESS}"))
    width = max(len(command) for command, _ in lines)
    text = [f"  {command:<{width}}  # {why}" for command, why in lines]
    if not home:
        text += ["  (DAGSTER_HOME was unset: these runs went to a throw-away instance. The UI shows none of them,",
                 "  and its automation runs the study again; next time: DAGSTER_HOME=\"$PWD\" audiorec demo)"]
    return text


def print_next_steps(lake: LakePaths) -> None:
    """The "what next" block after ``audiorec demo``'s leaderboard."""
    print("\n[audiorec] What next (each line runs as printed):\n" + "\n".join(next_steps(lake)), flush=True)
