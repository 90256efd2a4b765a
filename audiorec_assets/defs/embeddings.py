"""``audiorec/embeddings`` (+ the ``audiorec.encoders`` table): one partition per encoder, written to
``<lake>/embeddings/<encoder>.npy``."""

import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from audiorec_assets.cell_inputs import VALID_CHECK
from audiorec_assets.defs.automation import expensive
from audiorec_assets.defs.ingest import TRACKS
from audiorec_assets.defs.partitions import ENCODERS, GRID
from audiorec_assets.progress import Progress, log_progress
from audiorec_assets.defs.resources import TORCH_OP_TAGS, TORCH_POOL, LakeResource
from audiorec_assets.defs.sources import ENCODER_INPUTS
from audiorec_assets.encoders import (
    AUDIO_ENCODERS, CONTROL_ENCODERS, audio_encoder_class, hybrid_base_of, make_audio_encoder, shuffled_base_of,
    twin_base_of,
)
from audiorec_assets.fingerprints import array_fingerprint, combine
from audiorec_assets.encoders.base import EncoderContext
from audiorec_assets.encoders.controls import random_vectors, shuffled_vectors
from audiorec_assets.encoders.hybrid import hybrid_vectors
from audiorec_assets.encoders.run import (
    embedding_problems, encode_catalogue, encoder_signature, index_frame, load_previous, vector_stats,
)
from audiorec_assets.lakeio import atomic_path, process_staging, save_npy_atomic
from audiorec_assets.settings import ExperimentSettings, LakePaths, effective_device
from audiorec_assets.warehouse import refresh_views, write_table_file

EMBEDDINGS = dg.AssetKey(["audiorec", "embeddings"])
ENCODERS_TABLE = dg.AssetKey(["audiorec", "encoders"])
RUN_FACTS = ("seconds", "x_realtime", "encoded", "reused", "device")  # of this run, not of the vectors
CODE_VERSION = "1"  # bump when a change here or in the encoders changes the vectors
PROGRESS_EVERY_S = 5.0  # a line in the run log (and in audiorec materialize's display) at most this often


@dg.multi_asset(
    specs=[
        dg.AssetSpec(EMBEDDINGS, deps=[TRACKS, ENCODER_INPUTS], group_name="embeddings", kinds={"numpy", "pytorch"},
                     code_version=CODE_VERSION, automation_condition=expensive(),
                     description="Frozen item vectors per encoder: float32, one row per track in item_idx order "
                                 f"(`<lake>/embeddings/<encoder>.npy`). {GRID}"),
        dg.AssetSpec(ENCODERS_TABLE, deps=[TRACKS, ENCODER_INPUTS], group_name="embeddings",
                     kinds={"duckdb", "parquet"}, code_version=CODE_VERSION, automation_condition=expensive(),
                     description="audiorec.encoders: per encoder its model id, dimension, tracks encoded / reused / "
                                 "skipped, timing and vector statistics."),
    ],
    check_specs=[dg.AssetCheckSpec(VALID_CHECK, asset=EMBEDDINGS, blocking=True,
                                   description="float32, rows = tracks, finite, no all-zero rows, not constant "
                                               "(the models step checks the same again)")],
    partitions_def=ENCODERS, pool=TORCH_POOL, op_tags=TORCH_OP_TAGS, name="embeddings",
)
def embeddings(context: dg.AssetExecutionContext, lake: LakeResource):
    paths, settings = lake.paths(), lake.settings()
    name = context.partition_key
    refresh_views(paths)
    tracks = pd.read_parquet(paths.table_dir("tracks") / "all.parquet").sort_values("item_idx")
    started = time.perf_counter()
    extra: dict = {}  # metadata of the embeddings only, not a column of audiorec.encoders
    if name in AUDIO_ENCODERS:
        vectors, info = _encode_audio(name, tracks, paths, settings, context.log)
    elif name in CONTROL_ENCODERS or twin_base_of(name, settings.encode.shuffled_base):
        base = twin_base_of(name, settings.encode.shuffled_base)
        if base and _being_written(context, base):  # a run launched beside its base's: wait for those vectors
            context.log.info(f"embeddings[{base}] is being materialized by another run: {name} waits for it")
            raise dg.RetryRequested(max_retries=40, seconds_to_wait=30)
        if hybrid_base_of(name):
            vectors, info, extra = _hybrid(name, tracks, paths, settings, context.log)
        else:
            vectors, info = _control(name, len(tracks), paths, settings)
    else:
        vectors, info = _dropped_in(name, paths)
    info["seconds"] = round(time.perf_counter() - started, 2)
    problems = embedding_problems(vectors, len(tracks))
    stats = vector_stats(vectors) if vectors.ndim == 2 and len(vectors) and vectors.shape[1] else {}
    info.update({"encoder": name, "tracks": int(vectors.shape[0]),
                 "dim": int(vectors.shape[1]) if vectors.ndim == 2 else 0})
    table_file = write_table_file(paths, "encoders", pd.DataFrame([{**info, **stats}]).astype({"skipped": str}),
                                  part=name, connect=lake.connect)
    yield dg.MaterializeResult(
        asset_key=EMBEDDINGS, data_version=dg.DataVersion(array_fingerprint(vectors)),
        metadata={**{k: v for k, v in info.items() if v is not None}, **stats, **extra,
                  "path": dg.MetadataValue.path(str(paths.embedding_file(name)))})
    # the row's timings and reuse counts change on every run; its version is what describes the vectors
    described = {k: v for k, v in info.items() if k not in RUN_FACTS}
    yield dg.MaterializeResult(asset_key=ENCODERS_TABLE,
                               data_version=dg.DataVersion(combine(sorted(described.items()), array_fingerprint(vectors))),
                               metadata={"dagster/row_count": 1, "encoder": name,
                                         "path": dg.MetadataValue.path(str(table_file))})
    yield dg.AssetCheckResult(
        asset_key=EMBEDDINGS, check_name=VALID_CHECK, passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"problems": dg.MetadataValue.json(problems), **stats})


