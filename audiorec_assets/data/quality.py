"""Data-quality suites (Great Expectations 1.x) for ``tracks`` and ``interactions``. Set-level facts that one row
cannot show (is this user in train?) are computed in DuckDB as per-row flags, then checked by expectations like
any column, so every failure reads the same way in the Dagster UI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from audiorec_assets.data.audio import AUDIO_ODDITIES, duration_or_nan, probe_audio_and_duration
from audiorec_assets.data.audio_verdicts import Verdict, file_fingerprint, read_verdicts, write_verdicts
from audiorec_assets.data.splits import SplitWindows
from audiorec_assets.settings import AudioCheckSettings

INTERACTION_COLUMNS = ["user_id", "track_id", "first_ts", "plays", "split"]
TRACK_COLUMNS = ["track_id", "item_idx", "audio_path", "duration_s"]


@dataclass
class QualityResult:
    """Outcome of one suite: ``failures`` lists each failed expectation with its evidence."""

    suite: str
    success: bool
    evaluated: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    # findings that do not fail the suite (e.g. short or silent audio under audio_checks: warn)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        if self.success:
            return f"{self.suite}: all {self.evaluated} expectations passed"
        lines = [f"{self.suite}: {len(self.failures)} of {self.evaluated} expectations failed"]
        lines += [f"- {f['expectation']}({f.get('column', '')}): {f['detail']}" for f in self.failures]
        return "\n".join(lines)


def _validate(name: str, frame: pd.DataFrame, expectations: list[Any],
              id_columns: list[str] | None = None) -> QualityResult:
    """Run ``expectations`` on ``frame``; failed column expectations carry up to 5 offending rows (``id_columns``)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas(name)
        .add_dataframe_asset(name=name)
        .add_batch_definition_whole_dataframe(name)
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(name=name)
    for expectation in expectations:
        suite.add_expectation(expectation)
    result = batch.validate(suite)
    failures = []
    for res in result.results:
        if res.success:
            continue
        kwargs = res.expectation_config.kwargs
        detail = {k: res.result.get(k) for k in ("observed_value", "unexpected_count", "partial_unexpected_list")
                  if res.result.get(k) not in (None, [])}
        if res.exception_info and res.exception_info.get("raised_exception"):
            detail["exception"] = res.exception_info.get("exception_message")
        column = kwargs.get("column")
        value_set = kwargs.get("value_set")
        if id_columns and column in frame.columns and value_set is not None:
            offending = frame.loc[~frame[column].isin(value_set), id_columns].head(5)
            detail["examples"] = offending.astype(str).to_dict(orient="records")
        failures.append({
            "expectation": res.expectation_config.type,
            "column": column or kwargs.get("column_list") or kwargs.get("column_A") or "",
            "detail": _jsonable(detail),
        })
    return QualityResult(suite=name, success=bool(result.success), evaluated=len(result.results), failures=failures)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value][:10]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


INTERACTION_FLAGS = ["in_window", "user_in_train", "track_in_train", "eval_pair_in_train", "cold_track_in_train"]
SPLITS = ["train", "val", "test", "test_cold"]
REQUIRED_SPLITS = ["train", "val", "test"]  # test_cold may be empty: no warm user played a cold track


