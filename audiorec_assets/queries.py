"""Everyday questions on a materialized lake, as pure functions (no Dagster): :func:`recommend_for_user` and
:func:`similar_tracks` read the lake's files only and return DataFrames. What stops them is a one-line
:class:`QueryError` whose ``exit_code`` the CLI returns (docs/commands.md, "Output formats, errors, exit codes")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from audiorec_assets.encoders import BUILTIN_ENCODERS, NO_AUDIO_ENCODER, is_twin
from audiorec_assets.names import unknown_name
from audiorec_assets.recommenders import RECOMMENDERS, recommender_class
from audiorec_assets.settings import ExperimentSettings, LakePaths, load_settings
from audiorec_assets.study import CellError, check_cell

EXIT_BAD_INPUT = 2
EXIT_NOT_MATERIALIZED = 3
HOW = "(audiorec demo, or the UI)"
DEFAULT_K = 10


class QueryError(Exception):
    """Why a query cannot answer; ``str(err)`` is one line."""

    exit_code = 1


class UnknownInput(QueryError):
    """A user, track, encoder, recommender or cell the lake does not know."""

    exit_code = EXIT_BAD_INPUT


class NotMaterialized(QueryError):
    """A table, vector file or model the query needs does not exist yet; the message says which partition."""

    exit_code = EXIT_NOT_MATERIALIZED


@dataclass(frozen=True)
class Answer:
    """The rows of an answer and a one-line header saying where they come from."""

    rows: pd.DataFrame
    header: str
    note: str = ""  # a line for stderr: a default the command chose


def _table_file(lake: LakePaths, table: str, what: str = "") -> Path:
    path = lake.table_dir(table) / "all.parquet"
    if not path.exists():
        raise NotMaterialized(f"audiorec.{table} has no data yet ({path} missing): materialize audiorec/{table}"
                              f"{what} {HOW}.")
    return path


def read_tracks(lake: LakePaths) -> pd.DataFrame:
    """``audiorec.tracks`` sorted by ``item_idx``, plus the columns of ``raw/tracks.csv`` it lacks (if any)."""
    tracks = pd.read_parquet(_table_file(lake, "tracks", " (the ingest)")).sort_values("item_idx", ignore_index=True)
    try:
        extra = pd.read_csv(lake.raw / "tracks.csv", dtype={"track_id": str})
    except (ValueError, OSError):  # none, or not a readable CSV
        return tracks
    new = [c for c in extra.columns if c not in tracks.columns]
    if "track_id" not in extra.columns or not new:
        return tracks
    return tracks.merge(extra.drop_duplicates("track_id")[["track_id", *new]], on="track_id", how="left")


READABLE_COLUMNS = ("title", "artist", "composer", "style", "genre", "album", "work")
SHOWN_METADATA = 3
ALL_COLUMNS = "all"


def _metadata_columns(tracks: pd.DataFrame) -> pd.DataFrame:
    """The tracks' metadata, tracks.csv's numbers as numbers (the table stores its columns as text)."""
    tracks = tracks.drop(columns=["item_idx"], errors="ignore").copy()
    for column in tracks.columns.drop("track_id", errors="ignore"):
        if tracks[column].dtype == object:
            text = tracks[column].astype("string").str.strip()
            numbers = pd.to_numeric(text.replace("", pd.NA), errors="coerce")
            as_text = text.fillna("").ne("")
            leading_zero = text.str.match(r"[-+]?0\d", na=False).any()  # codes such as 007 stay text
            if as_text.any() and numbers[as_text].notna().all() and not leading_zero:
                tracks[column] = numbers.astype("Int64" if (numbers.dropna() % 1 == 0).all() else "float64")
            elif as_text.any() and text[as_text].str.lower().isin(["true", "false"]).all():
                tracks[column] = text.str.lower().map({"true": True, "false": False}).astype("boolean")
    return tracks


def readable(rows: pd.DataFrame) -> pd.DataFrame:
    """Rank, track, score or similarity, and the first :data:`SHOWN_METADATA` of :data:`READABLE_COLUMNS` that
    ``rows`` has: one short line a track (the other metadata only with ``--columns``)."""
    metadata = [c for c in READABLE_COLUMNS if c in rows.columns][:SHOWN_METADATA]
    return rows[[c for c in ("rank", "track_id", "score", "similarity", *metadata) if c in rows.columns]]


def choose_columns(rows: pd.DataFrame, columns: str | None) -> pd.DataFrame:
    """The columns of ``rows`` named in ``columns`` (comma-separated, in that order; ``all``: every column; ``None``
    or empty: :func:`readable`); a name ``rows`` lacks is an :class:`UnknownInput` naming the nearest one."""
    names = [name.strip() for name in (columns or "").split(",") if name.strip()]
    if not names:
        return readable(rows)
    if names == [ALL_COLUMNS]:
        return rows
    available = [str(c) for c in rows.columns]
    for name in names:
        if name not in available:
            raise UnknownInput(f"--columns: {unknown_name('column', name, [*available, ALL_COLUMNS])}.")
    return rows[list(dict.fromkeys(names))]


def read_leaderboard(lake: LakePaths) -> pd.DataFrame:
    """``audiorec.leaderboard`` as stored (best HitRate first)."""
    from audiorec_assets.warehouse import table_files

    files = table_files(lake, "leaderboard")
    if not files:
        raise NotMaterialized(f"audiorec.leaderboard has no data yet: materialize audiorec/leaderboard {HOW}, "
                              "or name the cell with --encoder and --recommender.")
    board = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    if "hitrate" in board.columns and len(files) > 1:
        board = board.sort_values("hitrate", ascending=False, kind="mergesort", ignore_index=True)
    return board


def load_data(lake: LakePaths):
    """The split as arrays (:class:`InteractionData`), from ``audiorec.interactions`` and ``audiorec.tracks``."""
    from audiorec_assets.cell_inputs import load_interaction_data

    for table in ("interactions", "tracks"):
        _table_file(lake, table, " (the ingest)")  # missing: say what to materialize
    return load_interaction_data(lake)


def known_encoders(lake: LakePaths, settings: ExperimentSettings) -> list[str]:
    """Encoders the lake can name: configured, built in, a ``shuffled_<x>`` twin, or a ``.npy`` present."""
    present = sorted(p.stem for p in lake.embeddings.glob("*.npy")) if lake.embeddings.exists() else []
    return list(dict.fromkeys([*settings.encoders, *present]))


def _check_encoder_name(lake: LakePaths, settings: ExperimentSettings, encoder: str) -> None:
    known = known_encoders(lake, settings)
    if encoder in known or encoder in BUILTIN_ENCODERS or is_twin(encoder):
        return
    raise UnknownInput(f"{unknown_name('encoder', encoder, known)} (not in experiment.yaml's encoders and no "
                       f"{lake.embedding_file(encoder)}).")


def _check_recommender_name(recommender: str) -> None:
    if recommender not in RECOMMENDERS:
        raise UnknownInput(f"{unknown_name('recommender', recommender, sorted(RECOMMENDERS))}.")


def load_vectors(lake: LakePaths, encoder: str, n_items: int) -> np.ndarray:
    """The encoder's stored item vectors, refused unless they pass the embeddings check (as the models step)."""
    from audiorec_assets.cell_inputs import VectorFileError, load_item_vectors

    try:
        return load_item_vectors(lake, encoder, n_items)
    except FileNotFoundError:
        raise NotMaterialized(f"no vectors for encoder {encoder!r} ({lake.embedding_file(encoder)} missing): "
                              f"materialize audiorec/embeddings partition {encoder} {HOW}.") from None
    except VectorFileError as err:
        raise NotMaterialized(str(err)) from None


