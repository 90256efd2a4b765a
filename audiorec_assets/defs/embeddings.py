"""``audiorec/embeddings`` (+ the ``audiorec.encoders`` table): one partition per encoder, stored as
``<lake>/embeddings/<encoder>.npy`` (what it does per kind of encoder: docs/architecture.md, "The graph as it is
built"); a user's dropped-in file is checked and never rewritten."""

import time

import dagster as dg
import numpy as np
import pandas as pd

from audiorec_assets.cell_inputs import VALID_CHECK
from audiorec_assets.defs.audio_vectors import AUDIO_VECTORS, encoding_facts
from audiorec_assets.defs.automation import after_encodings
from audiorec_assets.defs.ingest import TRACKS
from audiorec_assets.defs.partitions import ENCODERS, GRID
from audiorec_assets.defs.resources import LakeResource
from audiorec_assets.defs.sources import EMBEDDING_INPUTS
from audiorec_assets.encoders import (
    AUDIO_ENCODERS, CONTROL_ENCODERS, audio_encoder_class, hybrid_base_of, is_twin, twin_base_of, twin_chain,
)
from audiorec_assets.encoders.controls import random_vectors, shuffled_vectors
from audiorec_assets.encoders.hybrid import hybrid_vectors
from audiorec_assets.encoders.run import embedding_problems, vector_stats
from audiorec_assets.fingerprints import array_fingerprint, combine
from audiorec_assets.lakeio import process_staging, save_npy_atomic
from audiorec_assets.settings import ExperimentSettings, LakePaths
from audiorec_assets.warehouse import refresh_views, write_table_file

EMBEDDINGS = dg.AssetKey(["audiorec", "embeddings"])
ENCODERS_TABLE = dg.AssetKey(["audiorec", "encoders"])
RUN_FACTS = ("seconds", "x_realtime", "encoded", "reused", "device")  # of this run, not of the vectors
CODE_VERSION = "1"  # bump when a change here or in the controls changes the vectors
DEPS = [TRACKS, EMBEDDING_INPUTS, dg.AssetDep(AUDIO_VECTORS, partition_mapping=dg.AllPartitionMapping())]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(EMBEDDINGS, deps=DEPS, group_name="embeddings", kinds={"numpy"}, code_version=CODE_VERSION,
                     automation_condition=after_encodings(AUDIO_VECTORS),
                     description="Frozen item vectors per encoder: float32, one row per track in item_idx order "
                                 f"(`<lake>/embeddings/<encoder>.npy`), checked. {GRID}"),
        dg.AssetSpec(ENCODERS_TABLE, deps=DEPS, group_name="embeddings", kinds={"duckdb", "parquet"},
                     code_version=CODE_VERSION, automation_condition=after_encodings(AUDIO_VECTORS),
                     description="audiorec.encoders: per encoder its model id, dimension, tracks encoded / reused / "
                                 "skipped, timing and vector statistics."),
    ],
    check_specs=[dg.AssetCheckSpec(VALID_CHECK, asset=EMBEDDINGS, blocking=True,
                                   description="float32, rows = tracks, finite, no all-zero rows, not constant "
                                               "(the models step checks the same again)")],
    partitions_def=ENCODERS, name="embeddings",
)
def embeddings(context: dg.AssetExecutionContext, lake: LakeResource):
    paths, settings = lake.paths(), lake.settings()
    name = context.partition_key
    refresh_views(paths)
    tracks = pd.read_parquet(paths.table_dir("tracks") / "all.parquet").sort_values("item_idx")
    started = time.perf_counter()
    extra: dict = {}  # metadata of the embeddings only, not a column of audiorec.encoders
    if name in AUDIO_ENCODERS:  # encoded by audiorec/audio_vectors: checked and described here
        info = encoding_facts(paths, name)
        vectors = np.load(paths.embedding_file(name))
    elif name in CONTROL_ENCODERS or twin_base_of(name, settings.encode.shuffled_base):
        vectors, info, extra = _derived(name, tracks, paths, settings, context.log)
        save_npy_atomic(paths.embedding_file(name), vectors, staging=process_staging(paths.staging))
        info["seconds"] = round(time.perf_counter() - started, 2)
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