def interactions_flags(con, interactions: Path, windows: SplitWindows) -> pd.DataFrame:
    """Interactions rows plus the per-row set flags :data:`INTERACTION_FLAGS`, each True (or False) where its rule
    does not apply. Only the rows the suite needs reach pandas (in file order): every row that breaks a rule (a
    flag, a null, a split outside :data:`SPLITS`, plays < 1, or a user × track pair with more than one row, which a
    correct split never has: duplicates and train/eval leaks alike) and the first good row of each split, so the
    verdicts and counts of failing rows are those of the whole table. ``frame.attrs["rows_checked"]``: its rows."""
    params = {"path": str(interactions), "train_start": windows.train_start, "test_start": windows.test_start,
              "test_end": windows.test_end, "val_end": windows.val_end}
    file = "read_parquet($path, file_row_number = true)"
    for table, column in (("check_train_users", "user_id"), ("check_train_tracks", "track_id")):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT DISTINCT {column} FROM {file} "
                    "WHERE split = 'train'", {"path": params["path"]})
    # pairs with more than one row (none in a correct split), and whether one of the rows is train: grouped by a
    # hash of the pair first (one integer key), then exactly among the rows whose hash repeats
    con.execute("CREATE OR REPLACE TEMP TABLE check_pair_hashes AS SELECT hash(user_id, track_id) AS h "
                "FROM read_parquet($path) GROUP BY h HAVING count(*) > 1", {"path": params["path"]})
    con.execute(f"CREATE OR REPLACE TEMP TABLE check_shared_pairs AS SELECT i.user_id, i.track_id, "
                f"bool_or(i.split = 'train') AS in_train FROM {file} AS i "
                "SEMI JOIN check_pair_hashes AS r ON hash(i.user_id, i.track_id) = r.h "
                "GROUP BY i.user_id, i.track_id HAVING count(*) > 1", {"path": params["path"]})
    split_list = ", ".join(f"'{split}'" for split in SPLITS)
    frame = con.execute(
        f"""WITH flagged AS (
              SELECT i.* EXCLUDE (file_row_number), i.file_row_number AS row_in_file,
                CASE WHEN i.split = 'train' THEN i.first_ts >= $train_start AND i.first_ts < $test_start
                     WHEN i.split = 'test_cold' OR $val_end IS NULL THEN i.first_ts >= $test_start AND i.first_ts < $test_end
                     WHEN i.split = 'val' THEN i.first_ts >= $test_start AND i.first_ts < $val_end
                     ELSE i.first_ts >= $val_end AND i.first_ts < $test_end END AS in_window,
                i.split = 'train' OR i.user_id IN (SELECT user_id FROM check_train_users) AS user_in_train,
                i.split IN ('train', 'test_cold') OR i.track_id IN (SELECT track_id FROM check_train_tracks)
                  AS track_in_train,
                i.split <> 'train' AND coalesce(s.in_train, false) AS eval_pair_in_train,
                i.split = 'test_cold' AND i.track_id IN (SELECT track_id FROM check_train_tracks) AS cold_track_in_train,
                s.user_id IS NOT NULL AS shared_pair
              FROM {file} AS i
              LEFT JOIN check_shared_pairs AS s ON s.user_id = i.user_id AND s.track_id = i.track_id),
            judged AS (
              SELECT *, coalesce(in_window AND user_in_train AND track_in_train AND NOT eval_pair_in_train
                                 AND NOT cold_track_in_train AND NOT shared_pair AND split IN ({split_list})
                                 AND plays >= 1 AND user_id IS NOT NULL AND track_id IS NOT NULL
                                 AND first_ts IS NOT NULL, false) AS good
              FROM flagged),
            -- one pass: per split, its failing rows and its first good row, each row as a struct
            per_split AS (
              SELECT list(judged ORDER BY row_in_file) FILTER (NOT good) AS failing,
                     arg_min(judged, row_in_file) FILTER (good) AS first_good
              FROM judged GROUP BY split),
            needed AS (
              SELECT unnest(failing) AS r FROM per_split
              UNION ALL SELECT first_good FROM per_split WHERE first_good IS NOT NULL)
           SELECT r.* FROM needed ORDER BY r.row_in_file""",
        params,
    ).df().drop(columns=["row_in_file", "shared_pair", "good"])
    frame.attrs["rows_checked"] = int(con.execute("SELECT count(*) FROM read_parquet($path)",
                                                  {"path": params["path"]}).fetchone()[0])
    return frame