def default_cell(lake: LakePaths, encoder: str | None = None, recommender: str | None = None) -> tuple[str, str]:
    """The cell to use: the given parts, the rest from the best leaderboard row that matches them; without an
    encoder, the best row with audio (a reference without audio only where no such row exists)."""
    if encoder is not None and recommender is not None:
        return encoder, recommender
    if recommender is not None and recommender in RECOMMENDERS and RECOMMENDERS[recommender].audio == "none":
        return NO_AUDIO_ENCODER, recommender
    board = read_leaderboard(lake)
    rows = board
    if encoder is not None:
        rows = rows[rows["encoder"] == encoder]
    if recommender is not None:
        rows = rows[rows["recommender"] == recommender]
    if encoder is None and (rows["encoder"] != NO_AUDIO_ENCODER).any():
        rows = rows[rows["encoder"] != NO_AUDIO_ENCODER]
    if rows.empty:
        given = " and ".join(f"{k} {v!r}" for k, v in (("encoder", encoder), ("recommender", recommender)) if v)
        raise UnknownInput(f"audiorec.leaderboard has no cell with {given or 'any results'}: pass both --encoder "
                           f"and --recommender (cells there: "
                           f"{', '.join(board['encoder'] + '|' + board['recommender']) or 'none'}).")
    first = rows.iloc[0]
    return str(first["encoder"]), str(first["recommender"])


