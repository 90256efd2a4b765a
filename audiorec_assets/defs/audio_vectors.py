"""``audiorec/audio_vectors``: the catalogue's audio through one audio encoder per partition, written to
``<lake>/embeddings/<encoder>.npy`` (+ the per-track index that lets the next run encode only new or changed audio,
and ``<encoder>.encoding.json``: the run's facts, the row of ``audiorec.encoders``). Why an asset of its own:
docs/architecture.md, "The graph as it is built"."""

import json
import time
from pathlib import Path

import dagster as dg
import pandas as pd

from audiorec_assets.defs.automation import expensive
from audiorec_assets.defs.ingest import TRACKS
from audiorec_assets.defs.partitions import AUDIO_ENCODER_SET
from audiorec_assets.defs.resources import TORCH_OP_TAGS, TORCH_POOL, LakeResource
from audiorec_assets.defs.sources import ENCODER_INPUTS
from audiorec_assets.encoders import make_audio_encoder
from audiorec_assets.encoders.base import EncoderContext
from audiorec_assets.encoders.run import encode_catalogue, encoder_signature, index_frame, load_previous
from audiorec_assets.fingerprints import array_fingerprint
from audiorec_assets.lakeio import atomic_path, process_staging, save_npy_atomic
from audiorec_assets.progress import Progress, log_progress
from audiorec_assets.settings import LakePaths, effective_device

AUDIO_VECTORS = dg.AssetKey(["audiorec", "audio_vectors"])
CODE_VERSION = "1"  # bump when a change here or in the encoders changes the vectors
PROGRESS_EVERY_S = 5.0  # a line in the run log (and in audiorec materialize's display) at most this often


@dg.multi_asset(
    specs=[dg.AssetSpec(AUDIO_VECTORS, deps=[TRACKS, ENCODER_INPUTS], group_name="embeddings",
                        kinds={"numpy", "pytorch"}, code_version=CODE_VERSION, automation_condition=expensive(),
                        description="The audio through one pretrained (or weight-free) encoder, float32 in item_idx "
                                    "order, written to `<lake>/embeddings/<encoder>.npy`; audiorec/embeddings checks "
                                    "and publishes it and computes the twins (shuffled, hybrid) from it.")],
    partitions_def=AUDIO_ENCODER_SET, pool=TORCH_POOL, op_tags=TORCH_OP_TAGS, name="audio_vectors",
)
def audio_vectors(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    paths, settings, name = lake.paths(), lake.settings(), context.partition_key
    tracks = pd.read_parquet(paths.table_dir("tracks") / "all.parquet").sort_values("item_idx")
    encode = settings.encode
    device = effective_device(encode.device)
    models_dir = Path(encode.models_dir) if encode.models_dir else None
    encoder = make_audio_encoder(name, EncoderContext(device=device, batch_size=encode.batch_size, seed=settings.seed,
                                                      models_dir=models_dir))
    vectors_path, index_path = paths.embedding_file(name), paths.embeddings / f"{name}.index.parquet"
    last_log = [0.0]

    def progress(done: int, total: int, seconds: float) -> None:
        if done == total or seconds - last_log[0] >= PROGRESS_EVERY_S:
            last_log[0] = seconds
            log_progress(context.log, Progress(name, done, total, "tracks", seconds))

    started = time.perf_counter()
    audio_paths = [paths.resolve(p) for p in tracks["audio_path"]]
    vectors, hashes, report = encode_catalogue(encoder, audio_paths, load_previous(vectors_path, index_path),
                                               encode.on_error, progress)
    if report.skipped:
        context.log.warning(f"{name}: {len(report.skipped)} track(s) could not be encoded and got the mean vector: "
                            f"{report.skipped[:10]}")
    save_npy_atomic(vectors_path, vectors, staging=process_staging(paths.staging))
    index = index_frame(list(tracks["track_id"]), hashes, vectors, report.skipped, encoder_signature(encoder),
                        raw_vectors=report.raw_vectors)
    with atomic_path(index_path, suffix=".parquet", staging=process_staging(paths.staging)) as tmp:
        index.to_parquet(tmp, index=False)
    facts = {**encoder.describe(), "device": device, "encoded": report.encoded, "reused": report.reused,
             "skipped": report.skipped, "x_realtime": round(report.realtime_factor, 1) if report.encoded else None,
             "seconds": round(time.perf_counter() - started, 2)}
    with atomic_path(_facts_file(paths, name), staging=process_staging(paths.staging)) as tmp:
        tmp.write_text(json.dumps(facts))
    return dg.MaterializeResult(data_version=dg.DataVersion(array_fingerprint(vectors)),
                                metadata={**{k: v for k, v in facts.items() if v is not None},
                                          "path": dg.MetadataValue.path(str(vectors_path))})


def _facts_file(paths: LakePaths, name: str) -> Path:
    return paths.embeddings / f"{name}.encoding.json"


def encoding_facts(paths: LakePaths, name: str) -> dict:
    """What the latest ``audio_vectors[name]`` run wrote (model, dimension, tracks encoded / reused / skipped,
    timing); an error naming the partition when it has not been materialized in this lake."""
    try:
        return json.loads(_facts_file(paths, name).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{_facts_file(paths, name)} does not exist: materialize audiorec/audio_vectors "
                                f"partition {name!r} first.") from None