def _being_written(context: dg.AssetExecutionContext, encoder: str) -> bool:
    """Whether another run that is queued or going materializes ``embeddings[encoder]``."""
    going = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]
    records = context.instance.get_run_records(filters=dg.RunsFilter(statuses=going, tags={"dagster/partition": encoder}))
    return any(r.dagster_run.run_id != context.run.run_id and EMBEDDINGS in (r.dagster_run.asset_selection or ())
               for r in records)


def _encode_audio(name: str, tracks: pd.DataFrame, paths: LakePaths, settings: ExperimentSettings,
                  log: dg.DagsterLogManager) -> tuple[np.ndarray, dict]:
    encode = settings.encode
    device = effective_device(encode.device)
    context = EncoderContext(device=device, batch_size=encode.batch_size, seed=settings.seed,
                             models_dir=Path(encode.models_dir) if encode.models_dir else None)
    encoder = make_audio_encoder(name, context)
    vectors_path, index_path = paths.embedding_file(name), paths.embeddings / f"{name}.index.parquet"
    previous = load_previous(vectors_path, index_path)
    last_log = [0.0]

    def progress(done: int, total: int, seconds: float) -> None:
        if done == total or seconds - last_log[0] >= PROGRESS_EVERY_S:
            last_log[0] = seconds
            log_progress(log, Progress(name, done, total, "tracks", seconds))

    audio_paths = [paths.resolve(p) for p in tracks["audio_path"]]
    vectors, hashes, report = encode_catalogue(encoder, audio_paths, previous, encode.on_error, progress)
    if report.skipped:
        log.warning(f"{name}: {len(report.skipped)} track(s) could not be encoded and got the mean vector: "
                    f"{report.skipped[:10]}")
    save_npy_atomic(vectors_path, vectors, staging=process_staging(paths.staging))
    index = index_frame(list(tracks["track_id"]), hashes, vectors, report.skipped, encoder_signature(encoder),
                        raw_vectors=report.raw_vectors)
    with atomic_path(index_path, suffix=".parquet", staging=process_staging(paths.staging)) as tmp:
        index.to_parquet(tmp, index=False)
    return vectors, {**encoder.describe(), "device": device, "encoded": report.encoded,
                     "reused": report.reused, "skipped": report.skipped,
                     "x_realtime": round(report.realtime_factor, 1) if report.encoded else None}