def model_seeds(lake: LakePaths, settings: ExperimentSettings, encoder: str, recommender: str) -> list[int]:
    """The seeds with a saved model in the cell's folder: the settings' order first, then the others."""
    folder = lake.model_dir(encoder, recommender)
    found = []
    for child in folder.glob("seed-*") if folder.exists() else []:
        try:
            found.append(int(child.name[len("seed-"):]))
        except ValueError:
            continue
    ordered = [s for s in settings.run_seeds if s in found]
    return ordered + sorted(s for s in found if s not in ordered)


def recommend_for_user(lake: LakePaths, user: str, encoder: str | None = None, recommender: str | None = None,
                       k: int = DEFAULT_K, settings: ExperimentSettings | None = None) -> Answer:
    """Top-``k`` tracks for ``user``, with their metadata, from the first seed's model of cell (encoder, recommender)
    (default: :func:`default_cell`), ranked as the warm lists of ``audiorec.recommendations`` (docs/commands.md)."""
    from audiorec_assets.cell_inputs import vectors_for_models
    from audiorec_assets.evaluation.tables import recommendations_frame

    if k < 1:
        raise UnknownInput(f"-k must be at least 1 (got {k}).")
    settings = settings or load_settings(lake.root)
    if recommender is not None:
        _check_recommender_name(recommender)
    if encoder is not None:
        _check_encoder_name(lake, settings, encoder)
    asked = (encoder, recommender)
    encoder, recommender = default_cell(lake, encoder, recommender)
    _check_recommender_name(recommender)
    try:
        check_cell(encoder, recommender)
    except CellError as err:
        raise UnknownInput(f"no cell {encoder}|{recommender}: {err}.") from None
    seeds = model_seeds(lake, settings, encoder, recommender)
    if not seeds:
        partition = (f"audiorec/reference_models partition {recommender}" if encoder == NO_AUDIO_ENCODER
                     else f"audiorec/models partition {encoder}|{recommender}")
        raise NotMaterialized(f"no trained model for cell {encoder}|{recommender} "
                              f"({lake.model_dir(encoder, recommender)} missing): materialize {partition} {HOW}.")
    data = load_data(lake)
    user_of = {str(u): i for i, u in enumerate(data.user_ids)}
    if str(user) not in user_of:
        raise UnknownInput(f"unknown user {user!r}: no train plays in audiorec.interactions "
                           f"({data.n_users} users have some, e.g. {', '.join(map(str, data.user_ids[:3]))}).")
    vectors = (np.zeros((data.n_items, 0), dtype=np.float32) if encoder == NO_AUDIO_ENCODER
               else vectors_for_models(load_vectors(lake, encoder, data.n_items), settings))
    seed = seeds[0]
    model = recommender_class(recommender).load(lake.model_dir(encoder, recommender) / f"seed-{seed}",
                                                settings.model_copy(update={"seed": seed}), data, vectors)
    users = np.array([user_of[str(user)]], dtype=np.int64)
    top = model.recommend(users, k, candidates=data.candidates("test"))
    rows = recommendations_frame(top.users, top.items, top.scores, data.user_ids, data.track_ids)
    rows = rows.drop(columns=["user_id"]).merge(_metadata_columns(read_tracks(lake)), on="track_id", how="left")
    others = f" (of seeds {', '.join(map(str, seeds))})" if len(seeds) > 1 else ""
    header = (f"top {k} for user {user} from {encoder}|{recommender}, seed {seed}{others}; train vocabulary, "
              f"train history excluded")
    return Answer(rows.reset_index(drop=True), header, _default_note(lake, asked, encoder, recommender))