def _derived(name: str, tracks: pd.DataFrame, paths: LakePaths, settings: ExperimentSettings,
             log: dg.DagsterLogManager) -> tuple[np.ndarray, dict, dict]:
    """A control's or twin's vectors, computed in memory down its chain (``shuffled_hybrid_mfcc``: mfcc's stored
    vectors, with metadata, permuted), so it reads only encoders' files, never another twin's."""
    shuffled_base = settings.encode.shuffled_base
    base = twin_base_of(name, shuffled_base)
    if is_twin(twin_chain(name, shuffled_base)[-1]):
        raise ValueError(f"'{name}' is computed from itself: set encode.shuffled_base to an encoder that is not a "
                         f"control ({shuffled_base!r} now)")
    if name == "random":
        # a built-in base's dimension is known without its file, so `random` never waits for it
        dim = (audio_encoder_class(shuffled_base).dim if shuffled_base in AUDIO_ENCODERS
               else _stored_vectors(name, shuffled_base, "takes the dimension of", paths).shape[1])
        return random_vectors(len(tracks), dim, seed=settings.seed), {
            "model_id": "gaussian N(0, 1)", "base_encoder": shuffled_base, "seed": settings.seed, "skipped": []}, {}
    verb = "puts track metadata beside" if hybrid_base_of(name) else "permutes"
    base_vectors = (_derived(base, tracks, paths, settings, log)[0] if base == "random" or is_twin(base)
                    else _stored_vectors(name, base, verb, paths))
    if len(base_vectors) != len(tracks):
        raise ValueError(f"{paths.embedding_file(base)} has {len(base_vectors)} rows but audiorec.tracks has "
                         f"{len(tracks)} tracks: materialize {_producer(base)} partition '{base}' again first.")
    if hybrid_base_of(name):
        return _hybrid(base, base_vectors, tracks, settings, log)
    return shuffled_vectors(base_vectors, seed=settings.seed), {
        "model_id": f"control of {base}", "base_encoder": base, "seed": settings.seed, "skipped": []}, {}


def _producer(encoder: str) -> str:
    """The asset that writes ``encoder``'s stored vectors."""
    return "audiorec/audio_vectors" if encoder in AUDIO_ENCODERS else "audiorec/embeddings"


def _stored_vectors(name: str, base: str, what: str, paths: LakePaths) -> np.ndarray:
    """The stored vectors of ``base`` (an audio encoder's or a user's file) that ``name`` is computed from, mapped
    read-only (``random`` needs only their dimension)."""
    base_file = paths.embedding_file(base)
    if not base_file.exists():
        setting = " (setting encode.shuffled_base)" if name in CONTROL_ENCODERS else ""
        raise FileNotFoundError(f"'{name}' {what} the vectors of encoder '{base}'{setting}, but {base_file} does not "
                                f"exist: materialize {_producer(base)} partition '{base}' first.")
    return np.load(base_file, mmap_mode="r")


def _hybrid(base: str, audio: np.ndarray, tracks: pd.DataFrame, settings: ExperimentSettings,
            log: dg.DagsterLogManager) -> tuple[np.ndarray, dict, dict]:
    """``hybrid_<base>``: the base's vectors beside the metadata columns of ``audiorec.tracks`` (tracks.csv as the
    ingest joined it), rows in item_idx order."""
    hybrid = settings.hybrid
    vectors, report = hybrid_vectors(audio, tracks, hybrid.audio_weight, hybrid.metadata_weight, hybrid.columns,
                                     hybrid.max_categories)
    if report.excluded:
        log.info(f"hybrid_{base}: metadata columns left out: {report.excluded}")
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