def _control(name: str, n_tracks: int, paths: LakePaths, settings: ExperimentSettings) -> tuple[np.ndarray, dict]:
    shuffled_of = shuffled_base_of(name, settings.encode.shuffled_base)
    base = shuffled_of or settings.encode.shuffled_base
    base_file = paths.embedding_file(base)
    if shuffled_of:
        vectors = shuffled_vectors(_base_vectors(name, base, "permutes", paths), seed=settings.seed)
    else:
        # a built-in base's dimension is known without its file, so `random` never waits for it
        dim = audio_encoder_class(base).dim if base in AUDIO_ENCODERS else np.load(base_file, mmap_mode="r").shape[1]
        vectors = random_vectors(n_tracks, dim, seed=settings.seed)
    save_npy_atomic(paths.embedding_file(name), vectors, staging=process_staging(paths.staging))
    return vectors, {"model_id": f"control of {base}" if shuffled_of else "gaussian N(0, 1)",
                     "base_encoder": base, "seed": settings.seed, "skipped": []}


def _base_vectors(name: str, base: str, what: str, paths: LakePaths) -> np.ndarray:
    """The stored vectors of ``base`` that the twin ``name`` is computed from."""
    base_file = paths.embedding_file(base)
    if not base_file.exists():
        setting = " (setting encode.shuffled_base)" if name == "shuffled" else ""
        raise FileNotFoundError(f"'{name}' {what} the vectors of encoder '{base}'{setting}, but {base_file} does not "
                                f"exist: materialize the embeddings partition '{base}' first.")
    return np.load(base_file)


def _hybrid(name: str, tracks: pd.DataFrame, paths: LakePaths, settings: ExperimentSettings,
            log: dg.DagsterLogManager) -> tuple[np.ndarray, dict, dict]:
    """``hybrid_<base>``: the base's stored vectors beside the metadata columns of ``audiorec.tracks``
    (tracks.csv as the ingest joined it), rows in item_idx order."""
    base = hybrid_base_of(name)
    audio = _base_vectors(name, base, "puts track metadata beside", paths)
    if len(audio) != len(tracks):
        raise ValueError(f"{paths.embedding_file(base)} has {len(audio)} rows but audiorec.tracks has {len(tracks)} "
                         f"tracks: materialize the embeddings partition '{base}' again first.")
    hybrid = settings.hybrid
    vectors, report = hybrid_vectors(audio, tracks, hybrid.audio_weight, hybrid.metadata_weight, hybrid.columns,
                                     hybrid.max_categories)
    if report.excluded:
        log.info(f"{name}: metadata columns left out: {report.excluded}")
    save_npy_atomic(paths.embedding_file(name), vectors, staging=process_staging(paths.staging))
    info = {"model_id": f"{base} + tracks.csv metadata", "base_encoder": base, "skipped": [],
            "audio_dim": report.audio_dim, "metadata_dim": report.metadata_dim,
            "audio_weight": report.audio_weight, "metadata_weight": report.metadata_weight,
            "metadata_columns": ", ".join(c.name for c in report.columns)}
    extra = {"metadata_report": dg.MetadataValue.md(report.markdown(base)),
             "missing_values": dg.MetadataValue.json(report.missing),
             "excluded_columns": dg.MetadataValue.json(report.excluded)}
    return vectors, info, extra


def _dropped_in(name: str, paths: LakePaths) -> tuple[np.ndarray, dict]:
    """A user's own ``<name>.npy``: validated, never rewritten."""
    path = paths.embedding_file(name)
    if not path.exists():
        raise FileNotFoundError(f"Encoder '{name}' is not built in and {path} does not exist.")
    vectors = np.load(path, mmap_mode="r")
    if vectors.ndim != 2:
        raise ValueError(f"{path}: shape {vectors.shape}; expected a 2-D array (tracks, dim) in item_idx order.")
    if vectors.dtype != np.float32:
        raise ValueError(f"{path}: dtype {vectors.dtype}; audiorec expects float32 (np.save(path, x.astype('float32'))).")
    return np.asarray(vectors), {"model_id": f"user file {path.name}", "skipped": []}