def _default_note(lake: LakePaths, asked: tuple[str | None, str | None], encoder: str, recommender: str) -> str:
    """Which cell the leaderboard chose for the parts not named (empty when nothing was chosen)."""
    if None not in asked or encoder == NO_AUDIO_ENCODER and asked[1] is not None:
        return ""
    if asked[0] is not None:
        which = f"for encoder {encoder}"
    else:
        which = "with audio" if encoder != NO_AUDIO_ENCODER else "(the leaderboard has no cell with audio)"
    row = read_leaderboard(lake).query("encoder == @encoder and recommender == @recommender")
    score = f", HitRate@{int(row['k'].iloc[0])} {row['hitrate'].iloc[0]:.3f}" if len(row) and "k" in row else ""
    return f"cell {encoder}|{recommender}: the leaderboard's best {which}{score}; another: --encoder, --recommender"


def default_encoder(lake: LakePaths) -> str:
    """The encoder of the leaderboard's best cell with audio, else the first ``.npy`` of the lake."""
    try:
        board = read_leaderboard(lake)
    except NotMaterialized:
        board = pd.DataFrame(columns=["encoder"])
    for encoder in board["encoder"]:
        if encoder != NO_AUDIO_ENCODER and lake.embedding_file(str(encoder)).exists():
            return str(encoder)
    files = sorted(lake.embeddings.glob("*.npy")) if lake.embeddings.exists() else []
    if files:
        return files[0].stem
    raise NotMaterialized(f"no item vectors in {lake.embeddings}: materialize an audiorec/embeddings partition "
                          f"(e.g. mfcc) {HOW}.")


def similar_tracks(lake: LakePaths, track: str, encoder: str | None = None, k: int = DEFAULT_K,
                   settings: ExperimentSettings | None = None) -> Answer:
    """The ``k`` tracks nearest ``track`` by cosine similarity of the encoder's stored vectors (the track
    itself excluded), most similar first (ties: lower item_idx first), with their metadata."""
    if k < 1:
        raise UnknownInput(f"-k must be at least 1 (got {k}).")
    settings = settings or load_settings(lake.root)
    if encoder is not None:
        if encoder == NO_AUDIO_ENCODER:
            raise UnknownInput(f"encoder {NO_AUDIO_ENCODER!r} has no audio vectors: pick an audio encoder "
                               f"({', '.join(e for e in known_encoders(lake, settings) if e != NO_AUDIO_ENCODER)}).")
        _check_encoder_name(lake, settings, encoder)
    else:
        encoder = default_encoder(lake)
    tracks = read_tracks(lake)
    matches = np.flatnonzero(tracks["track_id"].astype(str).to_numpy() == str(track))
    if not len(matches):
        raise UnknownInput(f"unknown track {track!r}: not in audiorec.tracks ({len(tracks)} tracks, e.g. "
                           f"{', '.join(map(str, tracks['track_id'].head(3)))}).")
    vectors = load_vectors(lake, encoder, len(tracks)).astype(np.float64)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    row = int(tracks["item_idx"].iloc[matches[0]])
    similarity = unit @ unit[row]
    similarity[row] = -np.inf
    order = np.lexsort((np.arange(len(similarity)), -similarity))[: min(k, len(similarity) - 1)]
    rows = _metadata_columns(tracks.set_index("item_idx").loc[order].reset_index())
    rows.insert(0, "rank", np.arange(1, len(order) + 1, dtype=np.int32))
    rows.insert(2, "similarity", similarity[order])
    header = f"{len(order)} tracks nearest {track} by cosine similarity of {lake.embedding_file(encoder).name}"
    return Answer(rows.reset_index(drop=True), header)


FORMATS = ("table", "csv", "json", "markdown")


def render(frame: pd.DataFrame, fmt: str = "table") -> str:
    """``frame`` as text: a pretty table, CSV, JSON records, or a Markdown table."""
    if fmt == "table":
        return frame.to_string(index=False) if len(frame.columns) else "(no columns)"
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        return frame.to_json(orient="records", date_format="iso", force_ascii=False)
    if fmt == "markdown":
        return frame.to_markdown(index=False)
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
