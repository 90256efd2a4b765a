"""What a stored result was built from, so that the study plan reruns exactly what changed.

Every materialization records ``audiorec/fingerprint`` (a hash of its output's content) and
``audiorec/built_from`` (a hash of its inputs' fingerprints and the settings it used). The
study plan recomputes the expected ``built_from`` from the upstream fingerprints it finds in
the instance and the current settings; a mismatch, a missing output file or a failed check
upstream decides what runs next. Re-ingesting identical data changes nothing downstream;
changing ``shallow.max_epochs`` reruns the shallow partitions and the tables, nothing else.
"""

import hashlib
from pathlib import Path

import numpy as np

from audiorec_assets.settings import ExperimentSettings

FINGERPRINT = "audiorec/fingerprint"
BUILT_FROM = "audiorec/built_from"

INGEST_SETTINGS = ("preset", "seed", "split", "missing_audio", "duplicates", "audio_checks")
EMBEDDING_SETTINGS = ("seed", "encode")
# what every encoder x recommender partition depends on, plus the recommender's own section
MODEL_SETTINGS = ("preset", "seed", "seeds", "ks", "top_n")
MODEL_LINEAGE_FILE = "lineage.json"  # in the model folder: the input fingerprints the model was trained on


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


def raw_fingerprint(raw_dir: Path) -> str:
    """Changes whenever a file under ``raw/`` is added, removed, resized or touched."""
    digest = hashlib.sha1()
    files = sorted(p for p in raw_dir.rglob("*") if p.is_file()) if raw_dir.exists() else []
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(raw_dir)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def tracks_fingerprint(tracks_file: Path, lake_root: Path) -> str:
    """The catalogue table plus the size and mtime of every audio file it names (replaced audio counts);
    relative audio paths are taken from ``lake_root``."""
    import pandas as pd

    stored = pd.read_parquet(tracks_file, columns=["audio_path"])["audio_path"]
    files = [Path(lake_root) / p if isinstance(p, str) else None for p in stored]  # absolute p: `/` keeps it
    stamps = [file_stamp(f) if f is not None and f.exists() else "missing" for f in files]
    return combine(table_fingerprint(tracks_file), hashlib.sha1("".join(stamps).encode()).hexdigest())


def ingest_built_from(settings: ExperimentSettings, lake_root: Path, raw_fp: str, tracks_fp: str) -> str:
    """Interactions depend on the raw files, the catalogue they were split against and the split settings."""
    return combine(lake_root, raw_fp, tracks_fp, settings.fingerprint(*INGEST_SETTINGS))


def embeddings_built_from(settings: ExperimentSettings, tracks_fp: str, base_fp: str | None = None,
                          user_file: str | None = None) -> str:
    return combine(tracks_fp, settings.fingerprint(*EMBEDDING_SETTINGS), base_fp, user_file)


def model_settings(settings: ExperimentSettings, recommender: str) -> str:
    """The settings one recommender's results depend on: changing ``shallow.*`` leaves knn alone."""
    own = (recommender,) if recommender in type(settings).model_fields else ()
    return combine(settings.fingerprint(*MODEL_SETTINGS, *own), settings.encode.standardize)


def metrics_built_from(settings: ExperimentSettings, recommender: str, interactions_fp: str, vectors_fp: str) -> str:
    return combine(interactions_fp, vectors_fp, model_settings(settings, recommender))


def tables_built_from(settings: ExperimentSettings, metrics_fps: list[str]) -> str:
    return combine(sorted(metrics_fps), settings.fingerprint("ks", "seed", "headline_k", "encoders", "recommenders"),
                   settings.encode.shuffled_base)
