"""What a stored result was built from, so that the study plan reruns exactly what changed.

Every materialization records ``audiorec/fingerprint`` (a hash of its output's content) and
``audiorec/built_from`` (a hash of its inputs' fingerprints and the settings it used). The
study plan recomputes the expected ``built_from`` from the upstream fingerprints it finds in
the instance and the current settings; a mismatch, a missing output file or a failed check
upstream decides what runs next. Re-ingesting identical data changes nothing downstream;
changing ``shallow.max_epochs`` reruns the models and nothing else.
"""

import hashlib
from pathlib import Path

import numpy as np

from audiorec_assets.settings import ExperimentSettings

FINGERPRINT = "audiorec/fingerprint"
BUILT_FROM = "audiorec/built_from"

INGEST_SETTINGS = ("preset", "seed", "split", "missing_audio")
EMBEDDING_SETTINGS = ("seed", "encode")
MODEL_SETTINGS = ("preset", "seed", "ks", "top_n", "shallow", "bert4rec", "encode")


def combine(*parts: object) -> str:
    return hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def table_fingerprint(path: Path) -> str:
    """Content hash of a Parquet table (row order and file bytes do not matter)."""
    import duckdb

    with duckdb.connect() as con:
        columns = [r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet($p)", {"p": str(path)}).fetchall()]
        hashed = ", ".join(f'"{c}"' for c in columns)
        count, total = con.execute(
            f"SELECT count(*), sum(hash({hashed})::HUGEINT) FROM read_parquet($p)", {"p": str(path)}).fetchone()
    return combine(count, total, columns)


def array_fingerprint(array: np.ndarray) -> str:
    return combine(array.shape, array.dtype, hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest())


def file_stamp(path: Path) -> str:
    """Cheap identity of a user's file: size and modification time."""
    stat = path.stat()
    return combine(path.name, stat.st_size, stat.st_mtime_ns)


def ingest_built_from(settings: ExperimentSettings, lake_root: Path) -> str:
    return combine(lake_root, settings.fingerprint(*INGEST_SETTINGS))


def embeddings_built_from(settings: ExperimentSettings, tracks_fp: str, base_fp: str | None = None,
                          user_file: str | None = None) -> str:
    return combine(tracks_fp, settings.fingerprint(*EMBEDDING_SETTINGS), base_fp, user_file)


def metrics_built_from(settings: ExperimentSettings, interactions_fp: str, vectors_fp: str) -> str:
    return combine(interactions_fp, vectors_fp, settings.fingerprint(*MODEL_SETTINGS))


def tables_built_from(settings: ExperimentSettings, metrics_fps: list[str]) -> str:
    return combine(sorted(metrics_fps), settings.fingerprint("ks", "seed"))