def check_interactions(flags: pd.DataFrame) -> QualityResult:
    """Schema, nulls, split values (train / val / test each non-empty), windows, no train/eval leak, warm start,
    cold test, no duplicates: the flags of :func:`interactions_flags` (the rules: docs/lake.md, "Data-quality
    checks")."""
    import great_expectations as gx

    E = gx.expectations
    expectations: list[Any] = [
        E.ExpectTableColumnsToMatchSet(column_set=INTERACTION_COLUMNS + INTERACTION_FLAGS, exact_match=True),
        E.ExpectTableRowCountToBeBetween(min_value=1),
        E.ExpectColumnValuesToBeInTypeList(column="first_ts", type_list=["datetime64[ns]", "datetime64[us]", "datetime64"]),
        E.ExpectColumnValuesToBeInTypeList(column="plays", type_list=["int32", "int64"]),
        E.ExpectColumnValuesToBeInSet(column="split", value_set=SPLITS),
        # an empty val or test split means the windows or filters leave nothing to evaluate
        E.ExpectColumnDistinctValuesToContainSet(column="split", value_set=REQUIRED_SPLITS),
        E.ExpectColumnValuesToBeBetween(column="plays", min_value=1),
        E.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "track_id", "split"]),
    ]
    expectations += [E.ExpectColumnValuesToNotBeNull(column=c) for c in INTERACTION_COLUMNS]
    expectations += [E.ExpectColumnValuesToBeInSet(column=c, value_set=[True])
                     for c in ("in_window", "user_in_train", "track_in_train")]
    expectations += [E.ExpectColumnValuesToBeInSet(column=c, value_set=[False])
                     for c in ("eval_pair_in_train", "cold_track_in_train")]
    return _validate("interactions", flags, expectations, id_columns=["user_id", "track_id", "split"])


def probe_verdict(path: str) -> Verdict:
    """:func:`probe_audio_and_duration` as (decodes, oddities, problem naming the file, duration_s); ``duration_s`` is
    :func:`~audiorec_assets.data.audio.duration_or_nan` (from the probe's own open where libsndfile reads it)."""
    try:
        odd, duration = probe_audio_and_duration(Path(path))
    except Exception as err:
        return False, {}, str(err).splitlines()[0] if str(err) else f"{path}: {err!r}", duration_or_nan(Path(path))
    return True, odd, "; ".join(odd.values()), duration_or_nan(Path(path)) if duration is None else duration


def file_verdicts(files: list[str | None], verdicts: Path | None = None, workers: int = 4) -> list[Verdict | None]:
    """The :func:`probe_verdict` of each of ``files`` (None where there is no such file, or no path). With
    ``verdicts`` (a Parquet file in the lake) a file whose (path, size, mtime_ns) was probed before is not probed
    again, and the file is rewritten, atomically, when a verdict was added or a file left ``files``."""
    keys = [(path, *stamp) if isinstance(path, str) and (stamp := file_fingerprint(path)) else None for path in files]
    known = read_verdicts(verdicts)
    probed = _probe(sorted({key for key in keys if key is not None and key not in known}), workers)
    current = {key for key in keys if key is not None}
    if verdicts is not None and (probed or set(known) - current):
        write_verdicts(verdicts, {key: probed.get(key) or known[key] for key in current})
    return [None if key is None else probed.get(key) or known[key] for key in keys]


def _probe(keys: list[tuple[str, int, int]], workers: int) -> dict[tuple[str, int, int], Verdict]:
    """:func:`probe_verdict` of each key's file on ``workers`` threads, at most one per core (more only fight over
    the GIL: 56 512 1-s WAVs took 1.5-1.8x the CPU seconds on 4 threads as on 1 or 2, on 2 cores, bench/RESULTS.md),
    in chunks: a task per file would cost more than probing a small one."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    if not keys:
        return {}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = max(1, min(workers, cores))
    size = max(1, min(256, -(-len(keys) // workers)))
    chunks = [keys[i:i + size] for i in range(0, len(keys), size)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = pool.map(lambda chunk: [probe_verdict(key[0]) for key in chunk], chunks)
        return {key: verdict for chunk, verdicts in zip(chunks, done) for key, verdict in zip(chunk, verdicts)}


def tracks_flags(tracks: pd.DataFrame, workers: int = 4, verdicts: Path | None = None) -> pd.DataFrame:
    """Tracks rows plus per-row audio flags: the file exists, it decodes, and (``audio_<kind>_ok``) it is free of
    each oddity of :func:`~audiorec_assets.data.audio.audio_oddities`; ``audio_problem`` names the file and fault.
    Each file is probed (:func:`probe_verdict`), not decoded: the encoders decode every file anyway and name one
    that fails. With ``verdicts`` they are remembered (:func:`file_verdicts`): the ingest's tracks table has
    probed every file already (``build_tracks(probe=True)``), so here nothing is opened again."""
    results = file_verdicts([path if isinstance(path, str) else None for path in tracks["audio_path"]],
                            verdicts, workers)
    flagged = tracks.copy()
    flagged["audio_exists"] = [verdict is not None for verdict in results]
    flagged["audio_decodes"] = [verdict is not None and verdict[0] for verdict in results]
    for kind in AUDIO_ODDITIES:
        flagged[f"audio_{kind}_ok"] = [verdict is None or kind not in verdict[1] for verdict in results]
    flagged["audio_problem"] = [f"{path}: no such file" if verdict is None else verdict[2]
                                for path, verdict in zip(tracks["audio_path"], results)]
    flagged["item_idx_expected"] = range(len(tracks))
    flagged["track_id_sorted"] = sorted(tracks["track_id"].astype(str))
    return flagged


def _tracks_suite_rows(flags: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``flags`` the tracks suite needs for the same verdicts and counts of failing rows: every row
    that breaks a rule (or shares its track id or item_idx with another) and the first row; all of them when a
    column the rules read is missing (the suite then says so)."""
    needed = TRACK_COLUMNS + ["item_idx_expected", "track_id_sorted", "audio_exists", "audio_decodes"]
    if len(flags) < 2 or any(column not in flags for column in needed):
        return flags
    good = (~flags["track_id"].duplicated(keep=False) & ~flags["item_idx"].duplicated(keep=False)
            & (flags["item_idx"] == flags["item_idx_expected"]) & (flags["track_id"] == flags["track_id_sorted"])
            & (flags["duration_s"] > 0) & flags[TRACK_COLUMNS].notna().all(axis=1)
            & flags["audio_exists"].eq(True) & flags["audio_decodes"].eq(True))
    for column in (f"audio_{kind}_ok" for kind in AUDIO_ODDITIES):
        if column in flags:
            good &= flags[column].eq(True)
    keep = ~good.to_numpy()
    keep[0] = True
    return flags.loc[keep]


def check_tracks(flags: pd.DataFrame, audio_checks: dict[str, str] | None = None) -> QualityResult:
    """Schema, unique ids, dense ``item_idx`` in track-id order, audio exists and decodes, positive duration,
    and each audio oddity (``audio_checks``: kind → ``fail`` or ``warn``; default: the setting ``audio_checks``'s
    defaults): a ``fail`` one is an expectation, a ``warn`` one lands in ``warnings``."""
    import great_expectations as gx

    levels = {**AudioCheckSettings().model_dump(), **(audio_checks or {})}
    E = gx.expectations
    expectations: list[Any] = [
        E.ExpectTableRowCountToBeBetween(min_value=1),
        E.ExpectColumnValuesToBeUnique(column="track_id"),
        E.ExpectColumnValuesToBeUnique(column="item_idx"),
        E.ExpectColumnPairValuesToBeEqual(column_A="item_idx", column_B="item_idx_expected"),
        E.ExpectColumnPairValuesToBeEqual(column_A="track_id", column_B="track_id_sorted"),
        E.ExpectColumnValuesToBeBetween(column="duration_s", min_value=0, strict_min=True),
        E.ExpectColumnValuesToBeInSet(column="audio_exists", value_set=[True]),
        E.ExpectColumnValuesToBeInSet(column="audio_decodes", value_set=[True]),
    ]
    expectations += [E.ExpectColumnValuesToBeInSet(column=f"audio_{kind}_ok", value_set=[True])
                     for kind in AUDIO_ODDITIES if levels[kind] == "fail" and f"audio_{kind}_ok" in flags]
    expectations += [E.ExpectColumnToExist(column=c) for c in TRACK_COLUMNS]
    expectations += [E.ExpectColumnValuesToNotBeNull(column=c) for c in TRACK_COLUMNS]
    result = _validate("tracks", _tracks_suite_rows(flags), expectations,
                       id_columns=["track_id", "audio_path", "audio_problem"] if "audio_problem" in flags
                       else ["track_id", "audio_path"])
    for kind in AUDIO_ODDITIES:
        column = f"audio_{kind}_ok"
        if levels[kind] != "warn" or column not in flags or flags[column].all():
            continue
        odd = flags.loc[~flags[column].astype(bool)]
        result.warnings.append({"kind": kind, "count": len(odd), "examples": odd[
            ["track_id", "audio_path", "audio_problem"]].head(5).astype(str).to_dict(orient="records")})
    return result
